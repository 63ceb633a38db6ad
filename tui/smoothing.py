"""Exponential moving average with TensorBoard's debiasing, for the loss plot's smoothing toggle."""

from __future__ import annotations

import math
from typing import Sequence

DEFAULT_WEIGHT = 0.85


def ema(values: Sequence[float], weight: float = DEFAULT_WEIGHT) -> list[float]:
    """Debiased EMA: early points are not pulled toward zero; non-finite values are passed through."""
    out: list[float] = []
    last = 0.0
    n = 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        n += 1
        out.append(last / (1.0 - weight**n))
    return out
