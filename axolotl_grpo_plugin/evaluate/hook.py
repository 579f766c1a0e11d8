"""Evaluate the saved model at the end of `axolotl train` (plugin key `grpo_plugin.eval_at_end`).

It runs in the plugin's `post_train_unload` hook: training is over, the model is
saved in `output_dir` and the process group is gone, so rank 0 alone can load
the saved model and evaluate it without holding up other ranks, exactly as
`axolotl-grpo evaluate CONFIG --model OUTPUT_DIR` would. The
metrics go to the trainer's experiment trackers (W&B, TensorBoard, ... whatever
the config turned on, remembered at `post_trainer_create`) as `test/accuracy`,
`test/pass@1`, `test/rewards/NAME/mean`, ..., to stdout, and to
`output_dir/eval-SPLIT.json` with the samples beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


LOG = logging.getLogger("axolotl_grpo_plugin.evaluate")


def metric_prefix(split: str) -> str:
    """`test_` for the test split (trackers show `test/accuracy`, beside `train/` and
    `eval/`), `eval_SPLIT_` otherwise (shown as `eval/SPLIT_accuracy`)."""
    return "test_" if split == "test" else f"eval_{split}_"


@dataclass
class Trackers:
    """What is needed to log through the trainer's reporting callbacks, without
    keeping the trainer (and so the trained model) alive."""

    args: Any = None
    state: Any = None
    control: Any = None
    callbacks: list = field(default_factory=list)


def settings(run: Any) -> dict[str, Any] | None:
    """The `grpo_plugin.eval_at_end` settings of a Run as a dict (only the keys set), or None
    when it is off."""
    value = run.plugin.eval_at_end
    if value is None or value is False:
        return None
    if value is True:
        return {}
    return value.model_dump(exclude_none=True, exclude_unset=True)


def config_problems(run: Any) -> list:
    """Why the end-of-training evaluation could not find its rows, found at launch rather than
    after hours of training; [] when it can (or is off)."""
    from ..errors import Problem
    from ..sampling.prompts import EvalError, dataset_entries
    from ..sampling.scoring import correct_reward_problems

    options = settings(run)
    if options is None:
        return []
    dataset = options.get("dataset")
    if dataset is not None and not Path(str(dataset)).exists() and str(dataset).startswith((".", "/", "~")):
        return [Problem("grpo_plugin.eval_at_end.dataset", dataset, "no such file.",
                        "point it at the held-out file, or remove it")]
    try:
        dataset_entries(run, options.get("split", "test"), dataset)
    except EvalError as exc:
        return [Problem("grpo_plugin.eval_at_end.split", options.get("split", "test"), str(exc),
                        "add `test_datasets:`, or set `grpo_plugin.eval_at_end.dataset: FILE`")]
    return correct_reward_problems(run, "grpo_plugin.eval_at_end.correct_reward", options.get("correct_reward"))


def remember_trackers(trainer: Any) -> Trackers:
    """The trainer's experiment-tracker callbacks (only transformers' integrations)."""
    handler = getattr(trainer, "callback_handler", None)
    callbacks = [cb for cb in getattr(handler, "callbacks", [])
                 if type(cb).__module__.startswith("transformers.integrations")]
    return Trackers(trainer.args, trainer.state, trainer.control, callbacks)


def log_metrics(trackers: Trackers | None, metrics: dict[str, float]) -> None:
    """Send metrics to every remembered tracker; a failing tracker only warns."""
    if trackers is None or trackers.state is None:
        return
    for callback in trackers.callbacks:
        try:
            callback.on_log(trackers.args, trackers.state, trackers.control, logs=dict(metrics))
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                writer.flush()
        except Exception as exc:  # a tracker problem must not fail a finished training run
            LOG.warning("could not log end-of-training evaluation to %s: %s", type(callback).__name__, exc)


def evaluate_at_end(cfg: Any, run: Any, trackers: Trackers | None = None, rank: int | None = None):
    """Run the end-of-training evaluation if the config asks for it (rank 0 only); `cfg`: its datasets."""
    from ..sampling.prompts import EvalError
    from .core import env_rank, evaluate
    from .results import format_result, write_results

    options = settings(run)
    if options is None or (env_rank() if rank is None else rank) != 0:
        return None
    output_dir = run.output_dir
    stem = f"eval-{options.get('split', 'test')}"
    # Axolotl's logging config only shows INFO from `axolotl.*` loggers: print the results.
    print(f"grpo_plugin.eval_at_end: evaluating {output_dir}", flush=True)
    _release_gpu_cache()
    try:
        result = evaluate(cfg, output_dir, **options)
    except EvalError as exc:
        LOG.error("grpo_plugin.eval_at_end: %s", exc)
        return None
    summary, samples = write_results(result, output_dir, stem=stem)
    print(f"grpo_plugin.eval_at_end:\n{format_result(result)}\nwrote {summary} and {samples}", flush=True)
    log_metrics(trackers, result.metrics(metric_prefix(result.split)))
    return result


def _release_gpu_cache() -> None:
    """Hand the trained model's cached blocks back before loading it again (or vLLM)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
