"""The trainer's forward, backward and AdamW on CPU: LoRA against a full fine-tune, by micro-batch size.

    python bench/bench_cpu_lora_step.py --model models/qwen2.5-coder-0.5b \\
        [--arms full:1 lora:1 full:2 lora:2 lora:4 lora:8] [--sequences 8] [--steps 3] [--rounds 1]

Why: a LoRA GRPO step of the Qwen 0.5B through the plugin spent 143 s in its optimizer phase
where a full fine-tune's spent 89 s for as many completions (docs/benchmarks.md), though LoRA
skips the frozen weights' gradients and their AdamW update; and how many completions share a
micro-batch was not the same in every run. Each arm is `KIND:BATCH` (full or lora, sequences per
micro-batch) and runs the GRPO trainer's compute alone (bench/cpu_train_loop.py: no TRL, no
server; `--sequences` per optimizer step, the same lengths in every arm, padded per micro-batch,
bfloat16 autocast with float32 logits, then AdamW) in a fresh process; arms alternate, `--rounds`
times each. Printed per arm: seconds per step for the forwards and backwards, for AdamW, and the
ratio to the round's first arm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from cpu_train_loop import SHAPES, load_model, run_steps  # bench/ is the script's folder: on sys.path


KINDS = ("full", "lora")


def arm(text: str) -> tuple[str, int]:
    kind, _, batch = text.partition(":")
    if kind not in KINDS or not batch.isdigit() or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an arm is KIND:BATCH, KIND one of {KINDS}, BATCH >= 1")
    return kind, int(batch)


def child(args) -> dict:
    kind, batch = args.child
    model = load_model(args.model, args.seed, lora_rank=args.rank if kind == "lora" else 0)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trained_params": trained,
            **run_steps(model, args.steps, args.sequences, args.seed, batch=batch, shape=SHAPES[args.shape])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a float32 model folder (e.g. from `axolotl-grpo fetch-model`)")
    parser.add_argument("--arms", type=arm, nargs="+", default=[arm("full:1"), arm("lora:1")],
                        help="KIND:BATCH, e.g. full:1 lora:1 lora:4 (ratios are to the first)")
    parser.add_argument("--sequences", type=int, default=8, help="sequences per optimizer step")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="rollout",
                        help="rollout: prompt 100-200 + completion 50-250, logits for the completion only; "
                             "whole: 150-450 tokens, every position scored")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per arm (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=1, help="times each arm runs, alternating")
    parser.add_argument("--rank", type=int, default=32, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=arm, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    counted = slice(1, None) if args.steps > 1 else slice(None)
    for round_ in range(1, args.rounds + 1):
        first = None
        for kind, batch in args.arms:
            command = [sys.executable, __file__, "--child", f"{kind}:{batch}", "--model", args.model,
                       "--steps", str(args.steps), "--sequences", str(args.sequences), "--shape", args.shape,
                       "--seed", str(args.seed), "--rank", str(args.rank)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                print(f"{kind}:{batch}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            compute = statistics.mean(result["compute_s"][counted])
            adamw = statistics.mean(result["adamw_s"][counted])
            first = first or compute + adamw
            print(json.dumps({"round": round_, "arm": f"{kind}:{batch}", "trained_params": result["trained_params"],
                              "compute_s": round(compute, 2), "adamw_s": round(adamw, 2),
                              "vs_first": round((compute + adamw) / first, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
