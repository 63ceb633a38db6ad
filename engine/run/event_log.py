"""The append-only events.jsonl: one writer (the engine), any number of tailing readers. Each kind's
fields are defined in run/events.py.

A reader keeps a byte offset and reads only what is new. A last line without its newline is
a write in progress (or torn by a kill): it is held back, never parsed. A complete line that is
not a JSON object is counted and skipped, never fatal.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from tunedeck.engine.run.atomic_io import PRIVATE_FILE
from tunedeck.engine.run.events import CHECK_EVENTS, EventMismatch, event_problem


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; write them as strings so every line stays valid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Appends events; safe to share between the training thread and the sampler thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._lock = threading.Lock()
        self._check = bool(os.environ.get(CHECK_EVENTS))  # the tests' check against run/events.py
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        # After a kill the last line may lack its newline; terminate it so our first event
        # starts on a line of its own (the torn line is then skipped by readers as invalid).
        size = self.path.stat().st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

    def emit(self, kind: str, **fields: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **_clean(fields)}
        if self._check and (problem := event_problem(event)):
            raise EventMismatch(f"{self.path}: {problem}")
        line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            self._file.write(line)  # one write() of one line in O_APPEND mode
        return event

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            try:
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._file.close()


class EventReader:
    """Tails an events.jsonl from a byte offset."""

    MAX_LINE = 16 * 1024 * 1024

    def __init__(self, path: Path, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self.skipped = 0  # complete lines that were not valid events

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        return self.consume(data)

    def consume(self, data: bytes) -> list[dict]:
        """Parse the complete lines of `data` (read at self.offset) and move the offset past them."""
        if not data:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > self.MAX_LINE:  # a runaway line without newline: skip it
                self.offset += len(data)
                self.skipped += 1
            return []
        self.offset += end + 1
        events = []
        for raw in data[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                self.skipped += 1
                continue
            if isinstance(event, dict) and isinstance(event.get("kind"), str):
                events.append(event)
            else:
                self.skipped += 1
        return events


def read_events(path: Path) -> list[dict]:
    return EventReader(path).read_new()


def follow(path: Path, interval: float = 0.5, stop=lambda: False) -> Iterator[dict]:
    reader = EventReader(path)
    while True:
        for event in reader.read_new():
            yield event
        if stop():
            for event in reader.read_new():
                yield event
            return
        time.sleep(interval)
