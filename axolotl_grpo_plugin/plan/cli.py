"""Will this GRPO config fit? `axolotl-grpo plan CONFIG --gpu-type L40S`

Estimates, per training process, the weights, gradients, optimizer state,
reference model, activations and logits, and for the vLLM GPU the weights plus
the KV cache the generation batch wants. Prints a verdict per GPU and the
changes that save the most memory. No GPU is needed and nothing is downloaded
(except what --from-data asks the stats module to fetch).
The estimates are arithmetic (docs/scaling.md); for one process with transformers generation they were
within 3 % of the peaks `axolotl-grpo gpu-check` measured on an H200.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..cli import at_least, prog, renamed
from ..config.batching import describe_layout
from ..config.load import declared_processes, read_yaml_text
from ..config.run import read_run
from ..errors import PluginError, counted, exit_for
from ..sources.data import raised_as
from ..watch import sync_guard
from .dims import UnknownModel, resolve_dims
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
from .gpus import GIB, GPU, GPUS, UnknownGPU, find_gpu, gpu_from_memory


EPILOG = """examples:
  axolotl-grpo plan configs/gsm8k.yaml --gpu-type L40S
  axolotl-grpo plan configs/gsm8k-8gpu-zero3.yaml --gpu-type H100 --gpu-type A100-40GB
  axolotl-grpo plan configs/gsm8k.yaml --gpu-memory 48 --processes 1
  axolotl-grpo stats configs/gsm8k.yaml --json > stats.json
  axolotl-grpo plan configs/gsm8k.yaml --stats stats.json
  axolotl-grpo plan configs/smoke.yaml --from-data --gpu-memory 8
  axolotl-grpo plan my.yaml --dims hidden=2048,layers=24,vocab=32000,intermediate=5632,heads=16,kv_heads=4

without --gpu, the verdict is printed for every GPU in the built-in table.
prompt length: --prompt-tokens, else --stats (max prompt), else --from-data (measured now),
else vllm.max_model_len - trl.max_completion_length, else 263 (longest GSM8K train prompt,
Qwen2.5 template)."""


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
    sleep_mode_works = not sync_guard.sleep_mode_loses_weights(sync_guard.installed_trl_version())
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog("plan"), description=__doc__,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="the Axolotl GRPO yaml")
    p.add_argument("--gpu-type", action="append", default=[], metavar="NAME",
                   help=f"GPU to check (repeatable): {', '.join(g.name for g in GPUS.values())}")
    renamed(p, "--gpu", "--gpu-type", action="append")  # --gpu is a switch in `check`
    p.add_argument("--gpu-memory", type=float, action="append", default=[], metavar="GIB",
                   help="check a GPU of this many GiB instead of a named one (repeatable)")
    p.add_argument("--processes", type=at_least(1, "e.g. --processes 2 (one per training GPU)"),
                   help="training processes (default: the config's `# Processes:` header, else 1)")
    p.add_argument("--prompt-tokens", type=at_least(1, "e.g. --prompt-tokens 300, or --from-data to measure it"),
                   help="longest prompt in tokens")
    p.add_argument("--from-data", action="store_true",
                   help="measure the longest prompt with the stats module (the config's tokenizer, "
                   "template, dataset and transform; fetches them if they are not local)")
    p.add_argument("--stats", metavar="FILE", help="`axolotl-grpo stats CONFIG --json` output to take the longest prompt from")
    p.add_argument("--dims", help="model shapes when base_model is not local or in the built-in table: "
                   "hidden=,layers=,vocab=,intermediate=,heads=,kv_heads= (optional head_dim=, tied=1)")
    p.add_argument("--no-vllm", action="store_true",
                   help="plan as if generation ran in the trainer with transformers (trl.use_vllm: false)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        gpus = [find_gpu(name) for name in args.gpu_type] + [gpu_from_memory(m) for m in args.gpu_memory]
        workload, _, dims_source, prompt_source, model = build(args)
    except PluginError as exc:
        return exit_for(exc)
    except (UnknownGPU, UnknownModel) as exc:
        return exit_for(PlanError(str(exc)))
    shown = gpus or list(GPUS.values())
    if args.json:
        print(json.dumps(as_json(workload, shown), indent=2))
    else:
        print(format_plan(workload, shown, (args.config, model, dims_source, prompt_source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
