"""The layout table of the shipped configs, generated from the configs themselves.

`python -m axolotl_grpo_plugin.plan.layout configs/*.yaml` prints the markdown table
in docs/scaling.md; a test regenerates it and compares, so the doc cannot drift.
Each config's `# Memory:` header line is checked against the planner the same way.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..config.batching import describe_layout
from ..config.load import declared_processes, read_yaml_text
from ..config.run import read_run
from .dims import resolve_dims
from .estimate import estimate_trainer, verdict
from .from_config import config_prompt_tokens, workload_from_config
from .gpus import GIB, find_gpu


GPUS_HEADER = re.compile(r"^#\s*GPUs:\s+(\d+)", re.MULTILINE)
MEMORY_HEADER = re.compile(r"^#\s*Memory:\s+trainer peak ([\d.]+) GiB on (\S+) \(([^)]*)\)", re.MULTILINE)


def read(path: Path) -> tuple[dict, str]:
    """The config (through the one config reader) and its text, whose header comments say
    the GPU count and the recorded memory."""
    return read_yaml_text(path)


def layout_row(path: Path) -> str:
    cfg, text = read(path)
    run = read_run(cfg)
    processes = declared_processes(text) or 1
    mbs, gas, groups = run.micro_batch_size, run.gradient_accumulation_steps, run.trl.num_generations
    arithmetic = describe_layout(mbs, gas, processes, groups, run.trl.generation_batch_size)
    gpus = GPUS_HEADER.search(text)
    return (f"| `{path.name}` | {gpus.group(1) if gpus else '?'} | {processes} | {mbs} | {gas} | {groups} "
            f"| {arithmetic} |")


def layout_table(paths: list[Path]) -> str:
    head = ("| config | GPUs | training processes | micro_batch_size | gradient_accumulation_steps "
            "| num_generations | mbs x gas x processes = completions = prompts x generations |\n"
            "|---|---|---|---|---|---|---|")
    return "\n".join([head, *(layout_row(p) for p in sorted(paths))])


def memory_header(path: Path, gpu_name: str) -> str:
    """The `# Memory:` header line the planner gives for this config on `gpu_name`."""
    cfg, text = read(path)
    dims, _ = resolve_dims(cfg.get("base_model"), local_root=path.parent)
    run = read_run(cfg)
    prompt, _ = config_prompt_tokens(run)
    w = workload_from_config(run, dims, declared_processes(text) or 1, prompt, config_dir=path.parent)
    gpu = find_gpu(gpu_name)
    peak = estimate_trainer(w, gpu).peak
    return f"trainer peak {peak / GIB:.1f} GiB on {gpu.name} ({verdict(peak, gpu.memory_bytes)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axolotl_grpo_plugin.plan.layout",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python -m axolotl_grpo_plugin.plan.layout configs/gsm8k*.yaml")
    parser.add_argument("configs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.configs if not p.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(layout_table(args.configs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
