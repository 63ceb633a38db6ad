"""The monitor's gate line: the featured checkpoint's task, format, safety and general scores against the base.

The featured checkpoint is the one the run ships (chosen, else the gate's best), else the one awaiting
review or closest to passing: the row the gate's sentence describes. Hidden until the gate has one.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual.widget import Widget

from tunedeck.engine.run.gate_result import BASE

from ..gate_view import scores_line
from ..run_history import RunHistory


class GateScores(Widget):
    DEFAULT_CSS = """
    GateScores { height: 1; width: 1fr; padding: 0 1; background: $boost; display: none; }
    """

    def __init__(self, history: RunHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history

    def sync(self) -> None:
        """Show the line when the gate has a checkpoint row (shown or hidden, then redrawn)."""
        self.display = self.history.gate.featured is not None
        self.refresh()

    def render(self) -> RenderResult:
        gate = self.history.gate
        return scores_line(gate.featured, self.content_size.width, gate.row(BASE))
