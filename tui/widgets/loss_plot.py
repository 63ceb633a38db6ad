"""Train and eval loss against step on one plot: eval as markers, the lowest eval loss marked,
optional EMA smoothing and log scale. Each series is downsampled to about twice the plot width."""

from __future__ import annotations

import math

from textual.reactive import reactive

from tunedeck.engine.run.formatting import fmt_loss

from ..plot_ticks import log_ticks, nice_ticks, step_label, value_label
from ..run_history import RunHistory
from ..smoothing import ema
from .safe_plot import SafePlot

TRAIN_COLOR, RAW_COLOR, EVAL_COLOR, BEST_COLOR = "cyan", "gray", "orange", "green"


def _log_points(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    kept = [(x, math.log10(y)) for x, y in zip(xs, ys) if y > 0]
    return [x for x, _ in kept], [y for _, y in kept]


class LossPlot(SafePlot):
    ALLOW_MAXIMIZE = True
    can_focus = True

    smoothing: reactive[bool] = reactive(False)
    log_scale: reactive[bool] = reactive(False)

    def __init__(self, history: RunHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history

    def watch_smoothing(self) -> None:
        self.update_title()
        self.refresh()

    def watch_log_scale(self) -> None:
        self.update_title()
        self.refresh()

    def update_title(self) -> None:
        best = self.history.best_eval()
        legend = "Loss  ▞ train" + (" EMA" if self.smoothing else "") + "  ● eval"
        if best:
            legend += f"  ★ best {fmt_loss(best.loss)} @ {best.step}"
        self.border_title = legend + ("  log" if self.log_scale else "")

    def draw(self) -> str | None:
        h = self.history
        n = max(16, 2 * self.size.width)
        tx, ty = h.train_loss.points(n)
        ex, ey = h.eval_loss.points(n)
        if not tx and not ex:
            return "waiting for the first logged step…"
        plt = self.plt
        transform = _log_points if self.log_scale else (lambda xs, ys: (xs, ys))
        all_y: list[float] = []
        if tx:
            if self.smoothing:
                rx, ry = transform(tx, ty)
                if rx:
                    plt.plot(rx, ry, marker="hd", color=RAW_COLOR)
                sx, sy = transform(tx, ema(ty))
                if sx:
                    plt.plot(sx, sy, marker="hd", color=TRAIN_COLOR)
                all_y += ry + sy
            else:
                sx, sy = transform(tx, ty)
                if sx:
                    plt.plot(sx, sy, marker="hd", color=TRAIN_COLOR)
                all_y += sy
        if ex:
            px, py = transform(ex, ey)
            if px:
                plt.scatter(px, py, marker="●", color=EVAL_COLOR)
                all_y += py
        best = h.best_eval()
        if best is not None and (best.loss > 0 or not self.log_scale):
            by = math.log10(best.loss) if self.log_scale else best.loss
            plt.vertical_line(best.step, color=BEST_COLOR)
            plt.scatter([best.step], [by], marker="★", color=BEST_COLOR)
        if not all_y:
            return "no positive values to draw on a log scale"
        xs_all = (tx or []) + (ex or [])
        x_lo, x_hi = min(xs_all), max(xs_all)
        if x_hi == x_lo:
            x_hi = x_lo + 1
        plt.xlim(x_lo, x_hi)
        xt = [t for t in nice_ticks(x_lo, x_hi, max(2, self.size.width // 12)) if float(t).is_integer()]  # steps
        plt.xticks(xt, [step_label(t) for t in xt])
        y_lo, y_hi = min(all_y), max(all_y)
        if y_hi == y_lo:
            pad = 0.1 if self.log_scale else max(0.05, abs(y_lo) * 0.05)
            y_lo, y_hi = y_lo - pad, y_hi + pad
        plt.ylim(y_lo, y_hi)
        count = max(3, self.size.height // 3)
        yt = log_ticks(y_lo, y_hi, count) if self.log_scale else nice_ticks(y_lo, y_hi, count)
        plt.yticks(yt, [value_label(10**t if self.log_scale else t) for t in yt])
        return None
