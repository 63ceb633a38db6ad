"""The gate's statistics: paired significance tests, intervals and nearest-rank percentiles."""

from __future__ import annotations

import math


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial test at 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_diff_ci(b: int, c: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval (points) for the paired difference in pass rates, Agresti-Min (+0.5 per cell).

    b: base passed, checkpoint failed; c: base failed, checkpoint passed; n: pairs.
    """
    if n <= 0:
        return (-100.0, 100.0)
    b_, c_, n_ = b + 0.5, c + 0.5, n + 2.0
    d = (c_ - b_) / n_
    se = math.sqrt(max((b_ + c_) - (c_ - b_) ** 2 / n_, 0.0)) / n_
    return (max(-1.0, d - z * se) * 100, min(1.0, d + z * se) * 100)


def min_detectable_gain(n: int, alpha: float) -> float:
    """The smallest gain (points) that could be significant on n pairs: all discordant pairs one way."""
    if n <= 0:
        return 100.0
    k = max(1, math.ceil(math.log2(2 / alpha) + 1e-9)) if alpha > 0 else 1
    return min(100.0, 100.0 * k / n)


BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same records always give the same interval


def paired_score_test(base: list[float], now: list[float]) -> tuple[float, tuple[float, float]]:
    """(Wilcoxon signed-rank two-sided p, paired bootstrap 95% interval of the mean difference) for
    per-example scores, in the units given. Zero differences are dropped by the test (Wilcoxon's
    own treatment); with no non-zero difference p is 1."""
    import numpy as np

    diffs = np.asarray(now, dtype=float) - np.asarray(base, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    idx = rng.integers(0, len(diffs), size=(BOOTSTRAP_RESAMPLES, len(diffs)))
    means = diffs[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    if not np.any(np.abs(diffs) > 1e-12):
        return 1.0, (float(lo), float(hi))
    from scipy.stats import wilcoxon

    p = float(wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)
    return (1.0 if math.isnan(p) else p), (float(lo), float(hi))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100): an observed value, never an interpolation."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]
