"""The built-in calculator tool (issue 49, item 2): exact, bounded, never raises, never executes."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards.tools import MAX_EXPRESSION_CHARS, calculator


@pytest.mark.parametrize("expression, value", [
    ("48/2", "24"), ("(3 + 4) * 2.5", "17.5"), ("10/3", "3.33333333333"), ("2^10", "1024"), ("2**10", "1024"),
    ("-5+2", "-3"), ("0.1+0.2", "0.3"), ("1/7*7", "1"), ("1,000 * 2", "2000"), ("$5 * 3", "15"),
    ("6 \u00d7 7", "42"), ("84 \u00f7 2", "42"), ("2**-2", "0.25"), (" 12 ", "12"),
])
def test_gsm8k_style_arithmetic_is_exact(expression, value):
    assert calculator(expression) == value


@pytest.mark.parametrize("expression, error", [
    ("__import__('os').system('touch /tmp/pwned')", "only numbers"),
    ("open('/etc/passwd').read()", "only numbers"),
    ("9**9**9**9", "exponents above 64"),
    ("999999999999**64", "too large"),
    ("2**0.5", "whole numbers"),
    ("1/0", "division by zero"), ("0**-1", "division by zero"),
    ("", "empty"), ("1.5.5", "not well formed"), ("(" * 150 + "1", "not well formed"),
    ("1+" * 40 + "1", "more than 32 numbers"), ("1" * (MAX_EXPRESSION_CHARS + 1), "longer than"),
])
def test_what_it_refuses_gets_a_short_error_text(expression, error):
    answer = calculator(expression)
    assert answer.startswith("error: ") and error in answer and len(answer) < 100


@pytest.mark.parametrize("value", [None, 5, 2.5, ["1+1"], {"expression": "1"}, b"1+1"])
def test_a_non_text_argument_is_an_error_text(value):
    assert calculator(value).startswith("error: the expression must be text")


def test_the_model_never_gets_python_to_run_its_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for attack in ("__import__('os').system('touch x')", "(lambda: open('y', 'w'))()", "[open('z','w')]"):
        calculator(attack)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.+-*/^() ,$e", max_size=300) | st.text(max_size=300))
def test_any_text_is_answered_fast_and_never_raises(text):
    started = time.perf_counter()
    answer = calculator(text)
    assert isinstance(answer, str) and answer
    assert time.perf_counter() - started < 0.05


numbers = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=300, deadline=None)
@given(numbers, st.sampled_from("+-*/"), numbers, st.sampled_from("+-*/"), numbers)
def test_it_agrees_with_exact_fractions(a, op1, b, op2, c):
    expression = f"({a} {op1} {b}) {op2} {c}"
    ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y, "/": lambda x, y: x / y}
    try:
        expected = ops[op2](ops[op1](Fraction(a), Fraction(b)), Fraction(c))
    except ZeroDivisionError:
        assert calculator(expression) == "error: division by zero"
        return
    answer = calculator(expression)
    if expected.denominator == 1:
        assert answer == str(expected.numerator)
    else:
        assert abs(Fraction(answer) - expected) <= abs(expected) * Fraction(1, 10**10) + Fraction(1, 10**15)
