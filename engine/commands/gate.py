"""`tunedeck eval` (run the gate on a finished run) and `tunedeck gate` (show its table and verdict).

`gate` needs no model: it rebuilds the verdicts from evals/ and the latest review labels, so it
starts fast and can run while a person reviews.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tunedeck.engine.commands.errors import UserError
from tunedeck.engine.config.workspace import absolute_path, resolve_workspace
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_number
from tunedeck.engine.run.gate_result import GateRow, GateSummary
from tunedeck.engine.run.status_writer import write_status
from tunedeck.engine.run.store import (
    EngineLock,
    engine_owns,
    find_run,
    is_locked,
    read_effective_status,
)


def parse_checkpoints(text: str | None) -> str | list[int]:
    """'all' (default), '800' or '400,800' (also 'checkpoint-800')."""
    if not text or text.strip().lower() == "all":
        return "all"
    return [
        _checkpoint_step(part, "--checkpoint", "the base is always evaluated; name checkpoint steps or 'all'")
        for part in text.split(",")
    ]


def _checkpoint_step(text: str, flag: str, if_base: str) -> int:
    """One checkpoint step from a command-line value ('800' or 'checkpoint-800'); the base is refused."""
    from tunedeck.engine.gate.example_records import parse_checkpoint

    try:
        step = parse_checkpoint(text.strip())
    except ValueError as e:
        raise UserError(f"{flag}: {e}") from None
    if step == "base":
        raise UserError(f"{flag}: {if_base}")
    return step


def _name(metric: str) -> str:
    from tunedeck.engine.gate.similarity import NAMES

    return NAMES.get(metric, metric)


def _score(metric: str, value) -> str:
    from tunedeck.engine.gate.similarity import fmt_score

    return f"{_name(metric)} {fmt_score(metric, value)}"


def _ci(row: GateRow) -> str:
    """The task gain's 95% interval and p-value, when the gate computed them."""
    ci, p = row.task_ci, row.p_value
    shown = "" if p is None else "p<0.001" if p < 0.001 else f"p={p:.2g}"
    return " ".join(x for x in ((f"[{ci[0]:+.0f},{ci[1]:+.0f}]" if ci else ""), shown) if x)


def _with_delta(value: str, row: GateRow, cat: str) -> str:
    """A score and its change against the base ("=" when none): what every summary of the gate shows."""
    d = row.vs_base.get(cat)
    if value == "-" or not isinstance(d, (int, float)):
        return value
    return f"{value} {'=' if abs(d) < 0.05 else format(d, '+.1f')}"


