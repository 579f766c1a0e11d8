r"""math_boxed on cases carried from public test suites (TRL's and open-r1's accuracy-reward tests,
Math-Verify's own gold/prediction pairs) and on the gold readings issue 16 asks for: prose and
placeholder golds score None, dollar-sign golds are read, bare numbers keep math-verify's reading,
bare LaTeX is still read, and a final run of several boxes is one answer."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards.math_boxed import final_boxes_start, gold_source, math_boxed_reward_func, prediction_text


pytest.importorskip("math_verify")


def score(completion, gold):
    return math_boxed_reward_func(completions=[[{"role": "assistant", "content": completion}]], answer=[gold])[0]


# TRL tests/test_rewards.py (accuracy_reward, reasoning_accuracy_reward, cosine) and open-r1
# tests/test_rewards.py (accuracy_reward): completion, gold, expected.
TRL_AND_OPEN_R1 = [
    (r"\boxed{\frac{63}{400}}", r"\frac{63}{400}", 1.0),
    (r"\boxed{\frac{63}{400}}", "63/400", 1.0),
    (r"\boxed{\frac{64}{400}}", r"\frac{63}{400}", 0.0),
    (r"\boxed{3}", "6", 0.0),
    ("Answer is forty two.", "Answer is forty two.", None),
    (r"Some other content. \boxed{43}.", "Answer is forty three.", None),
    (r"\boxed{\frac{1}{3}}", r"\frac{1}{3}", 1.0),
    (r"<think> Reasoning content </think> \boxed{\frac{63}{400}}", r"\frac{63}{400}", 1.0),
    (r"<think> Reasoning content </think> \boxed{42}", "forty two", None),
    (r"\boxed{42}", "forty two", None),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{3}", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", TRL_AND_OPEN_R1)
def test_trl_and_open_r1_accuracy_cases(completion, gold, expected):
    assert score(completion, gold) == expected


# Math-Verify tests/test_all.py: gold, prediction, expected (its verify after parse on both sides).
MATH_VERIFY_PAIRS = [
    ("-5", "-5", 1.0), ("7425000", "7,425,000", 1.0), ("1000", "1000.0", 1.0), ("1000.0", "1,000.0", 1.0),
    ("1000.99", "1000,99", 1.0), ("1,22", "1.22", 1.0), ("0.4", ".4", 1.0), ("1000.99", "1,000.99", 1.0),
    ("1000.99", "$1,000.99", 1.0), ("1000.99", "1,000.99$", 1.0), ("0,111", "0.111", 1.0),
    ("2", "AZYUK2A", 0.0),
    ("10/9", r"\frac{10}{9}", 1.0), ("-10/9", r"-\frac{10}{9}", 1.0),
    ("$[0,1)$", "$[0,1)$", 1.0), ("$[0,9)$", "$[0,1)$", 0.0), ("$(0,9)$", "$[0,9)$", 0.0),
    ("$9$", r"Answer \[ 9 \]", 1.0), ("$9$", "Answer $ 9 $", 1.0), ("$10$", r"Answer \( (9+1) \)", 1.0),
    ("$1/3$", r"$\frac13 $", 1.0), (r"$\sqrt{3}$", r"$\sqrt3 $", 1.0), ("$1/3$", r"$\dfrac{1}{3} $", 1.0),
    ("$1/3$", r"$k = \frac{1}{3}$", 1.0), ("$1/3$", r"$\left( \frac{1}{3} \right)$", 1.0),
    (r"$28\%$", "28 percent", 1.0), (r"$28\%$", "28", 1.0), ("$0.28$", "28", 0.0),
    ("$2-2p$", r"Thus $x-p=\boxed{2-2p}$.", 1.0),
    (r"$(3, \frac{\pi}{2})$", r"the polar coordinates are $\boxed{\left( 3, \frac{\pi}{2} \right)}.$", 1.0),
    (r"$\frac{14}{3}$", r"$=2+\frac{5}{3}+1=\boxed{\frac{14}{3}}$", 1.0),
    (r"$\text{Evelyn}$", r"Therefore, $\boxed{\text{Evelyn}}$ is our answer.", 1.0),
]


@pytest.mark.parametrize("gold, prediction, expected", MATH_VERIFY_PAIRS)
def test_math_verify_pairs(gold, prediction, expected):
    assert score(prediction, gold) == expected


@pytest.mark.parametrize("gold", ["Answer is forty two.", "forty two", "TBD", "n/a", "N/A", "unknown", "", "  ",
                                  None, "$", "The answer is x.", 3 + 4j, True, "$forty two$", r"\boxed{TBD}",
                                  r"\boxed{forty two}"])
def test_gold_that_is_not_mathematics_scores_none(gold):
    for completion in [r"\boxed{42}", rf"\boxed{{{gold}}}", str(gold)]:
        assert score(completion, gold) is None


class _Unprintable(int):
    def __str__(self):
        raise RuntimeError("no text")


@pytest.mark.parametrize("gold", [10**5000, -(10**5000), 10**1001, float("nan"), float("inf"), _Unprintable(7)],
                         ids=["10**5000", "-10**5000", "10**1001", "nan", "inf", "unprintable int"])
def test_a_number_gold_it_cannot_read_scores_none(gold):
    """10**5000 made str() raise ValueError (Python's int-to-str digit limit) out of gold_source."""
    assert gold_source(gold) is None
    assert math_boxed_reward_func(completions=[r"\boxed{72}", r"\boxed{7}"], answer=[gold, gold]) == [None, None]


def test_a_number_gold_it_can_read_still_pays():
    assert math_boxed_reward_func(completions=[r"\boxed{72}", r"\boxed{0.5}"], answer=[72, 0.5]) == [1.0, 1.0]
    assert score(r"\boxed{1" + "0" * 300 + "}", 10**300) == 1.0


@pytest.mark.parametrize("gold", [r"\$18.90", r"18.90\$", "$18.90", r"\boxed{\$18.90}", r"$\$18.90$"])
@pytest.mark.parametrize("completion", [r"\boxed{18.90}", r"\boxed{\$18.90}", r"\boxed{18.9}"])
def test_dollar_sign_golds_are_read(gold, completion):
    assert score(completion, gold) == 1.0
    assert score(r"\boxed{18.80}", gold) == 0.0


@pytest.mark.parametrize("completion", [r"\boxed{1000}", r"\boxed{1{,}000}", r"\boxed{\$1,000}"])
def test_dollar_gold_with_latex_thousands(completion):
    assert score(completion, r"\$1{,}000") == 1.0


@pytest.mark.parametrize("gold, completion", [
    ("€5", r"\boxed{5}"), ("5€", r"\boxed{5}"), ("1 000", r"\boxed{1000}"), ("12.5%", r"\boxed{12.5\%}"),
    ("-0.5", r"\boxed{-\frac12}"), ("+3", r"\boxed{3}"), ("1, 2", r"\boxed{1, 2}"),
])
def test_bare_golds_read_as_numbers_or_lists(gold, completion):
    assert score(completion, gold) == 1.0


def test_a_bare_list_is_not_read_as_its_last_number():
    # math-verify's bare reading of "1, 2" is 2; wrapped, it is the set {1, 2}.
    assert gold_source("1, 2") == "$1, 2$"
    assert score(r"\boxed{2}", "1, 2") == 0.0


def test_bare_number_golds_keep_math_verifys_reading():
    assert gold_source("1,22") == "1,22"  # math-verify reads bare 1,22 as 1.22; "$1,22$" would be {1, 22}
    assert score(r"\boxed{1.22}", "1,22") == 1.0
    assert score(r"\boxed{1,000}", "1,000") == 1.0
    assert score(r"\boxed{-3}", "-3") == 1.0


@pytest.mark.parametrize("gold, right, wrong", [
    ("p - q", r"\boxed{p-q}", r"\boxed{q-p}"),
    (r"\pi", r"\boxed{\pi}", r"\boxed{3.14}"),
    (r"\left(3,\frac{\pi}{2}\right)", r"\boxed{\left(3, \frac{\pi}{2}\right)}", r"\boxed{(3, \pi)}"),
    ("x^2 + 2xy", r"\boxed{2xy + x^2}", r"\boxed{x^2 + 2}"),
    (r"\text{Devon}", r"\boxed{\text{Devon}}", r"\boxed{\text{Ana}}"),
    ("(2,2), (6,2)", r"\boxed{(2,2)} \text{ and } \boxed{(6,2)}", r"\boxed{(6,2)}"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}",
     r"\boxed{\begin{pmatrix} 2 \\ 1 \end{pmatrix}}"),
    (r"5\text{ cm}", r"\boxed{5 \text{ cm}}", r"\boxed{6 \text{ cm}}"),
])
def test_bare_latex_golds_are_read(gold, right, wrong):
    assert score(right, gold) == 1.0
    assert score(wrong, gold) == 0.0


