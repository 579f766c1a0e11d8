"""The trainer's peak memory on CPU under glibc malloc settings: a GRPO-shaped loop, one process each.

    python bench/bench_malloc_rss.py --model models/qwen2.5-coder-0.5b [--steps 4] [--micro 8]

Why: the Qwen 0.5B's GRPO trainer (float32 weights and AdamW, about 8 GiB of them) grew to 17 GiB
resident and was killed by the kernel on a 24 GiB machine, with `MALLOC_ARENA_MAX=2` too. Varying
sequence lengths free and allocate tensors of ever new sizes; glibc's malloc serves those under its
mmap threshold from heaps it rarely gives back, and that threshold grows (up to 32 MiB) each time a
larger mmapped block is freed. Each setting runs the same loop in a fresh process: per step, `--micro`
micro-batches of one sequence of random length (the same lengths for every setting) through a
forward under bfloat16 autocast with float32 logits, a token log-prob loss and a backward, then an
AdamW step. Printed per setting: the peak resident size (VmHWM), the resident size after each step,
and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
    import torch
    from transformers import AutoModelForCausalLM

    from axolotl_grpo_plugin.observe.cpu_memory import KIB_PER_GIB, read_kib
    from axolotl_grpo_plugin.training.cpu_bf16 import float32_output_layer

    status = Path("/proc/self/status")

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.train()
    float32_output_layer(model)  # as the plugin's cpu_bf16 trains
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)
    lengths = random.Random(seed)
    vocab = model.config.vocab_size
    after_step, started = [], time.monotonic()
    for _ in range(steps):
        for _ in range(micro):
            n = lengths.randint(150, 450)
            ids = torch.randint(0, vocab, (1, n))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(input_ids=ids).logits[:, :-1]
            logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            (-logps.mean() / micro).backward()
            del logits, logps
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_step.append(round(read_kib(status, "VmRSS")["VmRSS"] / KIB_PER_GIB, 2))
    return {"peak_gib": round(read_kib(status, "VmHWM")["VmHWM"] / KIB_PER_GIB, 2), "rss_after_step_gib": after_step,
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
