"""The trainer's forward, backward and AdamW on CPU: LoRA against a full fine-tune, same sequences.

    python bench/bench_cpu_lora_step.py --model models/qwen2.5-coder-0.5b [--steps 3] [--micro 8] [--rounds 2]

Why: a LoRA GRPO step of the Qwen 0.5B through the plugin spent 144-152 s in its optimizer phase
where the full fine-tune's spent 89 s for as many completions (docs/benchmarks.md), though LoRA
skips the frozen weights' gradients and their AdamW update. The loop is the GRPO trainer's compute
alone (bench/cpu_train_loop.py: no TRL, no server; `--micro` sequences of 150-450 tokens per step,
the same lengths in every arm, bfloat16 autocast with float32 logits, then AdamW). Arms
alternate in fresh processes, `--rounds` times each; printed per arm: seconds per step for the
forwards and backwards, for AdamW, and the ratio to the full fine-tune of the same round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


ARMS = ("full", "lora")


def child(model_dir: str, arm: str, steps: int, micro: int, seed: int, rank: int) -> dict:
    from cpu_train_loop import load_model, run_steps

    model = load_model(model_dir, seed, lora_rank=rank if arm == "lora" else 0)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trained_params": trained, **run_steps(model, steps, micro, seed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a float32 model folder (e.g. from `axolotl-grpo fetch-model`)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per arm (the first is not counted)")
    parser.add_argument("--micro", type=int, default=8, help="micro-batches (one sequence each) per optimizer step")
    parser.add_argument("--rounds", type=int, default=2, help="times each arm runs, alternating")
    parser.add_argument("--rank", type=int, default=32, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.child, args.steps, args.micro, args.seed, args.rank)))
        return 0
    for round_ in range(1, args.rounds + 1):
        results = {}
        for arm in ARMS:
            command = [sys.executable, __file__, "--child", arm, "--model", args.model, "--steps", str(args.steps),
                       "--micro", str(args.micro), "--seed", str(args.seed), "--rank", str(args.rank)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                print(f"{arm}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            counted = slice(1, None) if args.steps > 1 else slice(None)
            results[arm] = {"trained_params": result["trained_params"],
                            "compute_s": round(statistics.mean(result["compute_s"][counted]), 2),
                            "adamw_s": round(statistics.mean(result["adamw_s"][counted]), 2)}
        for arm, result in results.items():
            total = result["compute_s"] + result["adamw_s"]
            full = results["full"]["compute_s"] + results["full"]["adamw_s"]
            print(json.dumps({"round": round_, "arm": arm, **result, "vs_full": round(total / full, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
