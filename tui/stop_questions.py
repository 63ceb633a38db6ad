"""What the runs, monitor and sweep screens do to a run: the question asked before a stop, and the stop,
resume and control requests themselves.

The requests run on a screen's worker thread (they touch files, resume starts an engine) and return the
RunActionDone that the worker posts back; the screen's handler tells the user.
"""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import is_locked, read_effective_status, request_control

from .messages import RunActionDone
from .screens.confirm import ConfirmScreen

CONTROL_WORDS = {
    C.CTL_STOP: "Stop (with a final checkpoint)",
    C.CTL_CHECKPOINT: "Checkpoint",
    C.CTL_EVAL: "Eval (validation loss, a checkpoint and the gate on it)",
}


def stop_question(run_id: str, queued: bool) -> ConfirmScreen:
    """Asked before a run is stopped (or, still queued, cancelled)."""
    if queued:
        return ConfirmScreen(
            f"Cancel queued run {run_id}?", "It has not started: it leaves the queue and ends as stopped."
        )
    return ConfirmScreen(
        f"Stop run {run_id}?",
        "The engine saves a final checkpoint at the next step, then stops. It can be resumed later.",
    )


def sweep_stop_question(name: str, queued: int, running: int) -> ConfirmScreen:
    return ConfirmScreen(
        f"Stop sweep {name}?",
        f"Cancels its {queued} queued run(s); its {running} running run(s) save a final checkpoint, then stop.",
    )


def stop(run_dir: Path) -> RunActionDone:
    """Ask the run's engine to stop (a queued run leaves the queue)."""
    queued = read_effective_status(run_dir).state == C.QUEUED
    request_control(run_dir, C.CTL_STOP)
    return RunActionDone(
        run_dir.name,
        "stop",
        True,
        f"Cancelling queued run {run_dir.name}."
        if queued
        else f"Stop requested for {run_dir.name}: it saves a checkpoint, then stops.",
    )


def control(run_dir: Path, kind: str) -> RunActionDone:
    """A control request (stop, checkpoint, eval) the engine acts on at its next step."""
    request_control(run_dir, kind)
    return RunActionDone(
        run_dir.name, kind, True, f"{CONTROL_WORDS[kind]} requested; the engine acts at its next step."
    )


def stop_sweep(workspace: Path, name: str) -> RunActionDone:
    """Cancel the sweep's queued runs and stop its running ones."""
    from tunedeck.engine.scheduling.sweep import load_record, stop_sweep_runs

    cancelled, stopped = stop_sweep_runs(workspace, load_record(workspace, name))
    return RunActionDone(
        name, "stop", True, f"Sweep {name}: cancelling {len(cancelled)} queued run(s), stopping {len(stopped)} running."
    )


def resume(run_dir: Path) -> RunActionDone:
    """Start a detached engine that continues the run from its latest complete checkpoint."""
    from tunedeck.engine.scheduling.launch import spawn_detached

    state = read_effective_status(run_dir).state
    if state not in C.RESUMABLE_STATES or is_locked(run_dir):
        return RunActionDone(
            run_dir.name,
            "resume",
            False,
            f"Run {run_dir.name} is {state}; only stopped, crashed or failed runs resume.",
        )
    from tunedeck.engine.config.workspace import resolved_workspace_of
    from tunedeck.engine.scheduling.launch import load_gpus
    from tunedeck.engine.scheduling.run_queue import GpuBusy, gpu_conflicts

    try:
        gpu_conflicts(resolved_workspace_of(run_dir), load_gpus(run_dir))
    except GpuBusy as e:
        return RunActionDone(
            run_dir.name, "resume", False, f"Run {run_dir.name} cannot resume now: {str(e).split(':')[0]}."
        )
    pid = spawn_detached(run_dir, resume=True)
    return RunActionDone(
        run_dir.name,
        "resume",
        True,
        f"Resuming {run_dir.name} (engine pid {pid}); it continues from its latest complete checkpoint.",
    )
