"""MATH-style accuracy: is the model's ``\\boxed{}`` answer mathematically the gold one?

Built on math-verify (``parse`` both sides, then ``verify(gold, prediction)``,
gold first: its argument order). math-verify's own timeouts use
``signal.alarm``, which only works in the main thread, so they are switched off
here; sympy can still hang on adversarial LaTeX, which is why this reward is
marked ``reward_isolation = "process"``: the registry runs it in a worker that
is killed when a sample runs past its budget (see axolotl_grpo_plugin.isolation).

The gold is read as math-verify reads it (gold_source): a gold written in
``$...$`` or ``\\boxed{}`` as written; a bare number as math-verify's default
reading of bare text (``1,22`` is 1.22, ``1,000`` is 1000); other bare LaTeX
(``p - q``, ``\\pi``) inside ``$...$``; ``\\$`` is a currency sign. Prose and
placeholders ("forty two", "TBD", "n/a") are no gold: the sample scores None.

Cost is bounded before math-verify sees the text: it reads at most
MAX_PREDICTION_CHARS from the start of the final run of ``\\boxed{}`` of the
``<answer>`` block (or of the completion when there is none), or else the tail;
the final answer is at the end. A short text can still name a number no machine
writes out (``9**9**9``, ``\\boxed{(10^{10})!}``): math-verify parses it without
evaluating it, but ``verify`` then computes it and never returns. So each side
is screened (too_costly): the few LaTeX commands that are evaluated while parsing
(``\\binom``, ``\\Gamma``, ``\\gcd``, ...) must have small literal arguments, and
the parsed expression must have no number past MAX_DIGITS digits (powers,
factorials, exp, binomials bounded from their operands), no ``\\sum``/``\\prod``
over more than MAX_TERMS terms, no integral, no power whose expansion could give more
than MAX_EXPANSION_TERMS terms (bounded from its structure, not expanded) and no trigonometric,
hyperbolic, exp or log functions nested past MAX_FUNCTION_NESTING; before parsing, no brackets
nested past MAX_BRACKET_NESTING and no determinant of letters past MAX_SYMBOLIC_DET_ENTRIES
entries (parsing computes it). A prediction that fails scores
0.0, a gold that fails None; the worker's budget stays for what the screen misses.
"""

from __future__ import annotations

import functools
import logging
import math
import re

from .gsm8k import extract_answer
from .text import BOX as _BOX
from .text import box_end, completion_text


CORRECT_REWARD = 1.0
MAX_PREDICTION_CHARS = 400
MAX_GOLD_CHARS = 1000
# The screen (too_costly): no number math-verify may compute has more digits than this
# (10^{10000} compares in well under 0.1 s; 2^{2^{34}} never), and no \sum or \prod more terms.
MAX_DIGITS = 10_000
MAX_TERMS = 1_000
# Expanding a polynomial costs about 2 ms a term in verify ((a+b+...+k)^{5}, 792 terms: 1.6 s;
# ^{6}, 1,716 terms: 4 s; ^{60} never), so no expansion may give more terms than this.
MAX_EXPANSION_TERMS = 500
# Trigonometric, hyperbolic, exp and log functions nested deeper than this: simplify rewrites them
# as exponentials (\tan(\tan(\tan(\tan(1)))) 0.9 s, five deep never returns).
MAX_FUNCTION_NESTING = 3
# Brackets nested deeper than this: the LaTeX parser's cost grows with the depth
# (20 parentheses deep 2 s, 40 deep 6 s), before any tree exists.
MAX_BRACKET_NESTING = 10
# A determinant of letters is expanded while parsing: 4x4 0.5 s, 5x5 4 s, 8x8 never.
MAX_SYMBOLIC_DET_ENTRIES = 16

# The registry runs this reward in a killable worker process with these budgets.
reward_isolation = "process"
reward_sample_budget_s = 2.0

_quiet = False


def _math_verify():
    """Import math-verify lazily (it pulls in sympy) and silence its per-call warnings."""
    global _quiet
    import math_verify

    if not _quiet:
        # "Timeout is disabled ..." is logged on every call once we switch its alarms off.
        for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
            logging.getLogger(name).setLevel(logging.ERROR)
        _quiet = True
    return math_verify


