"""The run queue: runs wait their turn for GPUs with no daemon that must stay up.

Each queued run has its own detached waiter,
`python -m tunedeck.engine.scheduling.run_queue RUN_DIR --wait -- WORKER...`, that holds the run's status (state
"queued", its pid, a heartbeat) until its GPUs are free, then replaces itself (exec) with the engine: same pid, so
readers never see a gap, and the GPU locks (open file descriptors) pass to the engine and last exactly as long as it
does.

<workspace>/queue/
  tickets/<ns>-<run id>.json   one per queued run, named in the order queued; removed when it starts
  locks/gpu-<id>.lock          an flock per GPU ("cpu.lock" on a machine without one); holds the run id

Order: a waiter starts only when no run queued before it wants any of the same slots, so a run
waiting for GPU 0 never lets a later run jump in on GPU 0, while a run for GPU 1 need not wait.
Runs started without --queue go through the same door (mode "now"): they take their GPU locks or
fail with a message naming the run that holds them; on a machine without a GPU they start at once,
taking the CPU slot only when it is free.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.config.workspace import queue_locks_dir, queue_tickets_dir, resolved_workspace_of, runs_root
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import make_private_dir, write_json_atomic
from tunedeck.engine.run.store import effective_state, read_written_status

CPU_SLOT = "cpu"
POLL_S = float(os.environ.get("TUNEDECK_QUEUE_POLL_S", "1.0"))
CANCELLED_MESSAGE = "cancelled while queued; it never started"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _private(path: Path) -> Path:
    make_private_dir(path.parent)  # the queue folder too, not only its leaf
    return make_private_dir(path)


# ---- which slots a run asks for ----------------------------------------------------------------


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU NVML sees."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [g.strip() for g in cvd.split(",") if g.strip() and g.strip() != "-1"]
    from tunedeck.engine.observe.telemetry import gpu_readings

    return [str(r.index) for r in gpu_readings() or []]


def slots_for(gpus: str, visible: list[str]) -> list[str]:
    """Lock names for resources.gpus ('' = every visible GPU); the CPU slot when there is no GPU."""
    ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus.strip() else list(visible)
    return sorted({f"gpu-{_SAFE.sub('-', i)}" for i in ids}) or [CPU_SLOT]


def run_slots(run_dir: Path) -> list[str]:
    from tunedeck.engine.run.run_record import load_run_record

    return slots_for(load_run_record(run_dir).profile.resources.gpus, visible_gpus())


def slot_label(slot: str) -> str:
    return "the CPU slot" if slot == CPU_SLOT else "GPU " + slot[len("gpu-") :]


# ---- the per-slot locks ----------------------------------------------------------------------


def try_lock_slots(ws: Path, slots: list[str], run_id: str) -> list[int] | None:
    """flock every slot or none; the descriptors are inheritable so the engine keeps them across exec."""
    _private(queue_locks_dir(ws))
    fds: list[int] = []
    for slot in sorted(slots):
        fd = os.open(queue_locks_dir(ws) / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            release_slots(fds)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, run_id.encode(), 0)
        os.set_inheritable(fd, True)
        fds.append(fd)
    return fds


def release_slots(fds: list[int]) -> None:
    for fd in fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def slot_holders(ws: Path, slots: list[str]) -> dict[str, str]:
    """{slot: id of the run holding it} for the slots that are busy now."""
    busy: dict[str, str] = {}
    for slot in slots:
        path = queue_locks_dir(ws) / f"{slot}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            busy[slot] = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
    return busy


# ---- tickets: the queue's order ----------------------------------------------------------------


@dataclass
class QueueEntry:
    position: int
    run_id: str
    run_dir: Path
    slots: list[str]
    queued_at: float
    ticket: Path

    def to_dict(self, ws: Path) -> dict:
        status = read_written_status(self.run_dir)
        waiting = slot_holders(ws, self.slots)
        return {
            "position": self.position,
            "id": self.run_id,
            "name": status.name or self.run_id,
            "sweep": status.sweep,
            "slots": self.slots,
            "queued_at": self.queued_at,
            "waiting_for": {slot_label(s): r for s, r in waiting.items()},
            "message": status.message or "",
        }


def enqueue(run_dir: Path, slots: list[str]) -> Path:
    """Take a place at the back of the queue (before the waiter starts, so launch order is queue order)."""
    run_dir = Path(run_dir).resolve()
    ws = resolved_workspace_of(run_dir)
    now = time.time()
    ticket = _private(queue_tickets_dir(ws)) / f"{time.time_ns():020d}-{run_dir.name}.json"
    write_json_atomic(ticket, {"run": run_dir.name, "slots": slots, "queued_at": now})
    return ticket


def queue_entries(ws: Path, prune: bool = False, until: str | None = None) -> list[QueueEntry]:
    """Queued runs in order. A ticket whose run is no longer queued (started, cancelled, its waiter
    killed) is skipped, and removed when `prune`. With `until`, stop after that run's ticket: a
    waiter needs only the runs ahead of it, and each costs a status read and a process check."""
    try:
        names = sorted(n for n in os.listdir(queue_tickets_dir(ws)) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    out: list[QueueEntry] = []
    for name in names:
        path = queue_tickets_dir(ws) / name
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        run_dir = runs_root(ws) / str(data.get("run", ""))
        if not data.get("run") or effective_state(read_written_status(run_dir)) != C.QUEUED:
            if prune:
                path.unlink(missing_ok=True)
            continue
        out.append(
            QueueEntry(
                len(out) + 1,
                data["run"],
                run_dir,
                list(data.get("slots") or [CPU_SLOT]),
                float(data.get("queued_at") or 0),
                path,
            )
        )
        if data["run"] == until:
            break
    return out


def queue_position(ws: Path, run_id: str) -> int | None:
    for e in queue_entries(ws):
        if e.run_id == run_id:
            return e.position
    return None


# ---- the waiter --------------------------------------------------------------------------------


def blockers(entries: list[QueueEntry], run_id: str, slots: list[str]) -> list[QueueEntry]:
    """The runs queued before `run_id` that want any of its slots: it starts only after them."""
    ahead = []
    for e in entries:
        if e.run_id == run_id:
            break
        if set(e.slots) & set(slots):
            ahead.append(e)
    return ahead


class _Cancelled(Exception):
    pass


def _take_stop_request(run_dir: Path) -> bool:
    """A stop request (tunedeck stop, `s` in the app) cancels a queued run; other requests wait for the engine."""
    control = Path(run_dir) / C.CONTROL_DIR
    try:
        stops = [n for n in os.listdir(control) if n.startswith(C.CTL_STOP + "-") and n.endswith(".json")]
    except FileNotFoundError:
        return False
    for n in stops:
        (control / n).unlink(missing_ok=True)
    return bool(stops)


def _cancel(run_dir: Path, status, ticket: Path | None) -> int:
    from tunedeck.engine.run.event_log import EventWriter

    if ticket is not None:
        ticket.unlink(missing_ok=True)
    status.update(state=C.STOPPED, finished=time.time(), message=CANCELLED_MESSAGE)
    events = EventWriter(run_dir / C.EVENTS_JSONL)
    events.emit(C.EV_DONE, state=C.STOPPED, message=CANCELLED_MESSAGE)
    events.close()
    return 0


def _fail(run_dir: Path, message: str, code: str = "gpu_busy") -> int:
    from tunedeck.engine.run.event_log import EventWriter
    from tunedeck.engine.run.status_writer import StatusWriter

    StatusWriter(run_dir).update(state=C.FAILED, finished=time.time(), message=message)
    events = EventWriter(run_dir / C.EVENTS_JSONL)
    events.emit(C.EV_ERROR, code=code, message=message)
    events.emit(C.EV_DONE, state=C.FAILED, message=message)
    events.close()
    print(f"{C.ENGINE_SAYS} {message}", file=sys.stderr)
    return 1


def _fail_at_start(run_dir: Path, exc: BaseException) -> int:
    """Whatever stops a run before its engine starts ends it as failed, with the reason, at once: the
    command that launched it is following its state and would otherwise wait for a stale heartbeat."""
    import traceback

    from tunedeck.engine.training.worker import classify_error

    _, message, show_tb = classify_error(exc)
    if show_tb:
        traceback.print_exc()
    if not (run_dir / C.RUN_TOML).is_file():  # not a run directory: write nothing into it
        print(f"{C.ENGINE_SAYS} could not start: {message}", file=sys.stderr)
        return 1
    return _fail(run_dir, f"could not start: {message}", code="start_failed")


class GpuBusy(RuntimeError):
    """A run started without --queue asks for a GPU another run holds; str() names both and the remedy."""


def gpu_conflicts(ws: Path, gpus: str) -> None:
    """Raise GpuBusy when a GPU this run would use is held by another run (CPU runs may share)."""
    slots = [s for s in slots_for(gpus, visible_gpus()) if s != CPU_SLOT]
    busy = slot_holders(ws, slots)
    if busy:
        raise GpuBusy(busy_message(busy))


def busy_message(busy: dict[str, str]) -> str:
    parts = [f"{slot_label(s)} is in use by run {r}" for s, r in sorted(busy.items())]
    return "; ".join(parts) + ": add --queue to start this run when it is free"


def _start_now(run_dir: Path, worker: list[str]) -> int:
    from tunedeck.engine.run.status_writer import StatusWriter
    from tunedeck.engine.run.store import is_locked

    if is_locked(run_dir):  # its engine runs: leave its status alone
        print(f"{C.ENGINE_SAYS} another engine is already running on {run_dir}", file=sys.stderr)
        return 3
    StatusWriter(run_dir)  # our pid (the engine's after exec): a death from here on reads as crashed at once
    ws, run_id = resolved_workspace_of(run_dir), run_dir.name
    slots = run_slots(run_dir)
    fds = try_lock_slots(ws, slots, run_id)
    if fds is None and slots != [CPU_SLOT]:
        return _fail(run_dir, busy_message(slot_holders(ws, slots)))
    os.execv(worker[0], worker)  # without the CPU slot when another run holds it: a CPU can be shared


def _wait_then_start(run_dir: Path, worker: list[str]) -> int:
    from tunedeck.engine.run.event_log import EventWriter
    from tunedeck.engine.run.status_writer import StatusWriter

    ws, run_id = resolved_workspace_of(run_dir), run_dir.name
    slots = run_slots(run_dir)
    status = StatusWriter(run_dir)  # our pid and heartbeat: a killed waiter reads as crashed, not queued forever

    def on_term(signum, frame):
        raise _Cancelled()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    mine = next((e for e in queue_entries(ws) if e.run_id == run_id), None)
    ticket = mine.ticket if mine else enqueue(run_dir, slots)
    status.update(state=C.QUEUED, finished=None)
    events = EventWriter(run_dir / C.EVENTS_JSONL)
    events.emit(
        C.EV_STATE,
        state=C.QUEUED,
        message=f"queued for {', '.join(map(slot_label, slots))}",
        pid=os.getpid(),
        host=os.uname().nodename,
    )
    events.close()
    last_message, last_beat = None, 0.0
    try:
        while True:
            if _take_stop_request(run_dir):
                return _cancel(run_dir, status, ticket)
            entries = queue_entries(ws, prune=True, until=run_id)
            if not any(e.run_id == run_id for e in entries):
                ticket = enqueue(run_dir, slots)  # our ticket went missing (removed by hand): back of the queue
                entries = queue_entries(ws, until=run_id)
            ahead = blockers(entries, run_id, slots)
            fds = None if ahead else try_lock_slots(ws, slots, run_id)
            if fds is not None:
                if _take_stop_request(run_dir):  # `tunedeck stop SWEEP` cancels queued runs first
                    release_slots(fds)
                    return _cancel(run_dir, status, ticket)
                ticket.unlink(missing_ok=True)
                status.update(message="starting")
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.execv(worker[0], worker)
            position = next(e.position for e in entries if e.run_id == run_id)
            if ahead:
                message = f"queued #{position}: after {len(ahead)} earlier run(s) ({ahead[0].run_id} first)"
            else:
                busy = slot_holders(ws, slots)
                message = f"queued #{position}: waiting for " + (
                    ", ".join(f"{slot_label(s)} (run {r})" for s, r in sorted(busy.items())) or "its slots"
                )
            if message != last_message or time.monotonic() - last_beat > C.HEARTBEAT_INTERVAL_S:
                status.update(message=message, queue_position=position)
                last_message, last_beat = message, time.monotonic()
            time.sleep(POLL_S)
    except (_Cancelled, KeyboardInterrupt):
        return _cancel(run_dir, status, ticket)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print(
            "usage: python -m tunedeck.engine.scheduling.run_queue RUN_DIR [--wait] -- WORKER COMMAND...",
            file=sys.stderr,
        )
        return 2
    cut = argv.index("--")
    ap = argparse.ArgumentParser(prog="python -m tunedeck.engine.scheduling.run_queue")
    ap.add_argument("run_dir")
    ap.add_argument("--wait", action="store_true", help="queue: wait for the run's slots in order")
    args = ap.parse_args(argv[:cut])
    worker = argv[cut + 1 :]
    run_dir = Path(args.run_dir).resolve()
    os.umask(0o077)
    try:
        return _wait_then_start(run_dir, worker) if args.wait else _start_now(run_dir, worker)
    except Exception as exc:  # noqa: BLE001 - a run that cannot start must say why, not hang as queued
        return _fail_at_start(run_dir, exc)


if __name__ == "__main__":
    sys.exit(main())
