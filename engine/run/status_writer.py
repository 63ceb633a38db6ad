"""The one writer of status.json (write_status), and the engine's StatusWriter with its heartbeat thread."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import write_json_atomic
from tunedeck.engine.run.status import FIELDS, Status
from tunedeck.engine.run.store import read_written_status


def write_status(run_dir: Path, **fields: Any) -> Status:
    """Set some fields of status.json, keeping the others; every write goes through here. The launcher and the
    engine both write it (the pid it was started with, then the engine's state): each read-update-replace holds
    a lock so neither undoes the other, and the file is replaced atomically. A key Status does not define is
    refused (TypeError, as for an unknown keyword): a misspelt field never reaches the file."""
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise TypeError(f"status.json has no field {', '.join(map(repr, unknown))} (engine/run/status.py)")
    fd = os.open(Path(run_dir) / C.STATUS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        status = replace(read_written_status(run_dir), **{**fields, "updated": time.time()})
        write_json_atomic(Path(run_dir) / C.STATUS_JSON, status.to_dict())
    finally:
        os.close(fd)  # closing releases the lock
    return status


def process_start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


class StatusWriter:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._lock = threading.Lock()
        self._step = 0
        self._written_step = -1
        pid = os.getpid()
        self.update(pid=pid, pid_started=process_start_time(pid), host=socket.gethostname(), heartbeat=time.time())

    def update(self, **fields: Any) -> None:
        with self._lock:
            if "step" in fields:
                self._step = fields["step"]
            elif self._step != self._written_step:
                fields["step"] = self._step  # a step set since the last heartbeat: the final state carries it
            self._written_step = self._step
            fields.setdefault("heartbeat", time.time())
            write_status(self.run_dir, **fields)

    def set_step(self, step: int) -> None:
        self._step = step  # written by the next heartbeat; no fsync on the training path

    def heartbeat(self) -> None:
        with self._lock:
            fields: dict[str, Any] = {"heartbeat": time.time()}
            if self._step != self._written_step:
                fields["step"] = self._written_step = self._step
            write_status(self.run_dir, **fields)


class Heartbeat(threading.Thread):
    """Every HEARTBEAT_INTERVAL_S: refresh status; every sample_every_s: emit a telemetry sample."""

    def __init__(self, status: StatusWriter, on_sample: Callable[[], None], sample_every_s: float = 5.0):
        super().__init__(name="tunedeck-heartbeat", daemon=True)
        self.status = status
        self.on_sample = on_sample
        self.sample_every_s = sample_every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        next_sample = 0.0
        while not self._stop_event.wait(C.HEARTBEAT_INTERVAL_S if next_sample else 0.5):
            try:
                self.status.heartbeat()
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + self.sample_every_s
                    self.on_sample()
            except Exception:
                pass  # telemetry must never take training down

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