# A lone number as math-verify's bare-text reading takes it: sign, currency, thousands
# commas or spaces, a decimal point or comma, a percent sign. Anything else bare (a list
# "1, 2", an expression) is wrapped: bare, math-verify would read only its last number.
_PLAIN_NUMBER = re.compile(
    r"-?[$€£¥₹]?(?:\d{1,3}(?:[ ,]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)\s*(?:%|[€£¥₹])?"
)
# Words LaTeX allows in mathematics: \text{Evelyn}, \mbox{ cm}, \begin{pmatrix}, \operatorname{lcm}.
_TEXT_GROUP = re.compile(r"\\(?:text\w*|mathrm|mbox|operatorname|begin|end)\s*\{[^{}]*\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_PLACEHOLDERS = {"n/a", "na", "?", "-", "--", "...", "…"}
# What may stand between two boxes of one answer: "\boxed{2}, \boxed{3}", "\boxed{2} \text{ and } \boxed{3}".
_MATH_DELIMITER = re.compile(r"(?<!\\)\$")
_BOX_SEPARATOR = re.compile(r"(?:\s|[,;$.]|\\quad|\\qquad|\\,|\\text\{\s*(?:and|or)\s*\}|and|or)*")


def gold_source(gold: object) -> str | None:
    """The gold answer as text for math-verify, or None when it cannot be mathematics.

    A gold holding a closed ``\\boxed{}`` is read from its final run of boxes, so prose
    around it (``$x \\in \\boxed{[1,3)}$ is the interval``) does not hide it; other
    ``$...$`` / ``\\boxed{}`` golds are read as written; a bare number keeps
    math-verify's bare reading (``1,22`` = 1.22); other bare LaTeX is wrapped in
    ``$...$``; ``\\$`` (and a lone ``$``) is a currency sign. Prose in the
    mathematics (see _is_prose) and placeholders such as ``n/a`` give None.
    """
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        try:
            gold = str(gold)
        except Exception:  # noqa: BLE001 - past Python's int-to-str digit limit (10**5000), an odd subclass
            return None
    if not isinstance(gold, str) or len(gold) > MAX_GOLD_CHARS:
        return None
    source = gold.strip().replace("\\$", "")
    boxes = _final_boxes(source)
    if boxes is not None:  # the box is the answer, whatever prose surrounds it
        return None if any(map(_is_prose, _delimited_parts(boxes))) else boxes
    dollars = source.count("$")
    if "\\boxed" in source or (dollars >= 2 and dollars % 2 == 0):
        return None if any(map(_is_prose, _delimited_parts(source))) else source
    source = source.replace("$", "").strip()
    if not source or source.lower() in _PLACEHOLDERS or _is_prose(source):
        return None
    return source if _PLAIN_NUMBER.fullmatch(source) else f"${source}$"


def _final_boxes(source: str) -> str | None:
    """The final run of closed ``\\boxed{}`` of a gold (``$x \\in \\boxed{[1,3)}$, the interval``
    -> ``\\boxed{[1,3)}``), read as predictions are read; None when it has no closed box."""
    start = final_boxes_start(source)
    last = source.rfind(_BOX)
    end = box_end(source, last, MAX_GOLD_CHARS) if last != -1 else -1
    if start == -1 or end == -1:
        return None
    return _MATH_DELIMITER.sub("", source[start:end])


def _is_prose(maths: str) -> bool:
    """A word of three letters or more outside LaTeX commands, ``\\text{}`` and environment names.

    "forty two", "TBD", "Answer is": math-verify would read them as products of
    symbols. The price: a gold product written ``xyz`` is skipped too (write ``x y z``).
    """
    return _WORD.search(_COMMAND.sub(" ", _TEXT_GROUP.sub(" ", maths))) is not None


def _delimited_parts(source: str) -> list[str]:
    """The mathematics of a delimited gold: inside each ``$...$`` pair and each ``\\boxed{}``."""
    parts = source.split("$")[1::2]
    start = source.find(_BOX)
    while start != -1:
        end = box_end(source, start, MAX_GOLD_CHARS)
        parts.append(source[start + len(_BOX):end - 1] if end != -1 else source[start + len(_BOX):])
        start = source.find(_BOX, start + len(_BOX))
    return parts


def final_boxes_start(text: str) -> int:
    """Where the final run of boxes begins: the last ``\\boxed{``, and the boxes before it that
    are joined to it only by separators (``,``, ``and``, ``\\text{ and }``); -1 when none."""
    last = start = text.rfind(_BOX)
    while start != -1:
        previous = text.rfind(_BOX, 0, start)
        if previous == -1 or last - previous > MAX_PREDICTION_CHARS:
            break
        end = box_end(text, previous, MAX_PREDICTION_CHARS)
        if end == -1 or end > start or not _BOX_SEPARATOR.fullmatch(text, end, start):
            break
        start = previous
    return start


def prediction_text(completion: object) -> str:
    """What math-verify reads: the final run of ``\\boxed{}`` of the answer block (or of the whole
    completion when it has no ``<answer>`` tag), else that text's tail; bounded by MAX_PREDICTION_CHARS."""
    text = completion_text(completion)
    # an answer block, even an empty one, is the answer: a box written after it is not read
    answer = extract_answer(text) if "<answer>" in text else text
    start = final_boxes_start(answer)
    if start == -1:
        return answer[-MAX_PREDICTION_CHARS:]
    last = answer.rfind(_BOX)
    # Math delimiters around the boxes would be cut in half; the boxes need none.
    return _MATH_DELIMITER.sub("", answer[start:last + MAX_PREDICTION_CHARS])


# LaTeX commands latex2sympy evaluates while parsing (sympy.binomial, sympy.gamma, gcd/lcm, the
# \operatorname matrix builders, \det): a large operand hangs parse itself, before any tree exists.
_EVALUATED_WHEN_PARSED = re.compile(r"\\(?:[dt]?binom|choose|Gamma|gamma|gcd|lcm|operatorname|det)(?![A-Za-z])")
_GROUP_OPENING = re.compile(r"\s*(?:\\left\s*)?[{(\[]")
# A power, a factorial (not the thin space \!) or a number of five digits or more, read
# across thousands separators (10{,}000, 10\,000, 10,000, 10 000).
_LARGE_OPERAND = re.compile(r"\^|\*\*|(?<!\\)!|\d{5}")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)(?:\{,\}|\\,|,|\s)(?=\d{3}(?!\d))")


