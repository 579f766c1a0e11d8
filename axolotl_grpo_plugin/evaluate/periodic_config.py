"""What `grpo_plugin.eval_every` / `keep_best` ask for, and the problems the config checks report
about them. Kept apart from periodic.py (the TrainerCallback, which imports transformers) so the
checks run without importing the training stack."""

from __future__ import annotations

from typing import Any


def options(run: Any) -> tuple[dict[str, Any] | None, Any]:
    """(`eval_every` keys that are set, or None when off; the `keep_best` settings or None)."""
    plugin = run.plugin
    every = plugin.eval_every
    return (None if every is None else every.model_dump(exclude_none=True)), plugin.keep_best


def config_problems(run: Any) -> list:
    """Problems found at launch: no held-out rows, keep_best without eval_every or with a metric
    eval_every does not log, sharded weights that one rank cannot generate from."""
    from ..errors import Problem
    from ..sampling.prompts import EvalError, dataset_entries
    from ..sampling.scoring import correct_reward_problems
    from ..sources.data import looks_like_missing_path
    from .best import metric_problems

    every, best = options(run)
    problems = []
    if best is not None:
        if every is None:
            problems.append(Problem("grpo_plugin.keep_best", best.model_dump(),
                                    "keep_best ranks checkpoints by an eval_every metric.",
                                    "add `grpo_plugin.eval_every: {steps: N}` or remove keep_best"))
        else:
            problems += metric_problems(best.metric, every.get("samples", 0))
    if every is None:
        return problems
    dataset = every.get("dataset")
    if dataset is not None and looks_like_missing_path(dataset):
        return problems + [Problem("grpo_plugin.eval_every.dataset", dataset, "no such file.",
                                   "point it at the held-out file, or remove it")]
    try:
        dataset_entries(run, every.get("split", "test"), dataset)
    except EvalError as exc:
        problems.append(Problem("grpo_plugin.eval_every.split", every.get("split", "test"), str(exc),
                                "add `test_datasets:`, or set `grpo_plugin.eval_every.dataset: FILE`"))
    problems += correct_reward_problems(run, "grpo_plugin.eval_every.correct_reward", every.get("correct_reward"))
    if run.fsdp or run.fsdp_config or _zero3(run.deepspeed):
        problems.append(Problem("grpo_plugin.eval_every", every,
                                "the periodic evaluation generates on rank 0 alone, and ZeRO-3/FSDP "
                                "shard the weights across ranks.",
                                "use ZeRO-1/2 or DDP, or evaluate the saved checkpoints with "
                                "`axolotl-grpo evaluate`"))
    return problems


def _zero3(deepspeed: Any) -> bool:
    if not deepspeed:
        return False
    if isinstance(deepspeed, dict):
        stage = (deepspeed.get("zero_optimization") or {}).get("stage")
        return stage == 3
    if "zero3" in str(deepspeed).replace("_", ""):
        return True
    from ..config.load import read_yaml  # JSON is yaml

    try:
        return _zero3(read_yaml(deepspeed))
    except Exception:
        return False
