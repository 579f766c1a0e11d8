"""The trainer's forward, backward and AdamW on CPU: LoRA against a full fine-tune, same sequences.

    python bench/bench_cpu_lora_step.py --model models/qwen2.5-coder-0.5b [--steps 3] [--micro 8] [--rounds 2]

Why: a LoRA GRPO step of the Qwen 0.5B through the plugin spent 144-152 s in its optimizer phase
where the full fine-tune's spent 89 s for as many completions (docs/benchmarks.md), though LoRA
skips the frozen weights' gradients and their AdamW update. This loop is the GRPO trainer's compute
alone (no TRL, no server): per step, `--micro` micro-batches of one sequence of random length
(150-450 tokens, the same lengths in every arm) through a forward under bfloat16 autocast with
float32 logits (`grpo_plugin.cpu_bf16`), a token log-prob loss and a backward, then AdamW. Arms
alternate in fresh processes, `--rounds` times each; printed per arm: seconds per step for the
forwards and backwards, for AdamW, and the ratio to the full fine-tune of the same round.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time


ARMS = ("full", "lora")


def child(model_dir: str, arm: str, steps: int, micro: int, seed: int, rank: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from axolotl_grpo_plugin.training.cpu_bf16 import float32_output_layer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if arm == "lora":
        from peft import LoraConfig, get_peft_model

        # what Axolotl builds for `adapter: lora`, `lora_target_linear: true`
        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    float32_output_layer(model)  # as the plugin's cpu_bf16 trains
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-7)
    lengths = random.Random(seed)
    vocab = model.config.vocab_size
    compute, update = [], []
    for _ in range(steps):
        started = time.perf_counter()
        for _ in range(micro):
            ids = torch.randint(0, vocab, (1, lengths.randint(150, 450)))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(input_ids=ids).logits[:, :-1]
            logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            (-logps.mean() / micro).backward()
            del logits, logps
        middle = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        compute.append(middle - started)
        update.append(time.perf_counter() - middle)
    return {"trained_params": sum(p.numel() for p in trained), "compute_s": compute, "adamw_s": update}


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
