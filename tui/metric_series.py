"""One metric against step, kept whole plus a bounded min/max summary so that plotting stays fast.

Appending is O(1) amortised. The summary holds at most 2 * SUMMARY_BUCKETS buckets of equal size;
when full, neighbouring buckets merge and the bucket size doubles. `points(n)` then reduces the
summary (never the raw series) to about n points, so drawing a run with a million logged steps
costs the same as drawing one with a few thousand.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right

from .downsample import merge_envelopes

SUMMARY_BUCKETS = 1024


class MetricSeries:
    def __init__(self) -> None:
        self.xs = array("d")
        self.ys = array("d")
        self._reset_summary()

    def __len__(self) -> int:
        return len(self.xs)

    def _reset_summary(self) -> None:
        self._size = 1  # points per full bucket
        self._lo_x = array("d")
        self._lo_y = array("d")
        self._hi_x = array("d")
        self._hi_y = array("d")
        self._cur_n = 0
        self._cur = (0.0, 0.0, 0.0, 0.0)

    # ---- writing ----------------------------------------------------------------------------

    def append(self, x: float, y: float) -> bool:
        """Add a point; False if y is not a finite number. A step at or before the last one
        replaces what was logged from that step on (a resumed or re-logged run)."""
        if not isinstance(y, (int, float)) or not math.isfinite(y) or not isinstance(x, (int, float)):
            return False
        if self.xs and x <= self.xs[-1]:
            self.truncate_before(x)
        self.xs.append(x)
        self.ys.append(y)
        self._summarise(x, y)
        return True

    def _summarise(self, x: float, y: float) -> None:
        if self._cur_n == 0:
            self._cur = (x, y, x, y)
        else:
            lx, ly, hx, hy = self._cur
            if y < ly:
                lx, ly = x, y
            if y > hy:
                hx, hy = x, y
            self._cur = (lx, ly, hx, hy)
        self._cur_n += 1
        if self._cur_n == self._size:
            lx, ly, hx, hy = self._cur
            self._lo_x.append(lx)
            self._lo_y.append(ly)
            self._hi_x.append(hx)
            self._hi_y.append(hy)
            self._cur_n = 0
            if len(self._lo_x) >= 2 * SUMMARY_BUCKETS:
                self._merge_pairs()

    def _merge_pairs(self) -> None:
        lo_x, lo_y, hi_x, hi_y = array("d"), array("d"), array("d"), array("d")
        for i in range(0, len(self._lo_x) - 1, 2):
            j = i if self._lo_y[i] <= self._lo_y[i + 1] else i + 1
            lo_x.append(self._lo_x[j])
            lo_y.append(self._lo_y[j])
            k = i if self._hi_y[i] >= self._hi_y[i + 1] else i + 1
            hi_x.append(self._hi_x[k])
            hi_y.append(self._hi_y[k])
        self._lo_x, self._lo_y, self._hi_x, self._hi_y = lo_x, lo_y, hi_x, hi_y
        self._size *= 2

    def truncate_before(self, x: float) -> None:
        """Drop every point at step >= x."""
        self.truncate_after_index(bisect_left(self.xs, x))

    def truncate_after(self, x: float) -> None:
        """Drop every point at step > x (a resume from checkpoint x supersedes them)."""
        self.truncate_after_index(bisect_right(self.xs, x))

    def truncate_after_index(self, k: int) -> None:
        if k >= len(self.xs):
            return
        del self.xs[k:]
        del self.ys[k:]
        full = k // self._size
        del self._lo_x[full:]
        del self._lo_y[full:]
        del self._hi_x[full:]
        del self._hi_y[full:]
        self._cur_n = 0
        for i in range(full * self._size, k):  # refill the partial bucket from the raw points
            self._summarise(self.xs[i], self.ys[i])

    # ---- reading ----------------------------------------------------------------------------

    @property
    def last(self) -> tuple[float, float] | None:
        return (self.xs[-1], self.ys[-1]) if self.xs else None

    def points(self, n: int) -> tuple[list[float], list[float]]:
        """About n points (at least the two ends) that keep every bucket's extremes."""
        count = len(self.xs)
        if count <= max(n, 2):
            return list(self.xs), list(self.ys)
        lo_x, lo_y, hi_x, hi_y = self._lo_x, self._lo_y, self._hi_x, self._hi_y
        if self._cur_n:
            cx = self._cur
            lo_x, lo_y, hi_x, hi_y = (
                lo_x + array("d", [cx[0]]),
                lo_y + array("d", [cx[1]]),
                hi_x + array("d", [cx[2]]),
                hi_y + array("d", [cx[3]]),
            )
        xs, ys = merge_envelopes(lo_x, lo_y, hi_x, hi_y, max(2, n - 2))
        if not xs or xs[0] != self.xs[0]:
            xs.insert(0, self.xs[0])
            ys.insert(0, self.ys[0])
        if xs[-1] != self.xs[-1]:
            xs.append(self.xs[-1])
            ys.append(self.ys[-1])
        return xs, ys

    def window_mean(self, x_from: float, x_to: float) -> float | None:
        """Mean of the points with x_from < step <= x_to."""
        a = bisect_right(self.xs, x_from)
        b = bisect_right(self.xs, x_to)
        if b <= a:
            return None
        return math.fsum(self.ys[a:b]) / (b - a)
