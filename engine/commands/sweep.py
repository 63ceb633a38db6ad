"""`tunedeck sweep`, `tunedeck sweep show` and `tunedeck stop SWEEP`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tunedeck.engine.config.workspace import resolve_workspace, runs_root, sweep_record_path, sweep_script_path
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_change, fmt_score_percent
from tunedeck.engine.run.status_writer import write_status
from tunedeck.engine.run.store import read_effective_status
from tunedeck.engine.scheduling.sweep import (
    SweepError,
    SweepRecord,
    SweepRun,
    check_name,
    check_sets,
    differing_keys,
    load_record,
    points_from_args,
    public_rows,
    rank_runs,
    short_keys,
    stop_sweep_runs,
    verdict_sentence,
    write_record,
)


def cmd_sweep(args) -> int:
    if args.profile == "show":
        return cmd_sweep_show(args)
    if args.target:
        raise SweepError(
            f"unexpected argument {args.target!r}; `tunedeck sweep PROFILE --data PATH --grid KEY=V1,V2 --name NAME`"
        )
    return create_sweep(args)


def create_sweep(args) -> int:
    from tunedeck.engine.commands.errors import user_errors
    from tunedeck.engine.scheduling.preflight import create_run, run_preflight

    ws = resolve_workspace(args.workspace)
    if not args.name:
        raise SweepError("--name NAME is required: it names the sweep record and its runs")
    name = check_name(args.name)
    if sweep_record_path(ws, name).exists():
        raise SweepError(f"a sweep named {name!r} exists ({sweep_record_path(ws, name)}); pick another --name")
    points = points_from_args(args.grid or [], args.range or [], args.samples, args.seed)
    sets = list(args.set or [])
    check_sets(points, sets)

    # every point is checked before any run exists: a bad value fails the sweep, not run 7 of 12
    prechecks, said = [], set()
    touches_model = any(k.startswith(("model.", "data.")) for k in points[0])
    for i, point in enumerate(points):
        overrides = sets + [f"{k}={v}" for k, v in point.items()]
        try:
            pre = run_preflight(args.profile, args.data, overrides, workspace=ws, check_model=i == 0 or touches_model)
        except user_errors() as e:
            if len(points) == 1:
                raise
            raise SweepError(f"sweep point {i + 1} ({', '.join(f'{k}={v}' for k, v in point.items())}): {e}") from None
        if args.slurm and pre.profile.resources.nodes > 1:
            raise SweepError("resources.nodes > 1: each sweep point runs on one node; set resources.nodes = 1")
        for msg in [f"hint: {h.key}: {h.message}" for h in pre.hints] + [f"warning: {w}" for w in pre.warnings]:
            if msg not in said:
                said.add(msg)
                print(msg, file=sys.stderr)
        prechecks.append(pre)
    from tunedeck.engine.config.profile_schema import data_paths

    data = ", ".join(data_paths(prechecks[0].profile.data))  # as the pre-flight made them: absolute
    record = SweepRecord(
        name=name,
        profile=str(args.profile),
        data=data,
        sets=sets,
        grid={},
        ranges=list(args.range or []),
        samples=args.samples or 0,
        seed=args.seed,
        slurm=bool(args.slurm),
    )
    from tunedeck.engine.scheduling.sweep import parse_grid

    record.grid = parse_grid(args.grid or [])
    width = len(str(len(points)))
    run_dirs = []
    for i, (pre, point) in enumerate(zip(prechecks, points), 1):
        run_dir = create_run(pre, ws, f"{name}-{i:0{width}d}")
        write_status(run_dir, sweep=name, sweep_params=point)
        record.runs.append(SweepRun(run_dir.name, point))
        run_dirs.append(run_dir)
    write_record(ws, record)
    print(name, flush=True)
    for r in record.runs:
        print(f"  {r.id}  " + ", ".join(f"{k}={v}" for k, v in r.params.items()), flush=True)

    if args.slurm:
        return _submit_slurm(ws, record, run_dirs, prechecks[0].profile.resources.processes or 1, args)
    from tunedeck.engine.scheduling.launch import spawn_detached

    for run_dir in run_dirs:  # queued in the sweep's order; each waits, detached, for its GPUs
        spawn_detached(run_dir, queue=True)
    print(f"{len(run_dirs)} runs queued; see them ranked with: tunedeck sweep show {name}", file=sys.stderr, flush=True)
    if args.detach:
        return 0
    return follow_sweep(ws, record)


def _submit_slurm(ws: Path, record: SweepRecord, run_dirs: list[Path], gpus_per_task: int, args) -> int:
    from tunedeck.engine.scheduling.sweep_slurm import sweep_array_script, write_and_submit_array

    script = sweep_script_path(ws, record.name)
    text = sweep_array_script(
        record.name,
        run_dirs,
        gpus_per_task=gpus_per_task,
        partition=args.partition or "",
        time_limit=args.time or "",
        max_parallel=args.max_parallel or 0,
    )
    job = write_and_submit_array(script, text)
    for i, run_dir in enumerate(run_dirs):  # a queued Slurm task has no local pid: the reader must not call it crashed
        write_status(run_dir, slurm_script=str(script), slurm_job=f"{job}_{i}" if job else None)
    print(
        f"submitted Slurm job array {job}; script {script}"
        if job
        else f"sbatch not found: submit {script} on a Slurm login node",
        file=sys.stderr,
    )
    return 0


def follow_sweep(ws: Path, record: SweepRecord) -> int:
    """Print each run's state changes until every run has ended, then the ranked table."""
    seen: dict[str, str] = {}
    try:
        while True:
            states = {r.id: read_effective_status(runs_root(ws) / r.id).state for r in record.runs}
            for rid, state in states.items():
                if seen.get(rid) != state:
                    seen[rid] = state
                    print(f"{rid}: {state}", flush=True)
            if all(s not in C.LIVE_STATES for s in states.values()):
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        print(
            f"stopped following; the runs go on. `tunedeck sweep show {record.name}` ranks them, "
            f"`tunedeck stop {record.name}` stops them",
            file=sys.stderr,
        )
        return 130
    print_table(ws, record)
    ranked = rank_runs(ws, record)
    return 0 if any(x["state"] == C.COMPLETED for x in ranked) else 1


