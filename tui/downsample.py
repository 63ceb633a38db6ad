"""Downsampling a series before plotting: bucket min/max, which keeps spikes and endpoints.

Plot cost grows with the number of points (plotext spends microseconds per point), so a series is
reduced to about twice the plot width first. Each bucket contributes its lowest and its highest
point in step order, so a loss spike or a sudden drop survives; the first and last points are kept.
"""

from __future__ import annotations

from typing import Sequence


def minmax_buckets(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list[float], list[float]]:
    """About `n` points of (xs, ys) (xs ascending): per bucket its min and max in x order, plus both ends."""
    count = min(len(xs), len(ys))
    if count <= max(n, 2):
        return list(xs[:count]), list(ys[:count])
    buckets = max(1, (n - 2) // 2)
    out_x: list[float] = [xs[0]]
    out_y: list[float] = [ys[0]]
    inner = count - 2  # the endpoints are emitted on their own
    for b in range(buckets):
        lo = 1 + b * inner // buckets
        hi = 1 + (b + 1) * inner // buckets
        if hi <= lo:
            continue
        seg = ys[lo:hi]
        i_min = lo + min(range(hi - lo), key=seg.__getitem__)
        i_max = lo + max(range(hi - lo), key=seg.__getitem__)
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    out_x.append(xs[count - 1])
    out_y.append(ys[count - 1])
    return out_x, out_y


def merge_envelopes(
    lo_x: Sequence[float], lo_y: Sequence[float], hi_x: Sequence[float], hi_y: Sequence[float], n: int
) -> tuple[list[float], list[float]]:
    """Reduce precomputed per-bucket (min point, max point) pairs to about `n` points."""
    count = len(lo_x)
    groups = max(1, n // 2)
    out_x: list[float] = []
    out_y: list[float] = []
    for g in range(min(groups, count)):
        a = g * count // min(groups, count)
        b = (g + 1) * count // min(groups, count)
        i_min = min(range(a, b), key=lo_y.__getitem__)
        i_max = max(range(a, b), key=hi_y.__getitem__)
        p_min = (lo_x[i_min], lo_y[i_min])
        p_max = (hi_x[i_max], hi_y[i_max])
        first, second = (p_min, p_max) if p_min[0] <= p_max[0] else (p_max, p_min)
        out_x.append(first[0])
        out_y.append(first[1])
        if second != first:
            out_x.append(second[0])
            out_y.append(second[1])
    return out_x, out_y
