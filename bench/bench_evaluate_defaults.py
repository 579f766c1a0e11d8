"""Held-out scoring speed of the demo base by batch size and torch threads (issue 22, item 8).

    PYTHONPATH=. python bench/bench_evaluate_defaults.py MODEL_DIR [--limit 128] [--rounds 2]

The model is loaded once; every setting is timed in each round, interleaved, so load on a
shared machine hits them alike. Greedy only, the demo config's prompts and rewards.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM

from axolotl_grpo_plugin.demo import DEMO_CONFIG
from axolotl_grpo_plugin.evaluate.core import evaluate
from axolotl_grpo_plugin.sampling import generation
from axolotl_grpo_plugin.system.paths import DATA_DIR


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--limit", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    settings = [(batch, threads) for batch in (32, 64, 256) for threads in (1, 2)]
    times: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    generation.TINY_MODEL_PARAMETERS = 0  # time the thread count we set, not the policy
    for _ in range(args.rounds):
        for batch, threads in settings:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            evaluate(DEMO_CONFIG, model, dataset=str(DATA_DIR / "demo_test.jsonl"), samples=0, limit=args.limit,
                     batch_size=batch, device="cpu", backend="transformers", progress=False)
            times[(batch, threads)].append(time.perf_counter() - start)
    for (batch, threads), values in times.items():
        print(f"batch {batch:>3}, {threads} thread(s): " + ", ".join(f"{v:.1f}s" for v in values))


if __name__ == "__main__":
    main()
