"""The rewards: one weight per reward, and the keys each remote reward kind needs."""

from __future__ import annotations

from ..config.run import Run
from ..errors import Problem
from ..launch import Launch


def check_reward_weights(run: Run, launch: Launch) -> list[Problem]:
    weights, funcs = run.trl.reward_weights, run.trl.reward_funcs
    if weights is None or len(weights) == len(funcs):
        return []
    return [Problem("trl.reward_weights", weights,
                    f"{len(weights)} weights for {len(funcs)} reward functions.",
                    "give one weight per entry of trl.reward_funcs, in the same order")]


def check_remote_rewards(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.remote_rewards`: the keys each kind needs (remote/checks.py)."""
    from ..remote.checks import check

    return check(run)
