"""`tunedeck inspect PATH`: everything worth knowing about a dataset before training on it.

Format, problems with their lines, token statistics under the model's own tokenizer and chat
template, exact and near duplicates, train/eval leakage, the split and its fingerprint. Prints a
readable report, or with --json the same content as one JSON object. Exit status: 0 when the data
has no error-severity problems, 1 when it has, 2 for usage mistakes (missing file, bad profile...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunedeck.engine.data.dataset import DatasetError
from tunedeck.engine.data.layouts import FORMATS, METHODS
from tunedeck.engine.data.report import ReportSettings, SettingsError, dataset_report

MAX_PROBLEMS_SHOWN = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="check a dataset: format, problems, tokens, duplicates, split",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", help="JSONL, JSON, CSV, Parquet or Arrow file, a save_to_disk folder, or a hub dataset id")
    p.add_argument("--profile", "-p", help="profile for max_seq_len, val_fraction, seed, base model and batch settings")
    p.add_argument(
        "--model", "-m", help="tokenizer to count with: a local model folder or a hub id (overrides the profile)"
    )
    p.add_argument(
        "--max-seq-len", type=int, help="longest sequence in tokens (default: the profile's data.max_seq_len)"
    )
    p.add_argument("--eval", dest="eval_path", help="a separate held-out file, checked for problems and leakage")
    p.add_argument("--format", choices=("auto",) + FORMATS, help="force the dataset format instead of detecting it")
    p.add_argument(
        "--method",
        choices=METHODS,
        help="sft (demonstrations), dpo (preference pairs), kto (labelled answers) or grpo (prompts with an "
        "optional reference); default: the profile's grpo, else from the data",
    )
    p.add_argument(
        "--near-threshold", type=float, default=0.8, help="Jaccard similarity for near duplicates (default 0.8)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(func=main)


def _settings(args) -> ReportSettings:
    from tunedeck.engine.config.profile_loading import ProfileError, load_profile
    from tunedeck.engine.config.profile_schema import Profile

    try:
        profile = load_profile(args.profile) if args.profile else Profile()
    except ProfileError as e:
        raise SettingsError(str(e)) from None
    d, o = profile.data, profile.optim
    max_seq_len = d.max_seq_len if args.max_seq_len is None else args.max_seq_len
    if max_seq_len < 1:
        raise SettingsError(f"--max-seq-len must be a positive number of tokens, not {max_seq_len}")
    if not 0.0 < args.near_threshold <= 1.0:
        raise SettingsError(f"--near-threshold must be in (0, 1], not {args.near_threshold}")
    return ReportSettings(
        # GRPO's prompts look like SFT data (or like nothing): only the profile can say a file is for GRPO
        method=args.method or ("grpo" if args.profile and profile.method.method == "grpo" else "auto"),
        format=args.format or d.format,
        max_seq_len=max_seq_len,
        profile_method=profile.method.method if args.profile else None,
        val_fraction=d.val_fraction,
        seed=o.seed,
        # Without --model or --profile there is no model to count with: the default hub id would mean a download.
        model=_gguf_folder(
            args.model or (profile.model.base if args.profile else None), "" if args.model else profile.model.gguf_file
        ),
        chat_template=profile.model.chat_template,
        assistant_only=d.assistant_only_loss,
        eval_path=args.eval_path or d.eval_file or None,
        batch_size=o.batch_size,
        grad_accum=o.grad_accum,
        epochs=o.epochs,
        processes=max(profile.resources.processes, 1),
        apply_chat_template=d.apply_chat_template,
    )


def _gguf_folder(model: str | None, gguf_file: str) -> str | None:
    """The model to count with; for a GGUF file its de-quantised folder (built once), with the notice on stderr."""
    from tunedeck.engine.models.gguf_base import GgufBaseError, gguf_notice, is_gguf_ref, materialize_gguf

    if not model or not is_gguf_ref(model, gguf_file):
        return model
    try:
        gguf = materialize_gguf(model, gguf_file or None, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except GgufBaseError as e:
        raise SettingsError(str(e)) from None
    print(f"warning: {gguf_notice(gguf.source)}", file=sys.stderr, flush=True)
    return str(gguf.folder)


class _Progress:
    """Phase progress on stderr for people; silent when stderr is not a terminal or for --json."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()

    def phase(self, name: str):
        if self.bar is None:
            return None
        task = self.bar.add_task(name, total=1)
        return lambda done, total: self.bar.update(task, completed=done, total=max(total, 1))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def build_report(args) -> dict:
    """Everything `inspect` reports, as plain data. Raises SettingsError or DatasetError for user mistakes."""
    s = _settings(args)
    show = _Progress(enabled=not args.json and sys.stderr.isatty())
    try:
        return dataset_report(args.path, s, args.near_threshold, show)
    finally:
        show.stop()


