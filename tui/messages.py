"""Worker messages, by one convention.

A worker thread hands its result to the event loop as a Message posted to the screen (or widget, or
app) it belongs to. The message is a dataclass nested in that class, handled there with
`@on(Owner.Message)`: `RunsScreen.Scanned`, `ExportScreen.Finished` (Textual's own habit, as in
`Button.Pressed`). Only a message that several screens handle lives here. High-rate messages define
can_replace() so that a newer one replaces a queued one instead of piling up (toolong's habit).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass(eq=False)
class RunActionDone(Message):
    """A stop, resume, delete or control request finished (ok or not); `text` says what happened. Posted by
    the runs, monitor and sweep screens' workers with what tui/engine_client.py returned."""

    run_id: str
    action: str
    ok: bool
    text: str
