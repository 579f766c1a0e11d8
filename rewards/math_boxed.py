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
the final answer is at the end.
"""

from __future__ import annotations

import logging
import re

from .gsm8k import extract_answer
from .text import completion_text


CORRECT_REWARD = 1.0
MAX_PREDICTION_CHARS = 400
MAX_GOLD_CHARS = 1000

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
_BOX = "\\boxed{"
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
    end = _box_end(source, last, MAX_GOLD_CHARS) if last != -1 else -1
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
        end = _box_end(source, start, MAX_GOLD_CHARS)
        parts.append(source[start + len(_BOX):end - 1] if end != -1 else source[start + len(_BOX):])
        start = source.find(_BOX, start + len(_BOX))
    return parts


def _box_end(text: str, start: int, limit: int = MAX_PREDICTION_CHARS) -> int:
    """The index after the ``}`` closing the box at ``start``; -1 when it is not closed within ``limit``."""
    depth = 0
    for i in range(start + len(_BOX) - 1, min(len(text), start + limit)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def final_boxes_start(text: str) -> int:
    """Where the final run of boxes begins: the last ``\\boxed{``, and the boxes before it that
    are joined to it only by separators (``,``, ``and``, ``\\text{ and }``); -1 when none."""
    last = start = text.rfind(_BOX)
    while start != -1:
        previous = text.rfind(_BOX, 0, start)
        if previous == -1 or last - previous > MAX_PREDICTION_CHARS:
            break
        end = _box_end(text, previous)
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


def _has_value(parsed: list) -> bool:
    """math-verify found mathematics, not only its plain-text fallback."""
    return any(not isinstance(item, str) for item in parsed)


def score_one(completion: object, gold: object) -> float | None:
    """1.0 / 0.0 for one completion; None when the gold answer cannot be parsed (never 1.0)."""
    mv = _math_verify()
    source = gold_source(gold)
    if source is None:
        return None
    parsed_gold = mv.parse(source, parsing_timeout=None)
    if not _has_value(parsed_gold):
        return None
    prediction = prediction_text(completion)
    if not prediction:
        return 0.0
    parsed_prediction = mv.parse(prediction, parsing_timeout=None)
    if not parsed_prediction:
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
