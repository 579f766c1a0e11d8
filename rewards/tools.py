"""Tools a model may call during its GRPO rollouts (TRL's `tools=`): pure, bounded, never raise.

A tool is called with what the model wrote, so it is adversarial input like a completion. The
calculator parses with ``ast`` (Python never evaluates the text) and computes with a tiny
interpreter over exact fractions that knows ``+ - * /``, ``**`` (``^`` too) and parentheses,
with the input's size, the exponents and every intermediate value bounded, so any expression
costs microseconds to milliseconds. A bad expression gets a short error text the model can
read and correct, never an exception.

    >>> calculator("48/2")
    '24'
    >>> calculator("(3 + 4) * 2.5")
    '17.5'
    >>> calculator("__import__('os').system('ls')")
    'error: only numbers, + - * / ** ^ and parentheses are allowed'
"""

from __future__ import annotations

import ast
from decimal import Decimal, localcontext
from fractions import Fraction


MAX_EXPRESSION_CHARS = 200
MAX_NUMBERS = 32
MAX_EXPONENT = 64
MAX_BITS = 2048  # of any numerator or denominator along the way: ~600 decimal digits
SIGNIFICANT_DIGITS = 12
_ALLOWED_CHARS = frozenset("0123456789.+-*/^() ")
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: None}
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}


class _Refused(Exception):
    """The expression is not bounded arithmetic; the message is what the model reads."""


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return its value.

    Args:
        expression: An arithmetic expression with numbers, + - * / ** and parentheses, e.g. "(48 + 12) / 5".
    """
    try:
        return _format(_evaluate(_parse(expression)))
    except _Refused as refused:
        return f"error: {refused}"
    except ZeroDivisionError:
        return "error: division by zero"
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError, ArithmeticError):
        return "error: the expression cannot be computed"


def _parse(expression: object) -> ast.expr:
    if not isinstance(expression, str):
        raise _Refused("the expression must be text, like \"48 / 2\"")
    text = expression.replace("\u00d7", "*").replace("\u00f7", "/").replace(",", "").replace("$", "").strip()
    if not text:
        raise _Refused("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise _Refused(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if not _ALLOWED_CHARS.issuperset(text):
        raise _Refused("only numbers, + - * / ** ^ and parentheses are allowed")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval").body
    except SyntaxError:
        raise _Refused("the expression is not well formed") from None
    numbers = sum(isinstance(node, ast.Constant) for node in ast.walk(tree))
    if numbers > MAX_NUMBERS:
        raise _Refused(f"more than {MAX_NUMBERS} numbers")
    return tree


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(Fraction(str(node.value)))  # str: 0.1 is one tenth, not the nearest double
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _bounded(_power(left, right))
        return _bounded(_BINARY[type(node.op)](left, right))
    raise _Refused("only numbers, + - * / ** ^ and parentheses are allowed")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise _Refused("exponents must be whole numbers")
    if abs(exponent) > MAX_EXPONENT:
        raise _Refused(f"exponents above {MAX_EXPONENT} are not computed")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    if max(abs(base.numerator), base.denominator).bit_length() * abs(int(exponent)) > MAX_BITS:
        raise _Refused("the result is too large")
    return base ** int(exponent)


def _bounded(value: Fraction) -> Fraction:
    if max(abs(value.numerator), value.denominator).bit_length() > MAX_BITS:
        raise _Refused("the result is too large")
    return value


def _format(value: Fraction) -> str:
    """Whole numbers exactly; others to SIGNIFICANT_DIGITS, without trailing zeros."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as context:
        context.prec = SIGNIFICANT_DIGITS
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(decimal.normalize(), "f") if abs(decimal) >= Decimal("1e-6") else format(decimal, "E")
    return text
