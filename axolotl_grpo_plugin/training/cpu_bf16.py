"""bfloat16 compute over float32 weights on a run without a GPU (`grpo_plugin.cpu_bf16`).

Why: on a CPU the trainer's forward, backward and AdamW are most of a GRPO step (SmolLM2-135M on
2 cores: 42 s of a 56 s step), and a CPU with bfloat16 units (AVX512-BF16, AMX) multiplies several
times faster in bfloat16 (`bench/bench_cpu_step_floor.py`). Axolotl's `bf16: true` is no way there:
it loads the weights in bfloat16, where AdamW's updates at GRPO's learning rates round away, and
transformers refuses bf16 on a CPU unless `use_cpu` is set. So the plugin asks the trainer for
accelerate's mixed precision instead (`bf16` + `use_cpu` in the training arguments): weights,
gradients and optimizer state stay float32, each forward runs under `torch.autocast("cpu",
bfloat16)` and its outputs come back float32. vLLM keeps generating from the float32 weights it is
pushed. `auto` turns it on only where the CPU has the units (without them torch emulates bfloat16,
slower than float32), so one config is fast on both kinds of machine.

bfloat16 puts ~0.03 nats of noise on each token's log-prob against vLLM's float32 ones, and TRL's
default importance sampling (`sequence_mask`) sums it over a completion: weights 0.3-2.2 on
completions vLLM sampled from these very weights. So the run also asks for TRL's per-token
correction (`token_truncate`: weights near 1) on a vLLM run (TRL corrects nothing else) unless
`trl.vllm_importance_sampling_mode` is set. Part of that noise is the logits' own rounding
(bfloat16 keeps 8 bits: a logit of 20 is rounded to 1/8), so the output layer computes in
float32: the gap falls by a quarter to a half, and the no-tool chain, which learned 3.4 points of
format less with bfloat16 logits, learned as well as float32 (docs/benchmarks.md, "bfloat16
autocast on CPU").
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import MethodType
from typing import Any, Literal


# /proc/cpuinfo flags of the x86 units that compute in bfloat16
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# TRL's importance sampling per token, not per completion (see the module's docstring)
IS_MODE = "token_truncate"
Setting = bool | Literal["auto"]


def bf16_units(cpuinfo: str | None = None) -> str | None:
    """The bfloat16 flag this CPU reports (`avx512_bf16`, `amx_bf16`), or None (or not Linux)."""
    return _this_cpus_units() if cpuinfo is None else _units_in(cpuinfo)


@cache
def _this_cpus_units() -> str | None:
    # asked at register, for the training arguments, by check and by the async note: read once
    try:
        return _units_in(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def _units_in(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return next((flag for flag in BF16_FLAGS if flag in flags), None)
    return None


def wanted(setting: Setting, units: str | None) -> bool:
    """Whether a CPU run computes in bfloat16: `true`, or `auto` on a CPU with bfloat16 units."""
    return setting is True or (setting == "auto" and units is not None)


def sampling_mode(use_vllm: bool, configured: str | None) -> str | None:
    """The importance-sampling mode bfloat16 asks TRL for: per token where vLLM generates (TRL
    corrects only vLLM's samples) and the config sets none (`trl.vllm_importance_sampling_mode`)."""
    return IS_MODE if use_vllm and configured is None else None


def training_args(setting: Setting, has_gpu: bool, units: str | None, sampling: str | None) -> dict[str, Any]:
    """What the trainer's arguments need for bfloat16 autocast on the CPU (none on a GPU run,
    where `bf16:` is Axolotl's own key); `sampling`: what `sampling_mode` returned."""
    if has_gpu or not wanted(setting, units):
        return {}
    return {"bf16": True, "use_cpu": True, **({"vllm_importance_sampling_mode": sampling} if sampling else {})}


def line(setting: Setting, units: str | None, sampling: str | None) -> str:
    """The one line a CPU training run prints about its precision."""
    if not wanted(setting, units):
        if setting == "auto":
            return "precision: float32 (grpo_plugin.cpu_bf16: auto, and this CPU has no bfloat16 units)"
        return "precision: float32"
    where = f"on this CPU's {units} units" if units else "emulated: this CPU has no bfloat16 units, so it is slower"
    per_token = f"; importance sampling per token, trl.vllm_importance_sampling_mode: {sampling}" if sampling else ""
    return (f"precision: bfloat16 autocast over float32 weights and optimizer, float32 logits ({where}; "
            f"grpo_plugin.cpu_bf16: {str(setting).lower()}{per_token})")


def float32_logits(trainer) -> bool:
    """Under the trainer's CPU autocast, compute the output layer (the logits) in float32.

    Why: see the module's docstring; it costs 1.1-1.3x the trainer's bfloat16 compute on SmolLM2,
    whose output layer is a fifth of its multiplies. True when it was done."""
    if trainer.accelerator.mixed_precision != "bf16" or trainer.args.device.type != "cpu":
        return False
    return float32_output_layer(trainer.model)


def float32_output_layer(model) -> bool:
    """The model's output layer computes in float32 inside any CPU autocast region from now on (a
    no-op outside one). Bound methods, not a closure, so a deep copy of the model computes with its
    own weights. False when the model has no output layer."""
    layer = model.get_output_embeddings()
    if layer is None:
        return False
    layer.autocast_forward = layer.forward
    layer.forward = MethodType(_logits_in_float32, layer)
    return True


def _logits_in_float32(layer, hidden):
    import torch

    with torch.autocast("cpu", enabled=False):
        return layer.autocast_forward(hidden.float())
