"""The `/` filter box: hidden until asked for; enter keeps the filter, esc clears it."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterInput(Input):
    BINDINGS = [
        Binding(
            "escape",
            "clear_filter",
            "Clear filter",
            tooltip="Clear the filter and go back to the list",
            id="filter.clear",
        )
    ]

    class Cleared(Message):
        """The user asked to drop the filter."""

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())
