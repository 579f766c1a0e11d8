"""Countdown rewards: does the ``<answer>`` equation use each given number once and hit the target?

Rewards in the wild ``eval()`` the model's text. Here the equation is checked
character by character, parsed with ``ast`` (never evaluated by Python), and
computed by a tiny interpreter that knows only ``+ - * /`` on the given
numbers, with exact fractions. Its size is bounded before parsing, so the work
is bounded too: at most MAX_NUMBERS literals means at most MAX_NUMBERS - 1
operations on numbers below MAX_LITERAL.
"""

from __future__ import annotations

import ast
from collections import Counter
from fractions import Fraction

from .gsm8k import extract_answer
from .text import completion_text


CORRECT_REWARD = 1.0
MAX_EQUATION_CHARS = 200
MAX_NUMBERS = 8
MAX_LITERAL = 10**6
_ALLOWED_CHARS = frozenset("0123456789+-*/() ")
_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class _Refused(Exception):
    """The equation is not plain arithmetic on small integers."""


def equation_of(answer: str) -> str:
    """The expression part of an answer: ``(1 + 2) * 3 = 9`` -> ``(1 + 2) * 3``."""
    expression = answer.partition("=")[0]
    return expression.replace("\u00d7", "*").replace("\u00f7", "/").replace("\n", " ").strip()


def parse_equation(expression: str) -> ast.expr | None:
    """The syntax tree of a small ``+ - * /`` expression on integer literals, or None.

    Refused: any other character (names, attributes, calls, lambdas, strings),
    ``**``, unary signs, literals of MAX_LITERAL or more, more than MAX_NUMBERS
    literals, and anything longer than MAX_EQUATION_CHARS.
    """
    if not isinstance(expression, str) or not 0 < len(expression) <= MAX_EQUATION_CHARS:
        return None
    if not _ALLOWED_CHARS.issuperset(expression) or "**" in expression or "//" in expression:
        return None
    try:
        tree = ast.parse(expression, mode="eval").body
        _check(tree, literals=[0])
    except (SyntaxError, ValueError, RecursionError, MemoryError, _Refused):
        return None
    return tree


def _check(node: ast.AST, literals: list[int]) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        _check(node.left, literals)
        _check(node.right, literals)
        return
    if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value < MAX_LITERAL:
        literals[0] += 1
        if literals[0] > MAX_NUMBERS:
            raise _Refused("too many numbers")
        return
    raise _Refused(type(node).__name__)


def literals_of(tree: ast.expr) -> list[int]:
    """The integer literals of a checked tree, left to right."""
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]


def evaluate(tree: ast.expr) -> Fraction | None:
    """The exact value of a checked tree; None on division by zero."""
    try:
        return _evaluate(tree)
    except ZeroDivisionError:
        return None


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))


def solves(expression: str, numbers: object, target: object) -> bool:
    """True when `expression` uses exactly the given numbers (each once) and equals `target`."""
    if not isinstance(numbers, (list, tuple)) or len(numbers) > MAX_NUMBERS:
        return False
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        return False
    try:
        goal = int(target)
        given = Counter(int(n) for n in numbers)
    except (TypeError, ValueError, ArithmeticError):  # None, "x", [1], inf (OverflowError), nan
        return False
    tree = parse_equation(expression)
    if tree is None or Counter(literals_of(tree)) != given:
        return False
    value = evaluate(tree)
    return value is not None and value == goal


def countdown_reward_func(completions, numbers=None, target=None, **kwargs) -> list[float]:
    """1.0 when the last ``<answer>`` is an equation on the given numbers that equals the target.

    Each number must be used exactly once; only ``+ - * /`` and parentheses; a
    trailing ``= result`` is ignored. Anything else, including division by zero,
    scores 0.0.

    Examples:
        >>> countdown_reward_func(
        ...     completions=["<answer>(25 - 5) * 3 = 60</answer>", "<answer>25 * 3 - 5</answer>"],
        ...     numbers=[[3, 5, 25], [3, 5, 25]], target=[60, 60])
        [1.0, 0.0]
    """
    if not isinstance(completions, (list, tuple)):
        return []
    n = len(completions)
    numbers = list(numbers) if isinstance(numbers, (list, tuple)) else [None] * n
    targets = list(target) if isinstance(target, (list, tuple)) else [None] * n
    numbers += [None] * (n - len(numbers))
    targets += [None] * (n - len(targets))
    scores = []
    for completion, given, goal in zip(completions, numbers, targets):
        answer = extract_answer(completion_text(completion))
        scores.append(CORRECT_REWARD if solves(equation_of(answer), given, goal) else 0.0)
    return scores
