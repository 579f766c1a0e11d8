"""The probe's arithmetic, on plain numbers: no model, no config, so each formula is testable.

A GRPO group of G completions carries a learning signal only when its rewards are
not all equal (else every advantage is 0). For one prompt whose completions take
reward value v with probability q_v, the chance that all G are equal is
sum_v q_v^G; for a pass/fail reward with pass rate p that is p^G + (1-p)^G.

From n observed samples with c_v of value v, `zero_variance_chance` uses the
unbiased estimator of q_v^G, C(c_v, G) / C(n, G) (drawing G of the n without
replacement, as pass@k does), for G <= n; for G > n it falls back to the plug-in
(c_v/n)^G, which is biased high for small n and marked as extrapolated.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


def zero_variance_binary(p: float, g: int) -> float:
    """Chance that G draws of a pass/fail reward with pass rate p are all equal."""
    return p ** g + (1.0 - p) ** g


def zero_variance_chance(values: Sequence[float], g: int) -> float:
    """Chance that G completions of this prompt all get the same reward, estimated from
    the observed `values` (one per sample; NaN dropped). See the module docstring."""
    finite = [round(float(v), 9) for v in values if v is not None and not math.isnan(float(v))]
    n = len(finite)
    if n == 0 or g < 1:
        return math.nan
    counts = Counter(finite).values()
    if g <= n:
        total = math.comb(n, g)
        return sum(math.comb(c, g) for c in counts) / total
    return sum((c / n) ** g for c in counts)


def mean(values: Iterable[float]) -> float:
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def variance(values: Iterable[float]) -> float:
    """Population variance (what a constant reward makes exactly 0)."""
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not finite:
        return math.nan
    m = sum(finite) / len(finite)
    return sum((v - m) ** 2 for v in finite) / len(finite)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the smallest value at least q% of the values fit under)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def truncation_rate(lengths: Sequence[int], ended: Sequence[bool], limit: int) -> float:
    """Share of completions that would not finish within `limit` tokens: longer than it, or
    exactly as long without having ended (the EOS is one of the counted tokens)."""
    if not lengths:
        return math.nan
    cut = sum(1 for n, e in zip(lengths, ended) if n > limit or (n == limit and not e))
    return cut / len(lengths)


def recommend_length(lengths: Sequence[int], ended: Sequence[bool], budget: int,
                     target: float = 0.02, multiple: int = 32) -> tuple[int, float]:
    """The smallest multiple of `multiple` (at most `budget`) whose truncation rate is at most
    `target`, and that rate; (budget, rate at budget) when even the budget truncates more."""
    for limit in range(multiple, budget + multiple, multiple):
        limit = min(limit, budget)
        rate = truncation_rate(lengths, ended, limit)
        if rate <= target:
            return limit, rate
    return budget, truncation_rate(lengths, ended, budget)


def signal_steps(zero_share: float, prompts_per_step: int, steps: int) -> float:
    """Expected optimizer steps with at least one group that carries signal (groups independent)."""
    if math.isnan(zero_share) or prompts_per_step < 1:
        return math.nan
    return steps * (1.0 - zero_share ** prompts_per_step)


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin [e_i, e_i+1), the last bin closed, so 1.0 lands in the top bin."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        if v is None or math.isnan(v):
            continue
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts
