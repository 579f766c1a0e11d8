"""Cost of one periodic evaluation (`grpo_plugin.eval_every`) on CPU, beside its reference: the
generation of one training step of configs/smoke.yaml (1 prompt x num_generations sampled
completions), timed in the same process with the same generator.

    python bench/bench_periodic_eval.py [--rounds 3] [--max-new-tokens 32]

What periodic.py does each time is timed: the evaluator on the in-memory model with the
problems built once (so the reading and templating of the slice is paid once, not per call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    import torch

    from axolotl_grpo_plugin.embedded import build
    from axolotl_grpo_plugin.evaluate import core, generation, prompts

    torch.set_num_threads(1)
    model_dir = build(out=ROOT / ".cache" / "embedded").model_dir
    cfg = prompts.load_config(ROOT / "configs" / "smoke.yaml")
    cfg["base_model"] = str(model_dir)
    cfg["datasets"][0]["path"] = str(ROOT / cfg["datasets"][0]["path"])
    test_file = str(ROOT / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")
    tok = core.load_tokenizer(cfg, str(model_dir))
    model = core.load_model(str(model_dir), "cpu")
    model.train()  # as the trainer leaves it
    started = time.perf_counter()
    problems = prompts.build_problems(cfg, tok, dataset=test_file, limit=64)
    build_s = time.perf_counter() - started

    gen = generation.TransformersGenerator(model, tok)
    step_settings = generation.SamplingSettings(n=4, temperature=1.0, max_new_tokens=args.max_new_tokens)

    def train_step_generation():
        gen.generate([problems[0].input_ids], step_settings)

    def periodic(limit, samples):
        def run():
            with torch.random.fork_rng(devices=[]):
                core.evaluate(cfg, model, tokenizer=tok, backend="transformers", problems=problems[:limit],
                              samples=samples, max_new_tokens=args.max_new_tokens, progress=False)
        return run

    cases = {"reference: one training step's generation (1 prompt x 4)": train_step_generation,
             "eval_every limit 16, samples 0 (16 completions)": periodic(16, 0),
             "eval_every limit 16, samples 4 (80 completions)": periodic(16, 4),
             "eval_every limit 64, samples 0 (64 completions)": periodic(64, 0)}
    times = {name: [] for name in cases}
    for _ in range(args.rounds):  # interleaved, so load changes hit every case alike
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ref = statistics.median(next(iter(times.values())))
    print(f"slice built once (64 problems): {build_s:.2f} s")
    print(f"{'case':58s} {'median s':>9s} {'x ref':>7s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:58s} {median:9.2f} {median / ref:7.1f}")
    assert model.training, "the evaluation must hand the model back in train mode"
    return 0


if __name__ == "__main__":
    sys.exit(main())
