"""Two scorings of the same held-out problems compared problem by problem (an exact McNemar test).

    python bench/paired_heldout.py OUT/eval-sft.json OUT/eval-grpo-s1.json [--any-layout]

Why: two models scored on the same 512 problems differ by a few answers; the standard error of
one accuracy (about 1.8 points at 20 %) overstates the noise of their difference, because most
problems are right, or wrong, for both. What decides is the problems only one of them gets
right: with no real difference each of those falls either way with probability 1/2. Printed: the
four counts, the difference, and the two-sided exact binomial p over the discordant problems.
Reads the `greedy_right` lists bench/bench_real_model.py's scoring writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from math import comb
from pathlib import Path


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact p of `only_first` against `only_second` discordant pairs under p = 1/2."""
    n, low = only_first + only_second, min(only_first, only_second)
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(low + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(first: dict, second: dict, key: str = "greedy_right") -> dict:
    if first.get("problems") != second.get("problems"):
        raise SystemExit(f"the two scorings cover {first.get('problems')} and {second.get('problems')} "
                         "problems: score both on the same held-out set")
    if key not in first or key not in second:
        raise SystemExit(f"no `{key}` in a scoring: rescore it with bench/bench_real_model.py (it writes the list)")
    a, b, n = set(first[key]), set(second[key]), first["problems"]
    counts = {"both": len(a & b), "only_first": len(a - b), "only_second": len(b - a), "neither": n - len(a | b)}
    return {**counts, "difference_points": round(100 * (len(b) - len(a)) / n, 2),
            "p_two_sided": round(mcnemar_exact(counts["only_first"], counts["only_second"]), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="the earlier model's scoring (e.g. OUT/eval-sft.json)")
    parser.add_argument("second", type=Path, help="the later model's scoring (e.g. OUT/eval-grpo-s0.json)")
    parser.add_argument("--any-layout", action="store_true", help="compare any-layout accuracy instead of R1")
    args = parser.parse_args()
    key = "greedy_right_any_layout" if args.any_layout else "greedy_right"
    result = compare(json.loads(args.first.read_text()), json.loads(args.second.read_text()), key)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
