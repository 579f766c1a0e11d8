"""Score completions with the config's reward functions, called as TRL calls them.

The functions are imported from the same dotted paths Axolotl imports
(`trl.reward_funcs` after the plugin's name resolution), and each gets
`prompts=`, `completions=` (chat message lists for chat prompts, strings
otherwise), `completion_ids=` and every dataset column as a keyword list
aligned with the completions, so a checkpoint is judged by the rubric it
trained on.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import sandbox
from ..registry import correctness
from ..registry.imports import import_attribute
from .prompts import EvalError


@dataclass(frozen=True)
class Reward:
    """One reward function with the name TRL logs it under, and its weight."""

    name: str
    func: Callable[..., list[float]]
    weight: float = 1.0


def load_rewards(run: Any) -> list[Reward]:
    """The config's reward functions (names already resolved by `load_config`)."""
    paths = run.trl.reward_funcs
    if not paths:
        raise EvalError("trl.reward_funcs is empty; evaluation scores with the training rewards, "
                        "so list at least one (e.g. correctness)")
    sandbox.configure(run)  # a code reward runs programs in the config's sandbox
    weights = run.trl.reward_weights or [1.0] * len(paths)
    if len(weights) != len(paths):
        raise EvalError(f"trl.reward_weights has {len(weights)} values for {len(paths)} reward_funcs")
    rewards = []
    for i, path in enumerate(paths):
        attr = str(path).rpartition(".")[2]
        try:
            func = import_attribute(str(path))
        except (ImportError, AttributeError, ValueError) as exc:
            raise EvalError(
                f"trl.reward_funcs[{i}] = {path!r} is not an importable function ({exc}); "
                "reward models are not supported by the evaluator"
            ) from None
        rewards.append(Reward(getattr(func, "__name__", attr), func, float(weights[i])))
    return rewards


def correctness_reward(rewards: Sequence[Reward], name: str | None = None, key: str = "correct_reward") -> Reward:
    """The reward that decides "correct" (the rule in registry/correctness.py, which the
    trainer's `observe/accuracy` follows too), else the first reward listed. `key`: the flag or
    setting that named `name`, for the error."""
    names = [r.name for r in rewards]
    if name is not None and (fix := unknown_correct_reward_fix(names, name)):
        raise EvalError(f"{key} = {name!r} is not one of the config's rewards. Fix: {fix}")
    chosen = correctness.correctness_reward_name(names, name)
    return next((r for r in rewards if r.name == chosen), rewards[0])


def unknown_correct_reward_fix(names: Sequence[str], name: str) -> str | None:
    """The fix when `name` is none of the rewards `names` (function names), else None."""
    if correctness.correctness_reward_name(names, name) is not None:
        return None
    default = correctness.correctness_reward_name(names) or names[0]
    written = [n.removesuffix("_reward_func") for n in names]  # as configs and `score` name them
    return f"name one of {', '.join(written)}, or leave it out to judge with {default.removesuffix('_reward_func')}"


def correct_reward_problems(run: Any, key: str, name: str | None) -> list:
    """A `correct_reward` setting (eval_every, eval_at_end) naming none of the run's rewards: said
    at launch, not at the first evaluation or after the last step."""
    from ..errors import Problem

    if name is None:
        return []
    try:
        names = [reward.name for reward in load_rewards(run)]
    except EvalError:
        return []  # rewards that do not load are the reward checks' to report
    fix = unknown_correct_reward_fix(names, name)
    return [Problem(key, name, "is not one of the config's rewards (trl.reward_funcs).", fix)] if fix else []


def as_completions(texts: Sequence[str], conversational: bool) -> list[Any]:
    """Completions in the shape TRL hands to reward functions."""
    if conversational:
        return [[{"role": "assistant", "content": t}] for t in texts]
    return list(texts)


def score(
    rewards: Sequence[Reward],
    prompts: Sequence[Any],
    texts: Sequence[str],
    completion_ids: Sequence[list[int]],
    columns: Sequence[dict[str, Any]],
) -> dict[str, list[float]]:
    """Reward name -> one value per completion (NaN where a function returned None)."""
    call = call_arguments(prompts, texts, completion_ids, columns)
    return {reward.name: call_reward(reward, call) for reward in rewards}


def call_arguments(
    prompts: Sequence[Any],
    texts: Sequence[str],
    completion_ids: Sequence[list[int]],
    columns: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The keywords GRPOTrainer calls a reward with: prompts, completions (chat messages for chat
    prompts), completion_ids, every dataset column as a list aligned with the completions."""
    conversational = bool(prompts) and not isinstance(prompts[0], str)
    keys = [k for k in (columns[0] if columns else {}) if k not in ("prompt", "completion", "completion_ids")]
    kwargs = {k: [row.get(k) for row in columns] for k in keys}
    return dict(prompts=list(prompts), completions=as_completions(texts, conversational),
                completion_ids=list(completion_ids), **kwargs,
                # what GRPOTrainer adds; there is no trainer here
                trainer_state=None, log_extra=_ignore, log_metric=_ignore)


def call_reward(reward: Reward, call: dict[str, Any]) -> list[float]:
    """One reward on `call_arguments`: one float per completion, NaN where it returned None."""
    count = len(call["completions"])
    if not _accepts_var_kwargs(reward.func):
        params = inspect.signature(reward.func).parameters
        call = {k: v for k, v in call.items() if k in params}
    values = reward.func(**call)
    if len(values) != count:
        raise EvalError(f"reward {reward.name} returned {len(values)} values for {count} completions")
    return [math.nan if v is None else float(v) for v in values]


def weighted_total(values: dict[str, list[float]], rewards: Sequence[Reward]) -> list[float]:
    """Per-completion sum of weight x reward, ignoring NaN (TRL's nansum)."""
    n = len(next(iter(values.values()))) if values else 0
    totals = [0.0] * n
    for reward in rewards:
        for i, v in enumerate(values[reward.name]):
            if not math.isnan(v):
                totals[i] += reward.weight * v
    return totals


def _accepts_var_kwargs(func: Callable) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _ignore(*args: Any, **kwargs: Any) -> None:
    """Stands in for GRPOTrainer's `log_extra` / `log_metric` callbacks."""
