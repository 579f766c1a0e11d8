"""Where each GRPO step's time goes: `time/*` metrics and a `step_time` rollout-log record per step.

A GRPO step generates, scores, pushes weights and trains one after the other; which of them a
run waits on decides the fix (docs/observe.md, "Step time"). The trainer's own methods are
wrapped with a StepClock (step_clock.py), each call counted exclusively:

    generation   trainer._generate: vLLM server/colocate or transformers generate
    rewards      trainer._calculate_rewards
    weight_sync  trainer.vllm_generation.sync_weights (TRL's push, or the plugin's CPU push that
                 vllm/cpu_sync.py installs there), Axolotl's _maybe_sync_vllm_weights
    optimizer    trainer.training_step (forward, backward, and the old-policy/reference log-prob
                 passes TRL runs while preparing inputs), _clip_grad_norm, optimizer.step
    other        the rest: data loading, advantages, the rollout log, callbacks, and the logging,
                 checkpoint saves and evaluations that follow the previous step
    step         wall time from the previous step's end (train begin) to this step's end

On Axolotl's async trainer (`trl.async_prefetch`) `_generate` runs in a background thread, which
the clock does not time (the step does not wait for it there); what the step waits for is that
thread's batch, at the head of the trainer's queue, and that wait is `generation` (the data
producer's `produce`, where one is used, likewise).

The seconds go into `trainer._metrics["train"]` like TRL's metrics, so every logger gets them.
Measuring must never stop training: a failure is reported once and skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config.run import Run
from ..rollouts.log import KIND_FIELD, STEP_TIME
from ..rollouts.step_clock import METRICS, StepClock
from ..training.trainer_kind import is_async_grpo, wait_for_generations


LOG = logging.getLogger("axolotl_grpo_plugin")


# (attribute path on the trainer, part): wrapped where present (TRL 1.9, Axolotl 0.19-0.21)
TARGETS = (
    ("_generate", "generation"),
    ("_calculate_rewards", "rewards"),
    ("vllm_generation.sync_weights", "weight_sync"),
    ("_maybe_sync_vllm_weights", "weight_sync"),
    ("training_step", "optimizer"),
    ("_clip_grad_norm", "optimizer"),
)
REQUIRED = ("_generate", "_calculate_rewards", "training_step")  # every GRPO trainer has these in TRL 1.9


def attach(run: Run, trainer: Any, writer: Any = None) -> StepClock | None:
    """Time the trainer's parts and log them each step (None when `grpo_plugin.step_time: false`).
    `writer`: the rollout log's writer (main process), or None."""
    if not run.plugin.step_time:
        return None
    clock = StepClock()
    for path, part in TARGETS:
        *owners, name = path.split(".")
        owner = trainer
        for attr in owners:
            owner = getattr(owner, attr, None)
        if owner is not None and callable(getattr(owner, name, None)):
            setattr(owner, name, clock.timed(part, getattr(owner, name)))
    if is_async_grpo(trainer):
        time_background_waits(clock, trainer)
    missing = [name for name in REQUIRED if not callable(getattr(trainer, name, None))]
    if missing:  # another TRL: say so, rather than let a part read 0 unexplained
        LOG.warning("axolotl_grpo_plugin: %s has no %s: the step-time breakdown counts that time in "
                    "the part around it (time/optimizer or time/other).", type(trainer).__name__, ", ".join(missing))
    trainer.add_callback(make_callback(clock, trainer, writer))
    return clock


def time_background_waits(clock: StepClock, trainer: Any) -> None:
    """Count the async trainer's waits for its background generation as `generation`.

    Axolotl's legacy async path (`_prepare_inputs_legacy_async`) pushes weights first, after
    waiting for the batches in flight, then takes the head of `_async_queue` and waits for it.
    Waiting for that head batch before the push is what the trainer does next anyway, so doing
    it here changes nothing but where the seconds are counted. With `prefetch_depth` > 1 the
    push still waits for the later batches inside `weight_sync`."""
    sync = getattr(trainer, "_maybe_sync_vllm_weights", None)
    if callable(sync):
        wait = clock.timed("generation", wait_for_generations)

        def wait_then_sync(*args, **kwargs):
            wait(trainer, oldest_only=True)
            return sync(*args, **kwargs)

        trainer._maybe_sync_vllm_weights = wait_then_sync
    producer = getattr(trainer, "data_producer", None)
    if producer is not None and callable(getattr(producer, "produce", None)):
        producer.produce = clock.timed("generation", producer.produce)


def record(step: int, seconds: dict[str, float]) -> dict:
    """The step's line in the rollout log (read by the report)."""
    return {KIND_FIELD: STEP_TIME, "step": step, "seconds": {k: round(v, 6) for k, v in seconds.items()}}


def make_callback(clock: StepClock, trainer: Any, writer: Any = None):
    """The TrainerCallback that times the optimizer step and closes each step's account."""
    from transformers import TrainerCallback

    class StepTimeCallback(TrainerCallback):
        def __init__(self):
            self.in_optimizer = False
            self.failed = False

        def on_train_begin(self, args, state, control, **kwargs):
            clock.restart()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.in_optimizer = clock.enter("optimizer")

        def on_optimizer_step(self, args, state, control, **kwargs):
            if self.in_optimizer:
                clock.leave()
                self.in_optimizer = False

        def on_step_end(self, args, state, control, **kwargs):
            seconds = clock.end_step()
            if self.failed:
                return
            try:
                metrics = trainer._metrics["train"]
                for part, value in seconds.items():
                    metrics[METRICS[part]].append(value)
                if writer is not None:
                    writer.defer(record(state.global_step, seconds))
            except Exception as exc:  # measuring never stops training
                self.failed = True
                LOG.warning("axolotl_grpo_plugin: the step-time breakdown failed (%s: %s); it is off "
                            "for the rest of the run.", type(exc).__name__, exc)

    return StepTimeCallback()
