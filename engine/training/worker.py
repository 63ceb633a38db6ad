"""The engine process: `python -m tunedeck.engine.training.worker RUN_DIR [--resume]`.

Holds the run's lock, writes status and events, trains, and turns every failure into an error
event and a final state, so that a reader always knows how a run ended.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
import traceback
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventWriter
from tunedeck.engine.run.store import EngineLock, RunLocked
from tunedeck.engine.training.distributed import is_main, process_rank

OOM_REMEDIES = (
    "Remedies: halve optim.batch_size and double optim.grad_accum (same effective batch); "
    "set optim.gradient_checkpointing = 'on'; lower data.max_seq_len; use method.adapter = 'qlora'."
)


def _summary(exc: BaseException, frames: int = 4) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(tb))
    return f"{type(exc).__name__}: {exc} [{where}]"


def classify_error(exc: BaseException) -> tuple[str, str, bool]:
    """(code, message for the user, whether the traceback is worth showing)."""
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.data.dataset import DatasetError
    from tunedeck.engine.gate.eval_sets import EvalSetError
    from tunedeck.engine.gate.rules import GateError
    from tunedeck.engine.models.model_loading import ModelLoadError
    from tunedeck.engine.training.train import DataChanged

    name = type(exc).__name__
    if isinstance(exc, (ProfileError, ModelLoadError, DatasetError, EvalSetError, GateError, DataChanged)):
        return "input", str(exc), False
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower() and "CUDA" in str(exc):
        return "oom", f"out of GPU memory: {str(exc).splitlines()[0]}. {OOM_REMEDIES}", False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {exc.filename}" if exc.filename else ""
        return (
            "disk_full",
            (
                f"the disk is full{where}. Earlier complete checkpoints are intact; free space "
                "(or lower checkpoints.keep) and `tunedeck resume` the run."
            ),
            False,
        )
    return "exception", _summary(exc), True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedeck.engine.training.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    os.umask(0o077)
    if not is_main():
        return _follower(run_dir, args.resume)
    try:
        lock = EngineLock(run_dir).acquire()
    except RunLocked as e:
        print(f"{C.ENGINE_SAYS} {e}", file=sys.stderr)
        return 3

    from tunedeck.engine.observe.telemetry import sample
    from tunedeck.engine.run.status_writer import Heartbeat, StatusWriter

    events = EventWriter(run_dir / C.EVENTS_JSONL)
    status = StatusWriter(run_dir)
    status.update(state=C.RUNNING, started=time.time(), finished=None, message="")
    heartbeat = Heartbeat(status, lambda: events.emit(C.EV_SAMPLE, **sample()))
    heartbeat.start()
    events.emit(
        C.EV_STATE,
        state=C.RUNNING,
        message="resuming" if args.resume else "starting",
        pid=os.getpid(),
        host=os.uname().nodename,
    )
    final, message, rc = C.FAILED, "", 1
    try:
        from tunedeck.engine.training.train import run_training

        final = run_training(run_dir, events, status, resume=args.resume)
        message = {
            C.COMPLETED: "training finished",
            C.STOPPED: "stopped on request with a final checkpoint",
            C.FAILED: "stopped by the NaN guard",
        }.get(final, "")
        rc = 0 if final != C.FAILED else 1
        if final != C.FAILED:
            message += _gate_at_end(run_dir, events, status)
    except BaseException as exc:  # noqa: BLE001 - every failure must end in an event and a state
        code, message, show_tb = classify_error(exc)
        fields = {"traceback": traceback.format_exc(limit=-8)} if show_tb else {}
        events.emit(C.EV_ERROR, code=code, message=message, **fields)
        print(f"{C.ENGINE_SAYS} {message}", file=sys.stderr)
        if show_tb:
            traceback.print_exc()
        final, rc = C.FAILED, 1 if not isinstance(exc, KeyboardInterrupt) else 130
    finally:
        heartbeat.stop()
        status.update(state=final, finished=time.time(), message=message)
        _notify(run_dir, events, final, message)
        events.emit(C.EV_DONE, state=final, message=message)
        events.close()
        lock.release()
    return rc


def _notify(run_dir: Path, events: EventWriter, state: str, message: str) -> None:
    """[notify] command, with the gate's verdict when it ran; it never changes the run's outcome."""
    try:
        from tunedeck.engine.observe.notify import run_notify_command
        from tunedeck.engine.run.run_record import load_run_record
        from tunedeck.engine.run.store import read_written_status

        command = load_run_record(run_dir).profile.notify.command
        if command:
            run_notify_command(command, run_dir, state, read_written_status(run_dir).gate_verdict, message, events)
    except Exception as e:  # noqa: BLE001 - a broken record or script must not hide the run's end
        events.emit(C.EV_WARNING, code="notify_failed", message=f"notify.command: {e}")


def _gate_at_end(run_dir: Path, events: EventWriter, status) -> str:
    """gate.when = "end": judge the base and every complete checkpoint. A gate that cannot run is
    an error event, not a failed run: the checkpoints are intact and `tunedeck eval` can retry."""
    from tunedeck.engine.gate.eval_inputs import gate_sets_named
    from tunedeck.engine.gate.runner import run_gate
    from tunedeck.engine.run.gate_result import status_fields
    from tunedeck.engine.run.run_record import load_run_record

    record = load_run_record(run_dir)
    if record.profile.gate.when != "end":
        return ""
    if not gate_sets_named(record.profile) and not record.eval_rows:
        message = (
            "eval gate skipped: no eval set in [gate] (golden, safety, general) and no held-out rows to score; "
            "name one with gate.golden and run `tunedeck eval`"
        )
        events.emit(C.EV_WARNING, code="gate_skipped", message=message)
        return f"; {message}"
    status.update(message="eval gate")
    try:
        summary = run_gate(run_dir, events=events)
    except Exception as exc:  # noqa: BLE001
        code, message, show_tb = classify_error(exc)
        events.emit(
            C.EV_ERROR,
            code="gate",
            message=f"eval gate: {message}",
            **({"traceback": traceback.format_exc(limit=-8)} if show_tb else {}),
        )
        return "; the eval gate could not run (see errors)"
    status.update(**status_fields(summary))
    from tunedeck.engine.gate.rebuild import serve_rebuild_requests

    summary = serve_rebuild_requests(run_dir, status.update) or summary  # labels and choices made meanwhile
    from tunedeck.engine.training.reward_guard import guard_after_gate

    if guard_after_gate(run_dir, record.profile, summary, events):  # GRPO: the rewards against the held-out scores
        from tunedeck.engine.gate.rebuild import rebuild

        summary = rebuild(run_dir, update_status=status.update) or summary  # the sentence names the alert
    return f"; gate: {summary.sentence or summary.verdict}"


def _follower(run_dir: Path, resume: bool) -> int:
    """Ranks above 0 train alongside rank 0 and write nothing to the run directory."""
    from tunedeck.engine.training.distributed import NullEventWriter, NullStatusWriter
    from tunedeck.engine.training.train import run_training

    try:
        final = run_training(run_dir, NullEventWriter(), NullStatusWriter(), resume=resume)  # type: ignore[arg-type]
    except BaseException as exc:  # noqa: BLE001
        print(f"tunedeck engine (rank {process_rank()}): {classify_error(exc)[1]}", file=sys.stderr)
        traceback.print_exc()
        return 1
    return 0 if final != C.FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
