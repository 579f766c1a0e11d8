"""Does a group of completions have reward spread? The one rule, for dynamic sampling (which sets
groups without spread aside), the report and the bench (which count them in a rollout log).

A group's spread is the standard deviation of its rewards, the weighted sum TRL's advantages are
computed from (`rollouts/log.weighted_reward`: unscorable completions, None, left out), unbiased
as TRL's `nanstd` is. A group has spread when that std is strictly above `min_std`: an exact
`std == 0` test lets float noise (1e-17) pass as spread (OpenRLHF #1272), so the default is 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def group_std(rewards: Iterable[float | None]) -> float:
    """The unbiased std of a group's scored rewards (None and NaN left out); 0.0 with fewer than
    two scored (TRL gives such a group no advantage either)."""
    values = [float(r) for r in rewards if r is not None and not math.isnan(r)]
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def has_spread(std: float, min_std: float) -> bool:
    return std > min_std


def group_stds(rewards: Sequence[float | None], group_size: int) -> list[float]:
    """The std of each consecutive group of `group_size` rewards (a batch as TRL orders it)."""
    return [group_std(rewards[i:i + group_size]) for i in range(0, len(rewards), group_size)]
