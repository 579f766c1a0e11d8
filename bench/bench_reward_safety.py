"""Cost of reward containment: each registered reward raw vs as Axolotl loads it (contained).

Throughput: seeded realistic completions for each task (GSM8K-like from
bench_rewards, countdown equations, MATH ``\\boxed{}`` answers, and a mix of the
three for ``by_data_source``), scored in batches of --batch (TRL calls a reward
once per batch) by the raw function (``REWARDS.load_unwrapped``) and by the
contained one (``REWARDS.load``), each batch timed --repeats times by both,
alternating which goes first, keeping each one's fastest time per batch (robust
to load from other processes). contained/raw is the throughput ratio (1.0 = free).

Worst case: the slowest single call on a fixed adversarial set (1 MB
completions, nested and repeated tags, arithmetic and LaTeX built to hang an
evaluator). Raw calls run in a child process that is killed after --cap
seconds, since some never return.

Run from the repository root: python bench/bench_reward_safety.py --n 4000 --repeats 7
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import random
import sys
import time
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_rewards import KINDS, make_completion  # noqa: E402

from axolotl_grpo_plugin.embedded.countdown import generate_countdown  # noqa: E402
from axolotl_grpo_plugin.registry import REWARDS  # noqa: E402


MB = 1 << 20
GSM8K_FIVE = ("correctness", "int", "strict_format", "soft_format", "xmlcount")


def gsm8k_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        gold = rng.randint(1, 5000)
        rows.append({"completions": [{"role": "assistant", "content": make_completion(rng, KINDS[i % len(KINDS)], gold)}],
                     "answer": str(gold), "data_source": "gsm8k"})
    return rows


def countdown_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i, problem in enumerate(generate_countdown(n, seed=rng.randint(0, 10**6))):
        equation = problem["solution"] if i % 2 == 0 else problem["solution"].replace("+", "-", 1)
        reasoning = " ".join(f"Try {a} and {b}." for a, b in zip(problem["numbers"], problem["numbers"][1:]))
        text = f"<reasoning>\n{reasoning * rng.randint(1, 20)}\n</reasoning>\n<answer>\n{equation}\n</answer>\n"
        rows.append({"completions": [{"role": "assistant", "content": text}], "numbers": problem["numbers"],
                     "target": problem["target"], "data_source": "countdown"})
    return rows


def math_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(2, 20)
        k = rng.randint(1, 4) if i % 2 == 0 else 1
        answer = f"\\frac{{{a * k}}}{{{b * k}}}" if i % 3 else f"{a * b + (i % 2)}"
        gold = f"\\frac{{{a}}}{{{b}}}" if i % 3 else str(a * b)
        text = (f"<reasoning>\nWe simplify step by step. {'Compute the terms. ' * rng.randint(5, 60)}\n</reasoning>\n"
                f"<answer>\n\\boxed{{{answer}}}\n</answer>\n")
        rows.append({"completions": [{"role": "assistant", "content": text}], "answer": gold, "data_source": "math"})
    return rows


PENDING_METRICS: dict[str, list[float]] = defaultdict(list)


def log_metric(name: str, value: float) -> None:
    """What TRL passes as `log_metric` (GRPOTrainer._log_metric)."""
    PENDING_METRICS[name].append(value)


def as_batches(rows: list[dict], batch: int) -> list[dict]:
    batches = []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        keys = set().union(*chunk)
        batches.append({
            "prompts": [[{"role": "user", "content": "q"}]] * len(chunk),
            "completions": [r["completions"] for r in chunk],
            **{k: [r.get(k) for r in chunk] for k in keys - {"completions"}},
            "log_metric": log_metric,
        })
    return batches


def workloads(n: int, batch: int, seed: int = 0) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    gsm8k, cd, mth = gsm8k_rows(rng, n), countdown_rows(rng, n), math_rows(rng, max(n // 8, batch))
    mixed = [row for trio in zip(gsm8k, cd, mth) for row in trio]
    return {name: as_batches(rows, batch) for name, rows in {
        "correctness": gsm8k, "int": gsm8k, "strict_format": gsm8k, "soft_format": gsm8k, "xmlcount": gsm8k,
        "countdown": cd, "math_boxed": mth, "by_data_source": mixed}.items()}


def time_calls(fn, batches: list[dict]) -> float:
    start = time.perf_counter()
    for batch in batches:
        fn(**batch)
    return time.perf_counter() - start


def adversarial_batches() -> list[dict]:
    payloads = [
        "<answer>" * (MB // 8),
        "<reasoning>\n" + "</reasoning><answer>" * (MB // 20),
        "(" * MB,
        "x" * MB + "<answer>\n72\n</answer>",
        "<answer>" + "9**" * 1000 + "9</answer>",
        "<answer>" + "(" * 5000 + "1" + ")" * 5000 + "</answer>",
        "<answer>\\boxed{9^{9^{9^{9^{9}}}}}</answer>",
        "<answer>\\boxed{(10^{10^{10}})!}</answer>",
        "\\boxed{" * (MB // 7),
    ]
    return [{"prompts": [[{"role": "user", "content": "q"}]], "completions": [p], "answer": ["72"],
             "numbers": [[1, 2, 3]], "target": [6], "data_source": [source]}
            for p in payloads for source in ("gsm8k", "countdown", "math")]


def _worst_raw(name: str) -> float:
    fn = REWARDS.load_unwrapped(name)
    if name == "by_data_source":  # the router dispatches to contained rewards; give it raw ones
        import axolotl_grpo_plugin.registry.routing as router

        router.reward_for = lambda source: REWARDS.load_unwrapped(router.ROUTES[source])
    return max(time_calls(fn, [batch]) for batch in adversarial_batches())


def worst_raw(name: str, cap: float) -> float | None:
    """Slowest raw call in a killable child process; None when it ran past `cap` seconds."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_worst_raw, (name,))
        try:
            return job.get(timeout=cap)
        except multiprocessing.TimeoutError:
            pool.terminate()
            return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python bench/bench_reward_safety.py --n 4000 --repeats 7")
    parser.add_argument("--n", type=int, default=4000, help="completions per task (MATH uses n/8)")
    parser.add_argument("--batch", type=int, default=16, help="completions per reward call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cap", type=float, default=30.0, help="seconds before a raw worst-case run is killed")
    args = parser.parse_args()

    loads = workloads(args.n, args.batch)
    five: dict[str, float] = {}
    print(f"Python {platform.python_version()}, batch {args.batch}, fastest of {args.repeats} per batch\n")
    print("| reward | raw (completions/s) | contained (completions/s) | contained / raw |")
    print("| --- | ---: | ---: | ---: |")
    for name, batches in loads.items():
        raw, safe = REWARDS.load_unwrapped(name), REWARDS.load(name)
        safe(**batches[0])  # start a worker process, if the reward has one, before timing
        raw(**batches[0])
        count = sum(len(b["completions"]) for b in batches)
        best = {"raw": 0.0, "contained": 0.0}
        for batch in batches:  # per batch, so that load from other processes hits both alike
            fastest = {"raw": float("inf"), "contained": float("inf")}
            for r in range(args.repeats):
                order = [("raw", raw), ("contained", safe)]
                for label, fn in order if r % 2 == 0 else order[::-1]:
                    fastest[label] = min(fastest[label], time_calls(fn, [batch]))
            for label in best:
                best[label] += fastest[label]
        print(f"| {name} | {count / best['raw']:,.0f} | {count / best['contained']:,.0f} "
              f"| {best['raw'] / best['contained']:.2f} |")
        PENDING_METRICS.clear()
        if name in GSM8K_FIVE:
            five = {label: five.get(label, 0.0) + best[label] for label in best}
            if name == GSM8K_FIVE[-1]:
                print(f"| **GSM8K, all five** | {count / five['raw']:,.0f} | {count / five['contained']:,.0f} "
                      f"| {five['raw'] / five['contained']:.2f} |")

    print("\n| reward | worst call raw (s) | worst call contained (s) | contained errors / timeouts |")
    print("| --- | ---: | ---: | ---: |")
    for name in loads:
        safe = REWARDS.load(name)
        errors, timeouts = safe.errors, safe.timeouts
        worst_safe = max(time_calls(safe, [b]) for b in adversarial_batches())
        raw = worst_raw(name, args.cap)
        raw_text = f"> {args.cap:.0f} (killed)" if raw is None else f"{raw:.3f}"
        print(f"| {name} | {raw_text} | {worst_safe:.3f} | {safe.errors - errors} / {safe.timeouts - timeouts} |")


if __name__ == "__main__":
    main()