def too_costly(text: str) -> bool:
    """A command that parse evaluates (``\\binom``, ``\\Gamma``, ...) with a power, a factorial
    or a number of 5 digits or more among its arguments (up to two groups after it; the
    whole text for ``\\choose`` or when no group follows), brackets nested more than
    MAX_BRACKET_NESTING deep, or a determinant (``\\det``, ``vmatrix``) of more than
    MAX_SYMBOLIC_DET_ENTRIES entries holding letters: math-verify must not parse it."""
    for command in _EVALUATED_WHEN_PARSED.finditer(text):
        arguments = text if command.group() == "\\choose" else _arguments(text, command.end())
        if _LARGE_OPERAND.search(_THOUSANDS_SEPARATOR.sub("", arguments)):
            return True
    return _bracket_depth(text) > MAX_BRACKET_NESTING or _symbolic_det_too_large(text)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


# Where latex2sympy computes a determinant while parsing, and what is not a letter of its entries.
_DETERMINANT = re.compile(r"\\det(?![A-Za-z])|\\operatorname\s*\{\s*det\s*\}|\\begin\s*\{\s*[vV]matrix\s*\}")
_MATRIX_END = re.compile(r"\\end\s*\{[^{}]*\}")
_NOT_AN_ENTRY_LETTER = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}|\\(?:left|right|[dt]?frac|cdot|det|operatorname)(?![A-Za-z])")


def _symbolic_det_too_large(text: str) -> bool:
    """A determinant whose matrix (up to its ``\\end{...}``) has more than MAX_SYMBOLIC_DET_ENTRIES
    entries (``&`` and ``\\\\`` separate them) and a letter or command among them."""
    for determinant in _DETERMINANT.finditer(text):
        end = _MATRIX_END.search(text, determinant.end())
        matrix = text[determinant.end():end.start() if end else len(text)]
        entries = matrix.count("&") + matrix.count("\\\\") + 1
        if entries > MAX_SYMBOLIC_DET_ENTRIES and re.search(r"[A-Za-z]", _NOT_AN_ENTRY_LETTER.sub(" ", matrix)):
            return True
    return False


def _arguments(text: str, start: int) -> str:
    """The (at most two) bracketed groups that follow ``start``; the rest of the text when none
    follows or one is not closed."""
    end = start
    for _ in range(2):
        opening = _GROUP_OPENING.match(text, end)
        if opening is None:
            break
        depth = 0
        for i in range(opening.end() - 1, len(text)):
            depth += (text[i] in "{([") - (text[i] in "})]")
            if depth == 0:
                end = i + 1
                break
        else:
            return text[start:]
    return text[start:end] if end > start else text[start:]


class _TooCostly(Exception):
    """A number past MAX_DIGITS digits, a loop past MAX_TERMS terms, an integral, an expansion past
    MAX_EXPANSION_TERMS terms or functions nested past MAX_FUNCTION_NESTING."""


