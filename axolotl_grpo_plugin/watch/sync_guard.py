"""Weight-sync guard: is vLLM generating from the weights being trained?

GRPO samples completions with vLLM and trains on them with the trainer's model; the
trainer pushes its weights to vLLM before each generation. When that push is lost,
nothing fails: vLLM keeps sampling from the base model, the loss and rewards still
move a little, and the run learns far less than it should. Two guards:

* config time, `check_sleep_mode`: refuse a combination known to lose the push, TRL <=
  1.9.x colocate with `trl.vllm_enable_sleep_mode: true`. TRL's `VLLMGeneration.generate`
  then wakes the engine and calls `collective_rpc("reload_weights")`, which reloads the
  checkpoint from disk over the weights `sync_weights` just pushed (huggingface/trl#5312;
  the fix, huggingface/trl#5313, was merged after 1.9.0). Axolotl 0.19 patches
  `sync_weights` but not `generate`, so it is affected the same way.
* run time, `WeightSyncCallback`: TRL logs `sampling/sampling_logp_difference/{mean,max}`,
  the |log-prob| gap per completion token between the engine that sampled it and the
  trainer's model. Healthy runs stay at numerical noise; a lost push makes it jump.

The run doctor (observe/doctor.py) watches the other failure signatures and leaves this
one to this module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import defaults
from ..config.args import WeightSyncGuardSettings, switched
from ..config.run import Run
from ..errors import Problem
from ..training.trainer_kind import is_async_grpo


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

# The max gap is checked only in runs whose first logged max shows fp32-exact agreement
# between engine and trainer (healthy fp32: <= 9.5e-7, CPU vLLM and H100); the limit is
# then 100x that. In bf16 one token's healthy gap reaches 0.5-0.7, so the max stays off.
MAX_QUIET_FIRST = 1e-5
MAX_AUTO_LIMIT = 1e-4

# Async: how far the gap per unit of learning rate may grow over the designed staleness's (its
# largest healthy value came in the first stale step; a lost push passed 2x by step 7, above)
ASYNC_GROWTH = 2.0

MEAN_KEY = "sampling/sampling_logp_difference/mean"
MAX_KEY = "sampling/sampling_logp_difference/max"


# --- config time ------------------------------------------------------------------

def installed_trl_version() -> str | None:
    return defaults.TRL_VERSION



def is_colocate(run: Run) -> bool:
    """vLLM in the trainer: `vllm_mode: colocate`, or unset (TRL's GRPOConfig default;
    Axolotl 0.19 forwards the mode only when it is set)."""
    return run.trl.use_vllm and run.vllm_mode == "colocate"


def check_sleep_mode(run: Run, launch=None, trl_version: str | None = None) -> list[Problem]:
    """Refuse colocate + sleep mode on TRL <= 1.9.x: vLLM would sample from the base model."""
    sleep = run.trl.vllm_enable_sleep_mode
    if not (sleep and is_colocate(run)):
        return []
    version = trl_version if trl_version is not None else installed_trl_version()
    if not defaults.sleep_mode_loses_weights(version):
        return []
    mode = "colocate" if run.trl.vllm_mode else "colocate (TRL's default: `trl.vllm_mode` is unset)"
    return [Problem(
        "trl.vllm_enable_sleep_mode", sleep,
        f"with vLLM in {mode} mode, TRL {version or '(version unknown)'} reloads the base checkpoint "
        "from disk each time it wakes the engine, over the weights it has just pushed, so every "
        "completion is sampled from the untrained model (huggingface/trl#5312; the log-prob gap "
        "between sampler and trainer went 0.015 -> 0.201 on Qwen2.5-1.5B GSM8K).",
        "set `trl.vllm_enable_sleep_mode: false`; if the GPU is then short of memory, lower "
        "`vllm.gpu_memory_utilization` or run vLLM on its own GPU (`trl.vllm_mode: server`); or "
        "upgrade TRL past 1.9 to a release with huggingface/trl#5313")]


# --- run time ---------------------------------------------------------------------

# The watch's settings are the `grpo_plugin.weight_sync_guard:` schema itself.
GuardSettings = WeightSyncGuardSettings


@dataclass
class WeightSyncWatch:
    """Reads one logging step's metrics at a time; fires once when the gap has stayed
    above the limit for `steps` consecutive logging steps that report it.

    The mean limit is max(`threshold`, `factor` x the run's first logged mean gap). The
    first generation comes before any update, so pushed or not, its gap is the engine-vs-
    trainer noise of this run's dtype and kernels: ~1e-7 in fp32, 0.010-0.018 in bf16
    (huggingface/trl#5312). A healthy run stays there (bf16: 0.010-0.018, under 2x); a lost
    push grows with every update: bf16 0.010 -> 0.201 at the first step after warm-up
    (trl#5312, lr 1e-4); fp32 5.7e-4 after one update at lr 1e-5, 0.0057 at lr 1e-4
    (bench/bench_sync_gap.py, tiny model). No absolute limit serves both dtypes: 0.1
    separates bf16 but misses those fp32 runs for dozens of steps; 1e-3 catches them but is
    under bf16's noise. Hence 10x the run's own floor, never below 1e-3 (1000x healthy fp32):
    0.1-0.2 in bf16, 1e-3 in fp32.

    The max adds small learning rates in fp32 (lr 1e-6: max 2.6e-4 after one update, mean
    1.5e-4 after four, H100): when the first max is fp32-exact (<= MAX_QUIET_FIRST) it is
    checked against MAX_AUTO_LIMIT; otherwise only against an explicit `max_threshold`, as
    one bf16 token's gap reaches 0.5-0.7 with correct weights (huggingface/trl#6789).

    Async prefetch (`stale_by` > 0): a batch is generated with weights up to `stale_by`
    pushes older than the ones that score it, so past the first step the gap holds that many
    updates by design (hd32 model, lr 1e-3, Axolotl 0.21: 0.010 at step 1, then 0.069, 0.047,
    0.036 ... 0.031 by step 10). What tells a lost push apart is growth: the engine stays on
    ever older weights, so the gap per unit of learning rate keeps rising past what the
    designed staleness gives (push off, same run: 0.065, 0.091, 0.107 ... 0.175, 2.7x its
    step-2 value by step 7). So in async a step counts when the mean is over the limit above
    and its gap / learning rate is over ASYNC_GROWTH x the largest of the steps 2 .. 1 +
    `stale_by`. The max is checked only against an explicit `max_threshold` (one update moves
    single tokens' log-probs by far more than fp32 noise).

    Blind spot: a run resumed from a checkpoint with an engine that never receives the
    weights starts high, and that first gap becomes the floor.
    """

    settings: GuardSettings = field(default_factory=GuardSettings)
    stale_by: int = 0
    baseline: float | None = None
    first_max: float | None = None
    stale_drift: float | None = None  # async: the largest gap / lr of the designed-staleness steps
    drift: float | None = None        # async: the last step's gap / lr
    streak: int = 0
    fired: bool = False
    history: list[tuple[int | None, float | None, float | None]] = field(default_factory=list)

    @property
    def limit(self) -> float:
        s = self.settings
        return max(s.threshold, s.factor * (self.baseline or 0.0))

    @property
    def max_limit(self) -> float | None:
        """`max_threshold` when set; else MAX_AUTO_LIMIT in an fp32-exact run; else off."""
        if self.settings.max_threshold is not None:
            return self.settings.max_threshold
        quiet = self.first_max is not None and self.first_max <= MAX_QUIET_FIRST
        return MAX_AUTO_LIMIT if quiet and not self.stale_by else None

    def observe(self, logs: Mapping[str, Any], step: int | None = None) -> str | None:
        """The diagnosis the first time the streak reaches `steps`, else None."""
        mean, peak = _number(logs.get(MEAN_KEY)), _number(logs.get(MAX_KEY))
        if mean is None and peak is None:
            return None  # not a training log with vLLM metrics (eval, train summary, ...)
        self.history.append((step, mean, peak))
        if len(self.history) == 1:  # the first generation, before any update: the noise floor
            self.baseline, self.first_max = mean, peak
            return None
        self.drift = _per_lr(mean, _number(logs.get("learning_rate")))
        if len(self.history) <= 1 + self.stale_by:  # async: the staleness the run is built with
            if self.drift is not None:
                self.stale_drift = max(self.stale_drift or 0.0, self.drift)
            return None
        if self.exceeded(mean, peak):
            self.streak += 1
        else:
            self.streak = 0
        if self.fired or self.streak < self.settings.steps:
            return None
        self.fired = True
        return self.diagnosis()

    def exceeded(self, mean: float | None, peak: float | None) -> bool:
        mean_over = mean is not None and (mean > self.limit or math.isinf(mean))
        # On async a batch is stale by design: its mean counts only when the gap per unit of
        # learning rate also grew past the designed-staleness steps' largest.
        stale_by_design = bool(self.stale_by and self.stale_drift) and (
            self.drift is not None and self.drift <= ASYNC_GROWTH * self.stale_drift)
        peak_over = self.max_limit is not None and peak is not None and peak > self.max_limit
        return (mean_over and not stale_by_design) or peak_over

    def diagnosis(self) -> str:
        recent = self.history[-self.settings.steps:]
        figures = ", ".join(
            f"step {step}: mean {_fmt(mean)}, max {_fmt(peak)}" for step, mean, peak in recent)
        limit = (f"mean > {self.limit:.3g} = max(threshold {self.settings.threshold:g}, "
                 f"{self.settings.factor:g} x the first logged gap {_fmt(self.baseline)})")
        if self.max_limit is not None:
            limit += f" or max > {self.max_limit:g}"
        if self.stale_by and self.stale_drift:
            limit += (f", and, as async prefetch samples up to {self.stale_by} push(es) behind by "
                      f"design, gap / learning rate > {ASYNC_GROWTH:g} x its largest in steps 2-"
                      f"{1 + self.stale_by} ({self.stale_drift:.3g}; now {_fmt(self.drift)})")
        return (
            f"weight-sync guard: vLLM is not generating from the weights being trained. "
            f"sampling/sampling_logp_difference ({limit}) for {len(recent)} logging steps in a row "
            f"({figures}); healthy runs stay at their first gap (about 1e-6 in fp32, 0.01-0.02 in "
            "bf16). The completions "
            "come from a stale (usually the base) model, so GRPO's updates are computed on the "
            "wrong samples. Likely causes: colocate with `trl.vllm_enable_sleep_mode: true` on TRL "
            "<= 1.9 (huggingface/trl#5312); a server whose weight-update channel is not connected "
            "(NCCL unavailable: vLLM then drops the pushes silently); a custom worker extension or "
            "LoRA sync that does not apply the weights. Fix: turn sleep mode off, check the server log "
            "for the weight-update requests, or set `grpo_plugin.weight_sync_guard.stop: true` to "
            "stop such runs automatically (`threshold`, `factor` and `max_threshold` set the limits, "
            "`false` turns the guard off)."
        )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _per_lr(mean: float | None, lr: float | None) -> float | None:
    """The gap per unit of learning rate (one update's size scales with it); the gap itself where
    no learning rate is logged."""
    if mean is None:
        return None
    return mean / lr if lr and lr > 0 else mean


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def resolve(raw: Any) -> GuardSettings | None:
    """`grpo_plugin.weight_sync_guard` (True, False, None or its settings model) -> settings."""
    return switched(raw, GuardSettings)


def make_callback(settings: GuardSettings, report: Callable[[str], None] | None = None,
                  stale_by: int = 0):
    """A transformers TrainerCallback running a `WeightSyncWatch` on every `on_log`."""
    from transformers import TrainerCallback

    class WeightSyncCallback(TrainerCallback):
        """Diagnoses a lost weight push from TRL's logged log-prob gap; optionally stops."""

        def __init__(self):
            self.watch = WeightSyncWatch(settings, stale_by=stale_by)

        def on_log(self, args, state, control, logs=None, **kwargs):
            message = self.watch.observe(logs or {}, getattr(state, "global_step", None))
            if message is None:
                return control
            if settings.stop:
                message += (" Stopping the run now (`grpo_plugin.weight_sync_guard.stop: true`); "
                            "the trainer saves a checkpoint first.")
                control.should_training_stop = True
                control.should_save = True
            if getattr(state, "is_world_process_zero", True):
                (report or LOG.error)(message)
            return control

    return WeightSyncCallback()


def attach(run: Run, trainer, report: Callable[[str], None] | None = None):
    """Add the callback to a trainer that generates with vLLM. Every rank gets it: the
    logged metric is gathered over ranks, so all of them take the same stop decision."""
    settings = resolve(run.plugin.weight_sync_guard)
    if settings is None or not getattr(trainer, "use_vllm", False):
        return None
    stale_by = designed_staleness(trainer)
    callback = make_callback(settings, report, stale_by)
    trainer.add_callback(callback)
    return callback


def designed_staleness(trainer) -> int:
    """Pushes by which a batch's weights may lag the trainer's by design: 0 without async; with
    Axolotl's async prefetch, the queue depth plus the pushes skipped between syncs."""
    if not is_async_grpo(trainer):
        return 0
    args = getattr(trainer, "args", None)
    depth = getattr(args, "prefetch_depth", None) or 1
    interval = getattr(args, "vllm_sync_interval", None) or 1
    return int(depth) + int(interval) - 1
