"""The questions the runs, monitor and sweep screens ask before a stop. The stop, resume and control
requests themselves are the engine client's (tui/engine_client.py)."""

from __future__ import annotations

from .screens.confirm import ConfirmScreen


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
