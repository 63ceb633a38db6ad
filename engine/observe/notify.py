"""[notify] command: a command of the user's own (a webhook, a phone script) run when a run ends, and when
GRPO's reward guard raises an alert during training (TUNEDECK_ALERT holds its code, e.g. reward_hacking).

It runs through /bin/sh from the run directory with the run's id, final state, gate verdict and
message in its environment, stdin closed and a time limit, so a hanging script cannot hold the
engine. Its failure is a warning event: the run's own outcome never depends on it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary

TIMEOUT_S = 60.0


def notify_env(run_dir: Path, state: str, verdict: str | None, message: str, alert: str = "") -> dict[str, str]:
    return {
        "TUNEDECK_RUN_ID": Path(run_dir).name,
        "TUNEDECK_RUN_DIR": str(run_dir),
        "TUNEDECK_STATE": state,
        "TUNEDECK_VERDICT": verdict or "",
        "TUNEDECK_MESSAGE": message,
        "TUNEDECK_ALERT": alert,
    }


def run_notify_command(
    command: str,
    run_dir: Path,
    state: str,
    verdict: str | None,
    message: str,
    events=None,
    timeout: float = TIMEOUT_S,
    alert: str = "",
) -> str | None:
    """Run the command; return a warning (also emitted as an event) when it fails, else None."""
    if not command.strip():
        return None
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=str(run_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **notify_env(run_dir, state, verdict, message, alert)},
        )
        problem = None
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
            problem = f"exited with status {proc.returncode}" + (f": {last[0][:300]}" if last[0] else "")
    except subprocess.TimeoutExpired:
        problem = f"still running after {timeout:g} s; stopped"
    except OSError as e:
        problem = f"could not start: {e.strerror or e}"
    if problem is None:
        return None
    warning = f"notify.command {problem}"
    if events is not None:
        events.emit(C.EV_WARNING, code="notify_failed", message=warning)
    return warning


def notify_gate_verdict(run_dir: Path, summary: GateSummary | None, events=None) -> None:
    """After `tunedeck eval` (the app's e, or by hand): the run's state with the gate's new verdict."""
    from tunedeck.engine.run.run_record import load_run_record
    from tunedeck.engine.run.store import read_written_status

    try:
        command = load_run_record(run_dir).profile.notify.command
    except Exception:  # noqa: BLE001 - an unreadable record has no command to run
        return
    if command and summary:
        state = read_written_status(run_dir).state or ""
        run_notify_command(command, run_dir, state, summary.verdict, summary.sentence or "", events)
