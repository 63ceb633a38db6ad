"""How run states look: a word always (colour is never the only signal, for NO_COLOR) and a style."""

from __future__ import annotations

from tunedeck.engine.run import contract as C

STATE_STYLES = {
    C.QUEUED: "cyan",
    C.RUNNING: "bold green",
    C.STOPPING: "yellow",
    C.STOPPED: "yellow",
    C.COMPLETED: "blue",
    C.FAILED: "bold red",
    C.CRASHED: "bold red",
}
STATE_MARKS = {
    C.QUEUED: "…",
    C.RUNNING: "▶",
    C.STOPPING: "■",
    C.STOPPED: "■",
    C.COMPLETED: "✓",
    C.FAILED: "✗",
    C.CRASHED: "✗",
}


def state_style(state: str | None) -> str:
    return STATE_STYLES.get(state or "", "")


def state_label(state: str | None) -> str:
    state = state or "unknown"
    return f"{STATE_MARKS.get(state, '?')} {state}"