@pytest.mark.parametrize("completion", [
    r"\boxed{(2,2)} \text{ and } \boxed{(6,2)}", r"\boxed{(2,2)}, \boxed{(6,2)}",
    r"<answer>\boxed{(6,2)} or \boxed{(2,2)}</answer>", r"so $\boxed{(2,2)}$ and $\boxed{(6,2)}$.",
])
def test_a_final_run_of_boxes_is_one_answer(completion):
    assert score(completion, r"\boxed{(2,2)} \text{ and } \boxed{(6,2)}") == 1.0


def test_an_earlier_box_followed_by_prose_is_a_discarded_attempt():
    # Design difference: math-verify itself would read every box of the text, {5, 7}.
    completion = r"First guess \boxed{5}, but that double counts, so the answer is \boxed{7}"
    assert prediction_text(completion) == r"\boxed{7}"
    assert score(completion, "7") == 1.0


def test_box_scan_is_bounded():
    text = (r"\boxed{1}, " * 100_000) + r"\boxed{2}"
    start = final_boxes_start(text)
    assert len(text) - start < 1000
    assert len(prediction_text(text)) <= 800


words = st.from_regex(r"[A-Za-z]{3,10}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(prose=st.lists(words, min_size=1, max_size=4).map(" ".join))
def test_prose_gold_never_pays(prose):
    assert score(rf"\boxed{{{prose}}}", prose) is None
    assert score(prose, prose) is None


def test_bundled_math_golds_are_all_read_and_pay_their_own_answer():
    import json

    from axolotl_grpo_plugin.embedded.math_problems import DATA_FILE
    from axolotl_grpo_plugin.transforms.math_boxed import transform_row

    rows = [transform_row(json.loads(line)) for line in DATA_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100 and all(gold_source(row["answer"]) for row in rows)
    for row in rows[:16]:
        assert score(rf"<answer>\boxed{{{row['answer']}}}</answer>", row["answer"]) == 1.0


# A gold written as prose in $...$ that holds a box (issue 33): the box is the gold; golds whose box is
# prose, or that have no parseable answer at all, still score None.
@pytest.mark.parametrize("gold, right, wrong", [
    (r"$x \in \boxed{[1,3)}$ is the interval", r"\boxed{[1,3)}", r"\boxed{(1,3]}"),
    (r"$The solution set is the interval \boxed{(-\infty, 2]}$", r"\boxed{(-\infty, 2]}", r"\boxed{(-\infty, 2)}"),
    (r"$we get \boxed{1} and then \boxed{\frac{1}{2}}$", r"\boxed{\frac12}", r"\boxed{1}"),
])
def test_prose_gold_holding_a_box_reads_its_last_box(gold, right, wrong):
    assert score(right, gold) == 1.0
    assert score(wrong, gold) == 0.0


@pytest.mark.parametrize("gold", [r"$the answer is \boxed{forty two}$", r"$the interval from one to three$",
                                  r"$x \in \boxed{[1,3)$ unclosed"])
def test_prose_gold_without_a_readable_box_stays_none(gold):
    assert score(r"\boxed{[1,3)}", gold) is None


def test_an_answer_block_even_empty_is_the_answer():
    """The audit's `answer outside the tags` family: a box written after an empty answer block is
    not read (it was, through the whole-text fallback meant for completions with no block)."""
    assert score("<answer>\n\n</answer>\nThe answer is \\boxed{5}.", "5") == 0.0
    assert score("<answer>\n\\boxed{5}\n</answer>", "5") == 1.0
    assert score("<think>so</think> The answer is \\boxed{5}.", "5") == 1.0  # no answer block: the text


# Answers no machine computes (a fuzz run): math-verify parses them without evaluating them, then
# verify (or parse itself, for \binom, \Gamma, \gcd, \operatorname{eye}) computes them and never
# returns; the integral and the sine take seconds. Screened, they score 0.0 at once.
UNCOMPUTABLE = [
    "The answer is 9**9**9", "The answer is 10**10**10", "<answer>10**10**10</answer>", "so 9 ** (9 ** 9)",
    r"\boxed{9^{9^{9}}}", r"\boxed{{9}^{{9}^{9}}}", r"\boxed{9^{\left(9^{9}\right)}}", r"\boxed{2^{2^{34}}}",
    r"\boxed{2^{99999999999}}", r"\boxed{(10^{10})!}", r"\boxed{\left(10^{10}\right)!}", r"\boxed{10000000000!}",
    r"\boxed{9!!!!}", r"\boxed{((((9!)!)!)!)}", r"\boxed{\prod_{k=1}^{10^{9}} k}", r"\boxed{\prod_{k=1}^{1000} k^k}",
    r"\boxed{\sum_{k=1}^{1000} \frac{1}{k^{k}}}", r"\boxed{\binom{10^{10}}{5 \cdot 10^{9}}}",
    r"\boxed{\binom{10000000000}{5000000000}}", r"\boxed{{10^{10} \choose 5000000}}",
    r"\boxed{\binom{1{,}000{,}000}{500{,}000}}", r"\boxed{\Gamma(10^{10})}", r"\boxed{\Gamma(10000000000)}",
    r"\boxed{\gcd(9^{9^{9}}, 6)}", r"\boxed{\operatorname{eye}(10000000)}",
    r"\boxed{10^{10^{10}} - 10^{10^{10}} + 0.5}", r"\boxed{\int_0^\infty e^{-x^{100}} dx}",
    r"\boxed{\sin(10^{10^{5}})}", r"\boxed{x = 9^{9^{9}}}", r"\boxed{\sqrt{9^{9^{9}}}}", r"\boxed{(x+1)^{10^{7}}}",
]


def screened(text):
    """The screen refuses `text`; asked before any scoring, so a miss fails the test instead of hanging it."""
    from axolotl_grpo_rewards.math_boxed import _math_verify, too_costly, too_costly_parsed

    return too_costly(text) or too_costly_parsed(_math_verify().parse(text, parsing_timeout=None))


@pytest.mark.parametrize("completion", UNCOMPUTABLE)
def test_an_answer_too_large_to_compute_scores_zero_without_computing_it(completion):
    assert screened(prediction_text(completion))
    assert score(completion, "72") == 0.0


@pytest.mark.parametrize("gold", ["10^{10^{10}}", "9^{9^{9}}", r"\Gamma(10^{10})", "(10^{10})!", r"$\boxed{2^{2^{34}}}$"])
def test_a_gold_too_large_to_compute_scores_none(gold):
    assert screened(gold_source(gold))
    assert score(r"\boxed{72}", gold) is None


# What the screen must let through: MATH-style answers with small powers, factorials, binomials and sums.
@pytest.mark.parametrize("gold, completion", [
    ("1024", r"\boxed{2^{10}}"), ("1000000", r"\boxed{10^{6}}"), ("10^{6}", r"\boxed{1000000}"),
    (r"\frac{1}{1024}", r"\boxed{2^{-10}}"), ("256", r"\boxed{2^{2^{3}}}"), (r"9^{9^{2}}", r"\boxed{9^{81}}"),
    ("3628800", r"\boxed{10!}"), ("120", r"\boxed{\binom{10}{3}}"), ("6", r"\boxed{\Gamma(4)}"), ("6", r"\boxed{\gcd(12, 18)}"),
    ("5050", r"\boxed{\sum_{k=1}^{100} k}"), (r"\binom{n}{2}2^{n-2}", r"\boxed{\binom{n}{2} 2^{n-2}}"),
    ("e^{x^2}", r"\boxed{e^{x^{2}}}"), (r"x^{100}", r"\boxed{x^{100}}"), (r"3 \cdot 10^{8}", r"\boxed{300000000}"),
    (r"2\sqrt[3]{2}", r"\boxed{2\sqrt[3]{2}}"), (r"\frac{\pi^2}{6}", r"\boxed{\frac{\pi^{2}}{6}}"),
    (r"(-\infty, 2]", r"\boxed{(-\infty, 2]}"), ("90^\\circ", r"\boxed{90^\circ}"), (r"10,\!080", r"\boxed{10080}"),
    ("x^5 - x^4 + x^3 - x^2 + x - 1", r"\boxed{x^5 - x^4 + x^3 - x^2 + x - 1}"),
])
def test_small_powers_factorials_and_sums_still_verify(gold, completion):
    assert score(completion, gold) == 1.0


# Found after the first screen (each measured with math-verify alone, no screen): verify expands a
# multinomial ((a+...+h)^{60}: C(67, 7) ~ 9e8 terms, never returns; ^{6}, 1,716 terms, 4 s) and
# rewrites nested trigonometric functions as exponentials (five \tan deep never returns). The
# expansion's terms are bounded from the expression's structure, the nesting counted.
EXPANDED_OR_NESTED = [
    r"\boxed{(a+b+c+d+e+f+g+h)^{60}}", r"\boxed{(a+b+c+d+f+g+h+k)^{6}}", r"\boxed{(x+1)^{1000}}",
    r"\boxed{(a+b)(c+d)(f+g)(h+k)(m+n)(p+q)(r+s)(t+u)(v+w)(y+z)}", r"\boxed{((a+b)^{10}+c)^{10}}",
    r"\boxed{(a+b+c)^{-60}}", r"\boxed{\tan(\tan(\tan(\tan(\tan(1)))))}", r"\boxed{\sec(\sec(\sec(\sec(\sec(1)))))}",
    r"\boxed{\sin(\cos(\tan(\cot(1))))}", r"\boxed{x = \tanh(\tanh(\tanh(\tanh(\tanh(1)))))}",
]


@pytest.mark.parametrize("completion", EXPANDED_OR_NESTED)
def test_an_expansion_too_large_or_functions_nested_too_deep_score_zero_without_computing(completion):
    assert screened(prediction_text(completion))
    assert score(completion, "5") == 0.0


def _matrix(n, entry):
    return r" \\ ".join(" & ".join(entry(i, j) for j in range(n)) for i in range(n))


_LETTERS = "a b c d f g h k m n p q r s t u v w y z".split() + [rf"\alpha_{{{i}}}" for i in range(50)]
_SYMBOLS = _matrix(8, lambda i, j: _LETTERS[8 * i + j])


# What parsing itself computes, refused before parsing (too_costly alone, so that a miss fails instead
# of hanging): a determinant of letters (4x4 0.5 s, 5x5 4 s, 8x8 never), and brackets nested deep
# (20 parentheses 2 s, 40 \tan( deep 6 s, before verify).
PARSED_SLOWLY = [
    rf"\boxed{{\det\begin{{pmatrix}} {_SYMBOLS} \end{{pmatrix}}}}",
    rf"\boxed{{\det\begin{{pmatrix}} {_matrix(5, lambda i, j: _LETTERS[5 * i + j])} \end{{pmatrix}}}}",
    rf"\boxed{{\begin{{vmatrix}} {_matrix(6, lambda i, j: _LETTERS[6 * i + j])} \end{{vmatrix}}}}",
    rf"\boxed{{\operatorname{{det}}\left(\begin{{array}}{{cccccc}} {_matrix(6, lambda i, j: _LETTERS[6 * i + j])} \end{{array}}\right)}}",
    r"\boxed{" + "(" * 40 + "x" + ")" * 40 + "}", r"\boxed{" + "{" * 20 + "1" + "}" * 20 + "}",
    r"\boxed{" + r"\tan(" * 40 + "x" + ")" * 40 + "}",
]


@pytest.mark.parametrize("completion", PARSED_SLOWLY, ids=["det 8x8", "det 5x5", "vmatrix 6x6", "operatorname det",
                                                           "40 parentheses", "20 braces", "40 tan"])
def test_what_parsing_would_compute_is_refused_before_parsing(completion):
    from axolotl_grpo_rewards.math_boxed import too_costly

    assert too_costly(prediction_text(completion))
    assert score(completion, "5") == 0.0


# What the new bounds must let through: small expansions, shallow nestings, small or numeric determinants.
@pytest.mark.parametrize("gold, completion", [
    ("x^2 + 2 x y + y^2", r"\boxed{(x+y)^{2}}"),
    ("x^{10}+10x^9+45x^8+120x^7+210x^6+252x^5+210x^4+120x^3+45x^2+10x+1", r"\boxed{(x+1)^{10}}"),
    ("-53000000", rf"\boxed{{\det\begin{{pmatrix}} {_matrix(8, lambda i, j: str((7 * i + 3 * j) % 10 + 1))} \end{{pmatrix}}}}"),
    (r"\sin(\cos(x))", r"\boxed{\sin(\cos(x))}"), (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{\left(3, \left(\frac{\pi}{2}\right)\right)}"),
])
def test_small_expansions_nestings_and_determinants_still_verify(gold, completion):
    assert score(completion, gold) == 1.0


def test_a_symbolic_4x4_determinant_is_not_refused():
    from axolotl_grpo_rewards.math_boxed import too_costly

    assert not too_costly(rf"\boxed{{\det\begin{{pmatrix}} {_matrix(4, lambda i, j: _LETTERS[4 * i + j])} \end{{pmatrix}}}}")