def print_table(ws: Path, record: SweepRecord) -> None:
    from rich.console import Console
    from rich.table import Table

    ranked = rank_runs(ws, record)
    keys = differing_keys(record)
    names = short_keys(keys)
    raw = {r.id: r.params for r in record.runs}
    table = Table(box=None, pad_edge=False)
    for col in (
        "#",
        *[names[k] for k in keys],
        "state",
        "checkpoint",
        "task (95% CI vs base)",
        "format",
        "safety",
        "p95 ms",
        "verdict",
        "id",
    ):
        table.add_column(col, no_wrap=True)
    for x in ranked:
        state = x["state"] + (f" #{x['queue_position']}" if x.get("queue_position") else "")
        ck = x["best_checkpoint"] if x["best_checkpoint"] is not None else x["checkpoint"]
        ci = f" [{x['task_ci'][0]:+.1f}, {x['task_ci'][1]:+.1f}]" if x.get("task_ci") else ""
        table.add_row(
            str(x["rank"]),
            *[raw[x["id"]].get(k, "-") for k in keys],
            state,
            f"checkpoint-{ck}" if ck is not None else "-",
            f"{fmt_score_percent(x['task'])}{fmt_change(x['task_vs_base'])}{ci}",
            f"{fmt_score_percent(x['format'])}{fmt_change(x['format_vs_base'])}",
            f"{fmt_score_percent(x['safety'])}{fmt_change(x['safety_vs_base'])}",
            "-" if x["latency_p95_ms"] is None else f"{x['latency_p95_ms']:.0f}",
            x["verdict"] or "-",
            x["id"],
        )
    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(f"sweep {record.name}: {record.profile} over {', '.join(keys)} ({len(ranked)} runs)", highlight=False)
    console.print(table)
    console.print(verdict_sentence(record, ranked), highlight=False)


