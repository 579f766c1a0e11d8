"""The probe's sampling backends side by side on one config, in one run: vLLM (offline engine;
vLLM's CPU build on a machine without a GPU) against transformers, the same prompts, the same
budget. Each probe runs as its own `python -m axolotl_grpo_plugin.probe ... --json` process
(model load included, as a user runs it); wall and CPU time come from the child's rusage.

    . .venv-vllm/bin/activate
    python bench/bench_probe_backends.py configs/smollm2-gsm8k-grpo-cpu.yaml \\
        --model models/smollm2-135m --prompts 32 --generations 8 --budget 200

Prints one JSON line per backend (wall_s, cpu_s, the probe's own wall_s, its verdict) and the
wall-time ratio transformers / vLLM. The load average before and after is printed: on a shared
machine wall times are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def run(backend: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "axolotl_grpo_plugin.probe", args.config, "--backend", backend,
               "--prompts", str(args.prompts), "--generations", *map(str, args.generations),
               "--json", "--no-progress"]
    if args.model:
        command += ["--model", args.model]
    if args.budget:
        command += ["--budget", str(args.budget)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{backend}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout)
    return {"backend": data["backend"], "wall_s": round(wall, 1),
            "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
            "probe_wall_s": round(data["wall_s"], 1), "load_before": round(load, 1),
            "load_after": round(os.getloadavg()[0], 1),
            "completions": data["prompts"] * data["samples_per_prompt"],
            "truncation_rate": data["truncation_rate"], "format_compliance": data["format_compliance"],
            "verdict": data["verdict"]["line"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--model")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--generations", type=int, nargs="+", default=[8])
    parser.add_argument("--budget", type=int)
    parser.add_argument("--backends", nargs="+", default=["vllm", "transformers"])
    args = parser.parse_args(argv)
    rows = {}
    for backend in args.backends:
        rows[backend] = run(backend, args)
        print(json.dumps(rows[backend]), flush=True)
    if {"vllm", "transformers"} <= set(rows):
        ratio = rows["transformers"]["wall_s"] / rows["vllm"]["wall_s"]
        print(json.dumps({"wall_ratio_transformers_over_vllm": round(ratio, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
