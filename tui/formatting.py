"""Numbers as short strings for the screens: durations, sizes, losses, bars and sparklines."""

from __future__ import annotations

import math
import time
from typing import Sequence

SPARK_CHARS = "▁▂▃▄▅▆▇█"
BAR_FULL, BAR_EMPTY = "█", "░"


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_duration(seconds: float | None) -> str:
    if not is_number(seconds) or seconds < 0:  # type: ignore[operator]
        return "-"
    s = int(seconds)  # type: ignore[arg-type]
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def fmt_clock(t: float | None, fmt: str = "%m-%d %H:%M") -> str:
    return time.strftime(fmt, time.localtime(t)) if is_number(t) else "-"


def fmt_bytes(n: float | None) -> str:
    """Binary units, compact: 512M, 61.2G."""
    if not is_number(n):
        return "-"
    value = float(n)  # type: ignore[arg-type]
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit in ("B", "K", "M") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def fmt_loss(x: float | None, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if is_number(x) else "-"


def fmt_sci(x: float | None) -> str:
    return f"{x:.2e}" if is_number(x) else "-"


def fmt_rate(x: float | None) -> str:
    if not is_number(x):
        return "-"
    v = float(x)  # type: ignore[arg-type]
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_percent(x: float | None) -> str:
    return f"{x:.0f}%" if is_number(x) else "-"


def text_bar(fraction: float | None, width: int) -> str:
    if width <= 0:
        return ""
    f = min(1.0, max(0.0, fraction)) if is_number(fraction) else 0.0  # type: ignore[type-var]
    full = int(round(f * width))
    return BAR_FULL * full + BAR_EMPTY * (width - full)


def sparkline(values: Sequence[float | None], width: int, lo: float | None = None, hi: float | None = None) -> str:
    """Block characters for the last `width` buckets of values (bucket mean); gaps as spaces."""
    vals = [v for v in values]
    if width <= 0 or not vals:
        return ""
    if len(vals) > width:  # mean per bucket
        out: list[float | None] = []
        for b in range(width):
            seg = [v for v in vals[b * len(vals) // width:(b + 1) * len(vals) // width] if is_number(v)]
            out.append(sum(seg) / len(seg) if seg else None)  # type: ignore[arg-type]
        vals = out
    finite = [v for v in vals if is_number(v)]
    if not finite:
        return " " * len(vals)
    lo = min(finite) if lo is None else lo
    hi = max(finite) if hi is None else hi
    span = hi - lo
    chars = []
    for v in vals:
        if not is_number(v):
            chars.append(" ")
        elif span <= 0:
            chars.append(SPARK_CHARS[len(SPARK_CHARS) // 2] if hi > 0 else SPARK_CHARS[0])
        else:
            i = int((min(hi, max(lo, v)) - lo) / span * (len(SPARK_CHARS) - 1) + 0.5)  # type: ignore[operator]
            chars.append(SPARK_CHARS[i])
    return "".join(chars)


def truncate(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
