"""Which of a run's rewards says "this completion is right", and its verdict.

The one rule behind `eval/accuracy`, `test/accuracy`, the probe's pass rate and the trainer's
`observe/accuracy`, so the numbers a run logs while training and when evaluated agree: a
reward is correct-deciding when it is the one asked for (`correct_reward`), else the first
whose function name contains `correct` (then `accura`), else the first task accuracy reward
(the rewards `by_data_source` routes to: countdown, MATH, and `by_data_source` itself, which
scores each sample with its own task's reward). The verdict is that reward's value > 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import BUILTIN_REWARDS
from .routing import ROUTES


HINTS = ("correct", "accura")
# Function names (what TRL logs rewards under) of the rewards that judge a task's answer.
TASK_REWARDS = tuple(BUILTIN_REWARDS[name].target.partition(":")[2]
                     for name in (*dict.fromkeys(ROUTES.values()), "by_data_source"))


def named(names: Sequence[str], requested: str) -> str | None:
    """The reward `requested` names: its function name, or that without `_reward_func`."""
    return next((n for n in names if requested in (n, n.removesuffix("_reward_func"))), None)


def correctness_reward_name(names: Sequence[str], requested: str | None = None) -> str | None:
    """The reward (by function name) whose verdict is "correct"; None when none of `names` is
    one (or `requested` is not among them)."""
    if requested is not None:
        return named(names, requested)
    for hint in HINTS:
        for name in names:
            if hint in name.lower():
                return name
    return next((n for n in names if n in TASK_REWARDS), None)


def is_correct(value: object) -> bool:
    """The verdict on one reward value: a number above zero (None or NaN, "not scored", is not)."""
    return isinstance(value, (int, float)) and not math.isnan(value) and value > 0
