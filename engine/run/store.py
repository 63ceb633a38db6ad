"""Run directories on disk: where they live, their status, checkpoints and control requests.

Everything here is plain file handling so that the app can use it without heavy imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunedeck.engine.config.workspace import absolute_path, runs_root
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import make_private_dir, write_json_atomic
from tunedeck.engine.run.status import Status

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class RunNotFound(LookupError):
    pass


class RunLocked(RuntimeError):
    pass


def sanitize_name(name: str) -> str:
    """A run name usable as a path component: no separators, no dot-dot, bounded length."""
    cleaned = _SAFE_NAME.sub("-", name).strip(".-")[:48]
    return cleaned or "run"


def new_run_id(name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{sanitize_name(name)}-{os.urandom(2).hex()}"


def create_run_dir(workspace: Path, name: str) -> Path:
    workspace = absolute_path(workspace)
    root = make_private_dir(runs_root(workspace))
    os.chmod(workspace, 0o700)
    for _ in range(10):
        run_dir = root / new_run_id(name)
        try:
            run_dir.mkdir(mode=0o700)
        except FileExistsError:
            continue
        for sub in (C.CONTROL_DIR, C.CHECKPOINTS_DIR, C.EVALS_DIR):
            make_private_dir(run_dir / sub)
        return run_dir
    raise RuntimeError("could not allocate a unique run id")


def find_run(workspace: Path, ref: str) -> Path:
    """A run by id, unique id prefix, name, or path to its directory."""
    p = Path(ref).expanduser()
    if (p / C.RUN_TOML).exists() or (p / C.STATUS_JSON).exists():
        return p.resolve()
    root = runs_root(absolute_path(workspace))
    if not root.is_dir():
        raise RunNotFound(f"no runs in workspace {workspace}")
    if "/" not in ref and (root / ref).is_dir():
        return root / ref
    candidates = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.startswith(ref)]
    if not candidates:
        candidates = [d for d in sorted(root.iterdir()) if d.is_dir() and _run_name(d) == ref]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RunNotFound(f"no run matches {ref!r} in {root}")
    names = ", ".join(d.name for d in candidates[:5])
    raise RunNotFound(f"{ref!r} matches {len(candidates)} runs ({names}); give more of the id")


def _run_name(run_dir: Path) -> str | None:
    return read_written_status(run_dir).name


# ---- status (its one writer: engine/run/status_writer.py) ------------------------------------


def read_written_status(run_dir: Path) -> Status:
    """status.json as its writers left it (its state may be a live one whose engine is gone); an empty
    Status when the file is missing or torn."""
    try:
        with open(Path(run_dir) / C.STATUS_JSON, "rb") as f:
            return Status.from_dict(json.load(f))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return Status()


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive; a reused pid has another start time
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started and abs(proc.create_time() - started) > 2.0:
            return False
    except Exception:
        pass
    return True


def effective_state(status: Status, now: float | None = None) -> str:
    """The state a reader should show: a live state whose engine is gone is 'crashed'."""
    state = status.state or C.QUEUED
    if state not in C.LIVE_STATES:
        return state
    if state == C.QUEUED and status.slurm_script:
        return state  # waiting in Slurm's queue: no local process or heartbeat to judge it by
    now = time.time() if now is None else now
    if status.host == socket.gethostname():
        if status.pid and not pid_alive(status.pid, status.pid_started):
            return C.CRASHED
        if not status.pid and now - (status.updated if status.updated is not None else now) > C.HEARTBEAT_STALE_S:
            return C.CRASHED
        return state
    heartbeat = status.heartbeat or status.updated or 0
    if now - heartbeat > C.HEARTBEAT_STALE_S:
        return C.CRASHED
    return state


def read_effective_status(run_dir: Path) -> Status:
    """status.json with the state a reader should show (effective_state): what the app, `tunedeck ls` and
    every wait on a run read."""
    status = read_written_status(run_dir)
    return replace(status, state=effective_state(status))


# ---- the engine lock ------------------------------------------------------------------------


class EngineLock:
    """An flock on <run>/engine.lock held for the engine's lifetime: one engine per run."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / C.ENGINE_LOCK
        self._fd: int | None = None

    def acquire(self) -> "EngineLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(f"another engine is already running on {self.path.parent}")
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_locked(run_dir: Path) -> bool:
    path = Path(run_dir) / C.ENGINE_LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def engine_owns(run_dir: Path) -> bool:
    """An engine is training or evaluating this run: it owns evals/gate.json, which others then only read."""
    return read_effective_status(run_dir).state in C.LIVE_STATES or is_locked(run_dir)


# ---- control requests -----------------------------------------------------------------------


def request_control(run_dir: Path, kind: str, **payload: Any) -> Path:
    if kind not in C.CONTROL_KINDS:
        raise ValueError(f"unknown control request {kind!r}; expected one of {', '.join(C.CONTROL_KINDS)}")
    control = make_private_dir(Path(run_dir) / C.CONTROL_DIR)
    path = control / f"{kind}-{time.time_ns()}-{os.getpid()}.json"
    write_json_atomic(path, {"kind": kind, "t": time.time(), **payload})
    return path


def take_control_requests(run_dir: Path, kinds: tuple[str, ...] = C.CONTROL_KINDS) -> list[dict[str, Any]]:
    """Read and remove pending requests of `kinds` (default: all), oldest first (engine side)."""
    control = Path(run_dir) / C.CONTROL_DIR
    try:
        names = sorted(
            n
            for n in os.listdir(control)
            if n.endswith(".json") and not n.startswith(".") and n.split("-", 1)[0] in kinds
        )
    except FileNotFoundError:
        return []
    requests = []
    for name in names:
        path = control / name
        kind = name.split("-", 1)[0]
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # taken by someone else
        if kind in C.CONTROL_KINDS:
            requests.append({**(data if isinstance(data, dict) else {}), "kind": kind})
    return requests


# ---- checkpoints ----------------------------------------------------------------------------


@dataclass
class Checkpoint:
    step: int
    path: Path
    complete: bool
    marker: dict[str, Any] = field(default_factory=dict)


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    root = Path(run_dir) / C.CHECKPOINTS_DIR
    out = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not entry.is_dir() or not entry.name.startswith(C.CHECKPOINT_PREFIX):
            continue
        try:
            step = int(entry.name[len(C.CHECKPOINT_PREFIX) :])
        except ValueError:
            continue
        marker_path = Path(entry.path) / C.CHECKPOINT_MARKER
        marker: dict[str, Any] = {}
        complete = False
        try:
            marker = json.loads(marker_path.read_text())
            complete = isinstance(marker, dict) and marker.get("step") == step
        except (OSError, ValueError):
            pass
        out.append(Checkpoint(step, Path(entry.path), complete, marker if complete else {}))
    return sorted(out, key=lambda c: c.step)


def latest_complete_checkpoint(run_dir: Path) -> Checkpoint | None:
    complete = [c for c in list_checkpoints(run_dir) if c.complete]
    return complete[-1] if complete else None


def list_runs(workspace: Path) -> list[Path]:
    root = runs_root(absolute_path(workspace))
    if not root.is_dir():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
