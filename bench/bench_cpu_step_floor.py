"""The compute floor of a GRPO step's optimizer part on CPU (issue 51, item 5): what the model's
own forward and backward cost for the step's sequences, with no TRL, no Axolotl and no vLLM.

    python bench/bench_cpu_step_floor.py --model PATH/smollm2-135m [--completions 16]
        [--prompt-tokens 140] [--completion-tokens 164] [--micro-batch 4] [--repeats 2]

One step as the GRPO trainer runs it on `configs/smollm2-gsm8k-grpo-cpu.yaml` with groups of 8:
`--completions` sequences of prompt + completion tokens, in micro batches, each a forward and a
backward with the loss on the completion tokens, one AdamW step at the end, plus the no-grad
forward TRL adds for vLLM's importance-sampling correction (its old log-probs). Timed in float32 and
under bfloat16 autocast, with torch on every core; beside them the machine's matmul rate in both
dtypes and the FLOPs the step needs (6 x parameters x tokens for forward + backward, 2 x for the
extra forward), so the achieved rate can be read against the machine's. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM


def matmul_gflops(dtype: torch.dtype, size: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - started) / 1e9


def one_step(model, optimizer, batches, prompt_tokens: int, autocast: bool) -> float:
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    started = time.perf_counter()
    with context:
        for ids in batches:  # the old log-probs: one no-grad forward per micro batch
            with torch.no_grad():
                model(ids).logits.float().log_softmax(-1)
        for ids in batches:
            logits = model(ids).logits[:, prompt_tokens - 1:-1].float()
            logps = logits.log_softmax(-1).gather(-1, ids[:, prompt_tokens:, None])
            (-logps.mean() / len(batches)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--completions", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=140)
    parser.add_argument("--completion-tokens", type=int, default=164)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    params = sum(p.numel() for p in model.parameters())
    length = args.prompt_tokens + args.completion_tokens
    vocab = model.config.vocab_size
    batches = [torch.randint(0, vocab, (args.micro_batch, length)) for _ in range(args.completions // args.micro_batch)]
    tokens = args.completions * length
    flops = (6 + 2) * params * tokens  # forward + backward, and the old log-probs' forward
    print(json.dumps({"threads": torch.get_num_threads(), "parameters": params, "tokens_per_step": tokens,
                      "step_tflop": round(flops / 1e12, 2),
                      "matmul_gflops_float32": round(matmul_gflops(torch.float32), 1),
                      "matmul_gflops_bfloat16": round(matmul_gflops(torch.bfloat16), 1)}), flush=True)
    for autocast in (False, True, False, True):
        one_step(model, optimizer, batches[:1], args.prompt_tokens, autocast)  # warm up this mode
        seconds = min(one_step(model, optimizer, batches, args.prompt_tokens, autocast) for _ in range(args.repeats))
        print(json.dumps({"mode": "bfloat16 autocast" if autocast else "float32", "step_s": round(seconds, 2),
                          "achieved_gflops": round(flops / seconds / 1e9, 1)}), flush=True)


if __name__ == "__main__":
    main()
