"""Throughput of the GSM8K rewards (axolotl_grpo_rewards.gsm8k) against the published example's (bench/reference.py).

Generates N GSM8K-like chat completions from a fixed seed (well-formed,
multi-line reasoning, missing tags, wrong answers, trailing junk, answers
spelled "$1,000"), then times each reward function of both implementations on
the same completions in one process, alternating which goes first, and keeps the
best of --repeats runs. Prints a Markdown table: completions/s for ours and the
cookbook semantics (bench/reference.py, the Axolotl cookbook's GRPO example),
ours/cookbook (above 1 means ours is faster), and how often the two give the
same value (the rest are the deviations in the README's table).

Run from the repository root: python bench/bench_rewards.py --n 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from axolotl_grpo_rewards import gsm8k  # noqa: E402
from bench import reference  # noqa: E402


NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis"]
ITEMS = ["clips", "apples", "pages", "dollars", "cookies", "marbles", "tickets"]
KINDS = ["well_formed", "multi_line", "missing_tags", "wrong_answer", "trailing_junk",
         "money_answer", "no_final_newline", "one_line_soft"]


def reasoning_steps(rng: random.Random, target_chars: int) -> list[str]:
    steps: list[str] = []
    while sum(map(len, steps)) < target_chars:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        who, item = rng.choice(NAMES), rng.choice(ITEMS)
        op, value = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
        steps.append(f"{who} has {a} {item} and gets {b} more groups, so {a} {op} {b} = {value} {item}.")
    return steps


def make_completion(rng: random.Random, kind: str, gold: int) -> str:
    steps = reasoning_steps(rng, rng.randint(60, 1900))
    answer = str(gold)
    if kind == "multi_line":
        return "<reasoning>\n" + "\n".join(steps) + f"\n</reasoning>\n<answer>\n{answer}\n</answer>\n"
    reasoning = " ".join(steps)
    if kind == "missing_tags":
        return f"{reasoning}\nThe answer is {answer}."
    if kind == "wrong_answer":
        answer = str(gold + rng.randint(1, 9))
    if kind == "money_answer":
        answer = f"${gold:,}"
    if kind == "one_line_soft":
        return f"<reasoning>{reasoning}</reasoning> <answer>{answer}</answer>"
    ending = "\n"
    if kind == "trailing_junk":
        ending = "\n" + " ".join(reasoning_steps(rng, rng.randint(1, 200)))
    if kind == "no_final_newline":
        ending = ""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>{ending}"


def make_dataset(n: int, seed: int) -> tuple[list[list[dict]], list[str]]:
    rng = random.Random(seed)
    completions, golds = [], []
    for i in range(n):
        gold = rng.randint(1, 5000)
        text = make_completion(rng, KINDS[i % len(KINDS)], gold)
        completions.append([{"role": "assistant", "content": text}])
        golds.append(str(gold))
    return completions, golds


def best_time(func, completions, golds) -> tuple[float, list[float]]:
    gc.collect()
    start = time.perf_counter()
    scores = func(completions=completions, answer=golds)
    return time.perf_counter() - start, scores


def run(n: int, repeats: int, seed: int) -> str:
    completions, golds = make_dataset(n, seed)
    mean_chars = sum(len(c[0]["content"]) for c in completions) / n
    rows = ["| reward | ours (completions/s) | cookbook (completions/s) | ours / cookbook | same value |",
            "| --- | ---: | ---: | ---: | ---: |"]
    total_ours = total_reference = 0.0
    for name, ours_func in gsm8k.REWARD_FUNCS.items():
        impls = {"ours": ours_func, "reference": reference.REWARD_FUNCS[name]}
        best = {"ours": float("inf"), "reference": float("inf")}
        scores = {}
        for repeat in range(repeats):
            order = ["ours", "reference"] if repeat % 2 == 0 else ["reference", "ours"]
            for impl in order:
                elapsed, scores[impl] = best_time(impls[impl], completions, golds)
                best[impl] = min(best[impl], elapsed)
        same = sum(abs(a - b) < 1e-9 for a, b in zip(scores["ours"], scores["reference"])) / n
        total_ours += best["ours"]
        total_reference += best["reference"]
        rows.append(f"| {name} | {n / best['ours']:,.0f} | {n / best['reference']:,.0f} | "
                    f"{best['reference'] / best['ours']:.2f} | {same:.1%} |")
    rows.append(f"| **all five** | {n / total_ours:,.0f} | {n / total_reference:,.0f} | "
                f"{total_reference / total_ours:.2f} | |")
    header = (f"{n:,} completions (mean {mean_chars:,.0f} chars, seed {seed}), best of {repeats}; "
              f"Python {platform.python_version()} on {platform.machine()}")
    return header + "\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Each function sees the same chat-shaped completions; both implementations "
               "run in this process, alternately first, and each keeps its best run.",
    )
    parser.add_argument("--n", type=int, default=100_000, help="completions to generate (default 100000)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per function and implementation; the best counts (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be at least 1")
    print(run(args.n, args.repeats, args.seed))


if __name__ == "__main__":
    main()
