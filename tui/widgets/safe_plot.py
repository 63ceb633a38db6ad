"""A plotext plot that draws "graph unavailable" instead of crashing the app when drawing fails."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

UNAVAILABLE = "graph unavailable"


class SafePlot(PlotextPlot):
    """Subclasses fill the figure in `draw()`; any error there or in plotext is contained."""

    failed: str | None = None  # the last drawing error, for the log and for tests

    def draw(self) -> str | None:
        """Fill self.plt; return a message to show instead of a plot (e.g. no data yet)."""
        raise NotImplementedError

    def render(self) -> RenderResult:
        if self.size.width < 8 or self.size.height < 3:
            return Text("")
        try:
            self.plt.clear_figure()
            message = self.draw()
            if message is not None:
                self.failed = None
                return Text(message, style="dim", justify="center")
            result = super().render()
            self.failed = None
            return result
        except Exception as e:  # noqa: BLE001 - a plot must never take the app down
            self.failed = f"{type(e).__name__}: {e}"
            self.log.error(f"{type(self).__name__}: drawing failed: {self.failed}")
            return Text(f"{UNAVAILABLE} ({type(e).__name__})", style="dim", justify="center")
