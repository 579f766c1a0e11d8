"""Seeded MATH-style problems with ``\\boxed{}`` solutions, and the bundled sample built from them.

Rows look like hendrycks MATH (``{"problem", "solution"}``, the solution ending
in ``\\boxed{answer}``), so the `math` transform and the `math_boxed` reward can
be exercised offline. Answers are integers or reduced fractions in LaTeX, which
math-verify compares by value (``\\frac{10}{12}`` equals ``\\frac{5}{6}``).
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

from ..system.safe_files import write_atomic
from .sample_data import to_jsonl


DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "math_sample.jsonl"
SAMPLE_ROWS, SAMPLE_SEED = 256, 0


def latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _fraction_sum(rng: random.Random) -> tuple[str, str]:
    a, b = Fraction(rng.randint(1, 9), rng.randint(2, 12)), Fraction(rng.randint(1, 9), rng.randint(2, 12))
    total = a + b
    problem = f"Compute ${latex(a)} + {latex(b)}$. Express your answer as a common fraction."
    return problem, f"Over a common denominator, ${latex(a)} + {latex(b)} = \\boxed{{{latex(total)}}}$."


def _linear(rng: random.Random) -> tuple[str, str]:
    a, x = rng.choice([2, 3, 4, 5, 6, 7, 8]), Fraction(rng.randint(-20, 20), rng.choice([1, 1, 2, 3]))
    b = rng.randint(-30, 30)
    c = a * x + b
    constant = f"+ {b}" if b >= 0 else f"- {-b}"
    problem = f"Solve for $x$: ${a}x {constant} = {latex(c)}$."
    return problem, f"Move the constant and divide by {a}: $x = \\boxed{{{latex(x)}}}$."


def _percent(rng: random.Random) -> tuple[str, str]:
    p, n = rng.choice([5, 10, 12, 15, 20, 25, 40, 50, 75]), rng.randint(2, 60) * 4
    value = Fraction(p * n, 100)
    return f"What is ${p}\\%$ of ${n}$?", f"${p}\\%$ of ${n}$ is ${p}/100 \\cdot {n} = \\boxed{{{latex(value)}}}$."


KINDS = (_fraction_sum, _linear, _percent)


def generate_math(n: int, seed: int) -> list[dict]:
    """`n` distinct problems, cycling through the kinds."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        problem, solution = KINDS[len(rows) % len(KINDS)](rng)
        if problem not in seen:
            seen.add(problem)
            rows.append({"problem": problem, "solution": solution})
    return rows


def write_sample(path: str | Path = DATA_FILE, n: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> Path:
    """Write the sample jsonl (to a fresh temp file, then rename)."""
    path = Path(path)
    return write_atomic(path, to_jsonl(generate_math(n, seed)))


if __name__ == "__main__":
    print(f"Wrote {SAMPLE_ROWS} problems to {write_sample()}")
