"""What TRL's sampling/sampling_logp_difference reads when the weight push is lost, on CPU fp32.

With the push lost, vLLM samples from the base weights while the trainer scores the same
tokens with its trained weights. This reproduces that without vLLM: completions are
sampled from a frozen copy of the base model, a GRPO-style policy-gradient step (AdamW,
grad clip 1.0, group-normalised advantages of a reward with variance) updates the trained
copy, and each step reports the mean and max |log p_trained - log p_base| over completion
tokens, as TRL computes it. Also the healthy figure: the same tokens scored by the same
weights one sequence at a time instead of in one batch (other kernels, as an engine and a
trainer use; 0 in fp32 on CPU, the rounding noise in bf16 on GPU).

    python bench/bench_sync_gap.py --model .cache/embedded/tiny-qwen2 --lr 1e-5 1e-4 --steps 4
    python bench/bench_sync_gap.py --device cuda --dtype bfloat16 ...
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch


def token_logps(model, sequences: torch.Tensor, prompt_len: int, mask: torch.Tensor) -> torch.Tensor:
    logits = model(sequences, attention_mask=mask).logits[:, prompt_len - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, sequences[:, prompt_len:, None]).squeeze(-1)


def run(model_dir: str, lr: float, steps: int, prompts: list[str], generations: int, tokens: int, seed: int,
        device: str = "cpu", dtype: str = "float32"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    policy = copy.deepcopy(base).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    rows = []
    for step in range(1, steps + 1):
        gaps, floor = [], []
        opt.zero_grad()
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt").input_ids.to(device)
            with torch.no_grad():  # the stale engine: samples from the base weights
                out = base.generate(ids.repeat(generations, 1), do_sample=True, temperature=1.0,
                                    max_new_tokens=tokens, min_new_tokens=tokens,
                                    pad_token_id=tok.pad_token_id or 0)
            plen = ids.shape[1]
            mask = torch.ones_like(out)
            with torch.no_grad():
                sampled = token_logps(base, out, plen, mask)
                trained = token_logps(policy, out, plen, mask)
                again = torch.cat([token_logps(policy, out[i:i + 1], plen, mask[i:i + 1])
                                   for i in range(out.shape[0])])
            gaps.append((trained - sampled).abs().flatten())
            floor.append((trained - again).abs().flatten())
            # reward with variance on a random model: share of even token ids
            reward = (out[:, plen:] % 2 == 0).float().mean(1)
            adv = (reward - reward.mean()) / (reward.std() + 1e-4)
            logp = token_logps(policy, out, plen, mask)
            loss = -(adv[:, None] * logp).mean() / len(prompts)
            loss.backward()
        gap, low = torch.cat(gaps), torch.cat(floor)
        rows.append({"lr": lr, "step": step, "mean": gap.mean().item(), "max": gap.max().item(),
                     "healthy_mean": low.mean().item(), "healthy_max": low.max().item()})
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=".cache/embedded/tiny-qwen2")
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5, 1e-4])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    data = Path(__file__).resolve().parents[1] / "axolotl_grpo_plugin" / "data" / "demo_train.jsonl"
    prompts = [json.loads(line)["question"] for line in data.read_text().splitlines()[:4]]
    print(f"{args.device} {args.dtype}")
    print("lr        step  mean gap   max gap    healthy (same weights, batch of 1): mean  max")
    for lr in args.lr:
        for row in run(args.model, lr, args.steps, prompts, args.generations, args.tokens, args.seed,
                       args.device, args.dtype):
            print(f"{row['lr']:<9g} {row['step']:<5} {row['mean']:<10.3g} {row['max']:<10.3g} "
                  f"{row['healthy_mean']:<10.3g} {row['healthy_max']:.3g}")


if __name__ == "__main__":
    main()
