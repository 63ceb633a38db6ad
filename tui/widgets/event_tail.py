"""The tail of a run's event log: warnings, errors, checkpoints, gate results, state changes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from tunedeck.engine.run.event_line import ERROR, GOOD, WARNING, EventLine

from ..run_history import RunHistory

STYLES = {ERROR: "bold red", WARNING: "yellow", GOOD: "green"}


def line_text(line: EventLine) -> Text:
    return Text.assemble((line.clock(), "dim"), " ", (line.text, STYLES.get(line.severity, "")))


class EventTail(RichLog):
    def __init__(self, history: RunHistory, **kwargs) -> None:
        kwargs.setdefault("max_lines", 500)
        kwargs.setdefault("wrap", True)
        kwargs.setdefault("min_width", 20)  # wrap to the pane's width, even when it is under 78 columns
        super().__init__(**kwargs)
        self.history = history
        self.seen = 0
        self.shown: list[str] = []  # plain text of what was written, newest last (for tests and search)

    def sync(self) -> None:
        h = self.history
        new = h.lines_total - self.seen
        if new <= 0:
            return
        lines = list(h.lines)[-min(new, len(h.lines)) :]
        for line in lines:
            text = line_text(line)
            self.write(text, expand=True)
            self.shown.append(text.plain)
        del self.shown[:-500]
        self.seen = h.lines_total
