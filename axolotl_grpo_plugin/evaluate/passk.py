"""pass@k and paired bootstrap intervals: the statistics behind the evaluation results.

pass@k uses the unbiased estimator of Chen et al. (2021, "Evaluating Large
Language Models Trained on Code"): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), computed as a product so large n never
overflows. Comparisons resample problems (not samples), because problems are
the unit that varies between benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def report_ks(samples: int) -> list[int]:
    """The k values worth reporting for n samples: powers of two up to n, and n itself."""
    ks = [k for k in (1 << i for i in range(samples.bit_length())) if k <= samples]
    if samples >= 1 and samples not in ks:
        ks.append(samples)
    return ks


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(a - b) over problems and its percentile bootstrap interval.

    `a` and `b` hold one score per problem, for the same problems in the same order; a problem
    without a score (NaN: any-layout accuracy of a row without a numeric answer) is left out.
    """
    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(x.mean()), float(low), float(high)
