"""DAPO's soft overlong punishment (Yu et al. 2025, arXiv:2503.14476, eq. 13), exactly as TRL's
`trl.rewards.get_soft_overlong_punishment` computes it (tests/test_overlong_reward.py compares
the two), kept here in the standard library as every reward of this package is.

A completion up to `max_completion_length - cache` tokens costs nothing; over the last `cache`
tokens before the cut the penalty grows linearly to -1; past the cut it is -1. It punishes a
completion for running long without rewarding a short one. Its two lengths are the config's
(`trl.max_completion_length`, `grpo_plugin.overlong_cache`): the registered name `soft_overlong`
is bound to them when the config is read (axolotl_grpo_plugin/registry/__init__.py).
"""

from __future__ import annotations


class SoftOverlongPunishment:
    """The reward for one pair of lengths; a class, so it pickles into a reward worker."""

    __name__ = "soft_overlong_punishment_reward"  # TRL's name: its metric, rewards/<name>/mean

    def __init__(self, max_completion_length: int, cache: int):
        self.max_completion_length = int(max_completion_length)
        self.cache = int(cache)

    def __call__(self, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        """One value per completion; None for all when no token ids came (TRL always passes them)."""
        if completion_ids is None:
            return [None] * len(completions or [])
        free = self.max_completion_length - self.cache
        out = []
        for ids in completion_ids:
            length = len(ids) if isinstance(ids, (list, tuple)) else 0
            if length <= free:
                out.append(0.0)
            elif length <= self.max_completion_length:
                out.append((free - length) / self.cache)
            else:
                out.append(-1.0)
        return out


def soft_overlong_punishment(max_completion_length: int, cache: int) -> SoftOverlongPunishment:
    return SoftOverlongPunishment(max_completion_length, cache)
