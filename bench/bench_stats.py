"""Speed and memory of the prompt-length statistics (axolotl_grpo_plugin.seqstats).

1. GSM8K train with the real Qwen2.5 tokenizer (../shared when present, else the
   bundled 512-row sample with the embedded tiny tokenizer): our batched count
   against the per-row method (`datasets.map` with one TRL-style
   `apply_chat_template(..., tokenize=True)` per row), same loaded rows and
   tokenizer, best of --repeats alternating which goes first; both must give the
   same lengths.
2. --rows generated GSM8K-like prompts (default 1,000,000) written to a jsonl,
   then `python stats.py --json` on them in a child process: wall time and peak
   memory (max RSS of the child and its workers), for each --num-proc given.

Run from the repository root:
    python bench/bench_stats.py --repeats 3 --rows 1000000 --num-proc 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Hasan"]
ITEMS = ["clips", "apples", "pages", "dollars", "cookies", "marbles", "tickets", "peppers", "plates"]


def inputs() -> tuple[Path, Path, str]:
    if (SHARED / "tokenizers" / "qwen2.5-instruct").is_dir():
        return (SHARED / "tokenizers" / "qwen2.5-instruct", SHARED / "data" / "gsm8k" / "train.jsonl",
                "GSM8K train (7,473 rows), real Qwen2.5-Instruct tokenizer")
    from axolotl_grpo_plugin.embedded import build

    model_dir = Path(build(out=REPO / ".cache" / "embedded").model_dir)
    return (model_dir, REPO / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl",
            "bundled GSM8K-style sample (512 rows), embedded tiny tokenizer (../shared absent)")


def per_row_reference(rows, tokenizer, row_fn) -> list[int]:
    """The usual way: one apply_chat_template(tokenize=True) per row inside datasets.map."""

    def count(row):
        encoded = tokenizer.apply_chat_template(row_fn(row)["prompt"], add_generation_prompt=True,
                                                tokenize=True, return_dict=True)
        return {"n": len(encoded["input_ids"])}

    out = rows.map(count, remove_columns=rows.column_names, keep_in_memory=True,
                   load_from_cache_file=False, new_fingerprint=f"ref-{time.time_ns()}")
    return out["n"]


def ours(rows, tokenizer, transform) -> list[int]:
    from axolotl_grpo_plugin.seqstats.counting import count_dataset

    counted = count_dataset(rows, tokenizer, transform, "bench")
    return [n for n, c in enumerate(counted.counts.tolist()) for _ in range(c)]


def compare(repeats: int) -> dict:
    import datasets
    from transformers import AutoTokenizer

    from axolotl_grpo_plugin.seqstats.sources import DatasetSpec, load_rows, load_transform

    datasets.disable_progress_bars()
    tok_dir, data, label = inputs()
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    rows = load_rows(DatasetSpec(path=str(data)))
    transform = load_transform(DatasetSpec(path=str(data), transform="gsm8k"), {}, 0, tokenizer)
    best = {"ours": float("inf"), "per-row": float("inf")}
    results = {}
    for r in range(repeats):
        order = ["ours", "per-row"] if r % 2 == 0 else ["per-row", "ours"]
        for name in order:
            start = time.perf_counter()
            lengths = ours(rows, tokenizer, transform) if name == "ours" else per_row_reference(
                rows, tokenizer, transform.fn)
            best[name] = min(best[name], time.perf_counter() - start)
            results[name] = sorted(lengths)
    assert results["ours"] == results["per-row"], "the two methods disagree"
    return {"label": label, "rows": len(rows), "best_s": best,
            "ratio": best["per-row"] / best["ours"], "max": results["ours"][-1]}


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(n):
            who, item = rng.choice(NAMES), rng.choice(ITEMS)
            total = rng.randint(2, 99)
            sentences = [f"{who} has {total} {item}."]
            for _ in range(rng.randint(1, 9)):
                k = rng.randint(2, 40)
                total += k
                sentences.append(f"On day {len(sentences)} {rng.choice(NAMES)} gives {who} {k} more {item}.")
            sentences.append(f"How many {item} does {who} have now?")
            handle.write(json.dumps({"question": " ".join(sentences), "answer": f"... #### {total}"}) + "\n")


def scale(rows: int, num_procs: list[int], workdir: Path) -> list[dict]:
    tok_dir, _, _ = inputs()
    data = workdir / f"generated-{rows}.jsonl"
    start = time.perf_counter()
    generate(data, rows)
    print(f"generated {rows:,} rows ({data.stat().st_size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - start:.1f}s", file=sys.stderr)
    found = []
    env = dict(os.environ, HF_DATASETS_CACHE=str(workdir / "hf-cache"), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO))
    for num_proc in num_procs:
        cmd = [sys.executable, "-c", CHILD, str(tok_dir), str(data), str(num_proc)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        found.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return found


# Runs in a fresh process so peak memory is this run's alone (workers included).
CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from axolotl_grpo_plugin.seqstats import prompt_token_stats
t1 = time.perf_counter()
r = prompt_token_stats(tokenizer=sys.argv[1], dataset=sys.argv[2], transform="gsm8k",
                       max_completion_length=512, num_proc=int(sys.argv[3]), progress=False)
t2 = time.perf_counter()
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"num_proc": int(sys.argv[3]), "rows": r.rows, "import_s": t1 - t0, "run_s": t2 - t1,
                  "peak_rss_mib": own / 1024, "peak_worker_rss_mib": kids / 1024,
                  "max": r.prompt_tokens["max"], "recommended": r.recommended_max_model_len}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000],
                        help="generated prompts for the scale runs (0: skip)")
    parser.add_argument("--skip-compare", action="store_true", help="only the scale runs")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, load average {load:.1f} at start")
    if not args.skip_compare:
        c = compare(args.repeats)
        print(f"\n{c['label']}: {c['rows']:,} rows, max prompt {c['max']} tokens, best of {args.repeats}")
        print("| method | seconds | rows/s |\n| --- | ---: | ---: |")
        for name, secs in c["best_s"].items():
            print(f"| {name} | {secs:.2f} | {c['rows'] / secs:,.0f} |")
        print(f"per-row / ours = {c['ratio']:.1f}x (same lengths: yes)", flush=True)
    for rows in [n for n in args.rows if n > 0]:
        with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
            runs = scale(rows, args.num_proc, Path(tmp))
        print(f"\n{rows:,} generated prompts (prompt_token_stats in a fresh process per run)")
        print("| num_proc | wall s (load + count) | rows/s | peak RSS main MiB | peak RSS worker MiB | max prompt |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for run in runs:
            print(f"| {run['num_proc']} | {run['run_s']:.1f} | {run['rows'] / run['run_s']:,.0f} | "
                  f"{run['peak_rss_mib']:.0f} | {run['peak_worker_rss_mib']:.0f} | {run['max']} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
