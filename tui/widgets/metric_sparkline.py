"""One line: a metric's name, its latest value and a sparkline of its whole history."""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from ..formatting import sparkline
from ..metric_series import MetricSeries

LABEL_W, VALUE_W = 10, 10


class MetricSparkline(Widget):
    DEFAULT_CSS = """
    MetricSparkline { height: 1; width: 1fr; }
    """

    def __init__(self, label: str, series: MetricSeries, fmt: Callable[[float | None], str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.series = series
        self.fmt = fmt

    def render(self) -> RenderResult:
        last = self.series.last
        value = self.fmt(last[1] if last else None)
        spark_w = max(0, self.size.width - LABEL_W - VALUE_W - 1)
        _, ys = self.series.points(2 * spark_w) if spark_w else ([], [])
        return Text.assemble(
            (f"{self.label:<{LABEL_W}}", "bold"), f"{value:>{VALUE_W}} ", (sparkline(ys, spark_w), "cyan")
        )
