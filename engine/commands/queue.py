"""`tunedeck queue` and `tunedeck run --queue`: the queue seen from the command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tunedeck.engine.config.workspace import resolve_workspace, resolved_workspace_of
from tunedeck.engine.run import contract as C


def start_queued(run_dir: Path, detach: bool, resume: bool = False) -> int:
    """Queue a run (a new one, or a resume); follow it like `tunedeck run` unless detached (it waits
    detached either way)."""
    from tunedeck.engine.commands.follow import follow_run
    from tunedeck.engine.scheduling.launch import spawn_detached
    from tunedeck.engine.scheduling.run_queue import queue_position

    events = run_dir / C.EVENTS_JSONL
    offset = events.stat().st_size if events.exists() else 0  # follow only what this start writes
    pid = spawn_detached(run_dir, resume=resume, queue=True)
    position = queue_position(resolved_workspace_of(run_dir), run_dir.name)
    where = f"#{position} in the queue" if position else "queued"
    if detach:
        print(
            f"{where}; it starts when its GPUs are free. Its log: {run_dir / C.ENGINE_LOG}; "
            f"follow with: tunedeck logs {run_dir.name} -f; "
            f"see the queue with: tunedeck queue",
            file=sys.stderr,
        )
        return 0
    print(
        f"{where}; waiting for its GPUs (Ctrl-C cancels it; closing this terminal does not)",
        file=sys.stderr,
        flush=True,
    )
    state = follow_run(run_dir, offset=offset, pid=pid)
    return 0 if state in (C.COMPLETED, C.STOPPED) else 1


def cmd_queue(args) -> int:
    from tunedeck.engine.scheduling.run_queue import queue_entries

    ws = resolve_workspace(args.workspace)
    rows = [e.to_dict(ws) for e in queue_entries(ws)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("the queue is empty")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("#", "id", "sweep", "wants", "waiting for", "queued"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        waiting = ", ".join(f"{slot} (run {run})" for slot, run in r["waiting_for"].items()) or "an earlier run"
        table.add_row(
            str(r["position"]),
            r["id"],
            r["sweep"] or "-",
            ", ".join(r["slots"]),
            waiting,
            time.strftime("%m-%d %H:%M", time.localtime(r["queued_at"])),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def register(subparsers) -> None:
    desc = "list the queued runs in the order they will start, and what each waits for"
    p = subparsers.add_parser("queue", help=desc, description=desc)
    p.add_argument("--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)")
    p.add_argument(
        "--json", action="store_true", help="position, id, name, sweep, slots, queued_at, waiting_for, message"
    )
    p.set_defaults(func=cmd_queue)
