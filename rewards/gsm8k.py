"""GSM8K rewards for R1-style GRPO: is the ``<answer>`` right, and is the output well formed.

TRL convention: every function takes its arguments by keyword (``completions``
plus dataset columns such as ``answer``, aligned with the completions, and extra
keywords like ``prompts`` or ``trainer_state``) and returns one float per
completion. Completions may be plain strings or chat message lists.

The values are those of the Axolotl cookbook's GRPO example (its semantics are
in bench/reference.py) so that reward curves stay comparable with the published
run; where the example is wrong we deviate, and each deviation is a row of the
README's "Deviations" table (checked by tests/test_rewards_deviations.py). Every
function is total and linear time: model output is adversarial, so nothing here
raises, hangs or evaluates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal

from .text import BOX, box_end, completion_text, parse_number


SYSTEM_PROMPT = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
)

CORRECT_REWARD = 2.0
INT_REWARD = 0.5
STRICT_FORMAT_REWARD = 0.5
SOFT_FORMAT_REWARD = 0.25
XML_TAG_REWARD = 0.125
XML_JUNK_PENALTY_PER_CHAR = 0.001
# The example's xmlcount tops out at 0.501 (no text after </answer> is charged -1
# characters); its penalty is unbounded below, ours stops at XMLCOUNT_MIN.
XMLCOUNT_MIN, XMLCOUNT_MAX = -0.5, 0.501

_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
_STRICT_OPENING = "<reasoning>\n"
_STRICT_MIDDLE = "\n</reasoning>\n<answer>\n"
_STRICT_CLOSING = "\n</answer>"
# The example's `\s?$`: one optional whitespace, and `$` also matches before a final newline.
_STRICT_ENDING = re.compile(r"\s?\n?")
# The example's soft separator; one optional character after a literal: linear.
_SOFT_SEPARATOR = re.compile(r"</reasoning>\s?<answer>")


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


_ANY_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
# A final \boxed{} longer than this is not an answer (and its scan stays bounded).
MAX_BOX_CHARS = 400


def final_number(text: object) -> Decimal | None:
    """The final answer wherever a completion puts it: the last closed ``\\boxed{}``, else the
    last ``<answer>`` block, else the text's last number; None when there is none.

    Not a training reward: it scores models never taught the R1 layout (evaluate's
    "any layout" accuracy), so that a right ``\\boxed{18}`` is counted right.

    Examples:
        >>> final_number("so 16 - 3 - 4 = 9 eggs, $18 a day: \\boxed{18}")
        Decimal('18')
        >>> final_number("<answer>\\n$1,000\\n</answer> (next: 7)") == 1000
        True
        >>> final_number("She pays 3 * 5 = 15 dollars.")
        Decimal('15')
        >>> final_number("no number") is None
        True
    """
    text = completion_text(text)
    box = text.rfind(BOX)
    if box != -1:
        end = box_end(text, box, MAX_BOX_CHARS)
        if end != -1:
            value = _last_number(text[box + len(BOX):end - 1])
            if value is not None:
                return value
    answer = extract_answer(text)
    value = _last_number(answer) if answer else None
    return value if value is not None else _last_number(text)


def _last_number(text: str) -> Decimal | None:
    last = None
    for last in _ANY_NUMBER.finditer(text):
        pass
    return None if last is None else parse_number(last.group().rstrip(","))


def is_integer_literal(answer: str) -> bool:
    """``72`` or ``-3``: how GSM8K gold answers are written. Not ``+3``, ``3.0``, ``1,000``, ``²``."""
    digits = answer[1:] if answer.startswith("-") else answer
    return digits.isascii() and digits.isdigit()


def is_strict_format(text: str) -> bool:
    """Exactly ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>\\n``, each tag once.

    The example's pattern ``…</answer>\\s?$``, except that the sections may span lines.
    """
    if not text.startswith(_STRICT_OPENING) or any(text.count(tag) != 1 for tag in _TAGS):
        return False
    middle = text.find(_STRICT_MIDDLE, len(_STRICT_OPENING))
    if middle == -1:
        return False
    closing = text.find(_STRICT_CLOSING, middle + len(_STRICT_MIDDLE))
    return closing != -1 and _STRICT_ENDING.fullmatch(text, closing + len(_STRICT_CLOSING)) is not None


def is_soft_format(text: str) -> bool:
    """Starts with ``<reasoning>…</reasoning>``, at most one whitespace, then ``<answer>…</answer>``.

    The example's pattern, DOTALL: content may span lines, text may follow.
    """
    if not text.startswith("<reasoning>"):
        return False
    separator = _SOFT_SEPARATOR.search(text, len("<reasoning>"))
    return separator is not None and text.find("</answer>", separator.end()) != -1


def xml_tag_score(text: str) -> float:
    """The example's ``count_xml``: 0.125 per tag found exactly once, less 0.001 per char after ``</answer>``.

    The first character after the single ``</answer>`` (its newline) is free, so
    a text ending at the tag gains 0.001, as in the example; the total never
    drops below XMLCOUNT_MIN.
    """
    counts = [text.count(tag) for tag in _TAGS]
    score = XML_TAG_REWARD * sum(count == 1 for count in counts)
    if counts[3] == 1:
        tail = len(text) - text.find("</answer>") - len("</answer>")
        score -= (tail - 1) * XML_JUNK_PENALTY_PER_CHAR
    return max(score, XMLCOUNT_MIN)


def _texts(completions: object) -> list[str]:
    """The text of each completion; no completions when ``completions`` is not a list."""
    if not isinstance(completions, (list, tuple)):
        return []
    return [completion_text(completion) for completion in completions]


def _score_texts(completions: object, score: Callable[[str], float]) -> list[float]:
    return [score(text) for text in _texts(completions)]


def correctness_reward_func(completions, answer=None, **kwargs) -> list[float]:
    """2.0 when the last ``<answer>`` is numerically the gold answer, else 0.0.

    The main task signal. ``$1,000``, ``1000.0`` and ``1000`` are equal; a
    completion with no ``<answer>`` tag, or no gold answer (short or missing
    column, or no ``answer`` keyword at all), scores 0.0.

    Examples:
        >>> correctness_reward_func(
        ...     completions=["<answer>\\n72\\n</answer>", [{"role": "assistant", "content": "<answer>$1,000</answer>"}]],
        ...     answer=["72", "1000"])
        [2.0, 2.0]
        >>> correctness_reward_func(completions=["<answer>71</answer>", "72"], answer=["72", "72"])
        [0.0, 0.0]
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
    """0.5 when the answer is a bare integer: nudges toward the GSM8K answer style.

    Examples:
        >>> int_reward_func(completions=["<answer>72</answer>", "<answer>-3</answer>", "<answer>7.5</answer>"])
        [0.5, 0.5, 0.0]
    """
    return _score_texts(
        completions, lambda text: INT_REWARD if is_integer_literal(extract_answer(text)) else 0.0
    )


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 for exactly the SYSTEM_PROMPT layout, multi-line reasoning included.

    Examples:
        >>> layout = "<reasoning>\\nStep 1.\\nStep 2.\\n</reasoning>\\n<answer>\\n72\\n</answer>\\n"
        >>> strict_format_reward_func(completions=[layout, "<reasoning>r</reasoning><answer>72</answer>"])
        [0.5, 0.0]
    """
    return _score_texts(
        completions, lambda text: STRICT_FORMAT_REWARD if is_strict_format(text) else 0.0
    )


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    """0.25 for a reasoning block, at most one whitespace, then an answer block.

    Examples:
        >>> soft_format_reward_func(completions=[
        ...     "<reasoning>r</reasoning> <answer>72</answer> and more",
        ...     "<reasoning>r</reasoning>\\n\\n<answer>72</answer>",
        ...     "<answer>72</answer>"])
        [0.25, 0.0, 0.0]
    """
    return _score_texts(
        completions, lambda text: SOFT_FORMAT_REWARD if is_soft_format(text) else 0.0
    )


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    """Partial credit per tag, so format is learnt before it is right; see xml_tag_score.

    Examples:
        >>> xmlcount_reward_func(completions=[
        ...     "<reasoning>r</reasoning><answer>72</answer>\\n",
        ...     "<reasoning>r</reasoning><answer>72</answer>\\nabc",
        ...     "<answer>72"])
        [0.5, 0.497, 0.125]
    """
    return _score_texts(completions, xml_tag_score)


REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {
    "correctness": correctness_reward_func,
    "int": int_reward_func,
    "strict_format": strict_format_reward_func,
    "soft_format": soft_format_reward_func,
    "xmlcount": xmlcount_reward_func,
}