def main(args) -> int:
    try:
        report = build_report(args)
    except (SettingsError, DatasetError) as e:
        if args.json:  # a script reading stdout gets an object either way
            json.dump({"path": str(args.path), "error": str(e)}, sys.stdout, ensure_ascii=False)
            sys.stdout.write("\n")
        print(f"tunedeck inspect: {e}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        render(report, Console(highlight=False, soft_wrap=True))
    errors = report["errors"] + (report["eval"]["errors"] if "eval" in report else 0)
    return 1 if errors else 0


# ---- the readable report ----------------------------------------------------------------------------


def _lines(lines: list[int], path: str, n: int = 6, total: int | None = None, unit: str = "line") -> str:
    total = len(lines) if total is None else total
    shown = ", ".join(str(line) for line in lines[:n])
    where = f"{Path(path).name}:" if unit == "line" else f"{Path(path).name} rows "
    return where + shown + (f" (+{total - min(n, len(lines))} more)" if total > n else "")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _problem_table(title: str, part: dict, path: str, unit: str = "line"):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False)
    for col in ("category", "severity", "count", "first lines"):
        t.add_column(col, justify="right" if col == "count" else "left")
    for cat, n in part["problem_counts"].items():
        ps = [p for p in part["problems"] if p["category"] == cat]
        t.add_row(cat, ps[0]["severity"], str(n), _lines([p["line"] for p in ps], path, 5, unit=unit))
    return t


def _histogram(tokens: dict, width: int = 36) -> list[str]:
    bins = tokens["histogram"]
    top = max((b["count"] for b in bins), default=0) or 1
    out = []
    for b in bins:
        bar = "█" * round(width * b["count"] / top) or ("▏" if b["count"] else "")
        cut = "  ✂" if b["hi"] - 1 > tokens["max_seq_len"] else ""  # holds examples longer than max_seq_len
        label = f"{b['lo']:,}" if b["hi"] - 1 == b["lo"] else f"{b['lo']:,}-{b['hi'] - 1:,}"
        out.append(f"  {label:>15} {bar:<{width}} {b['count']:,}{cut}")
    return out


