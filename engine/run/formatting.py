"""Numbers as short words, one spelling each wherever they are shown: the terminal's commands and the
app's screens (which import this; nothing here loads more than the standard library).

Anything that is not a finite number (None, a string an older engine wrote, nan written as "nan" by
the event log) reads "-", never raises."""

from __future__ import annotations

import math
import time


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_number(x: float | None, spec: str = ".4f", suffix: str = "") -> str:
    """`x` in a format spec ("1.2346", "82.0%" with suffix "%"), "-" for anything else."""
    return f"{format(x, spec)}{suffix}" if is_number(x) else "-"


def fmt_loss(x: float | None, digits: int = 4) -> str:
    """A loss: four decimals wherever a loss is shown (a strip short of room asks for fewer)."""
    return fmt_number(x, f".{digits}f")


def fmt_sci(x: float | None) -> str:
    """A learning rate: 2.00e-04."""
    return fmt_number(x, ".2e")


def fmt_percent(x: float | None) -> str:
    """A percentage in whole points: 42%."""
    return fmt_number(x, ".0f", "%")


def fmt_score_percent(x: float | None) -> str:
    """A gate score in percent to a tenth, and "100%" (not "100.0%") for a full score: 82.0%, 100%."""
    if not is_number(x):
        return "-"
    return "100%" if x >= 99.995 else f"{x:.1f}%"  # type: ignore[operator]


def fmt_change(d: float | None, vs_base: bool = False) -> str:
    """A score's change against the base after the score: " (+6.0)", " (+6.0 vs base)", " (=)" under 0.05 points,
    "" when not known."""
    if not is_number(d):
        return ""
    if abs(d) < 0.05:  # type: ignore[arg-type]
        return " (=)"
    return f" ({d:+.1f} vs base)" if vs_base else f" ({d:+.1f})"


def fmt_duration(seconds: float | None) -> str:
    """As short as it says it: 5s, 1m01s, 1h01m, 1d01h."""
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


def fmt_duration_hm(seconds: float | None) -> str:
    """Always two units, for a table column (`tunedeck ls`, `show`): 0m05s, 1h01m, 25h00m."""
    if not is_number(seconds):
        return "-"
    h, rem = divmod(int(seconds), 3600)  # type: ignore[arg-type]
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


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


def fmt_gib(n: float) -> str:
    """A size in a sentence, binary gigabytes to a tenth: 1.5 GiB."""
    return f"{n / 1024**3:.1f} GiB"


def fmt_rate(x: float | None) -> str:
    """Tokens per second and the like: 850, 12.3k, 1.2M."""
    if not is_number(x):
        return "-"
    v = float(x)  # type: ignore[arg-type]
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"
