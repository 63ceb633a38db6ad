"""Bars, sparklines and cut text for the screens. Numbers as words (durations, sizes, losses, percentages)
are engine/run/formatting.py's, the same as the terminal's."""

from __future__ import annotations

from typing import Sequence

from tunedeck.engine.run.formatting import is_number

SPARK_CHARS = "▁▂▃▄▅▆▇█"
BAR_FULL, BAR_EMPTY = "█", "░"


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
            seg = [v for v in vals[b * len(vals) // width : (b + 1) * len(vals) // width] if is_number(v)]
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
