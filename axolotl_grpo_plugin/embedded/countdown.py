"""Seeded generator of countdown problems, and the bundled sample built from it.

Each row is ``{"numbers": [...], "target": T, "solution": "..."}``: the target
is the value of a random ``+ - * /`` expression that uses every number once,
so every problem is solvable (``solution`` is one way; tests check it with the
reward's own evaluator). Run ``python -m axolotl_grpo_plugin.embedded.countdown``
to rewrite the bundled ``data/countdown_sample.jsonl``.
"""

from __future__ import annotations

import argparse
import random
import sys
from fractions import Fraction
from pathlib import Path

from ..system.safe_files import write_atomic
from .sample_data import to_jsonl


DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "countdown_sample.jsonl"
SAMPLE_ROWS, SAMPLE_SEED = 512, 0
MIN_NUMBERS, MAX_NUMBERS = 3, 4
MAX_TARGET = 1000
_OPS = ("+", "-", "*", "/")


def _combine(rng: random.Random, terms: list[tuple[str, Fraction]]) -> tuple[str, Fraction] | None:
    """Join terms pairwise with random operators until one expression is left."""
    terms = list(terms)
    while len(terms) > 1:
        i, j = rng.sample(range(len(terms)), 2)
        (left, a), (right, b) = terms[i], terms[j]
        op = rng.choice(_OPS)
        if op == "/" and b == 0:
            return None
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]
        terms = [t for k, t in enumerate(terms) if k not in (i, j)] + [(f"({left} {op} {right})", value)]
    return terms[0]


def generate_countdown(n: int, seed: int) -> list[dict]:
    """`n` distinct solvable problems with a positive integer target up to MAX_TARGET."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        numbers = [rng.randint(1, 99) for _ in range(rng.randint(MIN_NUMBERS, MAX_NUMBERS))]
        combined = _combine(rng, [(str(x), Fraction(x)) for x in numbers])
        if combined is None:
            continue
        expression, value = combined
        if value.denominator != 1 or not 1 <= value <= MAX_TARGET:
            continue
        key = (tuple(sorted(numbers)), int(value))
        if key in seen:
            continue
        seen.add(key)
        solution = expression[1:-1] if expression.startswith("(") else expression
        rows.append({"numbers": numbers, "target": int(value), "solution": solution})
    return rows


def write_sample(path: str | Path = DATA_FILE, n: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> Path:
    """Write the sample jsonl (to a fresh temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, to_jsonl(generate_countdown(n, seed)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m axolotl_grpo_plugin.embedded.countdown",
        description="Write seeded, always-solvable countdown problems as jsonl (numbers, target, solution).",
        epilog=(
            "examples:\n"
            "  python -m axolotl_grpo_plugin.embedded.countdown            # rewrite the bundled sample\n"
            "  python -m axolotl_grpo_plugin.embedded.countdown --n 10000 --seed 3 --out cd.jsonl\n"
            "then in a config:  datasets: [{path: cd.jsonl, type: countdown}]"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=str(DATA_FILE), help="output file (default: the bundled sample)")
    parser.add_argument("--n", type=int, default=SAMPLE_ROWS, help="number of problems (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    path = write_sample(args.out, args.n, args.seed)
    print(f"Wrote {args.n} countdown problems to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