def too_costly_parsed(parsed: list) -> bool:
    """math-verify's parse holds a number past MAX_DIGITS digits, a ``\\sum`` or ``\\prod`` of
    more than MAX_TERMS terms (or endless), an integral, a power whose expansion has more than
    MAX_EXPANSION_TERMS terms, or trigonometric, hyperbolic, exp or log functions nested more
    than MAX_FUNCTION_NESTING deep: ``verify`` would compute it."""
    try:
        for item in parsed:
            if not isinstance(item, str):
                _digits(item, {})
                _terms(item, 0)
    except Exception:  # noqa: BLE001 - _TooCostly, a tree too deep to walk, a node the walk cannot read
        return True
    return False


@functools.cache  # once, not at every node the screen walks
def _sympy_kinds():
    import sympy

    return sympy, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma)


def _digits(expr, bound: dict) -> float:
    """An upper bound on log10 of |expr| (a symbol or constant counts as 10, a summation
    index as its range's end in ``bound``); raises _TooCostly past MAX_DIGITS."""
    sympy, factorials = _sympy_kinds()
    if isinstance(expr, sympy.MatrixBase):
        if expr.rows * expr.cols > MAX_TERMS:
            raise _TooCostly
        digits = max((_digits(entry, bound) for entry in expr), default=0.0)
    elif isinstance(expr, (list, tuple)):
        digits = max((_digits(item, bound) for item in expr), default=0.0)
    elif not isinstance(expr, sympy.Basic):
        digits = 0.0
    elif expr.is_Rational:
        digits = max(_int_digits(abs(expr.p)), _int_digits(expr.q))
    elif expr.is_Float:
        value = abs(float(expr))
        digits = math.log10(value) if value > 1 else 0.0
    elif expr.is_Symbol or isinstance(expr, (sympy.NumberSymbol, sympy.core.numbers.ImaginaryUnit)):
        digits = bound.get(expr, 1.0)
    elif isinstance(expr, sympy.Integral):
        raise _TooCostly
    elif isinstance(expr, (sympy.Sum, sympy.Product)):
        digits = _loop_digits(expr, bound)
    elif isinstance(expr, sympy.Pow):
        digits = _times(_digits(expr.base, bound), _exp10(_digits(expr.exp, bound)))
    elif isinstance(expr, sympy.exp):
        digits = _times(math.log10(math.e), _exp10(_digits(expr.args[0], bound)))
    elif isinstance(expr, factorials):  # log10 n! <= n log10 n
        n = _exp10(_digits(expr.args[0], bound))
        digits = _times(n, math.log10(n)) if n > 1 else 0.0
    elif isinstance(expr, (sympy.binomial, sympy.RisingFactorial, sympy.FallingFactorial)):
        n = _exp10(max(_digits(arg, bound) for arg in expr.args))  # binomial(n, k) <= 2^n; (x)_k <= (x + k)^k
        digits = _times(n, math.log10(2 * n)) if n > 1 else 0.0
    elif isinstance(expr, (sympy.Mul, sympy.Add)):  # a sum of fractions: its denominators multiply
        digits = sum(_digits(arg, bound) for arg in expr.args)
    else:  # sets, tuples, relations, other functions: their largest part
        digits = max((_digits(arg, bound) for arg in expr.args), default=0.0)
    if not digits <= MAX_DIGITS:
        raise _TooCostly
    return digits


@functools.cache
def _nested_kinds() -> tuple:
    import sympy
    from sympy.functions.elementary import hyperbolic, trigonometric

    kinds = (trigonometric.TrigonometricFunction, trigonometric.InverseTrigonometricFunction,
             hyperbolic.HyperbolicFunction, getattr(hyperbolic, "InverseHyperbolicFunction", hyperbolic.HyperbolicFunction))
    return (*kinds, sympy.exp, sympy.log)