def print_summary(summary: GateSummary, file=None) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    out = file or sys.stdout
    # piped output keeps whole rows (rich would otherwise wrap at 80 columns)
    console = Console(file=out, highlight=False, soft_wrap=True, width=None if out.isatty() else 200)
    rows, best = summary.rows, summary.best

    def gate_table(wide: bool) -> Table:
        # what the verdict uses first, each score with its change against the base; on a terminal too narrow
        # for the interval and the eval loss, those two go on a line per checkpoint under the table instead
        table = Table(box=None, pad_edge=False)
        cols = ["step", "verdict", "task", "format", "safety", "general", "p95 ms"]
        for col in cols + (["task gain 95% CI", "eval loss"] if wide else []):
            table.add_column(
                col, justify="left" if col in ("step", "verdict", "task gain 95% CI") else "right", no_wrap=True
            )
        for r in rows:
            name = "base" if r.is_base else str(r.checkpoint)
            name += " *" if best is not None and r.checkpoint == best else ""
            name += " (pruned)" if r.pruned else ""
            task = (
                fmt_number(r.task, ".1f", "%")
                if (r.task_metric or "pass_rate") == "pass_rate"
                else _score(r.task_metric, r.task_score)
            )
            cells = [
                name,
                r.verdict or "-",
                _with_delta(task, r, "task"),
                *(
                    _with_delta(fmt_number(getattr(r, cat), ".1f", "%"), r, cat)
                    for cat in ("format", "safety", "general")
                ),
                fmt_number(r.latency_p95_ms, ".0f"),
            ]
            table.add_row(*cells, *([_ci(r), fmt_number(r.eval_loss, ".4f")] if wide else []))
        return table

    table = gate_table(wide=True)
    wide = Measurement.get(console, console.options.update(max_width=10**4), table).maximum <= console.width
    console.print(table if wide else gate_table(wide=False))
    if not wide:
        for r in rows:
            more = [
                f"task gain 95% CI {_ci(r)}" if _ci(r) else "",
                f"eval loss {fmt_number(r.eval_loss, '.4f')}" if r.eval_loss is not None else "",
            ]
            if any(more):
                console.print(f"  {r.label or r.checkpoint}: " + ", ".join(m for m in more if m))
    for r in rows:
        label = r.label or str(r.checkpoint)
        scored = "; ".join(
            f"{cat} " + ", ".join(_score(t, v) for t, v in types.items()) for cat, types in r.check_scores.items()
        )
        if scored:
            console.print(f"  {label} mean scores: {scored}")
        for reason in r.reasons:
            console.print(f"  {label}: {reason}")
    seen = set()
    for r in rows:
        for w in r.warnings:
            if w not in seen:  # the same small-set warning applies to every row
                seen.add(w)
                console.print(f"warning: {w}")
    if summary.sets:
        console.print("sets (the base's prompt search is for task sets; checkpoints answer every set as written):")
        for s in summary.sets:
            n = f", {s.examples} examples" if s.examples is not None else ""
            how = f"; the base asked {'as written' if s.asked_as_written else 'with ' + s.asked}" if s.asked else ""
            console.print(f"  {s.name}: {s.kind or 'task'}{n}{how}")
    cands = summary.base_prompts
    if len(cands) > 1:
        console.print("base prompts on the task sets (task by the task metric; * the baseline):")
        for c in cands:
            shown = " ".join((c.get("prompt") or "(the eval set's own prompt)").split())
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            shot = f" + {c['few_shot']}-shot" if c.get("few_shot") else ""
            console.print(
                f"  {'*' if c.get('chosen') else ' '} task {fmt_number(c.get('task'), '.1f')}  "
                f"format {fmt_number(c.get('format'), '.1f', '%')}  {shown}{shot}"
            )
    for o in summary.overrides:
        console.print(f"override: {o['key']} = {json.dumps(o['value'])} (run.toml: {json.dumps(o['was'])})")
    for n in summary.notices:
        console.print(f"notice: {n}")
    chosen = summary.chosen
    if chosen is not None:
        console.print(f"chosen: checkpoint-{chosen.checkpoint}" + (f" ({chosen.note})" if chosen.note else ""))
    console.print(f"{'best' if best is not None else 'gate'}: {summary.sentence}")


def _progress_printer():
    last = {"stage": None, "t": time.perf_counter()}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last["stage"] or done == 0:
            last["stage"], last["t"] = stage, time.perf_counter()
        if stage.endswith("(cached)"):
            print(f"{stage}: {total} examples", file=sys.stderr, flush=True)
        elif done >= total > 0:
            print(
                f"evaluated {stage}: {total} examples in {time.perf_counter() - last['t']:.1f} s",
                file=sys.stderr,
                flush=True,
            )

    return progress


def _progress_events(events, printer, every_s: float = 1.0):
    """Progress to the terminal and, at most once a second per stage, as a gate "progress" event for the app."""
    last: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if printer is not None:
            printer(stage, done, total)
        now = time.monotonic()
        if done == 0 or done >= total or now - last.get(stage, 0.0) >= every_s:
            last[stage] = now
            events.emit(C.EV_GATE, phase="progress", stage=stage, done=done, total=total)

    return progress


def _quiet_transformers() -> None:
    # per-tensor "Loading weights" bars would bury the gate's own progress lines
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass


def split_set_args(items: list[str] | None) -> tuple[list[str], list[str]]:
    """(gate.KEY=VALUE overrides, eval-set files given the old way). `--set FILE` once named an extra eval
    set; a value without "=" can only mean that, so it still works, with a hint to use --eval-set."""
    overrides, files = [], []
    for item in items or []:
        if "=" in item:
            overrides.append(item)
        else:
            files.append(item)
            print(
                f"tunedeck: --set {item}: naming an eval set with --set is deprecated; use --eval-set {item} "
                "(--set now takes gate.KEY=VALUE overrides)",
                file=sys.stderr,
            )
    return overrides, files


