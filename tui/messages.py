"""App-wide messages: small dataclasses posted by worker threads to the screens that own them.

A widget's own messages live in its class. High-rate messages define can_replace() so that a newer
one replaces a queued one instead of piling up (toolong's habit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from .run_follower import RunUpdate
from .telemetry_source import TelemetryReading

if TYPE_CHECKING:
    from .run_bell import Outcome


@dataclass(eq=False)
class RunsScanned(Message):
    """The workspace was scanned: one run_row() per run directory."""

    rows: list[dict] = field(default_factory=list)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsScanned)


@dataclass(eq=False)
class RunDataRead(Message):
    """New data from a followed run. Not replaceable: every chunk of events must be applied."""

    run_dir: Path
    update: RunUpdate


@dataclass(eq=False)
class TelemetryRead(Message):
    reading: TelemetryReading

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetryRead)


@dataclass(eq=False)
class RunActionDone(Message):
    """A stop, resume, delete or control request finished (ok or not); `text` says what happened."""

    run_id: str
    action: str
    ok: bool
    text: str


@dataclass(eq=False)
class RunOutcomesRead(Message):
    """How every run of the workspace ended (run id -> outcome), read for the bell (tui/run_bell.py)."""

    outcomes: dict[str, "Outcome"]
