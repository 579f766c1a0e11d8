"""The rewards: one weight per reward, and the keys each remote reward kind needs."""

from __future__ import annotations

from ..config.run import Run
from ..errors import Problem
from ..system.launch import Launch


def check_reward_funcs(run: Run, launch: Launch) -> list[Problem]:
    """`trl.reward_funcs` missing or null: Axolotl passes no reward and TRL stops with "No reward
    source provided" once the model has loaded. (An empty list is refused when the config is
    read; `grpo_plugin.remote_rewards` only declares rewards, which reward_funcs must still list.)
    A `grpo_plugin.environment` whose class defines `get_reward` is a reward source of its own."""
    if run.trl.reward_funcs or _environment_rewards(run):
        return []
    listed = [s.name for s in run.plugin.remote_rewards or []]
    example = f"[{', '.join(listed)}]" if listed else "[correctness, xmlcount]"
    return [Problem("trl.reward_funcs", None,
                    "GRPO needs at least one reward, and without one TRL would stop with \"No reward source "
                    "provided\" after the model loads.",
                    f"list one or more rewards, e.g. `trl.reward_funcs: {example}`")]


def _environment_rewards(run: Run) -> bool:
    """Whether `grpo_plugin.environment` names a class with a `get_reward` method (TRL's other
    reward source); one that does not import is the tools check's problem."""
    if not run.plugin.environment:
        return False
    from ..registry.imports import import_attribute

    try:
        return callable(getattr(import_attribute(run.plugin.environment), "get_reward", None))
    except Exception:  # noqa: BLE001 - reported by check_tools
        return True


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


def check_overlong_cache(run: Run, launch: Launch) -> list[Problem]:
    """`soft_overlong`'s penalty grows over the last `overlong_cache` tokens before the cut: a
    cache as long as the completion budget would punish every completion from its first token."""
    from ..registry import REWARDS, unbound

    bound = any(isinstance(f, str) and unbound(REWARDS.strip_import_path(f))[0] == "soft_overlong"
                for f in run.trl.reward_funcs)
    if not bound or run.overlong_cache < run.completion_length:
        return []
    return [Problem("grpo_plugin.overlong_cache", run.overlong_cache,
                    f"must be below trl.max_completion_length ({run.completion_length}): the soft_overlong "
                    "penalty grows over that many tokens before the cut.",
                    f"set it below {run.completion_length}, e.g. {max(1, run.completion_length // 5)} (a fifth, "
                    "as DAPO's 4096 of 20480), or remove it for that default")]
