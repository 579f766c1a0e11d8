"""GSM8K rewards for R1-style GRPO: is the ``<answer>`` right, and is the output well formed.

TRL convention: every function takes its arguments by keyword (``completions``
plus dataset columns such as ``answer``, aligned with the completions, and extra
keywords like ``prompts`` or ``trainer_state``) and returns one float per
completion. Completions may be plain strings or chat message lists.

The values follow the published GSM8K GRPO example (``rewards.reference``) so
that reward curves stay comparable; the deviations, each fixing a flaw of the
example, are listed in docs/rewards.md. Every function is total and linear
time: model output is adversarial, so nothing here raises, hangs or evaluates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal

from .text import MAX_NUMBER_CHARS, completion_text, parse_number


SYSTEM_PROMPT = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
)

CORRECT_REWARD = 2.0
INT_REWARD = 0.5
STRICT_FORMAT_REWARD = 0.5
SOFT_FORMAT_REWARD = 0.25
XML_TAG_REWARD = 0.125
XML_JUNK_PENALTY_PER_CHAR = 0.001
XMLCOUNT_MIN, XMLCOUNT_MAX = -0.5, 0.5

_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
_STRICT_OPENING = "<reasoning>\n"
_STRICT_MIDDLE = "\n</reasoning>\n<answer>\n"
_STRICT_CLOSING = "\n</answer>"
# "" is our deviation (generation often stops at the tag); "\n\n" is what the
# reference regex's `$` lets through before a final newline.
_STRICT_ENDINGS = ("", "\n", "\n\n")
# One quantifier after a literal: linear, and the literal prefix makes search fast.
_SOFT_SEPARATOR = re.compile(r"</reasoning>\s*<answer>")


def extract_answer(text: str) -> str:
    """The stripped content of the last ``<answer>`` block; "" when there is none.

    The block runs to the next ``</answer>``, or to the end when it is not closed.
    """
    if not isinstance(text, str):
        return ""
    start = text.rfind("<answer>")
    if start == -1:
        return ""
    start += len("<answer>")
    end = text.find("</answer>", start)
    return (text[start:] if end == -1 else text[start:end]).strip()


def gold_number(gold: object) -> Decimal | None:
    """The dataset answer as a number: ``"72"``, ``"1,000"``, ``"... #### 72"``, 72 or 72.0."""
    if isinstance(gold, bool):
        return None
    if isinstance(gold, int):
        return Decimal(gold)
    if isinstance(gold, float):
        return Decimal(repr(gold)) if math.isfinite(gold) else None
    if isinstance(gold, str):
        return parse_number(gold.rpartition("####")[2])
    return None


def is_integer_literal(answer: str) -> bool:
    """``72`` or ``-3``: how GSM8K gold answers are written. Not ``+3``, ``3.0``, ``1,000``.

    At most MAX_NUMBER_CHARS long, like any number parse_number reads.
    """
    digits = answer[1:] if answer.startswith("-") else answer
    return len(answer) <= MAX_NUMBER_CHARS and digits.isascii() and digits.isdigit()


def is_strict_format(text: str) -> bool:
    """Exactly ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>\\n``, each tag once.

    The sections may span several lines; the final newline is optional.
    """
    if not text.startswith(_STRICT_OPENING) or any(text.count(tag) != 1 for tag in _TAGS):
        return False
    middle = text.find(_STRICT_MIDDLE, len(_STRICT_OPENING))
    if middle == -1:
        return False
    closing = text.find(_STRICT_CLOSING, middle + len(_STRICT_MIDDLE))
    return closing != -1 and text[closing + len(_STRICT_CLOSING):] in _STRICT_ENDINGS


def is_soft_format(text: str) -> bool:
    """Starts with ``<reasoning>…</reasoning>``, then whitespace, then ``<answer>…</answer>``.

    The reference regex with DOTALL: content may span lines, text may follow.
    """
    if not text.startswith("<reasoning>"):
        return False
    separator = _SOFT_SEPARATOR.search(text, len("<reasoning>"))
    return separator is not None and text.find("</answer>", separator.end()) != -1


def xml_tag_score(text: str) -> float:
    """The reference ``count_xml``: 0.125 per well-placed tag, less 0.001 per char of junk.

    Junk is only what follows the closing ``\\n</answer>`` (and its own newline),
    charged once by each of the two answer-tag terms as in the reference; the
    total is clamped to [XMLCOUNT_MIN, XMLCOUNT_MAX].
    """
    closing = text.rfind("\n</answer>")
    junk = 0
    if closing != -1:
        tail_start = closing + len("\n</answer>")
        junk = len(text) - tail_start - (1 if text.startswith("\n", tail_start) else 0)
    score = 0.0
    if text.count("<reasoning>\n") == 1:
        score += XML_TAG_REWARD
    if text.count("\n</reasoning>\n") == 1:
        score += XML_TAG_REWARD
    if text.count("\n<answer>\n") == 1:
        score += XML_TAG_REWARD
        score -= junk * XML_JUNK_PENALTY_PER_CHAR
    if text.count("\n</answer>") == 1:
        score += XML_TAG_REWARD
        score -= junk * XML_JUNK_PENALTY_PER_CHAR
    return min(max(score, XMLCOUNT_MIN), XMLCOUNT_MAX)


def _texts(completions: object) -> list[str]:
    """The text of each completion; no completions when ``completions`` is not a list."""
    if not isinstance(completions, (list, tuple)):
        return []
    return [completion_text(completion) for completion in completions]


def _score_texts(completions: object, score: Callable[[str], float]) -> list[float]:
    return [score(text) for text in _texts(completions)]


def correctness_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 when the last ``<answer>`` is numerically the gold answer, else 0.0.

    The main task signal. ``$1,000``, ``1000.0`` and ``1000`` are equal; a
    completion with no gold answer (short or missing column) scores 0.0.
    """
    texts = _texts(completions)
    golds = list(answer) if isinstance(answer, (list, tuple)) else []
    golds += [None] * (len(texts) - len(golds))
    scores = []
    for text, gold in zip(texts, golds):
        gold_value = gold_number(gold)
        predicted = parse_number(extract_answer(text))
        correct = gold_value is not None and predicted is not None and predicted == gold_value
        scores.append(CORRECT_REWARD if correct else 0.0)
    return scores


def int_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the answer is a bare integer: nudges toward the GSM8K answer style."""
    return _score_texts(
        completions, lambda text: INT_REWARD if is_integer_literal(extract_answer(text)) else 0.0
    )


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 for exactly the SYSTEM_PROMPT layout, multi-line reasoning included."""
    return _score_texts(
        completions, lambda text: STRICT_FORMAT_REWARD if is_strict_format(text) else 0.0
    )


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    """0.25 for a reasoning block followed by an answer block, however they are spaced."""
    return _score_texts(
        completions, lambda text: SOFT_FORMAT_REWARD if is_soft_format(text) else 0.0
    )


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    """Partial credit per tag, so format is learnt before it is right; see xml_tag_score."""
    return _score_texts(completions, xml_tag_score)


REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {
    "correctness": correctness_reward_func,
    "int": int_reward_func,
    "strict_format": strict_format_reward_func,
    "soft_format": soft_format_reward_func,
    "xmlcount": xmlcount_reward_func,
}
