"""Speed and memory of the prompt-length statistics (axolotl_grpo_plugin.seqstats), whole processes.

Every measurement is a fresh child process (imports, tokenizer loading, reading the file and
counting: what a user waits for), CPU = user + system time of the child and its workers
(`os.wait4`), peak memory = the largest resident set among them. Side by side in one run,
alternating which goes first, median of --repeats:

1. GSM8K train (7,473 rows, ../shared) with the real Qwen2.5 and Llama 3 tokenizers and
   their own chat templates: the seed method (the published example: `datasets.map` with one
   `apply_chat_template(..., tokenize=True)` per row, transformers tokenizer) against
   `prompt_token_stats` (fast method, tokenizer cache warm; the cold first run is shown too).
   Both print their whole length histogram, which must be identical.
2. The same with a SentencePiece-style Unigram tokenizer trained here (no boundary is
   provable for it: every prompt is rendered and encoded whole).
0. Start-up: a 10-row file, the previous path (`method="reference"`: transformers tokenizer,
   Axolotl, datasets) against the fast path (`tokenizers` + jinja2 from the tokenizer cache).
3. --rows generated GSM8K-like prompts (default 1,000,000): the fast method in one process
   (wall, CPU, peak memory), and on the first 20,000 rows fast vs full vs the seed method,
   whose histograms (so max and every percentile) must be identical.

Run from the repository root:
    python bench/bench_stats.py --repeats 3 --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Hasan"]
ITEMS = ["clips", "apples", "pages", "dollars", "cookies", "marbles", "tickets", "peppers", "plates"]

SEED = r"""
import json, sys
import numpy as np
from datasets import load_dataset
from transformers import AutoTokenizer
from axolotl_grpo_plugin.transforms.gsm8k import transform_row
tok = AutoTokenizer.from_pretrained(sys.argv[1])
rows = load_dataset("json", data_files=sys.argv[2], split="train")
def count(row):
    ids = tok.apply_chat_template(transform_row(row)["prompt"], add_generation_prompt=True, tokenize=True,
                                  return_dict=True)["input_ids"]
    return {"n": len(ids)}
out = rows.map(count, remove_columns=rows.column_names, load_from_cache_file=False, keep_in_memory=True)
print(json.dumps(np.bincount(out["n"]).tolist()))
"""

OURS = r"""
import json, sys
from axolotl_grpo_plugin.seqstats import prompt_token_stats
r = prompt_token_stats(tokenizer=sys.argv[1], dataset=sys.argv[2], transform="gsm8k", progress=False,
                       method=sys.argv[3], max_completion_length=512)
counts = r.length_counts.tolist()
while counts and counts[-1] == 0:
    counts.pop()
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"transformers", "torch", "datasets"})
print(json.dumps({"hist": counts, "counting": r.counting, "heavy": heavy, "tokens": r.prompt_tokens}))
"""


def run_child(code: str, *args, env: dict) -> dict:
    """Popen + wait4 (communicate would reap the child before its rusage can be read)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=out, stderr=err, text=True,
                                env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(err.read()[-3000:])
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                "out": json.loads(out.read().strip().splitlines()[-1])}


def side_by_side(cases: list[tuple[str, str, tuple]], repeats: int, env: dict) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in cases}
    for r in range(repeats):
        order = cases if r % 2 == 0 else cases[::-1]
        for name, code, args in order:
            runs[name].append(run_child(code, *args, env=env))
    return runs