def _check_overrides(overrides: list[str], model_free: bool = False) -> None:
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.gate import overrides as gate_overrides

    try:
        parsed = gate_overrides.parse(overrides)
    except ProfileError as e:
        raise UserError(str(e)) from None
    generation = gate_overrides.generation_changes(parsed) if model_free else []
    if generation:
        raise UserError(
            f"--set {generation[0]} changes what the models generate, which `tunedeck gate` cannot redo; "
            "use `tunedeck eval RUN --set ...`"
        )


def cmd_eval(args) -> int:
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.gate.eval_sets import EvalSetError
    from tunedeck.engine.gate.generate import PromptError
    from tunedeck.engine.gate.rules import GateError
    from tunedeck.engine.gate.runner import run_gate
    from tunedeck.engine.run.event_log import EventWriter
    from tunedeck.engine.run.gate_result import status_fields

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    state = read_effective_status(run_dir).state
    if state in C.LIVE_STATES or is_locked(run_dir):
        raise UserError(
            f"run {run_dir.name} is {state}: evaluate it once training has ended "
            "(or set gate.when = 'each_checkpoint' to evaluate every checkpoint as it is saved)"
        )
    checkpoints = parse_checkpoints(args.checkpoint)
    overrides, old_style_sets = split_set_args(args.set)
    sets = [(str(absolute_path(s)), "--set") for s in old_style_sets]  # recorded in gate.json: read again from anywhere
    sets += [(str(absolute_path(s)), "--eval-set") for s in (args.eval_set or [])]
    _check_overrides(overrides)  # a mistyped key is one line, before any model loads
    _quiet_transformers()
    try:
        with EngineLock(run_dir):  # one writer of events.jsonl and evals/, and no resume meanwhile
            events = EventWriter(run_dir / C.EVENTS_JSONL)
            try:
                printer = None if args.json else _progress_printer()
                summary = run_gate(
                    run_dir,
                    checkpoints=checkpoints,
                    extra_sets=sets,
                    events=events,
                    progress=_progress_events(events, printer),
                    overrides=overrides,
                    reset=args.reset,
                )
                from tunedeck.engine.observe.notify import notify_gate_verdict

                notify_gate_verdict(run_dir, summary, events)  # [notify] command: the new verdict
                from tunedeck.engine.gate.rebuild import serve_rebuild_requests

                summary = serve_rebuild_requests(run_dir) or summary  # labels and choices the app sent meanwhile
            finally:
                events.close()
    except (EvalSetError, GateError, PromptError, ProfileError) as e:
        raise UserError(str(e)) from None
    write_status(run_dir, **status_fields(summary))
    return _show(summary, args.json)


def _show(summary: GateSummary, as_json: bool) -> int:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print_summary(summary)
    return 0


def rejudge(run_dir: Path, overrides: list[str] | tuple = (), reset: bool = False) -> GateSummary | None:
    """Rebuild the verdicts from the records on disk with the recorded overrides plus `overrides` (no model).

    Used by `tunedeck gate --set` and the checkpoints screen. ProfileError for a bad key or value."""
    from tunedeck.engine.gate import overrides as gate_overrides
    from tunedeck.engine.gate.rebuild import recorded_overrides, summarize_run
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.engine.run.run_record import load_run_record

    recorded = None if reset else recorded_overrides(read_gate_summary(run_dir))
    profile, changes = gate_overrides.apply(
        load_run_record(run_dir).profile, gate_overrides.merge(recorded, gate_overrides.parse(list(overrides)))
    )
    return summarize_run(run_dir, profile.gate, extra={"overrides": changes})


def _choice(text: str | None):
    """--choose: a checkpoint step, or 'none' to clear the choice."""
    if text is None:
        from tunedeck.engine.gate.rebuild import KEEP

        return KEEP
    if text.strip().lower() == "none":
        return None
    return _checkpoint_step(text, "--choose", "the base model is the baseline; name a checkpoint step (or none)")


