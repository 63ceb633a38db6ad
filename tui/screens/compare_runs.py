"""Compare two runs: their loss curves overlaid, the profile keys that differ, and their dataset
records and best gate results side by side.

Both runs are read in a worker thread (tui/run_comparison.py), so a long event log never blocks
keys; the screen shows "reading…" until the comparison arrives, then only displays it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from tunedeck.engine.run.formatting import fmt_loss, fmt_percent

from ..formatting import truncate
from ..gate_view import verdict_style, verdict_word
from ..plot_ticks import set_step_axes
from ..run_comparison import SAME_DATA, BestGate, RunComparison, RunSide, compare_runs, display_value
from ..widgets.list_table import ListTable
from ..widgets.safe_plot import SafePlot
from ..worker_failures import RoutesWorkerFailures

# (train, eval) colours of run A and run B: four colours, so every curve can be told apart.
RUN_COLORS = (("cyan", "green"), ("magenta", "orange"))
RICH_COLOR = {"orange": "dark_orange"}  # plotext colour names that rich spells differently
VALUE_WIDTH = 40  # a long dataset path or model id is cut so both columns stay on screen


class CompareLossPlot(SafePlot):
    """Train (lines) and eval (dots) loss of both runs against step, each downsampled to the width."""

    ALLOW_MAXIMIZE = True
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.comparison: RunComparison | None = None

    def show(self, comparison: RunComparison) -> None:
        self.comparison = comparison
        self.border_title = legend(comparison)
        self.refresh()

    def draw(self) -> str | None:
        c = self.comparison
        if c is None:
            return "reading both runs' event logs…"
        n = max(16, 2 * self.size.width)
        xs: list[float] = []
        ys: list[float] = []
        for side, (train_color, eval_color) in zip((c.a, c.b), RUN_COLORS):
            tx, ty = side.train_loss.points(n)
            ex, ey = side.eval_loss.points(n)
            if tx:
                self.plt.plot(tx, ty, marker="hd", color=train_color)
            if ex:
                self.plt.scatter(ex, ey, marker="●", color=eval_color)
            xs += tx + ex
            ys += ty + ey
        if not xs:
            return "neither run has logged a loss yet"
        set_step_axes(self.plt, xs, ys, self.size.width, self.size.height)
        return None


def legend(c: RunComparison) -> Text:
    parts: list[str | tuple[str, str]] = ["Loss  "]
    for side, (train_color, eval_color) in zip((c.a, c.b), RUN_COLORS):
        parts += [
            ("━ ", RICH_COLOR.get(train_color, train_color)),
            f"{side.label} train ",
            ("● ", RICH_COLOR.get(eval_color, eval_color)),
            "eval   ",
        ]
    return Text.assemble(*parts)


# ---- the side-by-side block -------------------------------------------------------------------

Cell = Text | str


def dataset_cells(side: RunSide) -> dict[str, Cell]:
    r = side.record
    if r is None:
        return {"path": Text("run.toml unreadable", style="dim"), "fingerprint": "-", "rows": "-"}
    path = truncate(r.dataset_path or "-", VALUE_WIDTH) + (f" ({r.dataset_format})" if r.dataset_format else "")
    return {
        "path": path,
        "fingerprint": r.dataset_fingerprint or "-",
        "rows": f"{r.rows} ({r.train_rows} train / {r.eval_rows} eval)",
    }


def gate_cells(gate: BestGate | None) -> dict[str, Cell]:
    if gate is None:
        return {"gate": Text("no gate results", style="dim"), "scores": "-", "p95": "-", "chosen": "-"}
    best = f"checkpoint-{gate.checkpoint}" if gate.checkpoint is not None else "none passed"
    p95 = gate.latency_p95_ms
    return {
        "gate": Text.assemble((verdict_word(gate.verdict) or "-", verdict_style(gate.verdict)), f", best {best}"),
        "scores": " / ".join(fmt_percent(x) for x in (gate.task, gate.format, gate.safety)),
        "p95": f"{p95:.0f} ms" if p95 is not None else "-",
        "chosen": f"checkpoint-{gate.chosen}" if gate.chosen is not None else "-",
    }


RECORD_ROWS = (
    ("path", "dataset"),
    ("fingerprint", "fingerprint"),
    ("rows", "rows"),
    ("best_eval", "best eval loss"),
    ("gate", "gate"),
    ("scores", "task/format/safety"),
    ("p95", "p95 latency"),
    ("chosen", "chosen to ship"),
)


def side_cells(side: RunSide) -> dict[str, Cell]:
    best = side.best_eval
    return {
        **dataset_cells(side),
        **gate_cells(side.gate),
        "best_eval": f"{fmt_loss(best.loss)} @ {best.step}" if best else "-",
    }


def notes(c: RunComparison) -> Text:
    """The data verdict and each run's gate sentence, which are too long for a table cell."""
    text = Text("Data: ")
    text.append(c.data_match, style="green" if c.data_match == SAME_DATA else "yellow")
    if c.data_changes and c.data_match != SAME_DATA:
        text.append(f" (from {c.a.label} to {c.b.label}: " + "; ".join(c.data_changes) + ")")
    for side in (c.a, c.b):
        text.append(f"\nGate {side.label}: ", style="bold")
        text.append((side.gate.sentence or "-") if side.gate else "no gate results")
    return text


