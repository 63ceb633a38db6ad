"""engine.log as a reader sees it: the line that says why an engine ended.

The engine prints one line prefixed with C.ENGINE_SAYS for every failure it catches (a user's mistake
as a message, anything else with its traceback after it). An engine that died before it could say
anything (killed, an import that failed) leaves at most a traceback, whose last line is the reason.
"""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.run import contract as C

TAIL_BYTES = 16384


def last_words(run_dir: Path) -> str | None:
    """The engine's own last message in its log, else the log's last line; None for an empty log."""
    try:
        with open(Path(run_dir) / C.ENGINE_LOG, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
            lines = [ln.strip() for ln in f.read().decode("utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    said = [ln for ln in lines if ln.startswith(C.ENGINE_SAYS)]
    if said:
        return said[-1][len(C.ENGINE_SAYS) :].strip()
    return lines[-1] if lines else None


def exit_reason(run_dir: Path, returncode: int | None = None) -> str:
    """One line for an engine that ended without writing its final state."""
    code = f" (exit code {returncode})" if returncode not in (None, 0) else ""
    return f"the engine ended before it finished{code}: {last_words(run_dir) or 'nothing in its log'}"
