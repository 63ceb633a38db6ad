"""Per-example details of one checkpoint: which examples it fixed, broke or still fails, and why.

Left, the list (filtered by bucket, tag and search words; tui/example_filters.py does the pairing);
right, the selected example: prompt, reference, then the two outputs side by side (the base's or
another checkpoint's, and this checkpoint's), each with its checks and latency. ExampleDetail is
also what the review screen shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tunedeck.engine.config.workspace import failures_dir, workspace_of
from tunedeck.engine.gate.example_records import BASE

from ..example_filters import BUCKET_NAMES, FILTERS, MISSING, ExampleComparison, load_comparison
from ..keymap import key_name
from ..widgets.example_detail import BUCKET_STYLE, ExampleDetail, pass_mark, side_title
from ..widgets.filter_input import FilterInput
from ..widgets.list_table import ListTable
from ..worker_failures import RoutesWorkerFailures


class ExamplesScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding(
            "escape",
            "back",
            "Back",
            tooltip="Clear the search if one is applied, else back to the checkpoints",
            id="examples.back",
        ),
        Binding(
            "f",
            "cycle_filter",
            "Filter",
            tooltip="Cycle the bucket filter: regressed, fixed, still failing, all",
            id="examples.filter",
        ),
        Binding(
            "t",
            "cycle_tag",
            "Tag",
            tooltip="Cycle the tag filter through the examples' tags (and all)",
            id="examples.tag",
        ),
        Binding(
            "slash",
            "search",
            "Search",
            key_display="/",
            tooltip="Search id, prompt, reference and both outputs (enter keeps it, esc clears)",
            id="examples.search",
        ),
        Binding(
            "r",
            "review",
            "Review",
            tooltip="Label this checkpoint's sampled failures (review mode)",
            id="examples.review",
        ),
        Binding(
            "a",
            "add_fix",
            "Fix",
            tooltip="Correct this example's answer in $EDITOR and add it to the run's fixes "
            "(<workspace>/fixes/<run>.jsonl; N trains the next run on them)",
            id="examples.add_fix",
        ),
        Binding(
            "F",
            "export_filtered",
            "Export shown",
            show=False,
            tooltip="Write every example the filters show to a JSONL file, for review outside",
            id="examples.export",
        ),
        Binding(
            "1",
            "set_filter('regressed')",
            "Regressed",
            show=False,
            tooltip="Show regressed examples",
            id="examples.regressed",
        ),
        Binding("2", "set_filter('fixed')", "Fixed", show=False, tooltip="Show fixed examples", id="examples.fixed"),
        Binding(
            "3",
            "set_filter('still_failing')",
            "Still failing",
            show=False,
            tooltip="Show examples failing on both sides",
            id="examples.still_failing",
        ),
        Binding("4", "set_filter('all')", "All", show=False, tooltip="Show every example", id="examples.all"),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        """The eval records were read and paired."""

        comparison: ExampleComparison

    def __init__(self, run_dir: Path, checkpoint: int, against: int | str = BASE) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.against = against
        self.comparison: ExampleComparison | None = None
        self.bucket = "all"
        self.tag: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading the eval records…", id="examples-summary")
        yield FilterInput(placeholder="search: words in id, prompt, reference, outputs", id="examples-search")
        with Horizontal(id="examples-body"):
            yield ListTable(id="examples-table")
            yield Static("", id="examples-empty")
            yield ExampleDetail(id="examples-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"Examples: {side_title(self.checkpoint)} vs {side_title(self.against)}"
        self.sub_title = self.run_dir.name
        self.query_one(FilterInput).display = False
        self.query_one("#examples-empty").display = False
        self.query_one(ListTable).focus()
        self.load()

    @work(thread=True, exit_on_error=False, group="examples", exclusive=True, name="read eval records")
    def load(self) -> None:
        self.post_message(self.Loaded(load_comparison(self.run_dir, self.checkpoint, self.against)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if not self.is_mounted:  # closed while the records were read
            return
        comparison = self.comparison = message.comparison
        self.bucket = comparison.default_filter()
        self._show()

    # ---- the list ---------------------------------------------------------------------------

    @property
    def search_words(self) -> str:
        return self.query_one(FilterInput).value.strip()

    def _columns(self) -> tuple[tuple[str, str], ...]:
        # the pass marks are headed by the step alone: the detail pane gets the width
        return (
            ("id", "Example"),
            ("bucket", "Bucket"),
            ("tags", "Tags"),
            ("left", str(self.against)),
            ("right", str(self.checkpoint)),
        )

    def _show(self) -> None:
        comp = self.comparison
        if comp is None:
            return
        pairs = [] if comp.unevaluated else comp.select(self.bucket, self.tag, self.search_words)
        self.query_one("#examples-summary", Static).update(self._summary(comp, len(pairs)))
        table = self.query_one(ListTable)
        table.show(
            self._columns(),
            [
                (
                    p.id,
                    {
                        "id": p.id,
                        "bucket": Text(BUCKET_NAMES.get(p.bucket, p.bucket), style=BUCKET_STYLE.get(p.bucket, "")),
                        "tags": ", ".join(p.tags),
                        "left": pass_mark((p.left or {}).get("pass"), p.left is not None),
                        "right": pass_mark((p.right or {}).get("pass"), p.right is not None),
                    },
                )
                for p in pairs
            ],
        )
        empty = self.query_one("#examples-empty", Static)
        if comp.unevaluated:
            empty.update(
                f"No eval results for {comp.unevaluated} in {self.run_dir.name}/evals.\n\n"
                f"Run `tunedeck eval {self.run_dir.name}` first."
            )
        elif not pairs:
            f, t = key_name(self.app, "examples.filter", "f"), key_name(self.app, "examples.tag", "t")
            empty.update(
                "No example matches these filters.\n\n"
                f"{f} or 1-4 change the bucket, {t} the tag; esc clears the search."
            )
        empty.display = not pairs
        table.display = bool(pairs)
        self.query_one(ExampleDetail).display = bool(pairs)
        self._show_selected()

    def _summary(self, comp: ExampleComparison, shown: int) -> Text:
        """ "regressed 1 · fixed 3 · still failing 17 · all 50", the active bucket highlighted, then the other
        filters."""
        counts = comp.counts()
        out = Text()
        out.append(f"{side_title(self.checkpoint)} vs {side_title(self.against)}: ", style="bold")
        if comp.unevaluated:
            return out.append(f"{comp.unevaluated} has not been evaluated", style="yellow")
        names = list(FILTERS) + [extra for extra in ("unscored", MISSING) if counts[extra]]
        for i, name in enumerate(names):
            if i:
                out.append(" · ", style="dim")
            out.append(f"{BUCKET_NAMES[name]} {counts[name]}", style="reverse bold" if name == self.bucket else "")
        out.append(f"\nshowing {shown}: {BUCKET_NAMES[self.bucket]}", style="dim")
        out.append(f" · tag {self.tag or 'any'}", style="dim")
        if self.search_words:
            out.append(f" · search “{self.search_words}”", style="dim")
        return out

    @on(DataTable.RowHighlighted)
    def _row_moved(self) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        table = self.query_one(ListTable)
        key = table.selected_key if table.display else None
        pair = self.comparison.get(key) if self.comparison and key else None
        self.query_one(ExampleDetail).show(pair, self.against, self.checkpoint)

    # ---- filters ----------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        self.bucket = FILTERS[(FILTERS.index(self.bucket) + 1) % len(FILTERS)] if self.bucket in FILTERS else FILTERS[0]
        self._show()

    def action_set_filter(self, bucket: str) -> None:
        self.bucket = bucket
        self._show()

    def action_cycle_tag(self) -> None:
        if self.comparison is None:
            return
        choices: list[str | None] = [None, *self.comparison.tags()]
        self.tag = choices[(choices.index(self.tag) + 1) % len(choices)] if self.tag in choices else None
        self._show()

    def action_search(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    @on(FilterInput.Changed)
    def _search_changed(self) -> None:
        self._show()

    @on(FilterInput.Submitted)
    def _search_done(self) -> None:
        self.query_one(ListTable).focus()

    @on(FilterInput.Cleared)
    def _search_cleared(self) -> None:
        self._clear_search()

    def _clear_search(self) -> None:
        box = self.query_one(FilterInput)
        box.value = ""
        box.display = False
        self.query_one(ListTable).focus()
        self._show()

    # ---- navigation -------------------------------------------------------------------------

    def action_back(self) -> None:
        box = self.query_one(FilterInput)
        if box.display or box.value:
            self._clear_search()
            return
        self.app.pop_screen()

    def action_review(self) -> None:
        from .review import ReviewScreen

        self.app.push_screen(ReviewScreen(self.run_dir, self.checkpoint))

    # ---- from failures to data --------------------------------------------------------------

    def selected_pair(self):
        table = self.query_one(ListTable)
        key = table.selected_key if table.display else None
        return self.comparison.get(key) if self.comparison and key else None

    def action_add_fix(self) -> None:
        from ..fix_editor import add_fix_from_record

        pair = self.selected_pair()
        add_fix_from_record(self.app, self.run_dir, (pair.right or pair.left) if pair else None)

    def shown_examples(self) -> list[dict]:
        """The examples the filters show, each with both sides' outputs and checks."""
        from tunedeck.engine.gate.example_records import label

        comp = self.comparison
        if comp is None or comp.unevaluated:
            return []
        out = []
        for p in comp.select(self.bucket, self.tag, self.search_words):
            ex = p.shown
            sides = {}
            for side, rec in (("left", p.left), ("right", p.right)):
                sides[side] = (
                    None
                    if rec is None
                    else {
                        "checkpoint": label(self.against if side == "left" else self.checkpoint),
                        **{k: rec.get(k) for k in ("output", "pass", "format_pass", "checks", "latency_ms")},
                    }
                )
            out.append(
                {
                    "id": p.id,
                    "bucket": p.bucket,
                    "tags": list(p.tags),
                    "set": ex.get("set"),
                    "prompt": ex.get("prompt"),
                    "reference": ex.get("reference"),
                    **sides,
                }
            )
        return out

    def action_export_filtered(self) -> None:
        from tunedeck.engine.gate.example_records import label

        from .new_run import AskName

        examples = self.shown_examples()
        if not examples:
            self.notify("No example to export: the filters show none.", severity="warning")
            return
        default = (
            failures_dir(workspace_of(self.run_dir))
            / f"{self.run_dir.name}-{label(self.checkpoint)}-{self.bucket}.jsonl"
        )

        def chosen(path: str | None) -> None:
            if not path:
                return
            from tunedeck.engine.data.fixes import export_examples

            try:
                written = export_examples(Path(path), examples)
            except OSError as e:
                self.notify(f"Cannot write {path}: {e.strerror or e}", severity="error")
                return
            self.notify(f"Wrote {len(examples)} examples ({BUCKET_NAMES[self.bucket]}) to {written}", title="Exported")

        self.app.push_screen(AskName(f"Write the {len(examples)} examples shown to (JSONL):", str(default)), chosen)
