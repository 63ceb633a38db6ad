"""Every request the app makes of the engine, in one module.

The app never trains, judges or exports in its own process; it asks the engine in one of three ways:
- a control request file that the run's engine acts on at its next step (stop, checkpoint, eval, a
  gate rebuild while the engine owns the run);
- a detached engine process that outlives the app (a launch, a resume, an evaluation);
- an engine command run to its end (`tunedeck gate --rebuild`, `tunedeck export`) or an engine process
  spoken to over pipes (the playground).
Every function here touches files or starts processes: call them from worker threads. The run-level
requests return the RunActionDone that the worker posts back; the screen's handler tells the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunedeck.engine.config.workspace import workspace_of
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import is_locked, read_effective_status, request_control

from .messages import RunActionDone

if TYPE_CHECKING:
    from tunedeck.engine.config.next_run import NextRun
    from tunedeck.engine.config.profile_schema import Profile
    from tunedeck.engine.gate.playground import PlaygroundClient

# the package's folder: an export's working directory, fixed whatever the app's own is
ROOT = Path(__file__).resolve().parents[1]

CONTROL_WORDS = {
    C.CTL_STOP: "Stop (with a final checkpoint)",
    C.CTL_CHECKPOINT: "Checkpoint",
    C.CTL_EVAL: "Eval (validation loss, a checkpoint and the gate on it)",
}


class LaunchRefused(Exception):
    """The pre-flight, the profile or a busy GPU refused a launch; the text says why."""


# ---- runs: launch, stop, control, resume, sweeps ---------------------------------------------------


def launch(
    workspace: Path, profile: Profile, profile_name: str, run_name: str | None, *, queue: bool, parent: str | None
) -> tuple[Path, int]:
    """Pre-flight the form's profile, create the run and start its detached engine: (run dir, engine pid).
    `queue`: the run waits for the GPUs it names instead of being refused while they are busy."""
    from tunedeck.engine.config.profile_loading import ProfileError, to_toml
    from tunedeck.engine.scheduling.launch import spawn_detached
    from tunedeck.engine.scheduling.preflight import PreflightError, create_run, run_preflight
    from tunedeck.engine.scheduling.run_queue import GpuBusy, gpu_conflicts

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{profile_name}.toml"
        data = profile.to_dict()
        data.pop("extends", None)
        path.write_text(to_toml(data), encoding="utf-8")
        try:
            pre = run_preflight(str(path), None, [], workspace=workspace)
            if not queue:
                gpu_conflicts(workspace, pre.profile.resources.gpus)
        except (PreflightError, ProfileError) as e:
            raise LaunchRefused(str(e)) from None
        except GpuBusy as e:
            raise LaunchRefused(f"{e}; launch again and choose Queue (q)") from None
    if parent:
        pre.record_fields["parent"] = parent
    run_dir = create_run(pre, workspace, run_name)
    return run_dir, spawn_detached(run_dir, queue=queue)


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
    from tunedeck.engine.config.workspace import resolved_workspace_of
    from tunedeck.engine.scheduling.launch import load_gpus, spawn_detached
    from tunedeck.engine.scheduling.run_queue import GpuBusy, gpu_conflicts

    state = read_effective_status(run_dir).state
    if state not in C.RESUMABLE_STATES or is_locked(run_dir):
        return RunActionDone(
            run_dir.name,
            "resume",
            False,
            f"Run {run_dir.name} is {state}; only stopped, crashed or failed runs resume.",
        )
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


def next_run(run_dir: Path) -> NextRun:
    """The engine writes the next run's profile from this one (its frozen profile on its data plus its
    fixes). Raises ProfileError or OSError with the reason."""
    from tunedeck.engine.config.next_run import write_next_profile
    from tunedeck.engine.run.run_record import load_run_record

    return write_next_profile(workspace_of(run_dir), load_run_record(run_dir))


# ---- the gate: evaluations and verdicts ------------------------------------------------------------


def start_eval(run_dir: Path, which: str) -> int:
    """Spawn the detached `tunedeck eval` on `which` ("all" or a step); its pid."""
    from tunedeck.engine.scheduling.launch import spawn_eval_detached

    return spawn_eval_detached(run_dir, which)


def rebuild_gate(
    run_dir: Path, choose: Any = None, note: str = "", *, choosing: bool = False, overrides: list[str] | None = None
) -> tuple[bool, str]:
    """Ask the engine to rebuild gate.json and status.json (after a review label, or with `choosing`: to
    record `choose` as the checkpoint to ship, None clearing it). An engine that owns the run gets a
    control request and answers when it next polls; otherwise a short `tunedeck gate RUN --rebuild`
    runs to the end here. `overrides` (gate.KEY=VALUE): re-judge with changed rules instead
    (`tunedeck gate RUN --set ...`; finished runs only). (done now, the engine's error line or "")."""
    from tunedeck.engine.gate.rebuild import KEEP, ask_owning_engine

    run_dir = Path(run_dir)
    if not overrides and ask_owning_engine(run_dir, choose if choosing else KEEP, note):
        return False, ""
    cmd = [
        sys.executable,
        "-m",
        "tunedeck.engine.commands.cli",
        "gate",
        "--workspace",
        str(workspace_of(run_dir)),
        str(run_dir),
    ] + ([a for o in overrides for a in ("--set", o)] if overrides else ["--rebuild"])
    if choosing:
        cmd += ["--choose", "none" if choose is None else str(choose)] + (["--note", note] if note else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return True, (lines[-1].removeprefix("tunedeck: ").removeprefix("error: ") if proc.returncode and lines else "")


def open_playground(run_dir: Path, checkpoint: Any) -> PlaygroundClient:
    """Start the playground's engine process on a checkpoint; it answers over pipes until closed."""
    from tunedeck.engine.gate.playground import PlaygroundClient

    return PlaygroundClient(run_dir, checkpoint)


# ---- exports ------------------------------------------------------------------------------------------


def start_export(
    run_dir: Path, out: Path, checkpoint: int, *, merge: bool, gguf: str | None, stdout: Path, stderr: Path
) -> subprocess.Popen:
    """Start `tunedeck export` in its own session, writing to the files `stdout` and `stderr` (files, not
    pipes: an app that goes away must not hand the export a broken pipe). Stop it with a signal to its
    process group: SIGTERM lets it remove its half-written folder."""
    cmd = [sys.executable, "-m", "tunedeck.tui.cli", "export", str(run_dir), str(out), "--checkpoint", str(checkpoint)]
    if merge:
        cmd.append("--merge")
    if gguf:
        cmd += ["--gguf", gguf]
    with open(stdout, "ab") as out_f, open(stderr, "ab") as err_f:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out_f,
            stderr=err_f,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            cwd=str(ROOT),
            start_new_session=True,
            close_fds=True,
        )
