"""What each speed path of a seqstats checkout earns: the fast method with one path turned off at a time.

Whole processes on GSM8K train (../shared, tokenizer cache warm), side by side in one run, alternating
order, median CPU (user + system, `os.wait4`) of --repeats; every variant's histogram must equal the
first's. The paths are those of the seqstats before issue 27 (commit 331ea2b); run against a checkout
of it (`--tree`), since this checkout no longer has most of them:

    git worktree add /tmp/seqstats-331ea2b 331ea2b
    python bench/bench_stats_paths.py --tree /tmp/seqstats-331ea2b --repeats 3
    python bench/bench_stats_paths.py --repeats 3 --rows 0     # this checkout's remaining paths

Variants: `all` (the fast method as shipped), `no word cache` (the varying text tokenized by `tokenizers`
instead of the per-word cache), `no split` (every prompt rendered and encoded whole, `--method full`),
`no direct jsonl` (rows read through `datasets`), and on a generated file above the 16 MiB worker
threshold, `one process` against the default worker processes (wall time is what workers buy).
On this checkout: `all`, `no word cache` (`--method full`) and `no direct jsonl`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stats import REPO, SHARED, generate, load, med, run_child, side_by_side  # noqa: E402


VARIANT = r"""
import json, sys
import axolotl_grpo_plugin.seqstats.engine as engine
import axolotl_grpo_plugin.seqstats.stream as stream
from axolotl_grpo_plugin.seqstats import prompt_token_stats
kwargs = json.loads(sys.argv[3])
if kwargs.pop("datasets_reader", False):
    engine.jsonl_path = stream.jsonl_path = lambda spec: None
r = prompt_token_stats(tokenizer=sys.argv[1], dataset=sys.argv[2], transform="gsm8k", progress=False,
                       max_completion_length=512, **kwargs)
print(json.dumps({"hist": r.length_counts.tolist(), "backend": r.counting.get("backend")}))
"""

GSM8K_VARIANTS = {"all": {}, "no word cache": {"backend": "tokenizers"}, "no split": {"method": "full"},
                  "no direct jsonl": {"datasets_reader": True}}
NOW_VARIANTS = {"all": {}, "no word cache": {"method": "full"}, "no direct jsonl": {"datasets_reader": True}}


def ablate(label: str, tok: Path, data: Path, variants: dict, repeats: int, env: dict) -> None:
    import json

    run_child(VARIANT, tok, data, "{}", env=env)  # warm the tokenizer cache
    cases = [(name, VARIANT, (tok, data, json.dumps(kw))) for name, kw in variants.items()]
    runs = side_by_side(cases, repeats, env)
    first = next(iter(runs.values()))[0]["out"]["hist"]
    same = all(r["out"]["hist"] == first for rs in runs.values() for r in rs)
    base = runs["all"]
    print(f"\n{label}: identical histograms: {same}; counted by {base[0]['out']['backend']}; load: {load()}")
    print("| variant | CPU s | wall s | CPU / all | wall / all |\n| --- | ---: | ---: | ---: | ---: |")
    for name, rs in runs.items():
        print(f"| {name} | {med(rs, 'cpu'):.2f} | {med(rs, 'wall'):.2f} | {med(rs, 'cpu') / med(base, 'cpu'):.2f} | "
              f"{med(rs, 'wall') / med(base, 'wall'):.2f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout of the seqstats to measure (default: this one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000, help="generated rows for the worker comparison (0: skip)")
    args = parser.parse_args()
    data = SHARED / "data" / "gsm8k" / "train.jsonl"
    with tempfile.TemporaryDirectory(prefix="bench-paths-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, HF_DATASETS_CACHE=str(work / "hf-cache"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   AXOLOTL_GRPO_CACHE=str(work / "cache"), PYTHONPATH=str(args.tree.resolve()),
                   AXOLOTL_DO_NOT_TRACK="1", PYTHONSAFEPATH="1")  # the tree, not the cwd
        print(f"tree: {args.tree}; load at start: {load()}")
        before = (args.tree / "axolotl_grpo_plugin" / "seqstats" / "boundaries.py").is_file()
        for name in ("qwen2.5-instruct", "llama-3-instruct"):
            ablate(f"GSM8K train, {name}", SHARED / "tokenizers" / name, data,
                   GSM8K_VARIANTS if before else NOW_VARIANTS, args.repeats, env)
        if args.rows and before:
            big = work / f"generated-{args.rows}.jsonl"
            generate(big, args.rows)
            ablate(f"{args.rows:,} generated rows ({big.stat().st_size / 2**20:.0f} MiB), qwen2.5-instruct",
                   SHARED / "tokenizers" / "qwen2.5-instruct", big, {"all": {}, "one process": {"num_proc": 1}},
                   args.repeats, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