def med(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


UNIGRAM = r"""
import json, sys
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
questions = [json.loads(line)["question"] for line in open(sys.argv[2], encoding="utf-8")]
backend = Tokenizer(models.Unigram())
backend.normalizer = normalizers.NFKC()
backend.pre_tokenizer = pre_tokenizers.Metaspace()
backend.decoder = decoders.Metaspace()
backend.train_from_iterator(questions, trainers.UnigramTrainer(
    vocab_size=8000, special_tokens=["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"], unk_token="<unk>"))
tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
tok.chat_template = ("{{ bos_token }}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] | trim"
                     " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                     "{% endif %}")
tok.save_pretrained(sys.argv[1])
print("{}")
"""


def unigram_tokenizer(out: Path, data: Path, env: dict) -> Path:
    """A SentencePiece-style Unigram tokenizer (NFKC, Metaspace) trained on the questions, with a
    chat template; built in a child so this process stays small (a child's peak RSS counts the
    memory of the process it was forked from)."""
    run_child(UNIGRAM, out, data, env=env)
    return out


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


def load() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def compare_gsm8k(label: str, tok: Path, data: Path, repeats: int, env: dict) -> None:
    cold = run_child(OURS, tok, data, "fast", env=env)  # builds the tokenizer cache (transformers, Axolotl)
    runs = side_by_side([("seed", SEED, (tok, data)), ("ours", OURS, (tok, data, "fast"))], repeats, env)
    same = all(r["out"] == runs["seed"][0]["out"] for r in runs["seed"]) and all(
        r["out"]["hist"] == runs["seed"][0]["out"] for r in runs["ours"] + [cold])
    hist = runs["ours"][0]["out"]["hist"]
    ours = runs["ours"][0]["out"]
    print(f"\n{label}: {sum(hist):,} rows, max prompt {len(hist) - 1} tokens, identical histograms: {same}")
    print(f"  counted by: {ours['counting']['backend']}, {ours['counting']['split_rows']:,} rows split, "
          f"{ours['counting']['whole_rows']:,} whole; heavy modules imported: {ours['heavy'] or 'none'}")
    print("| method | wall s | CPU s | peak RSS MiB |\n| --- | ---: | ---: | ---: |")
    for name, rs in (("seed (per-row datasets.map)", runs["seed"]), ("ours, cache warm", runs["ours"])):
        print(f"| {name} | {med(rs, 'wall'):.2f} | {med(rs, 'cpu'):.2f} | {med(rs, 'rss_mib'):.0f} |")
    print(f"| ours, first run (cache cold) | {cold['wall']:.2f} | {cold['cpu']:.2f} | {cold['rss_mib']:.0f} |")
    print(f"  seed / ours: {med(runs['seed'], 'cpu') / med(runs['ours'], 'cpu'):.1f}x less CPU, "
          f"{med(runs['seed'], 'wall') / med(runs['ours'], 'wall'):.1f}x less wall (cold: "
          f"{med(runs['seed'], 'cpu') / cold['cpu']:.1f}x less CPU); load: {load()}", flush=True)


def scale(rows: int, tok: Path, workdir: Path, env: dict) -> None:
    data = workdir / f"generated-{rows}.jsonl"
    generate(data, rows)
    sample = workdir / "sample-20000.jsonl"
    with open(data, encoding="utf-8") as src, open(sample, "w", encoding="utf-8") as dst:
        dst.writelines(line for _, line in zip(range(20_000), src))
    run_child(OURS, tok, sample, "fast", env=env)  # warm the tokenizer cache
    before = load()
    big = run_child(OURS, tok, data, "fast", env=env)
    after = load()
    size = data.stat().st_size / 2**20
    c = big["out"]["counting"]
    print(f"\n{rows:,} generated prompts ({size:.0f} MiB jsonl), fast method, one process + workers: "
          f"{big['wall']:.1f} s wall, {big['cpu']:.1f} s CPU, {rows / big['wall']:,.0f} rows/s, peak RSS "
          f"{big['rss_mib']:.0f} MiB; {c['split_rows']:,} rows split, {c['whole_rows']:,} whole; "
          f"prompt tokens {big['out']['tokens']}")
    print(f"  load before: {before}\n  load after:  {after}")
    runs = {m: run_child(OURS, tok, sample, m, env=env) for m in ("fast", "full")}
    runs["seed"] = run_child(SEED, tok, sample, env=env)
    same = runs["fast"]["out"]["hist"] == runs["full"]["out"]["hist"] == runs["seed"]["out"]
    print(f"  first 20,000 rows: fast {runs['fast']['out']['tokens']}; histograms identical to the full path "
          f"and the seed method: {same}")
    print("| 20,000 rows | wall s | CPU s |\n| --- | ---: | ---: |")
    for name in ("seed", "full", "fast"):
        print(f"| {name} | {runs[name]['wall']:.2f} | {runs[name]['cpu']:.2f} |", flush=True)


def startup(tok: Path, data: Path, workdir: Path, repeats: int, env: dict) -> None:
    """Start-up cost: a 10-row dataset, so the time is imports and loading."""
    small = workdir / "ten-rows.jsonl"
    with open(data, encoding="utf-8") as src:
        small.write_text("".join(next(src) for _ in range(10)), encoding="utf-8")
    run_child(OURS, tok, small, "fast", env=env)  # warm the tokenizer cache
    runs = side_by_side([("reference", OURS, (tok, small, "reference")), ("fast", OURS, (tok, small, "fast"))],
                        repeats, env)
    print("\nStart-up (10 rows, Qwen2.5): the previous path (transformers tokenizer, datasets) vs the fast path")
    print("| method | wall s | CPU s | peak RSS MiB | heavy modules imported |\n| --- | ---: | ---: | ---: | --- |")
    for name, rs in runs.items():
        print(f"| {name} | {med(rs, 'wall'):.2f} | {med(rs, 'cpu'):.2f} | {med(rs, 'rss_mib'):.0f} | "
              f"{', '.join(rs[0]['out']['heavy']) or 'none'} |")
    print(f"  load: {load()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated prompts for the scale run (0: skip)")
    parser.add_argument("--skip-compare", action="store_true", help="only the scale run")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up comparison")
    args = parser.parse_args()
    if not (SHARED / "tokenizers" / "qwen2.5-instruct").is_dir():
        raise SystemExit(f"needs the reference tokenizers and GSM8K at {SHARED}")
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; load at start: {load()}")
    data = SHARED / "data" / "gsm8k" / "train.jsonl"
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, HF_DATASETS_CACHE=str(work / "hf-cache"), HF_HUB_OFFLINE="1",
                   HF_DATASETS_OFFLINE="1", AXOLOTL_GRPO_CACHE=str(work / "cache"), PYTHONPATH=str(REPO),
                   AXOLOTL_DO_NOT_TRACK="1")
        startup(SHARED / "tokenizers" / "qwen2.5-instruct", data, work, args.repeats, env)
        if args.startup_only:
            return 0
        if not args.skip_compare:
            run_child(SEED, SHARED / "tokenizers" / "qwen2.5-instruct", data, env=env)  # datasets' Arrow cache
            compare_gsm8k("GSM8K train, Qwen2.5-Instruct (its own template)", SHARED / "tokenizers" / "qwen2.5-instruct",
                          data, args.repeats, env)
            compare_gsm8k("GSM8K train, Llama 3 Instruct (its own template)", SHARED / "tokenizers" / "llama-3-instruct",
                          data, args.repeats, env)
            uni = unigram_tokenizer(work / "unigram", data, env)
            compare_gsm8k("GSM8K train, Unigram (SentencePiece-style) tokenizer trained here", uni, data,
                          args.repeats, env)
        if args.rows:
            scale(args.rows, SHARED / "tokenizers" / "qwen2.5-instruct", work, env)
    print(f"\nload at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