def rebuild_quietly(run_dir: Path, choose, note: str = "") -> int:
    """`tunedeck gate RUN --rebuild`: what the app asks for after a review label or a choice. An engine that
    owns the run is asked to rebuild (a control request); otherwise gate.json and status.json are rebuilt here."""
    from tunedeck.engine.gate.rebuild import ask_owning_engine, rebuild
    from tunedeck.engine.gate.rules import GateError

    if ask_owning_engine(run_dir, choose, note):
        return 0
    try:
        summary = rebuild(run_dir, choose=choose, note=note)
    except GateError as e:
        raise UserError(str(e)) from None
    if summary is None:
        raise UserError(f"no gate results for {run_dir.name} yet: run `tunedeck eval {run_dir.name}`")
    return 0


def cmd_gate(args) -> int:
    from tunedeck.engine.run.gate_result import read_gate_summary, status_fields

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    if args.rebuild or args.choose is not None:
        return rebuild_quietly(run_dir, _choice(args.choose), args.note or "")
    live = engine_owns(run_dir)
    overrides = args.set or []
    _check_overrides(overrides, model_free=True)
    if live and (overrides or args.reset):
        raise UserError(f"run {run_dir.name} is being trained or evaluated; change its gate rules once that ends")
    # on a finished run, rebuild from the records so new review labels count; a live engine owns gate.json
    summary = read_gate_summary(run_dir) if live else rejudge(run_dir, overrides, reset=args.reset)
    if summary is None:
        raise UserError(f"no gate results for {run_dir.name} yet: run `tunedeck eval {run_dir.name}`")
    if not live:
        write_status(run_dir, **status_fields(summary))
    return _show(summary, args.json)


def register(subparsers) -> None:
    ws_help = "workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)"
    run_help = "run id, unique id prefix, name or directory"

    desc = (
        "run the eval gate: the base model (under each of its prompt candidates) and each complete checkpoint on the "
        "eval sets; writes evals/ and prints the verdicts"
    )
    p = subparsers.add_parser("eval", help=desc, description=desc)
    p.add_argument("--workspace", help=ws_help)
    p.add_argument("run", help=run_help)
    p.add_argument(
        "--checkpoint",
        default="all",
        metavar="N|all",
        help="checkpoint step(s) to evaluate, e.g. 800 or 400,800 (default: all)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="gate.KEY=VALUE",
        help="override a [gate] key for this and later gate runs, e.g. gate.min_task_gain=5 or "
        "gate.base_prompts='[\"...\"]' (repeatable; recorded in evals/gate.json)",
    )
    p.add_argument(
        "--eval-set",
        action="append",
        metavar="FILE",
        help="an extra JSONL eval set (tagged task by default; repeatable)",
    )
    p.add_argument("--reset", action="store_true", help="drop the overrides recorded by earlier --set")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_eval)

    desc = "show the gate table (base and checkpoints), the verdicts and the best checkpoint"
    p = subparsers.add_parser("gate", help=desc, description=desc)
    p.add_argument("--workspace", help=ws_help)
    p.add_argument("run", help=run_help)
    p.add_argument(
        "--set",
        action="append",
        metavar="gate.KEY=VALUE",
        help="re-judge with a changed rule, e.g. gate.min_task_gain=5 or gate.task_metric=chrf (repeatable; "
        "recorded in evals/gate.json; keys that change generation need `tunedeck eval`)",
    )
    p.add_argument("--reset", action="store_true", help="drop the overrides recorded by earlier --set")
    p.add_argument(
        "--json",
        action="store_true",
        help="rows (checkpoint, task, format, safety, latency_p95_ms, verdict, reasons) and best",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild gate.json and status.json from the records and the latest "
        "review labels, printing nothing (an engine that owns the run is asked to, instead)",
    )
    p.add_argument(
        "--choose",
        metavar="N|none",
        help="record checkpoint N as the one to ship (none: clear the choice), then rebuild",
    )
    p.add_argument("--note", help="with --choose: why this checkpoint")
    p.set_defaults(func=cmd_gate)
