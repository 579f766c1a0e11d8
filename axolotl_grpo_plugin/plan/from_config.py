"""Turn an Axolotl GRPO config (plus the launch) into the planner's `Workload`.

Defaults follow what the installed Axolotl and TRL do when a key is absent, as defaults.py
holds them and the Run reads them (e.g. `trl.max_completion_length` unset is 256 on TRL 1.9, 512 on 1.13/1.14;
`trl.vllm_mode` unset is colocate; `vllm.gpu_memory_utilization` unset is 0.9).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..config.run import Run
from .dims import ModelDims
from .estimate import LORA_LINEAR, Workload


# A documented GSM8K figure: the longest train prompt with the Qwen2.5 chat template
# and the R1 format instruction (configs/gsm8k.yaml sizes vllm.max_model_len from it).
DEFAULT_PROMPT_TOKENS = 263
def deepspeed_stage(deepspeed: Any, config_dir: Path | None = None) -> int | None:
    """ZeRO stage from an inline `deepspeed:` mapping or a json path (as Axolotl reads it)."""
    ds = deepspeed
    if not ds:
        return None
    if isinstance(ds, str):
        candidates = [Path(ds)] + ([config_dir / ds] if config_dir else [])
        for path in candidates:
            if path.is_file():
                ds = json.loads(path.read_text(encoding="utf-8"))
                break
        else:
            match = re.search(r"zero([123])", ds)
            return int(match.group(1)) if match else None
    stage = (ds.get("zero_optimization") or {}).get("stage")
    return int(stage) if stage is not None else 0


def sharding(run: Run, config_dir: Path | None = None) -> str:
    if run.fsdp_config or run.fsdp or run.fsdp_version:
        return "fsdp"
    stage = deepspeed_stage(run.deepspeed, config_dir)
    return f"zero{stage}" if stage else "none"


def lora_targets(run: Run) -> tuple[str, ...]:
    if run.lora_target_linear:
        return LORA_LINEAR
    modules = run.lora_target_modules or []
    if isinstance(modules, str):
        modules = [modules]
    return tuple(m for m in modules if m in LORA_LINEAR) or LORA_LINEAR


def fused_attention(run: Run) -> bool:
    """Flash or SDPA kernels never materialize the attention matrix; eager does."""
    impl = run.attn_implementation
    if impl:
        return str(impl) != "eager"
    return bool(run.flash_attention or run.sdp_attention or run.flex_attention)


def config_prompt_tokens(run: Run) -> tuple[int, str]:
    """The prompt budget a config implies, and where it comes from: the one owner of
    `vllm.max_model_len - trl.max_completion_length` (the planner and the layout table)."""
    max_len, completion = run.vllm.max_model_len, run.trl.max_completion_length
    if max_len and completion and max_len > completion:
        return max_len - completion, "vllm.max_model_len - trl.max_completion_length"
    return DEFAULT_PROMPT_TOKENS, "default: longest GSM8K train prompt with the Qwen2.5 template"


def workload_from_config(run: Run, dims: ModelDims, processes: int, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                         config_dir: Path | None = None) -> Workload:
    trl, vllm = run.trl, run.vllm
    fsdp = run.fsdp_config if isinstance(run.fsdp_config, dict) else {}
    adapter = run.adapter
    method = "qlora" if adapter == "qlora" else "lora" if adapter == "lora" else "full"
    return Workload(
        dims=dims,
        method=method,
        sharding=sharding(run, config_dir),  # type: ignore[arg-type]
        processes=max(int(processes), 1),
        micro_batch_size=run.micro_batch_size,
        gradient_accumulation_steps=run.gradient_accumulation_steps,
        num_generations=trl.num_generations,
        prompt_tokens=int(prompt_tokens),
        completion_tokens=run.completion_length,
        generation_batch_size=trl.generation_batch_size,
        gradient_checkpointing=bool(run.gradient_checkpointing or fsdp.get("activation_checkpointing")),
        flash_attention=fused_attention(run),
        half_precision=run.half_precision,
        beta=float(trl.beta),
        optimizer=str(run.optimizer),
        lora_r=int(run.lora_r or 8),
        lora_targets=lora_targets(run),
        lora_dropout=float(run.lora_dropout),
        use_vllm=trl.use_vllm,
        vllm_mode=run.vllm_mode,  # type: ignore[arg-type]
        vllm_gpu_memory_utilization=float(run.vllm_gpu_memory_utilization),
        vllm_sleep_mode=trl.vllm_enable_sleep_mode,
        vllm_max_model_len=vllm.max_model_len if trl.vllm_mode == "server" else None,
        vllm_tensor_parallel=vllm.tensor_parallel_size,
    )
