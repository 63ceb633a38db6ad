"""Following a run in the terminal: one line per event until the engine ends."""

from __future__ import annotations

import time
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_line import event_line
from tunedeck.engine.run.store import is_locked, read_effective_status, request_control

# What the terminal prints: training as it goes, and the gate's sentence rather than its rows (`tunedeck gate`
# shows the table); the app lists other kinds (engine/run/event_line.py words them all).
PRINTED = frozenset(
    {C.EV_TRAIN, C.EV_EVAL, C.EV_CHECKPOINT, C.EV_RUN_STARTED, C.EV_WARNING, C.EV_ERROR, C.EV_GATE, C.EV_DONE}
)


def terminal_line(ev: dict, total: int | None = None) -> str | None:
    """The line `tunedeck run` and `logs -f` print for an event, or None for one they do not show."""
    if ev.get("kind") not in PRINTED or (ev.get("kind") == C.EV_GATE and not ev.get("sentence")):
        return None
    line = event_line(ev, total)
    return line.text if line is not None else None


def follow_run(run_dir: Path, proc=None, train_every_s: float = 0.0, offset: int = 0, pid: int | None = None) -> str:
    """Print progress from byte `offset` of the event log until the engine ends; Ctrl-C asks it to
    save and stop. Returns the final state.

    `proc` (an attached engine) or `pid` (a detached one): an engine that dies before it writes its
    final state (the launcher, the queue's waiter, an import) ends the follow at once with the reason,
    instead of after the heartbeat goes stale."""
    from tunedeck.engine.run.engine_log import exit_reason
    from tunedeck.engine.run.event_log import EventReader
    from tunedeck.engine.run.store import pid_alive

    reader = EventReader(run_dir / C.EVENTS_JSONL, offset)
    total = None
    interrupted = False
    last_train_print = 0.0

    def gone() -> bool:
        if proc is not None:
            return proc.poll() is not None
        return pid is not None and not pid_alive(pid)

    while True:
        try:
            for ev in reader.read_new():
                if ev.get("kind") == C.EV_RUN_STARTED:
                    total = ev.get("total_steps")
                if ev.get("kind") == C.EV_TRAIN and ev.get("step") != total:
                    if time.monotonic() - last_train_print < train_every_s:
                        continue  # keep the terminal readable on fast runs
                    last_train_print = time.monotonic()
                line = terminal_line(ev, total)
                if line:
                    print(line, flush=True)
                if ev.get("kind") == C.EV_DONE:
                    return ev.get("state", C.FAILED)
            state = read_effective_status(run_dir).state
            ended = gone()
            if (
                (state in C.FINAL_STATES or ended)
                and not is_locked(run_dir)
                and (proc is None or proc.poll() is not None)
            ):
                for ev in reader.read_new():
                    line = terminal_line(ev, total)
                    if line:
                        print(line, flush=True)
                    if ev.get("kind") == C.EV_DONE:
                        return ev.get("state", C.FAILED)
                if state in C.LIVE_STATES or state == C.CRASHED:  # it died without its last word
                    print(f"run {C.CRASHED}: {exit_reason(run_dir, proc.poll() if proc else None)}", flush=True)
                    return C.CRASHED
                return state
            time.sleep(0.3)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            print("stopping: saving a final checkpoint (Ctrl-C again to stop following)", flush=True)
            request_control(run_dir, C.CTL_STOP)
