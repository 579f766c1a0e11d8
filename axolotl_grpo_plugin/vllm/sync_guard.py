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

The run doctor (issue 19) will generalise the runtime half to other failure signatures;
this module is its first case.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping

from ..errors import Problem

LOG = logging.getLogger("axolotl_grpo_plugin.vllm")
LOG.setLevel(logging.INFO)

# The last TRL release line known to generate from base weights with colocate + sleep
# mode (huggingface/trl#5312, reproduced on 1.9.0). Releases after it are not refused:
# whether they contain the fix (huggingface/trl#5313) is for the runtime watch to show.
SLEEP_MODE_LAST_BROKEN_TRL = (1, 9)

MEAN_KEY = "sampling/sampling_logp_difference/mean"
MAX_KEY = "sampling/sampling_logp_difference/max"


# --- config time ------------------------------------------------------------------

def installed_trl_version() -> str | None:
    try:
        return metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None


def sleep_mode_loses_weights(trl_version: str | None) -> bool:
    """True for TRL <= 1.9.x, and when the version cannot be read (assume the worst)."""
    if not trl_version:
        return True
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(trl_version).release
    except InvalidVersion:
        return True
    return tuple(release[:2]) <= SLEEP_MODE_LAST_BROKEN_TRL


def is_colocate(trl: Mapping[str, Any]) -> bool:
    """vLLM in the trainer: `vllm_mode: colocate`, or unset (TRL 1.9's GRPOConfig default;
    Axolotl 0.19 forwards the mode only when it is set)."""
    return bool(trl.get("use_vllm")) and trl.get("vllm_mode") in (None, "colocate")


def check_sleep_mode(cfg, launch=None, trl_version: str | None = None) -> list[Problem]:
    """Refuse colocate + sleep mode on TRL <= 1.9.x: vLLM would sample from the base model."""
    trl = cfg.get("trl") if hasattr(cfg.get("trl"), "get") else {}
    sleep = trl.get("vllm_enable_sleep_mode")
    if not (sleep in (True, "true", "True") and is_colocate(trl)):
        return []
    version = trl_version if trl_version is not None else installed_trl_version()
    if not sleep_mode_loses_weights(version):
        return []
    mode = "colocate" if trl.get("vllm_mode") else "colocate (TRL's default: `trl.vllm_mode` is unset)"
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

@dataclass(frozen=True)
class GuardSettings:
    """What `grpo_plugin.weight_sync_guard` resolves to (see args.WeightSyncGuardSettings)."""

    threshold: float = 0.1
    max_threshold: float | None = None
    steps: int = 2
    stop: bool = False


@dataclass
class WeightSyncWatch:
    """Reads one logging step's metrics at a time; fires once when the gap has stayed
    above the threshold for `steps` consecutive logging steps that report it.

    Default threshold 0.1 on the mean gap, chosen from measured runs:
    healthy fp32 runs on CPU stay <= 1e-6 and healthy bf16 runs on GPU ~0.01-0.02
    (huggingface/trl#5312: 0.010, 0.018, 0.015), while lost weight pushes gave 0.2 at the first
    step after warm-up and 0.81 later (the same thread). The max gap is not used by default:
    in bf16 a single token's gap reaches 0.5-0.7 with correct weights (huggingface/trl#6789),
    so only the mean separates both dtypes; `max_threshold` adds it for fp32 runs.
    """

    settings: GuardSettings = field(default_factory=GuardSettings)
    streak: int = 0
    fired: bool = False
    history: list[tuple[int | None, float | None, float | None]] = field(default_factory=list)

    def observe(self, logs: Mapping[str, Any], step: int | None = None) -> str | None:
        """The diagnosis the first time the streak reaches `steps`, else None."""
        mean, peak = _number(logs.get(MEAN_KEY)), _number(logs.get(MAX_KEY))
        if mean is None and peak is None:
            return None  # not a training log with vLLM metrics (eval, train summary, ...)
        self.history.append((step, mean, peak))
        if self.exceeded(mean, peak):
            self.streak += 1
        else:
            self.streak = 0
        if self.fired or self.streak < self.settings.steps:
            return None
        self.fired = True
        return self.diagnosis()

    def exceeded(self, mean: float | None, peak: float | None) -> bool:
        s = self.settings
        if mean is not None and (mean > s.threshold or math.isinf(mean)):
            return True
        return s.max_threshold is not None and peak is not None and peak > s.max_threshold

    def diagnosis(self) -> str:
        recent = self.history[-self.settings.steps:]
        figures = ", ".join(
            f"step {step}: mean {_fmt(mean)}, max {_fmt(peak)}" for step, mean, peak in recent)
        limit = f"mean > {self.settings.threshold:g}"
        if self.settings.max_threshold is not None:
            limit += f" or max > {self.settings.max_threshold:g}"
        return (
            f"weight-sync guard: vLLM is not generating from the weights being trained. "
            f"sampling/sampling_logp_difference ({limit}) for {len(recent)} logging steps in a row "
            f"({figures}); healthy runs stay near 1e-6 (fp32) or 0.01-0.02 (bf16). The completions "
            "come from a stale (usually the base) model, so GRPO's updates are computed on the "
            "wrong samples. Likely causes: colocate with `trl.vllm_enable_sleep_mode: true` on TRL "
            "<= 1.9 (huggingface/trl#5312); a server whose weight-update channel is not connected "
            "(NCCL unavailable: vLLM then drops the pushes silently); a custom worker extension or "
            "LoRA sync that does not apply the weights; `top_p`/`top_k`/`min_p` truncation also "
            "raises the gap (huggingface/trl#6789). Fix: turn sleep mode off, check the server log "
            "for the weight-update requests, or set `grpo_plugin.weight_sync_guard.stop: true` to "
            "stop such runs automatically (`threshold` sets the limit, `false` turns the guard off)."
        )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def resolve(raw: Any) -> GuardSettings | None:
    """`grpo_plugin.weight_sync_guard` (True, False, None or its settings model) -> settings."""
    if raw is False:
        return None
    if raw is None or raw is True:
        return GuardSettings()
    values = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
    return GuardSettings(**{k: values[k] for k in GuardSettings.__dataclass_fields__ if k in values})


def make_callback(settings: GuardSettings, report: Callable[[str], None] | None = None):
    """A transformers TrainerCallback running a `WeightSyncWatch` on every `on_log`."""
    from transformers import TrainerCallback

    class WeightSyncCallback(TrainerCallback):
        """Diagnoses a lost weight push from TRL's logged log-prob gap; optionally stops."""

        def __init__(self):
            self.watch = WeightSyncWatch(settings)

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


def settings_from(cfg) -> GuardSettings | None:
    """`grpo_plugin.weight_sync_guard` of a config (raw or Axolotl's validated one); None when off."""
    from ..args import GRPOPluginSettings

    section = cfg.get("grpo_plugin") if hasattr(cfg, "get") else None
    raw = section.get("weight_sync_guard") if hasattr(section, "get") else None
    if raw is None:
        return GuardSettings()
    value = GRPOPluginSettings.model_validate({"weight_sync_guard": dict(raw) if hasattr(raw, "keys") else raw})
    return resolve(value.weight_sync_guard)


def attach(cfg, trainer, report: Callable[[str], None] | None = None):
    """Add the callback to a trainer that generates with vLLM. Every rank gets it: the
    logged metric is gathered over ranks, so all of them take the same stop decision."""
    settings = settings_from(cfg)
    if settings is None or not getattr(trainer, "use_vllm", False):
        return None
    callback = make_callback(settings, report)
    trainer.add_callback(callback)
    return callback
