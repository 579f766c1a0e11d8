"""Greedy held-out scores of finished models on more problems than bench_real_model scored.

Why: bench_real_model scores each stage on 128 GSM8K test problems (with pass@8), where a
strict-format rate near 80 % has a standard error of ~3.5 points, too coarse to rank models a
few points apart. This scores models the bench (or a user) already trained, greedy only, on
--problems held-out problems with the same scorer (bench_real_model.score: the GRPO config's
rewards, vLLM's CPU build, bfloat16), and writes one JSON per model plus a table.

    . .venv-vllm/bin/activate
    python bench/rescore_heldout.py --heldout PATH/gsm8k/test.jsonl --problems 512 \\
        --out OUT/rescore sft=OUT/sft sft2=OUT/sft2 grpo-s0=OUT/grpo-s0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="NAME=DIR", help="a name for the table and the model folder")
    parser.add_argument("--heldout", type=Path, required=True, help="GSM8K test jsonl")
    parser.add_argument("--problems", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True, help="folder for NAME.json (kept: a re-run skips it)")
    parser.add_argument("--grpo-config", type=Path, default=ROOT / "configs" / "smollm2-gsm8k-grpo-cpu.yaml")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--score-dtype", default="bfloat16")
    args = parser.parse_args(argv)
    pairs = [m.split("=", 1) for m in args.models]
    if any(len(p) != 2 or not Path(p[1]).is_dir() for p in pairs):
        parser.error("each model is NAME=DIR with DIR a model folder")
    from bench_real_model import score, write_json

    scoring = argparse.Namespace(heldout=args.heldout, problems=args.problems, samples=0, temperature=0.7,
                                 max_new_tokens=args.max_new_tokens, score_dtype=args.score_dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"| model | strict format ({args.problems} problems, greedy) | ± 1 s.e. | correct | mean total reward |")
    print("|---|---|---|---|---|")
    for name, folder in pairs:
        path = args.out / f"{name}.json"
        if not path.is_file():
            write_json(path, score(args.grpo_config.resolve(), Path(folder).resolve(), scoring))
        result = json.loads(path.read_text())
        p, n = result["strict_format"], result["problems"]
        print(f"| {name} | {100 * p:.1f} % | {100 * math.sqrt(p * (1 - p) / n):.1f} | "
              f"{100 * result['correct_greedy']:.1f} % | {result['reward_mean']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