def aligned(tables: list[list[tuple[str, dict[str, Cell]]]], columns: tuple[str, ...]) -> None:
    """Pad the cells of `columns` to one width across the tables, so that stacked tables line up
    and run A's values read down a single column."""
    for col in columns:
        width = max((cell_len(_plain(cells[col])) for rows in tables for _, cells in rows), default=0)
        for rows in tables:
            for _, cells in rows:
                cells[col] = _pad(cells[col], width)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _pad(cell: Cell, width: int) -> Cell:
    if isinstance(cell, Text):
        padded = cell.copy()
        padded.pad_right(width - cell_len(cell.plain))
        return padded
    return cell + " " * (width - cell_len(cell))


class CompareRunsScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs", id="compare.back"),
        Binding("f5", "reload", "Reload", tooltip="Read both runs again", id="compare.reload"),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        comparison: RunComparison

    def __init__(self, run_a: Path, run_b: Path) -> None:
        super().__init__()
        self.run_a, self.run_b = Path(run_a), Path(run_b)
        self.comparison: RunComparison | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield CompareLossPlot(id="compare-plot")
        with Vertical(id="compare-profile-pane"):
            yield Static("", id="compare-profile-note")
            yield ListTable(id="compare-profile")
        yield ListTable(id="compare-records")
        yield Static("", id="compare-notes")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Compare runs"
        self.sub_title = f"{self.run_a.name} vs {self.run_b.name}"
        self.query_one("#compare-profile-pane").border_title = "Profile differences"
        self.query_one("#compare-records").border_title = "Dataset and best gate result"
        self.query_one("#compare-profile", ListTable).focus()
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="compare-runs", exclusive=True, name="compare runs")
    def load(self) -> None:
        worker = get_current_worker()
        comparison = compare_runs(self.run_a, self.run_b, keep_going=lambda: not worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(self.Loaded(comparison))  # a message, so a closed screen simply drops it

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        c = self.comparison = message.comparison
        a, b = c.a.label, c.b.label
        self.sub_title = f"{a} vs {b}"
        self.query_one(CompareLossPlot).show(c)

        profile_rows: list[tuple[str, dict[str, Cell]]] = [
            (
                d.key,
                {
                    "key": d.key,
                    "a": truncate(display_value(d.a), VALUE_WIDTH),
                    "b": truncate(display_value(d.b), VALUE_WIDTH),
                },
            )
            for d in c.differences
        ]
        cells_a, cells_b = side_cells(c.a), side_cells(c.b)
        record_rows: list[tuple[str, dict[str, Cell]]] = [
            (key, {"key": label, "a": cells_a[key], "b": cells_b[key]}) for key, label in RECORD_ROWS
        ]
        aligned([profile_rows, record_rows], ("key", "a"))
        columns = (("key", ""), ("a", a), ("b", b))

        profile = self.query_one("#compare-profile", ListTable)
        note = self.query_one("#compare-profile-note", Static)
        problem = c.profile_problem
        if problem:
            note.update(Text(problem, style="yellow"))
        elif not c.differences:
            note.update("The two profiles are identical.")
        note.display = bool(problem or not c.differences)
        profile.display = bool(c.differences)
        profile.show(columns, profile_rows)
        self.query_one("#compare-profile-pane").border_title = f"Profile differences ({len(c.differences)})"
        self.query_one("#compare-records", ListTable).show(columns, record_rows)
        self.query_one("#compare-notes", Static).update(notes(c))