def cmd_sweep_show(args) -> int:
    ws = resolve_workspace(args.workspace)
    if not args.target:
        from tunedeck.engine.scheduling.sweep import list_sweeps

        raise SweepError(
            "which sweep? `tunedeck sweep show NAME`; sweeps: " + (", ".join(list_sweeps(ws)) or "none yet")
        )
    record = load_record(ws, args.target)
    if args.json:
        ranked = rank_runs(ws, record)
        print(
            json.dumps(
                {
                    "name": record.name,
                    "profile": record.profile,
                    "data": record.data,
                    "grid": record.grid,
                    "ranges": record.ranges,
                    "samples": record.samples,
                    "seed": record.seed,
                    "keys": differing_keys(record),
                    "sentence": verdict_sentence(record, ranked),
                    "runs": public_rows(ranked),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    print_table(ws, record)
    return 0


def stop_sweep(args) -> bool:
    """`tunedeck stop NAME` where NAME is a sweep: cancel its queued runs first (so none starts in the
    freed slot), then stop its running ones. False when NAME is no sweep."""
    ws = resolve_workspace(args.workspace)
    if "/" in args.run or not sweep_record_path(ws, args.run).exists():
        return False
    record = load_record(ws, args.run)
    queued, running = stop_sweep_runs(ws, record)
    print(f"sweep {record.name}: cancelling {len(queued)} queued run(s), stopping {len(running)} running")
    if getattr(args, "wait", False):
        while any(read_effective_status(runs_root(ws) / rid).state in C.LIVE_STATES for rid in queued + running):
            time.sleep(0.3)
        for rid in queued + running:
            print(f"run {rid}: {read_effective_status(runs_root(ws) / rid).state}")
    return True


def register(subparsers) -> None:
    desc = (
        "queue one run per point of a grid (or N seeded random points) of a profile; "
        "`tunedeck sweep show NAME` ranks them by the gate"
    )
    p = subparsers.add_parser("sweep", help=desc, description=desc)
    p.add_argument("--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)")
    p.add_argument(
        "profile", metavar="PROFILE|show", help="a profile (as for `tunedeck run`), or `show` to rank a sweep"
    )
    p.add_argument("target", nargs="?", metavar="NAME", help="with `show`: the sweep's name")
    p.add_argument("--data", help="training data (as for `tunedeck run`)")
    p.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="values to sweep for a key (repeatable; one run per combination)",
    )
    p.add_argument(
        "--range", action="append", metavar="KEY=LOW:HIGH[:log]", help="a range to draw from (with --samples)"
    )
    p.add_argument("--samples", type=int, help="draw N random points from the ranges instead of a grid")
    p.add_argument("--seed", type=int, default=0, help="seed for --samples (default 0): the same seed, the same points")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key for every run (repeatable)")
    p.add_argument("--name", help="the sweep's name: its record is sweeps/NAME.toml, its runs NAME-1, NAME-2, ...")
    p.add_argument("--detach", action="store_true", help="queue the runs and return at once")
    p.add_argument(
        "--slurm",
        action="store_true",
        help="one Slurm job array, a task per run (written; submitted where sbatch exists)",
    )
    p.add_argument("--partition", help="Slurm partition (with --slurm)")
    p.add_argument("--time", help="Slurm time limit per run (with --slurm)")
    p.add_argument("--max-parallel", type=int, help="at most N array tasks at once (with --slurm)")
    p.add_argument("--json", action="store_true", help="with `show`: the ranked runs as JSON")
    p.set_defaults(func=cmd_sweep)
