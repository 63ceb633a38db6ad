"""Round axis ticks and short labels (plotext's own labels are floats like 199.5)."""

from __future__ import annotations

import math


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round ticks within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or count < 1:
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    while True:
        first = math.ceil(lo / step - 1e-9) * step
        ticks = []
        t = first
        while t <= hi + step * 1e-9:
            ticks.append(round(t, 12))
            t += step
        if len(ticks) >= min(count, 3) or step < raw / 8:
            return ticks
        step /= 2


def step_label(x: float) -> str:
    """Training steps: 950, 1.2k, 15k, 1.5M."""
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.3g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.0f}k"
    if ax >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def value_label(y: float) -> str:
    return f"{y:.3g}" if abs(y) < 1e4 else f"{y:.2e}"


def log_ticks(lo_exp: float, hi_exp: float, count: int) -> list[float]:
    """Ticks for a log10 axis spanning 10**lo_exp..10**hi_exp, at 1-2-5 values (returned as log10)."""
    if not (math.isfinite(lo_exp) and math.isfinite(hi_exp)):
        return []
    lo, hi = 10**lo_exp, 10**hi_exp
    for mantissas in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), tuple(1 + i / 10 for i in range(0, 90, 1))):
        values = [m * 10**e for e in range(math.floor(lo_exp) - 1, math.ceil(hi_exp) + 1) for m in mantissas]
        inside = sorted({round(v, 12) for v in values if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)})
        if len(inside) >= min(3, count):
            if len(inside) > count:
                stride = math.ceil(len(inside) / count)
                inside = inside[::stride]
            return [math.log10(v) for v in inside]
    return [lo_exp, hi_exp]


def set_step_axes(plt, xs: list[float], ys: list[float], width: int, height: int) -> None:
    """Limits and ticks of a loss plot over training steps (xs) and losses (ys), both non-empty."""
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_hi = x_lo + 1
    plt.xlim(x_lo, x_hi)
    xt = [t for t in nice_ticks(x_lo, x_hi, max(2, width // 12)) if float(t).is_integer()]
    plt.xticks(xt, [step_label(t) for t in xt])
    y_lo, y_hi = min(ys), max(ys)
    if y_hi == y_lo:
        pad = max(0.05, abs(y_lo) * 0.05)
        y_lo, y_hi = y_lo - pad, y_hi + pad
    plt.ylim(y_lo, y_hi)
    yt = nice_ticks(y_lo, y_hi, max(3, height // 3))
    plt.yticks(yt, [value_label(t) for t in yt])
