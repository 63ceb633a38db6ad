"""A run's checkpoints: step, complete or not, eval loss, gate verdict.

A plain list for now; the checkpoints screen (gate table, per-example review, export) replaces this
module later.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from engine.run_store import Checkpoint, list_checkpoints

from ..formatting import fmt_clock, fmt_loss
from ..gate_results import GateResults, verdict_style
from ..widgets.list_table import ListTable
from ..worker_failures import RoutesWorkerFailures

COLUMNS = (("step", "Step"), ("complete", "Complete"), ("eval", "Eval loss"), ("train", "Train loss"),
           ("gate", "Gate"), ("saved", "Saved"), ("path", "Path"))


class CheckpointListScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the run monitor", id="checkpoints.back"),
        Binding("f5", "reload", "Reload", tooltip="Read the checkpoint folders again", id="checkpoints.reload"),
    ]

    def __init__(self, run_dir: Path, gate: GateResults | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.gate = gate or GateResults()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="checkpoints-summary")
        yield ListTable(id="checkpoints-table")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Checkpoints"
        self.sub_title = self.run_dir.name
        self.query_one(ListTable).focus()
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="checkpoints", exclusive=True, name="list checkpoints")
    def load(self) -> None:
        checkpoints = list_checkpoints(self.run_dir)
        self.app.call_from_thread(self._show, checkpoints)

    def _show(self, checkpoints: list[Checkpoint]) -> None:
        rows = []
        for c in checkpoints:
            verdict = self.gate.verdict_for(c.step)
            rows.append((str(c.step), {
                "step": str(c.step),
                "complete": Text("complete", style="green") if c.complete else Text("INCOMPLETE", style="bold red"),
                "eval": fmt_loss(c.marker.get("eval_loss")),
                "train": fmt_loss(c.marker.get("train_loss")),
                "gate": Text(verdict, style=verdict_style(verdict)) if verdict else Text("-", style="dim"),
                "saved": fmt_clock(c.marker.get("time"), "%m-%d %H:%M:%S"),
                "path": str(c.path.relative_to(self.run_dir)) if c.path.is_relative_to(self.run_dir) else str(c.path),
            }))
        self.query_one(ListTable).show(COLUMNS, rows)
        complete = sum(c.complete for c in checkpoints)
        summary = f"{len(checkpoints)} checkpoints, {complete} complete"
        if len(checkpoints) > complete:
            summary += " — incomplete ones (a save cut short) are never used to resume, evaluate or export"
        if not checkpoints:
            summary = "No checkpoints yet."
        if self.gate.sentence:
            summary += f"\nGate: {self.gate.sentence}"
        self.query_one("#checkpoints-summary", Static).update(Text(summary))
