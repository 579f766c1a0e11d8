"""The trainer's peak memory on CPU under glibc malloc settings: a GRPO-shaped loop, one process each.

    python bench/bench_malloc_rss.py --model models/qwen2.5-coder-0.5b [--steps 4] [--micro 8]

Why: the Qwen 0.5B's GRPO trainer (float32 weights and AdamW, about 8 GiB of them) grew to 17 GiB
resident and was killed by the kernel on a 24 GiB machine, with `MALLOC_ARENA_MAX=2` too. Varying
sequence lengths free and allocate tensors of ever new sizes; glibc's malloc serves those under its
mmap threshold from heaps it rarely gives back, and that threshold grows (up to 32 MiB) each time a
larger mmapped block is freed. Each setting runs the same loop (bench/cpu_train_loop.py: `--micro`
sequences of 150-450 tokens per step, `whole_sequence_shape`, the same lengths for every setting)
in a fresh process. Printed per setting: the peak resident size (VmHWM), the resident size after
each step, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


SETTINGS = {
    "glibc default": {},
    "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
    "+ MALLOC_MMAP_THRESHOLD_=65536": {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "65536"},
}


def child(model_dir: str, steps: int, micro: int, seed: int) -> dict:
    from cpu_train_loop import load_model, run_steps, whole_sequence_shape

    from axolotl_grpo_plugin.observe.cpu_memory import KIB_PER_GIB, read_kib

    status = Path("/proc/self/status")

    def resident_gib(field: str) -> float:
        return round(read_kib(status, field)[field] / KIB_PER_GIB, 2)

    model = load_model(model_dir, seed)
    after_step, started = [], time.monotonic()
    run_steps(model, steps, micro, seed, shape=whole_sequence_shape,
              after_step=lambda: after_step.append(resident_gib("VmRSS")))
    return {"peak_gib": resident_gib("VmHWM"), "rss_after_step_gib": after_step,
            "wall_s": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a float32 model folder (e.g. from `axolotl-grpo fetch-model`)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--micro", type=int, default=8, help="micro-batches (one sequence each) per optimizer step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(SETTINGS), action="append",
                        help="run only these settings (and any --threshold ones)")
    parser.add_argument("--threshold", type=int, action="append", default=[], metavar="BYTES",
                        help="also run MALLOC_ARENA_MAX=2 with MALLOC_MMAP_THRESHOLD_=BYTES (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = dict(SETTINGS)
    for size in args.threshold:
        settings[f"+ MALLOC_MMAP_THRESHOLD_={size}"] = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(size)}
    if args.child:
        print(json.dumps(child(args.model, args.steps, args.micro, args.seed)))
        return 0
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    for name in (args.only or []) + [n for n in settings if n not in SETTINGS] or settings:
        command = [sys.executable, __file__, "--child", "--model", args.model, "--steps", str(args.steps),
                   "--micro", str(args.micro), "--seed", str(args.seed)]
        done = subprocess.run(command, env={**base, **settings[name]}, capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        print(json.dumps({"setting": name, **json.loads(done.stdout.strip().splitlines()[-1])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
