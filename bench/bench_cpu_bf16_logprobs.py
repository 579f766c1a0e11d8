"""Where bfloat16 autocast's log-prob noise comes from on CPU, and what keeping the output layer in
float32 costs (issue 51, item 5).

    python bench/bench_cpu_bf16_logprobs.py --model PATH/smollm2-135m --data PATH/gsm8k/train.jsonl
        [--completions 16] [--completion-tokens 160] [--micro-batch 4]

`grpo_plugin.cpu_bf16` runs the trainer's forward under `torch.autocast("cpu", bfloat16)`; its
log-probs then differ from vLLM's float32 ones by ~0.03 nats a token. This samples completions of
real GSM8K prompts from the model (float32, temperature 1), then scores them three ways: float32
(the reference), autocast (what `cpu_bf16` does), and autocast with the output layer (`lm_head`,
the logits) computed in float32. For each: the per-token log-prob gap to float32 (mean, 99th
percentile, max), the per-completion summed gap (what TRL's `sequence_mask` importance sampling
exponentiates), and the seconds of one optimizer step's compute over those sequences (a no-grad
forward for the old log-probs, then forward + backward per micro batch; no update, so every mode
scores the same weights). The third mode wraps the model with the plugin's own
`cpu_bf16.float32_output_layer`. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from axolotl_grpo_plugin.training.cpu_bf16 import float32_output_layer  # noqa: E402  the plugin's own wrap


MODES = ("float32", "bfloat16 autocast", "autocast, lm_head float32")  # in this order: the wrap stays


def precision(mode: str):
    return contextlib.nullcontext() if mode == "float32" else torch.autocast("cpu", dtype=torch.bfloat16)


def token_logps(model, ids, mask, prompt_len: int) -> torch.Tensor:
    logits = model(ids, attention_mask=mask).logits[:, prompt_len - 1:-1].float()
    return logits.log_softmax(-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


def step_seconds(model, optimizer, batches, prompt_len: int, mode: str) -> float:
    started = time.perf_counter()
    with precision(mode):
        for ids, mask in batches:
            with torch.no_grad():
                token_logps(model, ids, mask, prompt_len)
        for ids, mask in batches:
            (-token_logps(model, ids, mask, prompt_len).mean() / len(batches)).backward()
    optimizer.zero_grad(set_to_none=True)  # no update: every mode scores the same weights
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="a GSM8K jsonl (a `question` per line)")
    parser.add_argument("--completions", type=int, default=16)
    parser.add_argument("--completion-tokens", type=int, default=160)
    parser.add_argument("--micro-batch", type=int, default=4)
    args = parser.parse_args()

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    with open(args.data) as f:
        questions = [json.loads(line)["question"] for _, line in zip(range(args.completions // 2), f)]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                             add_generation_prompt=True) for q in questions for _ in range(2)]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    prompt_len = batch.input_ids.shape[1]
    with torch.no_grad():
        ids = model.generate(**batch, do_sample=True, temperature=1.0, max_new_tokens=args.completion_tokens,
                             min_new_tokens=args.completion_tokens, pad_token_id=tokenizer.pad_token_id)
    mask = torch.cat([batch.attention_mask, torch.ones_like(ids[:, prompt_len:])], dim=1)
    print(json.dumps({"threads": torch.get_num_threads(), "sequences": len(ids), "prompt_tokens": prompt_len,
                      "completion_tokens": ids.shape[1] - prompt_len}), flush=True)

    model.eval()  # dropout off, as TRL's GRPO trainer has it
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    batches = [(ids[i:i + args.micro_batch], mask[i:i + args.micro_batch]) for i in range(0, len(ids), args.micro_batch)]
    scored = {}
    for mode in MODES:
        if mode == "autocast, lm_head float32":
            float32_output_layer(model)  # what `cpu_bf16` does to the trainer's model
        with torch.no_grad(), precision(mode):
            scored[mode] = torch.cat([token_logps(model, i, m, prompt_len) for i, m in batches])
        gap = (scored[mode] - scored["float32"]).abs()
        summed = (scored[mode] - scored["float32"]).sum(-1)
        step_seconds(model, optimizer, batches[:1], prompt_len, mode)  # warm up this mode's kernels
        seconds = min(step_seconds(model, optimizer, batches, prompt_len, mode) for _ in range(2))
        print(json.dumps({"mode": mode, "token_gap_mean": round(gap.mean().item(), 5),
                          "token_gap_p99": round(gap.flatten().quantile(0.99).item(), 5),
                          "token_gap_max": round(gap.max().item(), 4),
                          # TRL's sequence_mask weight: exp(trainer's summed log-prob - vLLM's (float32))
                          "completion_weight_range": [round(summed.exp().min().item(), 3),
                                                      round(summed.exp().max().item(), 3)],
                          "compute_s": round(seconds, 2)}), flush=True)

if __name__ == "__main__":
    main()
