"""An evaluation of one run, as the checkpoints screen follows it: the detached `tunedeck eval` process
(started here, or by anyone else), its progress from the gate events, and how it ended.

The evaluation outlives the app; the screen only watches. A worker thread takes a reading (new events,
the run's lock and state) and the event loop applies it, so this object changes on the event loop only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventReader
from tunedeck.engine.run.store import is_locked, pid_alive, read_effective_status

from .eval_progress import EvalProgress


@dataclass
class EvalReading:
    """What a worker read: the events from byte `start` to `end`, whether an engine holds the run, its state."""

    start: int
    end: int
    events: list[dict] = field(default_factory=list)
    locked: bool = False
    state: str = ""


class EvalProcess:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.progress = EvalProgress()
        self.pid: int | None = None  # an evaluation started here
        self.running = False  # an evaluation is running, started here or elsewhere
        self.offset = 0  # events.jsonl is read from here on

    def skip_history(self) -> None:
        """Read progress from now on: a running evaluation reports again within a second."""
        try:
            self.offset = os.path.getsize(self.run_dir / C.EVENTS_JSONL)
        except OSError:
            pass

    def read(self) -> EvalReading:
        """On a worker thread: the events since the offset, the lock and the state. Changes nothing here."""
        reader = EventReader(self.run_dir / C.EVENTS_JSONL, self.offset)
        start = reader.offset
        events = reader.read_new()
        return EvalReading(
            start, reader.offset, events, is_locked(self.run_dir), read_effective_status(self.run_dir).state
        )

    def apply(self, reading: EvalReading) -> bool:
        """On the event loop: take in a reading; True when an evaluation that was running has ended."""
        if reading.start == self.offset:  # a reading from an older offset was already applied
            self.offset = reading.end
            for ev in reading.events:
                self.progress.add(ev)
        own = self.pid is not None and pid_alive(self.pid)
        running = own or (
            reading.locked
            and reading.state not in C.LIVE_STATES
            and self.progress.started
            and not self.progress.finished
        )
        ended = self.running and not running
        self.running = running
        if ended:
            self.pid = None
        return ended

    def start(self, which: str) -> int:
        """On a worker thread: spawn the detached `tunedeck eval` on `which` ("all" or a step); its pid."""
        from .engine_client import start_eval

        return start_eval(self.run_dir, which)

    def started(self, pid: int) -> None:
        self.pid = pid
        self.running = True

    def restart_progress(self) -> None:
        self.progress = EvalProgress()

    def outcome(self) -> tuple[str, str, bool]:
        """(title, text, failed) for the notice when an evaluation ended."""
        if self.progress.finished:
            return "Evaluation finished", self.progress.describe(), False
        return "Evaluation failed", f"evaluation failed: {last_error_line(self.run_dir / C.EVAL_LOG)}", True


def last_error_line(log: Path) -> str:
    """The last meaningful line of an evaluation's log: the CLI prints a user mistake there as one line."""
    try:
        lines = [
            line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return f"no output in {log}"
    return lines[-1] if lines else f"no output in {log}"
