"""The plan of a config, as text and as JSON: the memory each process needs and a verdict per GPU
(what `axolotl-grpo plan` prints)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..config import defaults
from ..config.batching import describe_layout
from ..config.load import declared_processes, read_yaml_text
from ..config.run import read_run
from ..errors import PluginError, counted
from ..sources.data import raised_as
from .dims import resolve_dims
from .estimate import (
    CUDA_OVERHEAD_BYTES,
    Item,
    TrainerEstimate,
    VllmEstimate,
    Workload,
    estimate_trainer,
    estimate_vllm,
    levers,
    verdict,
)
from .from_config import config_prompt_tokens, workload_from_config
from .gpus import GIB, GPU


class PlanError(PluginError):
    """Bad input to the planner, reported as one line."""


def gib(value: float) -> str:
    return f"{value / GIB:7.2f}"


def prompt_budget(args, run) -> tuple[int, str]:
    if args.prompt_tokens is not None:
        return args.prompt_tokens, "--prompt-tokens"
    if args.stats:
        try:
            data = json.loads(Path(args.stats).read_text(encoding="utf-8"))
            return int(data["prompt_tokens"]["max"]), f"max prompt in {args.stats}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PlanError(f"--stats {args.stats}: cannot read prompt_tokens.max from it ({exc}); "
                            "write it with `axolotl-grpo stats CONFIG --json > FILE`") from None
    if args.from_data:
        from ..seqstats import StatsError, prompt_token_stats

        try:
            report = prompt_token_stats(args.config, progress=not args.json)
        except StatsError as exc:
            raise PlanError(f"--from-data: {exc}") from None
        return int(report.prompt_tokens["max"]), f"longest of {report.rows} prompts, measured by the stats module"
    return config_prompt_tokens(run)


def build(args) -> tuple[Workload, dict, str, str, str]:
    path = Path(args.config)
    with raised_as(PlanError):
        cfg, text = read_yaml_text(path)  # and its header comments: `# Processes: N`
    run = read_run(cfg)
    if run.rl != "grpo":  # an SFT cold start has no generation, KV cache or groups to plan
        raise PlanError(f"{path}: not a GRPO config (no `rl: grpo`), and plan estimates GRPO runs (generation, "
                        "vLLM's KV cache, groups of completions). Fix: plan the GRPO config that follows it, e.g. "
                        "configs/smollm2-gsm8k-grpo-cpu.yaml after the SmolLM2 cold start")
    processes = args.processes or declared_processes(text) or 1
    dims, dims_source = resolve_dims(cfg.get("base_model"), args.dims, local_root=path.parent)
    prompt, prompt_source = prompt_budget(args, run)
    workload = workload_from_config(run, dims, processes, prompt, config_dir=path.parent)
    if args.no_vllm:
        workload = replace(workload, use_vllm=False)
    return workload, cfg, dims_source, prompt_source, str(cfg.get("base_model") or "--dims")


def params_text(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"


def describe(w: Workload) -> str:
    method = {"full": "full fine-tune", "lora": f"LoRA r={w.lora_r}", "qlora": f"QLoRA r={w.lora_r}"}[w.method]
    shard = {"none": "no sharding" if w.processes == 1 else "DDP (replicated)", "zero1": "ZeRO-1",
             "zero2": "ZeRO-2", "zero3": "ZeRO-3", "fsdp": "FSDP2"}[w.sharding]
    generation = "transformers generate" if not w.use_vllm else f"vLLM {w.vllm_mode}"
    return f"{method}, {shard}, {counted(w.processes, 'training process', 'training processes')}, {generation}"


def item_lines(items: list[Item], prefix: str = "") -> list[str]:
    return [f"    {prefix + i.name:<52}{gib(i.bytes)}   {i.note}".rstrip() for i in items]


def format_plan(w: Workload, gpus: list[GPU], names: tuple[str, str, str, str]) -> str:
    config, model, dims_source, prompt_source = names
    first = gpus[0]
    trainer = estimate_trainer(w, first)
    lines = [
        f"Memory plan for {config}",
        f"  model      {model}: {params_text(w.dims.total_params())} params (dims: {dims_source})",
        f"  training   {describe(w)}",
        f"  sequences  prompt {w.prompt_tokens} ({prompt_source}) + completion {w.completion_tokens} tokens",
        f"  batch      {describe_layout(w.micro_batch_size, w.gradient_accumulation_steps, w.processes, w.num_generations, w.generation_batch_size)}",
        "",
        "  Trainer GPU, per training process                        GiB",
        *item_lines(trainer.resident),
        *item_lines(trainer.step, "step: "),
        *item_lines(trainer.generation, "generation: "),
        *item_lines(trainer.colocated_vllm),
        f"    {'CUDA context and allocator slack':<52}{gib(CUDA_OVERHEAD_BYTES)}",
        f"    {'peak':<52}{gib(trainer.peak)}",
        f"    {'at load':<52}{gib(trainer.load_peak)}",
    ]
    lines += [f"    note: {n}" for n in trainer.notes]
    if w.use_vllm and w.vllm_mode == "server":
        v = estimate_vllm(w, first)
        lines += ["", f"  vLLM GPU (server, gpu_memory_utilization {w.vllm_gpu_memory_utilization:g}, on {first.name})",
                  f"    {'reserved by vLLM':<52}{gib(v.reserved)}",
                  f"    {'weights (bf16)':<52}{gib(v.weights)}",
                  f"    {'runtime (activations, CUDA graphs)':<52}{gib(v.runtime)}",
                  f"    {'KV cache available':<52}{gib(v.kv_capacity)}",
                  f"    {'KV cache for the whole generation batch':<52}{gib(v.kv_needed)}   "
                  f"{v.sequences} sequences x {w.sequence_tokens} tokens"]
    lines += ["", "  Verdict"]
    for gpu in gpus:
        lines.append("    " + verdict_line(w, gpu))
    sleep_mode_works = not defaults.sleep_mode_loses_weights(defaults.TRL_VERSION)
    ranked = levers(w, first, sleep_mode_works=sleep_mode_works)
    if ranked:
        lines += ["", f"  Levers on {first.name}, biggest first (trainer peak after the change)"]
        for label, peak in ranked[:3]:
            lines.append(f"    {gib(peak)} GiB {verdict(peak, first.memory_bytes):<12}  {label}")
    return "\n".join(lines)


def verdict_line(w: Workload, gpu: GPU) -> str:
    trainer = estimate_trainer(w, gpu)
    card = gpu.memory_bytes
    text = (f"{gpu.name:<11} {card / GIB:6.1f} GiB  trainer {trainer.peak / GIB:6.1f} GiB "
            f"({100 * trainer.peak / card:3.0f}%) {verdict(trainer.peak, card)}")
    if not gpu.bf16 and w.half_precision:
        text += "; no bf16 on this card"
    if w.use_vllm:
        where = "vLLM" if w.vllm_mode == "server" else "colocated vLLM"
        text += f"; {where} " + vllm_verdict(estimate_vllm(w, gpu))
    return text


def vllm_verdict(v: VllmEstimate) -> str:
    if v.kv_capacity < v.kv_min:
        return (f"does not fit (its KV cache cannot hold one {v.kv_min_tokens}-token sequence; "
                "raise vllm.gpu_memory_utilization or lower vllm.max_model_len)")
    if v.concurrent_sequences >= v.sequences:
        return f"fits (all {v.sequences} sequences at once)"
    return f"fits ({v.concurrent_sequences} of {v.sequences} sequences at once; slower, not OOM)"


def as_json(w: Workload, gpus: list[GPU]) -> dict:
    out = {"params": w.dims.total_params(), "processes": w.processes, "prompt_tokens": w.prompt_tokens,
           "completion_tokens": w.completion_tokens, "gpus": {}}
    for gpu in gpus:
        t: TrainerEstimate = estimate_trainer(w, gpu)
        entry = {"memory_gib": gpu.memory_bytes / GIB, "trainer_peak_gib": t.peak / GIB,
                 "trainer_load_gib": t.load_peak / GIB, "trainer": verdict(t.peak, gpu.memory_bytes),
                 "items_gib": {i.name: i.bytes / GIB for i in t.resident + t.step + t.generation + t.colocated_vllm}}
        if w.use_vllm:
            v = estimate_vllm(w, gpu)
            entry.update(vllm=vllm_verdict(v), vllm_concurrent_sequences=v.concurrent_sequences)
        out["gpus"][gpu.name] = entry
    return out