def _terms(expr, nesting: int) -> int:
    """An upper bound on the terms expanding ``expr`` gives, computed from its structure without
    expanding it: a sum adds its parts' terms, a product multiplies them, an integer power n of a
    t-term base gives at most C(n + t - 1, t - 1); anything else is one term (its arguments are
    bounded too). Raises _TooCostly past MAX_EXPANSION_TERMS, or past MAX_FUNCTION_NESTING
    nested trigonometric, hyperbolic, exp or log functions."""
    sympy, _ = _sympy_kinds()
    if isinstance(expr, (sympy.MatrixBase, list, tuple)):
        for entry in expr:
            _terms(entry, nesting)
        return 1
    if not isinstance(expr, sympy.Basic) or not expr.args:
        return 1
    if isinstance(expr, _nested_kinds()):
        nesting += 1
        if nesting > MAX_FUNCTION_NESTING:
            raise _TooCostly
    parts = [_terms(arg, nesting) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        terms = sum(parts)
    elif isinstance(expr, sympy.Mul):
        terms = math.prod(parts)
    elif isinstance(expr, sympy.Pow) and expr.exp.is_Integer and parts[0] > 1:
        n, t = abs(int(expr.exp)), parts[0]
        if n > MAX_EXPANSION_TERMS:  # C(n + t - 1, t - 1) >= n + 1
            raise _TooCostly
        terms = math.comb(n + t - 1, min(n, t - 1))
    else:
        terms = 1
    if terms > MAX_EXPANSION_TERMS:
        raise _TooCostly
    return terms


def _loop_digits(expr, bound: dict) -> float:
    """A \\sum or \\prod: at most MAX_TERMS terms, finite limits; each term's bound with its index
    at the end of its range, times the terms (the denominators of a sum multiply too)."""
    sympy, _ = _sympy_kinds()
    inner, terms = dict(bound), 1.0
    for limits in expr.limits:
        if len(limits) != 3 or any(limit.has(sympy.oo, -sympy.oo, sympy.zoo) for limit in limits[1:]):
            raise _TooCostly
        low, high = limits[1:]
        end = max(_digits(low, inner), _digits(high, inner))
        terms *= abs(int(high - low)) + 1 if low.is_Integer and high.is_Integer else 2 * _exp10(end) + 1
        if terms > MAX_TERMS:
            raise _TooCostly
        inner[limits[0]] = end
    return _times(terms, _digits(expr.function, inner))


def _int_digits(n: int) -> float:
    return math.log10(n) if 0 < n < 2**53 else n.bit_length() * math.log10(2)


def _exp10(digits: float) -> float:
    return math.inf if digits > 300 else 10.0**digits


def _times(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b


def _has_value(parsed: list) -> bool:
    """math-verify found mathematics, not only its plain-text fallback."""
    return any(not isinstance(item, str) for item in parsed)


def score_one(completion: object, gold: object) -> float | None:
    """1.0 / 0.0 for one completion; None when the gold answer cannot be parsed (never 1.0).

    A side the screen (too_costly, too_costly_parsed) refuses is not compared: 0.0 for the
    prediction, None for the gold."""
    mv = _math_verify()
    source = gold_source(gold)
    if source is None or too_costly(source):
        return None
    parsed_gold = mv.parse(source, parsing_timeout=None)
    if not _has_value(parsed_gold) or too_costly_parsed(parsed_gold):
        return None
    prediction = prediction_text(completion)
    if not prediction or too_costly(prediction):
        return 0.0
    parsed_prediction = mv.parse(prediction, parsing_timeout=None)
    if not parsed_prediction or too_costly_parsed(parsed_prediction):
        return 0.0
    return CORRECT_REWARD if mv.verify(parsed_gold, parsed_prediction, timeout_seconds=None) else 0.0


def math_boxed_reward_func(completions, answer=None, **kwargs) -> list[float | None]:
    r"""1.0 when the final ``\boxed{}`` answer equals the gold ``answer`` (math-verify), else 0.0.

    None ("not applicable" in TRL) for a sample whose gold answer is missing or
    unparseable, so a broken dataset row can never pay out.

    Examples:
        >>> math_boxed_reward_func(
        ...     completions=["So it is \\boxed{\\frac{1}{2}}.", "<answer>\\boxed{0.4}</answer>", "\\boxed{42}"],
        ...     answer=["0.5", "$0.5$", "forty two"])
        [1.0, 0.0, None]
    """
    if not isinstance(completions, (list, tuple)):
        return []
    n = len(completions)
    golds = list(answer) if isinstance(answer, (list, tuple)) else [None] * n
    golds += [None] * (n - len(golds))
    return [score_one(completion, gold) for completion, gold in zip(completions, golds)]


def warm_up() -> None:
    """Run one comparison, so that a fresh worker's lazy imports (sympy, the LaTeX parser) are not charged to a sample."""
    score_one("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}")


math_boxed_reward_func.reward_isolation = reward_isolation
math_boxed_reward_func.reward_sample_budget_s = reward_sample_budget_s
math_boxed_reward_func.reward_warmup = warm_up
