"""Reads a run directory for the monitor: new events from a byte offset, and every second or so
the status row, the checkpoint folders and the gate file. Runs in a worker thread; it only reads
files, so it never blocks input and never changes the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary, gate_json_path, read_gate_summary
from tunedeck.engine.run.store import Checkpoint, list_checkpoints, read_written_status
from tunedeck.engine.run.summary import run_row

from .chunked_event_reader import CHUNK_BYTES, ChunkedEventReader

# Events after which the status and checkpoints are re-read at once rather than on the next tick.
_PROMPT_KINDS = frozenset({C.EV_CHECKPOINT, C.EV_CHECKPOINT_PRUNED, C.EV_DONE, C.EV_STATE, C.EV_GATE, C.EV_RUN_STARTED})


@dataclass
class RunUpdate:
    events: list[dict] = field(default_factory=list)
    row: dict | None = None  # run_row(), when re-read
    checkpoints: list[Checkpoint] | None = None  # when re-read
    gate_file: GateSummary | None = None  # evals/gate.json, when it changed
    caught_up: bool = True  # the event log has been read to its end

    def __bool__(self) -> bool:
        return bool(self.events or self.row is not None or self.checkpoints is not None or self.gate_file is not None)


class RunFollower:
    def __init__(self, run_dir: Path, status_every_s: float = 1.0, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.run_dir = Path(run_dir)
        self.status_every_s = status_every_s
        self.reader = ChunkedEventReader(self.run_dir / C.EVENTS_JSONL, chunk_bytes=chunk_bytes)
        self._next_status = 0.0
        self._gate_stamp: tuple | None = None

    def read(self) -> RunUpdate:
        update = RunUpdate(events=self.reader.read_chunk())
        update.caught_up = self.reader.caught_up
        now = time.monotonic()
        prompt = any(ev.get("kind") in _PROMPT_KINDS for ev in update.events)
        if now >= self._next_status or prompt:
            self._next_status = now + self.status_every_s
            row = run_row(self.run_dir)
            status = read_written_status(self.run_dir)
            row["pid"], row["host"] = status.pid, status.host
            update.row = row
            update.checkpoints = list_checkpoints(self.run_dir)
            update.gate_file = self._gate_if_changed()
        return update

    def _gate_if_changed(self) -> GateSummary | None:
        path = gate_json_path(self.run_dir)
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._gate_stamp:
            return None
        self._gate_stamp = stamp
        return read_gate_summary(self.run_dir)