def render(r: dict, console) -> None:
    """Print the report dict as tables and a text histogram."""
    from rich.table import Table

    path, unit = r["path"], r.get("location", "line")
    console.print(
        f"[bold]{path}[/]  format [cyan]{r['format']}[/]  method {r['method']}  "
        f"rows {r['rows']:,} ({r['valid_rows']:,} valid, {r['invalid_rows']:,} invalid)"
    )
    if r.get("method_note"):
        console.print(f"[yellow]method:[/] {r['method_note']}")
    if r.get("labels"):
        lab = r["labels"]
        console.print(f"labels: {lab['desirable']:,} desirable, {lab['undesirable']:,} undesirable")
        if lab.get("warning"):
            console.print(f"  [yellow]warning:[/] {lab['warning']}")
    if r.get("ignored_columns"):
        cols = ", ".join(f"{k} ({_plural(n, 'row')})" for k, n in r["ignored_columns"].items())
        console.print(f"ignored columns (not read by the {r['format']} format): {cols}")
    for label, part, where in (
        ("problems", r, path),
        ("eval file problems", r.get("eval"), (r.get("eval") or {}).get("path")),
    ):
        if not part or not part["problems"]:
            continue
        console.print(
            _problem_table(
                f"{label}: {_plural(part['errors'], 'error')}, {_plural(part['warnings'], 'warning')}",
                part,
                where,
                unit,
            )
        )
        for p in part["problems"][:MAX_PROBLEMS_SHOWN]:
            style = "red" if p["severity"] == "error" else "yellow"
            loc = f"{Path(where).name}:{p['line']}" if unit == "line" else f"{Path(where).name} row {p['line']}"
            console.print(f"  [{style}]{loc}[/] {p['message']}", soft_wrap=True)
        if len(part["problems"]) > MAX_PROBLEMS_SHOWN:
            console.print(f"  ... {len(part['problems']) - MAX_PROBLEMS_SHOWN} more (--json lists them all)")

    tok = r["tokens"]
    if r.get("grpo"):
        from tunedeck.engine.data.grpo_report import grpo_lines

        if r["tokenizer"].get("note"):
            console.print(f"[yellow]tokens:[/] {r['tokenizer']['note']}")
        for line in grpo_lines(r["grpo"]):
            console.print(line, soft_wrap=True, markup=False)
    elif tok is None:
        console.print(f"[yellow]tokens:[/] {r['tokenizer']['note']}")
    else:
        t = Table(
            title=f"tokens ({r['tokenizer']['model']}, max_seq_len {tok['max_seq_len']})",
            title_justify="left",
            show_edge=False,
            show_header=False,
        )
        t.add_column("")
        t.add_column("", justify="right")
        share = tok["trainable_tokens"] / tok["total_tokens"] if tok["total_tokens"] else 0.0
        rows = [
            ("examples", tok["examples"]),
            ("total tokens", tok["total_tokens"]),
            (
                "trainable tokens",
                f"{tok['trainable_tokens']:,} ({share:.0%}{', assistant only' if tok['assistant_only'] else ''})",
            ),
            ("p50 / p90 / p99 / max", f"{tok['p50']:,} / {tok['p90']:,} / {tok['p99']:,} / {tok['max']:,}"),
            ("truncated examples", tok["truncated_examples"]),
            ("trainable tokens cut", f"{tok['trainable_cut_share']:.1%}"),
            ("no trainable tokens", tok["zero_trainable_examples"]),
            ("dropped after truncation", tok["dropped_examples"]),
        ]
        if r.get("plan"):
            pl = r["plan"]
            rows += [
                (
                    f"steps/epoch (batch {pl['batch_size']} x accum {pl['grad_accum']} x {pl['processes']} proc)",
                    pl["steps_per_epoch"],
                ),
                (f"total steps ({pl['epochs']:g} epochs)", pl["total_steps"]),
                ("training tokens", pl["total_training_tokens"]),
            ]
        for k, v in rows:
            t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
        console.print(t)
        console.print(f"tokens per example (✂: longer than max_seq_len {tok['max_seq_len']:,}):")
        for line in _histogram(tok):
            console.print(line, soft_wrap=True)
        for key, what in (
            ("truncated", "truncated"),
            ("zero_trainable", "nothing to train on"),
            ("dropped", "dropped by truncation"),
        ):
            if tok[f"{key}_lines"]:
                console.print(f"  {what}: {_lines(tok[f'{key}_lines'], path, total=tok[f'{key}_examples'])}")
        if tok.get("masking"):
            console.print(f"  loss on: {tok['masking']}", soft_wrap=True)
        for note in tok["notes"]:
            console.print(f"  [yellow]note:[/] {note}")

    console.print(
        f"duplicates: {_plural(len(r['duplicates']), 'exact cluster')} ({_plural(r['duplicate_rows'], 'extra row')}), "
        f"{_plural(len(r['near_duplicates']), 'near cluster')} (Jaccard >= {r['threshold']:g})"
    )
    for label, clusters in (("exact", r["duplicates"]), ("near", r["near_duplicates"])):
        for c in clusters[:5]:
            console.print(f"  {label}: {_lines(c, path, unit=unit)}")
    eval_path = (r.get("eval") or {}).get("path", path)
    if r["leakage"]:
        console.print(f"[red]leakage:[/] {len(r['leakage'])} eval rows duplicate training rows")
        for leak in r["leakage"][:5]:
            console.print(
                f"  {Path(eval_path).name}:{leak['eval_line']} ~ {_lines(leak['train_lines'], path, 3)} "
                f"({leak['kind']}, {leak['similarity']:.2f})"
            )
    else:
        console.print("leakage: none")
    sp = r["split"]
    source = (
        f"held-out file {sp['source']}"
        if sp["source"] != "split"
        else f"val_fraction {sp['val_fraction']:g}, seed {sp['seed']}"
    )
    console.print(f"split: {sp['train']:,} train / {sp['eval']:,} eval ({source})  fingerprint {r['fingerprint']}")
    errors = r["errors"] + (r["eval"]["errors"] if "eval" in r else 0)
    if errors:
        console.print(
            f"[red bold]{_plural(errors, 'error')}:[/] training refuses this data until they are fixed "
            '(or data.on_invalid = "skip" leaves those rows out)'
        )
    else:
        console.print("[green bold]no errors[/]")


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser holding only `inspect` (tests, and `python -m tunedeck.engine.commands.inspect`)."""
    parser = argparse.ArgumentParser(prog="tunedeck")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


if __name__ == "__main__":
    ns = build_parser().parse_args()
    sys.exit(ns.func(ns))
