"""The dataset pane of the new-run screen: what `tunedeck inspect` reports, live.

The inspection (load and validate, split, duplicates and leakage, then tokens under the model's
tokenizer) runs in a thread worker that reports progress; the rest of the screen stays usable.
The per-example token lengths are kept, so changing max_seq_len redraws the histogram and the
truncation figures without tokenising again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, ProgressBar, Static
from textual.widgets.option_list import Option


@dataclass
class Truncation:
    max_seq_len: int
    examples: int
    truncated: int
    trainable_cut_share: float
    exact: bool

    @property
    def example_share(self) -> float:
        return self.truncated / self.examples if self.examples else 0.0


def truncation_at(stats, max_seq_len: int, fmt: str = "") -> Truncation:
    """Truncation figures for a max_seq_len from kept per-example lengths, without tokenising again.

    At the length the stats were computed for, the engine's own figures. Elsewhere the trainable
    tokens are taken to sit at the end of each example: exact for text, prompt-completion and
    unmasked chat rows; an estimate (exact=False) for assistant-masked chat and preference pairs.
    """
    import numpy as np

    lengths, trainable = stats.lengths, stats.trainable
    truncated = int((lengths > max_seq_len).sum())
    if max_seq_len == stats.max_seq_len:
        return Truncation(max_seq_len, stats.examples, truncated, stats.trainable_cut_share, True)
    prefix = lengths - trainable
    kept = np.maximum(0, np.minimum(lengths, max_seq_len) - prefix)
    total = int(trainable.sum())
    share = 0.0 if total == 0 else 1.0 - int(kept.sum()) / total
    exact = fmt in ("text", "prompt_completion") or bool((trainable == lengths).all())
    return Truncation(max_seq_len, stats.examples, truncated, share, exact)


def histogram_lines(stats, max_seq_len: int, width: int = 28, bins: int = 12) -> list[str]:
    """Text bars of tokens per example; ✂ marks bins holding examples longer than max_seq_len."""
    hist = stats.histogram(bins)
    top = max((b["count"] for b in hist), default=0) or 1
    out = []
    marked = False
    for b in hist:
        if not marked and b["lo"] > max_seq_len:
            out.append(f"{'max_seq_len ' + format(max_seq_len, ','):>13} " + "─" * width)
            marked = True
        bar = "█" * round(width * b["count"] / top) or ("▏" if b["count"] else "")
        cut = " ✂" if b["hi"] - 1 > max_seq_len else ""
        label = f"{b['lo']:,}-{b['hi'] - 1:,}"
        out.append(f"{label:>13} {bar:<{width}} {b['count']:,}{cut}")
    if not marked:
        out.append(f"{'max_seq_len ' + format(max_seq_len, ','):>13} ─ (every example fits)")
    return out


@dataclass
class InspectRequest:
    path: str
    format: str = "auto"
    method: str = "sft"
    max_seq_len: int = 1024
    val_fraction: float = 0.1
    seed: int = 42
    model: str | None = None
    chat_template: str = ""
    assistant_only: str = "auto"
    apply_chat_template: str = "auto"
    eval_path: str | None = None
    batch_size: int = 4
    grad_accum: int = 4
    epochs: float = 3.0
    processes: int = 1

    @classmethod
    def from_profile(cls, profile) -> "InspectRequest":
        d, o = profile.data, profile.optim
        from tunedeck.engine.config.profile_schema import data_paths

        # several files (data.path as a list, e.g. data plus fixes): the pane shows the first; the
        # launch's pre-flight validates them all
        return cls(
            path=(data_paths(d) or [""])[0],
            format=d.format,
            method=profile.method.method,
            max_seq_len=d.max_seq_len,
            val_fraction=d.val_fraction,
            seed=o.seed,
            model=profile.model.base or None,
            chat_template=profile.model.chat_template,
            assistant_only=d.assistant_only_loss,
            apply_chat_template=d.apply_chat_template,
            eval_path=d.eval_file or None,
            batch_size=o.batch_size,
            grad_accum=o.grad_accum,
            epochs=o.epochs,
            processes=max(profile.resources.processes, 1),
        )


def inspect_dataset(req: InspectRequest, phase=None) -> tuple[dict, Any]:
    """(report, TokenStats or None): `tunedeck inspect`'s report (data/report.py), the same token counts and
    masks; the stats are kept whole (per-example lengths) so the pane can re-truncate without re-tokenising."""
    from tunedeck.engine.data.report import PhaseCallback, ReportSettings, report_and_token_stats

    s = ReportSettings(
        method=req.method,
        format=req.format,
        max_seq_len=req.max_seq_len,
        val_fraction=req.val_fraction,
        seed=req.seed,
        model=req.model,
        chat_template=req.chat_template,
        assistant_only=req.assistant_only,
        eval_path=req.eval_path,
        batch_size=req.batch_size,
        grad_accum=req.grad_accum,
        epochs=req.epochs,
        processes=req.processes,
        apply_chat_template=req.apply_chat_template,
    )
    report, stats = report_and_token_stats(req.path, s, 0.8, PhaseCallback(phase))
    if not req.model:
        report["tokenizer"]["note"] = "no model: token statistics skipped"
    return report, stats


def read_line(path: str, line: int, limit: int = 4000) -> str:
    """The raw text of one line of a file (1-based), cut at `limit` characters."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = next(itertools.islice(f, line - 1, None), "")
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"
    text = text.rstrip("\n")
    return text[:limit] + (" ..." if len(text) > limit else "")


