"""The events worth a line in the monitor's log tail: warnings, errors, checkpoints, gate results,
state changes and control requests. Train, eval and sample events are drawn, not listed. The words are
the engine's (engine/run/event_line.py), the same as `tunedeck logs -f` prints."""

from __future__ import annotations

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_line import EventLine, event_line

LISTED = frozenset(
    {
        C.EV_WARNING,
        C.EV_ERROR,
        C.EV_CHECKPOINT,
        C.EV_CHECKPOINT_PRUNED,
        C.EV_GATE,
        C.EV_STATE,
        C.EV_RUN_STARTED,
        C.EV_RESUMED,
        C.EV_CONTROL,
        C.EV_DONE,
    }
)


def log_tail_line(ev: dict) -> EventLine | None:
    return event_line(ev) if ev.get("kind") in LISTED else None
