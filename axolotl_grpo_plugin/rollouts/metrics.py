"""Learning metrics computed from completion texts: the signals that show GRPO working.

Pure functions on strings (no torch, no trainer), so they can be tested on
hand-written completions and reused by the report. Format checks are the reward
functions' own definitions (``axolotl_grpo_rewards.gsm8k``), so "format compliance" always
means exactly what the format rewards pay for; accuracy is the verdict of the run's own
correctness reward on each sample (``correct_verdicts``), so it means what that reward pays for,
on any task.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from axolotl_grpo_rewards.gsm8k import is_soft_format, is_strict_format

from ..registry.correctness import correctness_reward_name, is_correct


# Self-correction phrases of R1-style "aha moments". Matched case-insensitively as
# whole words; any run of whitespace matches a space, and ' matches ’.
DEFAULT_REFLECTION_PHRASES: tuple[str, ...] = (
    "wait",
    "hold on",
    "let me check",
    "let me double-check",
    "let me double check",
    "let me recheck",
    "let me re-check",
    "let me verify",
    "let me reconsider",
    "let me rethink",
    "let me re-evaluate",
    "let me go back",
    "let's go back",
    "let us go back",
    "let's check",
    "let's double-check",
    "let's reconsider",
    "I made a mistake",
    "I made an error",
    "that's wrong",
    "that is wrong",
    "that's not right",
    "that is not right",
    "on second thought",
    "oops",
)

PREFIX = "observe/"


class ReflectionMatcher:
    """Finds self-correction phrases: case-insensitive, whole words, flexible whitespace."""

    def __init__(self, phrases: Iterable[str] | None = None):
        phrases = [p.strip() for p in (DEFAULT_REFLECTION_PHRASES if phrases is None else phrases)]
        self.phrases = tuple(p for p in phrases if p)
        # longest first so "let me go back" wins over a shorter overlapping phrase
        parts = [_phrase_pattern(p) for p in sorted(self.phrases, key=len, reverse=True)]
        self._regex = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def first(self, text: str) -> tuple[int, int] | None:
        """(start, end) of the first phrase in the text, or None."""
        if self._regex is None or not isinstance(text, str):
            return None
        match = self._regex.search(text)
        return (match.start(), match.end()) if match else None

    def __contains__(self, text: str) -> bool:
        return self.first(text) is not None


def _phrase_pattern(phrase: str) -> str:
    words = [re.escape(w).replace("'", "['\u2019]") for w in phrase.split()]
    return r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)"


def correct_verdicts(rewards: Mapping[str, Sequence[object]], requested: str | None = None) -> list[bool] | None:
    """Per sample, is it correct: the verdict of the run's correctness reward (the rule in
    registry/correctness.py, the evaluator's) on the values it was scored with. For a mixed
    run that reward is `by_data_source`, whose value is each sample's own task's reward.
    None when no reward decides correctness, or none scored a sample (all None/NaN)."""
    name = correctness_reward_name(list(rewards), requested)
    if requested is not None and name is None:
        name = correctness_reward_name(list(rewards))
    values = list(rewards[name]) if name is not None else []
    if not any(isinstance(v, (int, float)) and not math.isnan(v) for v in values):
        return None
    return [is_correct(v) for v in values]


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def step_metrics(
    completions: Sequence[str],
    lengths: Sequence[float] | None = None,
    correct: Sequence[bool] | None = None,
    matcher: ReflectionMatcher | None = None,
) -> dict[str, float]:
    """One step's metrics over its completions (keys prefixed ``observe/``).

    ``correct`` (each completion's verdict, ``correct_verdicts``) is optional: without
    it there is no accuracy. ``lengths`` are token counts; the mean length is NaN without them.
    """
    matcher = matcher or ReflectionMatcher()
    texts = [c if isinstance(c, str) else "" for c in completions]
    metrics = {
        PREFIX + "format_strict": _rate([is_strict_format(t) for t in texts]),
        PREFIX + "format_soft": _rate([is_soft_format(t) for t in texts]),
        PREFIX + "reflection_rate": _rate([t in matcher for t in texts]),
    }
    valid_lengths = [float(n) for n in (lengths or []) if n is not None and not math.isnan(float(n))]
    metrics[PREFIX + "mean_length"] = (
        sum(valid_lengths) / len(valid_lengths) if valid_lengths else math.nan
    )
    if correct is not None:
        metrics[PREFIX + "accuracy"] = _rate([bool(c) for c in correct])
    return metrics
