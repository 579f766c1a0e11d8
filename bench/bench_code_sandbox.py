"""Cost of scoring code in the sandbox: a GRPO batch of 64 completions x 3 asserts (issue 65: <= 10 s on 2 cores).

The batch: 8 problems x 8 completions each (a GRPO group), in chat form with a ```python block:
right programs, wrong ones, ones that raise and ones that do not parse, as a young model writes
them (`--loops N` makes N of them loop forever: each such test costs its whole time limit).
Each batch is scored --repeats times by `code_pass_rate` on the default `local` sandbox; the
fastest and the median wall time are printed, with the tests per second.

Run from the repository root: python bench/bench_code_sandbox.py --repeats 3 [--loops 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from axolotl_grpo_rewards import sandbox  # noqa: E402
from axolotl_grpo_rewards.code import code_pass_rate  # noqa: E402


PROBLEMS = [  # (name, right body, wrong body, three (call, expected))
    ("add", "return a + b", "return a - b", [("add(1, 2)", 3), ("add(-1, 1)", 0), ("add(10, 5)", 15)]),
    ("rev", "return s[::-1]", "return s", [("rev('abc')", "'cba'"), ("rev('')", "''"), ("rev('ab')", "'ba'")]),
    ("fact", "r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r", "return n",
     [("fact(0)", 1), ("fact(5)", 120), ("fact(10)", 3628800)]),
    ("evens", "return [x for x in xs if x % 2 == 0]", "return xs",
     [("evens([1, 2, 3, 4])", [2, 4]), ("evens([])", []), ("evens([5])", [])]),
    ("count_vowels", "return sum(c in 'aeiou' for c in s.lower())", "return len(s)",
     [("count_vowels('Hello')", 2), ("count_vowels('xyz')", 0), ("count_vowels('AEIOU')", 5)]),
    ("is_prime", "return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))", "return n % 2 == 1",
     [("is_prime(2)", True), ("is_prime(9)", False), ("is_prime(97)", True)]),
    ("gcd", "while b:\n        a, b = b, a % b\n    return a", "return min(a, b)",
     [("gcd(12, 18)", 6), ("gcd(7, 5)", 1), ("gcd(0, 4)", 4)]),
    ("dedupe", "return sorted(set(xs))", "return xs",
     [("dedupe([3, 1, 3])", [1, 3]), ("dedupe([])", []), ("dedupe([2, 2])", [2])]),
]
ARGS = {"add": "a, b", "rev": "s", "fact": "n", "evens": "xs", "count_vowels": "s", "is_prime": "n",
        "gcd": "a, b", "dedupe": "xs"}


def completion(name: str, body: str, index: int) -> list[dict]:
    # the index makes every program distinct: the sandbox runs a repeated program once (its verdicts
    # are kept), which would hide the cost of the batch's duplicates
    text = (f"<reasoning>\nStraightforward.\n</reasoning>\n<answer>\n```python\n# completion {index}\n"
            f"def {name}({ARGS[name]}):\n    {body}\n```\n</answer>")
    return [{"role": "assistant", "content": text}]


def batch(seed: int, loops: int) -> tuple[list, list]:
    rng = random.Random(seed)
    completions, tests = [], []
    for name, right, wrong, cases in PROBLEMS:
        asserts = [f"assert {call} == {expected}" for call, expected in cases]
        for _ in range(8):
            body = rng.choices([right, wrong, "raise ValueError('no')", "return (", "import math\n    return " + right.split("return ")[-1]],
                               weights=[5, 3, 1, 1, 2])[0] if "\n" not in right else rng.choice([right, right, wrong])
            completions.append(completion(name, body, len(completions)))
            tests.append(asserts)
    for i in rng.sample(range(len(completions)), loops):
        name = PROBLEMS[i // 8][0]
        completions[i] = completion(name, "while True:\n        pass", i)
    return completions, tests


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loops", type=int, default=0, help="completions that loop forever")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sandbox.configure(sandbox.Settings())
    box = sandbox.current_sandbox()
    if (problem := box.problem()):
        raise SystemExit(f"the local sandbox cannot run here: {problem}")
    completions, tests = batch(args.seed, args.loops)
    times, cpus, scores = [], [], None
    for _ in range(args.repeats):
        sandbox.configure(sandbox.Settings())  # a fresh sandbox: no verdicts kept from the last repeat
        started, cpu = time.perf_counter(), _cpu_s()
        scores = code_pass_rate(completions, tests)
        times.append(time.perf_counter() - started)
        cpus.append(_cpu_s() - cpu)
    n_tests = sum(len(t) for t in tests)
    print(f"{len(completions)} completions x 3 asserts ({n_tests} tests), {args.loops} looping, "
          f"workers={box.workers}, cores={len(os.sched_getaffinity(0))}, Python {platform.python_version()}")
    print(f"wall s: fastest {min(times):.2f}, median {statistics.median(times):.2f} (of {args.repeats}); "
          f"CPU s (this process and the sandboxes) median {statistics.median(cpus):.2f}; "
          f"{n_tests / min(times):.0f} tests/s; mean pass rate {statistics.mean(s for s in scores if s is not None):.3f}, "
          f"None: {sum(s is None for s in scores)}")


if __name__ == "__main__":
    main()
