"""Evaluate the saved model at the end of `axolotl train` (plugin key `grpo_plugin.eval_at_end`).

It runs in the plugin's `post_train_unload` hook: training is over, the model is
saved in `output_dir` and the process group is gone, so rank 0 alone can load
the saved model and evaluate it without holding up other ranks, exactly as
`python -m axolotl_grpo_plugin.evaluate CONFIG --model OUTPUT_DIR` would. The
metrics go to the trainer's experiment trackers (W&B, TensorBoard, ... whatever
`report_to` set up, remembered at `post_trainer_create`), to the log, and to
`output_dir/eval-SPLIT.json` with the samples beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("axolotl_grpo_plugin.evaluate")
METRIC_PREFIX = "eval_at_end"


@dataclass
class Trackers:
    """What is needed to log through the trainer's reporting callbacks, without
    keeping the trainer (and so the trained model) alive."""

    args: Any = None
    state: Any = None
    control: Any = None
    callbacks: list = field(default_factory=list)


def settings(cfg: Any) -> dict[str, Any] | None:
    """The `grpo_plugin.eval_at_end` settings as a dict, or None when it is off."""
    section = cfg.get("grpo_plugin") if hasattr(cfg, "get") else None
    if section is None:
        return None
    value = section.get("eval_at_end") if hasattr(section, "get") else getattr(section, "eval_at_end", None)
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    return {k: v for k, v in dict(value).items() if v is not None}


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


def evaluate_at_end(cfg: Any, trackers: Trackers | None = None, rank: int | None = None):
    """Run the end-of-training evaluation if the config asks for it (rank 0 only)."""
    from .core import env_rank, evaluate
    from .prompts import EvalError
    from .report import format_result, write_results

    options = settings(cfg)
    if options is None or (env_rank() if rank is None else rank) != 0:
        return None
    output_dir = cfg.get("output_dir")
    stem = f"eval-{options.get('split', 'test')}"
    LOG.info("grpo_plugin.eval_at_end: evaluating %s", output_dir)
    try:
        result = evaluate(cfg, output_dir, **options)
    except EvalError as exc:
        LOG.error("grpo_plugin.eval_at_end: %s", exc)
        return None
    summary, samples = write_results(result, output_dir, stem=stem)
    LOG.info("grpo_plugin.eval_at_end:\n%s\nwrote %s and %s", format_result(result), summary, samples)
    log_metrics(trackers, result.metrics(METRIC_PREFIX))
    return result
