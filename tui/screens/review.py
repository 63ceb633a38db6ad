"""Review mode: a person labels a checkpoint's sampled failures, one key per example.

The sample is engine/gate/reviews.py's sample_for_review (regressions first). `u` labels the example
an understandable mistake, `w` new weird behaviour, `a` acceptable (not a failure: the check or judge was
wrong), `s` skips it, `x` withdraws a label (appended too), `A` corrects the answer into the run's fixes;
each label is appended and fsynced to <run>/reviews.jsonl (engine/gate/reviews.py's add_review) before
the screen says "saved", so closing the app midway loses nothing, and reopening starts at the first
unlabelled example. A note: `n` opens a box, enter keeps the note; the next `u`/`w`/`a` saves it with the
label (or, on an example already labelled, enter saves the note with that label at once).

After each label (or withdrawal) the app asks the engine to rebuild the gate (a short
`tunedeck gate RUN --rebuild`, engine/gate/rebuild.py) and shows the verdict it wrote, so the verdict
on screen is the real one. An engine that owns the run (training or evaluating) owns evals/gate.json:
it gets a control request instead, and the verdict updates when it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from tunedeck.engine.gate.reviews import LABELS, WITHDRAWN, add_review, load_reviews, review_state, sample_for_review
from tunedeck.engine.run.gate_result import GateSummary, read_gate_summary
from tunedeck.engine.run.store import engine_owns

from ..engine_client import rebuild_gate
from ..example_filters import BUCKET_NAMES, ExampleComparison, load_comparison
from ..gate_view import verdict_style, verdict_word
from ..keymap import key_name
from ..widgets.example_detail import BUCKET_STYLE, ExampleDetail
from ..worker_failures import RoutesWorkerFailures


def refresh_gate(run_dir: Path) -> tuple[GateSummary | None, bool]:
    """(the gate summary, whether it is current: rebuilt by the engine from the records and the latest labels).
    Runs the rebuild to its end: call from a worker thread."""
    done, _ = rebuild_gate(run_dir)
    return read_gate_summary(run_dir), done


class ReviewScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding(
            "escape",
            "back",
            "Back",
            tooltip="Back (labels are already saved); in the note box: drop the note",
            id="review.back",
        ),
        Binding(
            "u",
            "label('understandable')",
            "Understandable",
            tooltip="Label: an understandable mistake (saved at once, then the next one)",
            id="review.understandable",
        ),
        Binding(
            "w",
            "label('weird')",
            "Weird",
            tooltip="Label: new weird behaviour the base did not show (saved at once, then the next one)",
            id="review.weird",
        ),
        Binding(
            "a",
            "label('acceptable')",
            "Acceptable",
            tooltip="Label: not a failure, the check (or judge) was wrong (saved at once, then the next one)",
            id="review.acceptable",
        ),
        Binding(
            "A",
            "add_fix",
            "Fix",
            tooltip="Correct this example's answer in $EDITOR and add it to the run's fixes "
            "(<workspace>/fixes/<run>.jsonl; N trains the next run on them)",
            id="review.add_fix",
        ),
        Binding(
            "x",
            "withdraw",
            "Withdraw",
            show=False,
            tooltip="Withdraw this example's label: unlabelled again (appended, so the history stays)",
            id="review.withdraw",
        ),
        Binding(
            "s",
            "skip",
            "Skip",
            tooltip="Leave this example unlabelled and go to the next unlabelled one",
            id="review.skip",
        ),
        Binding(
            "n",
            "note",
            "Note",
            tooltip="Write a note; enter keeps it for the next u/w (or saves it with the existing label)",
            id="review.note",
        ),
        Binding("j,right", "move(1)", "Next", key_display="j/→", tooltip="Next sampled example", id="review.next"),
        Binding(
            "k,left",
            "move(-1)",
            "Previous",
            key_display="k/←",
            tooltip="Previous sampled example",
            id="review.previous",
        ),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        """The sample, its labels and the eval records were read; `current`: the verdict counts every label."""

        comparison: ExampleComparison
        sample: list[str]
        labels: dict[str, dict]
        summary: GateSummary | None
        current: bool

    @dataclass(eq=False)
    class VerdictRebuilt(Message):
        """The gate was rebuilt after a label (`current` False: an engine owns the run and answers later)."""

        summary: GateSummary | None
        current: bool

    def __init__(self, run_dir: Path, checkpoint: int) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.sample: list[str] = []
        self.labels: dict[str, dict] = {}  # example id -> its latest saved label entry
        self.notes: dict[str, str] = {}  # notes typed but not yet saved with a label
        self.comparison: ExampleComparison | None = None
        self.index = 0
        self.loaded = False
        self.message = Text("")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading the sample…", id="review-progress")
        yield Static("", id="review-verdict")
        yield Static("", id="review-current")
        yield Input(placeholder="note for this example; enter keeps it, esc drops it", id="review-note")
        yield ExampleDetail(id="review-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"Review: checkpoint-{self.checkpoint}"
        self.sub_title = self.run_dir.name
        self.query_one("#review-note", Input).display = False
        self.query_one(ExampleDetail).focus()  # up/down/page keys scroll a long output
        self.load()

    @work(thread=True, exit_on_error=False, group="review-load", exclusive=True, name="read the review sample")
    def load(self) -> None:
        comparison = load_comparison(self.run_dir, self.checkpoint)
        sample = sample_for_review(self.run_dir, self.checkpoint)
        reviews = load_reviews(self.run_dir)
        summary = read_gate_summary(self.run_dir)
        row = summary.row(self.checkpoint) if summary is not None else None
        owned = engine_owns(self.run_dir)
        # labels saved after the last rebuild (the app closed in between) count as soon as the screen opens
        if row is not None and row.review is not None and not owned:
            if row.review != review_state(self.run_dir, self.checkpoint, reviews).to_dict():
                summary, _ = refresh_gate(self.run_dir)
        labels = {ex: reviews[(self.checkpoint, ex)] for ex in sample if (self.checkpoint, ex) in reviews}
        self.post_message(self.Loaded(comparison, sample, labels, summary, not owned))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if not self.is_mounted:  # closed while the files were read
            return
        comparison, sample, labels = message.comparison, message.sample, message.labels
        self.comparison, self.sample, self.labels = comparison, sample, labels
        self.loaded = True
        unlabelled = [i for i, ex in enumerate(sample) if ex not in labels]
        self.index = unlabelled[0] if unlabelled else 0
        if sample and not unlabelled:
            u, w = key_name(self.app, "review.understandable", "u"), key_name(self.app, "review.weird", "w")
            j, k = key_name(self.app, "review.next", "j"), key_name(self.app, "review.previous", "k")
            self.message = Text(f"Every sampled failure is labelled; {u}/{w} relabels, {j}/{k} move.", style="green")
        self._show_verdict(message.summary, message.current)
        self._show()

    # ---- what is on screen ------------------------------------------------------------------

    @property
    def current(self) -> str | None:
        return self.sample[self.index] if self.sample else None

    def _progress(self) -> Text:
        labelled = [self.labels[ex]["label"] for ex in self.sample if ex in self.labels]
        out = Text()
        out.append(f"checkpoint-{self.checkpoint}", style="bold")
        if not self.sample:
            if self.comparison is not None and self.comparison.unevaluated:
                out.append(
                    f": no eval results for {self.comparison.unevaluated} yet, so nothing to review "
                    "(run `tunedeck eval`).",
                    style="yellow",
                )
            else:
                out.append(": no failures in its eval results, so there is nothing to review.", style="green")
            return out
        out.append(f" · example {self.index + 1} of {len(self.sample)} · ")
        out.append(f"{len(labelled)}/{len(self.sample)} labelled", style="bold")
        out.append(f" · {labelled.count('weird')} weird", style="bold red" if labelled.count("weird") else "")
        if len(labelled) == len(self.sample):
            out.append(" · sample complete", style="bold green")
        return out

    def _show(self) -> None:
        self.query_one("#review-progress", Static).update(self._progress())
        ex = self.current
        pair = self.comparison.get(ex) if self.comparison and ex else None
        line = Text()
        if ex is not None:
            line.append(ex, style="bold")
            if pair is not None:
                line.append(f"  {BUCKET_NAMES.get(pair.bucket, pair.bucket)}", style=BUCKET_STYLE.get(pair.bucket, ""))
            entry = self.labels.get(ex)
            line.append("  label: ")
            if entry:
                line.append(LABELS[entry["label"]], style="bold red" if entry["label"] == "weird" else "bold green")
                if entry.get("note"):
                    line.append(f"  note: {entry['note']}", style="italic")
            else:
                line.append("not labelled yet", style="dim")
            if ex in self.notes:
                line.append(f"\nnote ready: “{self.notes[ex]}” (u or w saves it with the label)", style="yellow")
            line.append(
                "\nu understandable mistake · w new weird behaviour · a acceptable · s skip "
                "· n note (enter, then u/w/a) · j/k move",
                style="dim",
            )
        if self.message.plain:
            line.append("\n")
            line.append_text(self.message)
        self.query_one("#review-current", Static).update(line)
        self.query_one(ExampleDetail).show(pair, "base", self.checkpoint)

    def _show_verdict(self, summary: GateSummary | None, current: bool) -> None:
        if not self.is_mounted:
            return
        row = summary.row(self.checkpoint) if summary is not None else None
        out = Text()
        if row is None:
            out.append("No gate verdict for this checkpoint yet (run `tunedeck eval`).", style="dim")
        else:
            verdict = row.verdict or "-"
            out.append("verdict: ")
            out.append(verdict_word(verdict), style=f"bold {verdict_style(verdict)}")
            for reason in row.reasons:
                out.append(f"\n  {reason}")
            if summary.rules.get("require_review") is False:
                out.append("\nthis gate does not require review; labels are kept for the record", style="dim")
            best = summary.best
            if best is not None:
                out.append(
                    f"\nbest checkpoint: checkpoint-{best}", style="bold green" if best == self.checkpoint else ""
                )
        if not current:
            out.append(
                "\nan engine is running on this run and owns the gate: the verdict updates when it finishes",
                style="yellow",
            )
        self.query_one("#review-verdict", Static).update(out)

    # ---- labels -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("label", "skip", "note", "move", "withdraw"):
            return bool(self.loaded and self.sample) or None
        return True

    def action_label(self, label: str) -> None:
        ex = self.current
        if ex is None:
            return
        note = self.notes.get(ex)
        if note is None:
            note = (self.labels.get(ex) or {}).get("note", "")
        if self._save(ex, label, note):
            self._advance()

    def _save(self, example_id: str, label: str, note: str) -> bool:
        """Append the label, durable on return (the write and fsync are milliseconds, and doing them
        here keeps key order and means nothing pressed is lost if the screen closes at once); then
        rebuild the verdict in the background."""
        try:
            entry = add_review(self.run_dir, self.checkpoint, example_id, label, note)
        except OSError as e:
            self.message = Text(f"{example_id}: the label was NOT saved ({e})", style="bold red")
            self._show()
            return False
        self.notes.pop(example_id, None)
        self.labels[example_id] = entry
        self.message = Text(
            f"{example_id}: {LABELS[label]}" + (f" (note: {note})" if note else "") + " — saved", style="green"
        )
        self._show()
        self.rebuild_verdict()
        return True

    @work(thread=True, exit_on_error=False, group="review-verdict", exclusive=True, name="rebuild the gate verdict")
    def rebuild_verdict(self) -> None:
        summary, current = refresh_gate(self.run_dir)
        if not get_current_worker().is_cancelled:  # a later label's rebuild (queued on the lock) shows instead
            self.post_message(self.VerdictRebuilt(summary, current))

    @on(VerdictRebuilt)
    def _verdict_rebuilt(self, message: VerdictRebuilt) -> None:
        self._show_verdict(message.summary, message.current)

    def _advance(self) -> None:
        """To the next unlabelled example after this one (wrapping), or stay when none is left."""
        n = len(self.sample)
        pending = {ex for ex in self.sample if ex not in self.labels} - {self.current}
        for step in range(1, n):
            if self.sample[(self.index + step) % n] in pending:
                self.index = (self.index + step) % n
                self._show()
                return
        self._show()

    def action_skip(self) -> None:
        before = self.index
        self._advance()
        if self.index == before:
            self.message = Text("No other unlabelled example to go to.", style="yellow")
        else:
            self.message = Text(f"{self.sample[before]} skipped (no label).", style="dim")
        self._show()

    def action_move(self, delta: int) -> None:
        self.index = max(0, min(len(self.sample) - 1, self.index + delta))
        self.message = Text("")
        self._show()

    def action_withdraw(self) -> None:
        ex = self.current
        if ex is None or ex not in self.labels:
            self.message = Text("This example has no label to withdraw.", style="yellow")
            self._show()
            return
        try:
            add_review(self.run_dir, self.checkpoint, ex, WITHDRAWN)
        except OSError as e:
            self.message = Text(f"{ex}: the label was NOT withdrawn ({e})", style="bold red")
            self._show()
            return
        self.labels.pop(ex)
        self.message = Text(f"{ex}: label withdrawn — unlabelled again", style="yellow")
        self._show()
        self.rebuild_verdict()

    def action_add_fix(self) -> None:
        from ..fix_editor import add_fix_from_record

        pair = self.comparison.get(self.current) if getattr(self, "comparison", None) and self.current else None
        add_fix_from_record(self.app, self.run_dir, (pair.right or pair.left) if pair else None)

    # ---- notes ------------------------------------------------------------------------------

    def action_note(self) -> None:
        ex = self.current
        box = self.query_one("#review-note", Input)
        box.value = self.notes.get(ex, (self.labels.get(ex) or {}).get("note", ""))
        box.display = True
        box.focus()

    @on(Input.Submitted, "#review-note")
    def _note_done(self, event: Input.Submitted) -> None:
        ex = self.current
        self._close_note()
        if ex is None:
            return
        note = event.value.strip()
        entry = self.labels.get(ex)
        if entry and note != entry.get("note", ""):
            self._save(ex, entry["label"], note)  # relabelling is appending: the latest line wins
        elif not entry:
            self.notes[ex] = note
            self._show()

    def _close_note(self) -> None:
        box = self.query_one("#review-note", Input)
        box.display = False
        self.query_one(ExampleDetail).focus()

    def action_back(self) -> None:
        box = self.query_one("#review-note", Input)
        if box.display:
            self._close_note()
            return
        self.app.pop_screen()