class DatasetPane(VerticalScroll):
    DEFAULT_CSS = """
    DatasetPane { height: 1fr; }
    DatasetPane #ds-progress { height: 1; }
    DatasetPane #ds-problems { height: auto; max-height: 10; }
    DatasetPane .ds-block { height: auto; padding: 0 1; }
    DatasetPane #ds-raw { color: $text-muted; }
    """

    @dataclass
    class Progress(Message):
        phase: str
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, DatasetPane.Progress)

    @dataclass
    class Inspected(Message):
        request: InspectRequest
        report: dict | None
        stats: Any = None
        error: str | None = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request: InspectRequest | None = None
        self.report: dict | None = None
        self.stats = None
        self.max_seq_len = 1024
        self.truncation: Truncation | None = None
        self.inspecting = False
        self.problems: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static("No dataset yet: set data.path in the form.", id="ds-summary", classes="ds-block")
        yield ProgressBar(id="ds-progress", show_eta=False)
        yield OptionList(id="ds-problems")
        yield Static("", id="ds-raw", classes="ds-block", markup=False)
        yield Static("", id="ds-tokens", classes="ds-block")
        yield Static("", id="ds-dups", classes="ds-block")

    def on_mount(self) -> None:
        self.query_one("#ds-progress").display = False
        self.query_one("#ds-problems").display = False

    # ---- inspection -------------------------------------------------------------------------

    def inspect(self, req: InspectRequest) -> None:
        self.request = req
        self.max_seq_len = req.max_seq_len
        self.inspecting = True
        self.query_one("#ds-summary", Static).update(f"Inspecting {escape(req.path)} ...")
        bar = self.query_one("#ds-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self._run_inspection(req)

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspect-dataset", name="inspect dataset")
    def _run_inspection(self, req: InspectRequest) -> None:
        from tunedeck.engine.data.dataset import DatasetError

        def phase(name: str, done: int, total: int) -> None:
            self.post_message(self.Progress(name, done, total))

        try:
            report, stats = inspect_dataset(req, phase)
        except (DatasetError, ValueError, OSError) as e:
            self.post_message(self.Inspected(req, None, None, str(e)))
            return
        self.post_message(self.Inspected(req, report, stats))

    def on_dataset_pane_progress(self, message: "DatasetPane.Progress") -> None:
        bar = self.query_one("#ds-progress", ProgressBar)
        bar.update(total=max(message.total, 1), progress=message.done)
        self.query_one("#ds-summary", Static).update(
            f"Inspecting: {escape(message.phase)} {message.done:,}/{message.total:,}"
        )

    def on_dataset_pane_inspected(self, message: "DatasetPane.Inspected") -> None:
        if message.request is not self.request:
            message.stop()  # a newer inspection was started: this result is stale
            return
        self.inspecting = False
        self.query_one("#ds-progress").display = False
        if message.error:
            self.report, self.stats = None, None
            self.query_one("#ds-summary", Static).update(f"[red]{escape(message.error)}[/]")
            return
        self.report, self.stats = message.report, message.stats
        self._show()

    # ---- drawing ----------------------------------------------------------------------------

    def set_max_seq_len(self, n: int) -> None:
        """Re-truncate from the kept lengths: no tokenising."""
        if n == self.max_seq_len:
            return
        self.max_seq_len = n
        if self.report is not None:
            self._show_tokens()

    def _show(self) -> None:
        r = self.report
        assert r is not None
        sp = r["split"]
        self.query_one("#ds-summary", Static).update(
            f"[b]{escape(Path(r['path']).name)}[/]  format [cyan]{escape(r['format'])}[/]  rows {r['rows']:,} "
            f"({r['valid_rows']:,} valid, {r['invalid_rows']:,} invalid)\n"
            f"problems: [red]{r['errors']} errors[/], [yellow]{r['warnings']} warnings[/]"
            + "".join(f"  {escape(c)} {n}" for c, n in r["problem_counts"].items())
            + f"\nsplit: {sp['train']:,} train / {sp['eval']:,} eval"
        )
        self.problems = list(r["problems"])
        ol = self.query_one("#ds-problems", OptionList)
        ol.clear_options()
        for i, p in enumerate(self.problems):
            colour = "red" if p["severity"] == "error" else "yellow"
            ol.add_option(
                Option(f"[{colour}]line {p['line']}[/] {escape(p['category'])}: {escape(p['message'])}", id=str(i))
            )
        ol.display = bool(self.problems)
        self.query_one("#ds-raw", Static).update("enter on a problem shows its raw line" if self.problems else "")
        dups = [
            f"duplicates: {len(r['duplicates'])} exact clusters ({r['duplicate_rows']} extra rows), "
            f"{len(r['near_duplicates'])} near clusters (Jaccard >= {r['threshold']:g})"
        ]
        for label, clusters in (("exact", r["duplicates"]), ("near", r["near_duplicates"])):
            dups += [f"  {label}: lines {', '.join(map(str, c[:8]))}" for c in clusters[:5]]
        if r["leakage"]:
            dups.append(f"[red]leakage: {len(r['leakage'])} eval rows duplicate training rows[/]")
            dups += [
                f"  eval line {leak['eval_line']} ~ train lines {', '.join(map(str, leak['train_lines'][:4]))} "
                f"({leak['kind']})"
                for leak in r["leakage"][:5]
            ]
        else:
            dups.append("leakage: none")
        self.query_one("#ds-dups", Static).update("\n".join(dups))
        self._show_tokens()

    def _show_tokens(self) -> None:
        box = self.query_one("#ds-tokens", Static)
        st = self.stats
        if (self.report or {}).get("grpo"):  # GRPO: its prompts and references, no masks (engine/data/grpo_report.py)
            from tunedeck.engine.data.grpo_report import grpo_lines

            self.truncation = None
            box.update("\n".join(escape(line) for line in grpo_lines(self.report["grpo"])))
            return
        if st is None:
            self.truncation = None
            note = (self.report or {}).get("tokenizer", {}).get("note") or "no token statistics"
            box.update(f"[yellow]tokens:[/] {escape(note)}")
            return
        fmt = (self.report or {}).get("format", "")
        t = self.truncation = truncation_at(st, self.max_seq_len, fmt)
        approx = "" if t.exact else "≈"
        pc = st.percentiles()
        lines = [
            f"tokens: {st.total_tokens:,} total, {st.trainable_tokens:,} trainable"
            f"{' (assistant only)' if st.assistant_only else ''}; "
            f"p50 {pc['p50']:,} p90 {pc['p90']:,} max {pc['max']:,}",
            f"max_seq_len [b]{t.max_seq_len:,}[/]: cuts [b]{t.truncated:,}[/] of {t.examples:,} examples "
            f"([b]{t.example_share:.1%}[/]) and {approx}[b]{t.trainable_cut_share:.1%}[/] of trainable tokens",
            f"no trainable tokens: {len(st.zero_trainable_lines)} examples"
            + (f" (lines {', '.join(map(str, st.zero_trainable_lines[:8]))})" if st.zero_trainable_lines else ""),
        ]
        lines += [escape(line) for line in histogram_lines(st, self.max_seq_len)]
        lines += [f"[yellow]note:[/] {escape(n)}" for n in st.notes]
        box.update("\n".join(lines))

    @on(OptionList.OptionSelected, "#ds-problems")
    def _show_raw(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        p = self.problems[int(event.option.id or 0)]
        path = (self.report or {}).get("path", "")
        self.query_one("#ds-raw", Static).update(f"line {p['line']}: {read_line(path, p['line'])}")

    @on(OptionList.OptionHighlighted, "#ds-problems")
    def _stop_highlight(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
