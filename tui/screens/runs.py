"""The runs screen: every run in the workspace with its live state.

A worker thread scans the run directories (status files only) about once a second while this screen
is showing; the table updates in place. Stop, resume and delete act on the selected run.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from tunedeck.engine.config.workspace import runs_root
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import list_runs
from tunedeck.engine.run.summary import fill_gate_fields, run_row

from ..engine_client import resume, stop, stop_sweep
from ..keymap import key_name
from ..messages import RunActionDone
from ..stop_questions import stop_question, sweep_stop_question
from ..sweep_groups import SweepGroup, group_rows
from ..widgets.filter_input import FilterInput
from ..widgets.runs_table import RunsTable, matches
from ..worker_failures import RoutesWorkerFailures
from .confirm import ConfirmScreen


def scan_workspace(workspace: Path) -> list[dict]:
    """One row per run, newest first; the gate's verdict and scores from evals/gate.json when status has none
    (a run whose engine wrote status.json before it carried gate_scores)."""
    rows = []
    for run_dir in list_runs(workspace):
        try:
            row = run_row(run_dir)
        except Exception as e:  # an unreadable run is listed, not fatal
            row = {
                "id": run_dir.name,
                "name": run_dir.name,
                "state": "unreadable",
                "dir": str(run_dir),
                "message": str(e),
            }
        rows.append(fill_gate_fields(row, run_dir))
    rows.sort(key=lambda r: r["id"], reverse=True)
    return rows


class RunsScreen(RoutesWorkerFailures, Screen):
    TITLE = "Runs"
    BINDINGS = [
        Binding("n", "new_run", "New run", tooltip="Pick a profile, edit it, check the data, launch", id="runs.new"),
        Binding(
            "N",
            "next_run",
            "Next run",
            show=False,
            tooltip="The next run from the selected one: its settings, "
            "its data plus its fixes, what changed shown before launch",
            id="runs.next_run",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            key_display="/",
            tooltip="Filter runs by words in id, name, state, model, method, gate",
            id="runs.filter",
        ),
        Binding(
            "s", "stop", "Stop", tooltip="Stop the selected run (saves a final checkpoint; asks first)", id="runs.stop"
        ),
        Binding(
            "r", "resume", "Resume", tooltip="Resume the selected stopped, crashed or failed run", id="runs.resume"
        ),
        Binding("d", "delete", "Delete", tooltip="Delete the selected run's directory (asks first)", id="runs.delete"),
        # Mark and compare stay out of the footer: at 80 columns it is full, and "? Keys" would be
        # pushed off it. ? and the palette list both, and c with nothing marked explains itself.
        Binding(
            "space",
            "mark",
            "Mark",
            show=False,
            tooltip="Mark or unmark the selected run for comparison",
            id="runs.mark",
        ),
        Binding(
            "c",
            "compare",
            "Compare",
            show=False,
            tooltip="Compare two runs: the marked one with the selected one, or the two marked",
            id="runs.compare",
        ),
        Binding(
            "escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the filter", id="runs.clear_filter"
        ),
        Binding(
            "w",
            "sweep",
            "Sweep",
            show=False,
            tooltip="The sweep: runs ranked by the gate, all loss curves",
            id="runs.sweep",
        ),
    ]

    @dataclass(eq=False)
    class Scanned(Message):
        """The workspace was scanned: one run_row() per run directory."""

        rows: list[dict] = field(default_factory=list)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, type(self))

    def __init__(self, workspace: Path) -> None:
        super().__init__()
        self.workspace = Path(workspace)
        self.rows: list[dict] = []
        self.scanned = False
        self.marked: list[str] = []  # run ids marked for comparison, in marking order (at most two)
        self.expanded: set[str] = set()  # sweeps whose runs are shown under their group row
        self.items: list[dict | SweepGroup] = []  # what the table shows: runs and sweep groups
        self._active = threading.Event()
        self._wake = threading.Event()
        self._workers_stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterInput(placeholder="filter runs: words in id, name, state, model, method, gate", id="filter")
        yield RunsTable(id="runs-table")
        yield Static("", id="runs-empty")
        yield Static("", id="runs-reason", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = str(self.workspace)
        self.query_one("#filter").display = False
        self.query_one(RunsTable).focus()
        self._active.set()
        self.scan_runs()

    def on_unmount(self) -> None:
        self._workers_stop.set()
        self._wake.set()

    def on_screen_suspend(self) -> None:
        self._active.clear()

    def on_screen_resume(self) -> None:
        self._active.set()
        self._wake.set()

    # ---- scanning ---------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="scan-runs", exclusive=True, name="scan runs")
    def scan_runs(self) -> None:
        worker = get_current_worker()
        interval = getattr(self.app, "scan_interval", 1.0)
        while not worker.is_cancelled and not self._workers_stop.is_set():
            if self._active.is_set():
                self.post_message(self.Scanned(scan_workspace(self.workspace)))
            self._wake.wait(interval)
            self._wake.clear()

    def rescan(self) -> None:
        self._wake.set()

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        self.rows = message.rows
        ids = {r["id"] for r in message.rows}
        self.marked = [rid for rid in self.marked if rid in ids]  # a deleted run is no longer marked
        self.scanned = True
        self.app.known_runs = [r["id"] for r in message.rows]
        self._show()

    def _show(self) -> None:
        query = self.query_one(FilterInput).value.strip()
        rows = self.items = group_rows(self.rows, self.expanded, (lambda r: matches(r, query)) if query else None)
        table = self.query_one(RunsTable)
        table.show_rows(rows, dict(zip(self.marked, "AB")))
        empty = self.query_one("#runs-empty", Static)
        if not self.rows:
            empty.update(
                f"No runs in {runs_root(self.workspace)}.\n\n"
                "Press n for a new run, or from a shell:  tunedeck run lora --data FILE "
                "--detach\nor try the one-minute offline demo:  tunedeck demo"
            )
        elif not rows:
            empty.update(f"No run matches “{query}”. Press esc to clear the filter.")
        empty.display = not rows
        table.display = bool(rows)
        self._show_reason()
        self.refresh_bindings()

    def _show_reason(self) -> None:
        """Why the selected run failed or crashed, in one line under the table."""
        row = self.selected if self.query_one(RunsTable).display else None
        why = row.get("message") if row and row.get("state") in (C.FAILED, C.CRASHED, "unreadable") else ""
        reason = self.query_one("#runs-reason", Static)
        reason.update(f"{row['state']}: {why}" if why else "")
        reason.display = bool(why)

    # ---- the selected run -------------------------------------------------------------------

    @property
    def selected(self) -> dict | None:
        rid = self.query_one(RunsTable).selected_id
        return next((r for r in self.rows if r["id"] == rid), None)

    @property
    def selected_group(self) -> SweepGroup | None:
        key = self.query_one(RunsTable).selected_id
        return next((g for g in self.items if isinstance(g, SweepGroup) and g.key == key), None)

    def selected_sweep(self) -> str | None:
        group = self.selected_group
        row = self.selected
        return group.name if group else (row.get("sweep") if row else None)

    @on(DataTable.RowHighlighted)
    def _row_moved(self) -> None:
        self._show_reason()
        self.refresh_bindings()

    @on(DataTable.RowSelected)
    def _open_selected(self, event: DataTable.RowSelected) -> None:
        group = self.selected_group
        if group:  # enter folds and unfolds a sweep
            self.expanded.symmetric_difference_update({group.name})
            self._show()
            return
        row = self.selected
        if row:
            self.app.open_monitor(Path(row["dir"]))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        row = self.selected if self.is_mounted else None
        state = row.get("state") if row else None
        group = self.selected_group if self.is_mounted else None
        if group is not None and action in ("stop", "resume", "delete", "mark"):
            return (action == "stop" and group.live) or None
        if action == "sweep":
            return (self.is_mounted and self.selected_sweep() is not None) or None
        if action == "stop":
            return state in C.LIVE_STATES or None
        if action == "resume":
            return state in C.RESUMABLE_STATES or None
        if action == "delete":
            return (row is not None and state not in C.LIVE_STATES) or None
        return True

    # ---- filter -----------------------------------------------------------------------------

    def action_new_run(self) -> None:
        from .new_run import NewRunScreen  # imported on demand: start-up stays light

        self.app.push_screen(NewRunScreen(self.workspace))

    def action_next_run(self) -> None:
        from ..next_run import open_next_run

        row = self.selected
        if not row or self.selected_group is not None:
            self.notify("Select a run first.", severity="warning")
            return
        open_next_run(self.app, Path(row["dir"]))

    def action_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.focus()

    @on(FilterInput.Changed)
    def _filter_changed(self) -> None:
        self._show()

    @on(FilterInput.Submitted)
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    @on(FilterInput.Cleared)
    def action_clear_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.value = ""
        box.display = False
        self.query_one(RunsTable).focus()
        self._show()

    # ---- actions ----------------------------------------------------------------------------

    def action_stop(self) -> None:
        group = self.selected_group
        if group is not None:
            self._stop_sweep(group)
            return
        row = self.selected
        queued = bool(row) and row.get("state") == C.QUEUED
        if not queued and (not row or row.get("state") not in C.LIVE_STATES):
            self.notify("Only a running run can be stopped.", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send_stop(Path(row["dir"]))

        self.app.push_screen(stop_question(row["id"], queued), confirmed)

    def action_resume(self) -> None:
        row = self.selected
        if not row or row.get("state") not in C.RESUMABLE_STATES:
            self.notify("Only a stopped, crashed or failed run can be resumed.", severity="warning")
            return
        self.resume_run(Path(row["dir"]))

    def action_delete(self) -> None:
        row = self.selected
        if not row:
            return
        if row.get("state") in C.LIVE_STATES:
            self.notify(f"Run {row['id']} is {row['state']}: stop it before deleting it.", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.delete_run(Path(row["dir"]))

        self.app.push_screen(
            ConfirmScreen(
                f"Delete run {row['id']}?",
                f"This removes {row['dir']} with all its checkpoints and evals. It cannot be undone.",
                danger=True,
            ),
            confirmed,
        )

    @work(thread=True, exit_on_error=False, group="run-action", name="stop run")
    def send_stop(self, run_dir: Path) -> None:
        self.post_message(stop(run_dir))

    def _stop_sweep(self, group: SweepGroup) -> None:
        counts = group.states
        running = counts.get(C.RUNNING, 0) + counts.get(C.STOPPING, 0)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send_sweep_stop(group.name)

        self.app.push_screen(sweep_stop_question(group.name, counts.get(C.QUEUED, 0), running), confirmed)

    @work(thread=True, exit_on_error=False, group="run-action", name="stop sweep")
    def send_sweep_stop(self, name: str) -> None:
        self.post_message(stop_sweep(self.workspace, name))

    def action_sweep(self) -> None:
        name = self.selected_sweep()
        if name is None:
            self.notify("Not a sweep: select a sweep's row (or one of its runs).", severity="warning")
            return
        from .sweep import SweepScreen  # imported on demand: start-up stays light

        self.app.push_screen(SweepScreen(self.workspace, name))

    @work(thread=True, exit_on_error=False, group="run-action", name="resume run")
    def resume_run(self, run_dir: Path) -> None:
        self.post_message(resume(run_dir))

    @work(thread=True, exit_on_error=False, group="run-action", name="delete run")
    def delete_run(self, run_dir: Path) -> None:
        root = runs_root(self.workspace).resolve()
        target = run_dir.resolve()
        if target.parent != root:
            self.post_message(RunActionDone(run_dir.name, "delete", False, f"{target} is not a run of this workspace"))
            return
        shutil.rmtree(target)
        self.post_message(RunActionDone(run_dir.name, "delete", True, f"Deleted run {run_dir.name}."))

    def on_run_action_done(self, message: RunActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        self.rescan()

    # ---- compare ----------------------------------------------------------------------------

    def action_mark(self) -> None:
        row = self.selected
        if not row:
            return
        if row["id"] in self.marked:
            self.marked.remove(row["id"])
        else:
            self.marked = (self.marked + [row["id"]])[-2:]  # a third mark replaces the oldest
            if len(self.marked) == 1:
                c = key_name(self.app, "runs.compare", "c")
                self.notify(f"{row['id']} marked A: press {c} on another run to compare them.")
        self._show()

    def compare_pair(self) -> tuple[dict, dict] | None:
        """(A, B): the two marked runs, or the one marked run and the selected one."""
        by_id = {r["id"]: r for r in self.rows}
        marked = [by_id[rid] for rid in self.marked if rid in by_id]
        if len(marked) == 2:
            return marked[0], marked[1]
        row = self.selected
        if len(marked) == 1 and row and row["id"] != marked[0]["id"]:
            return marked[0], row
        if not marked and row and row.get("parent") in by_id:  # nothing marked: a run against its parent
            return by_id[row["parent"]], row
        return None

    def action_compare(self) -> None:
        pair = self.compare_pair()
        if pair is None and self.selected_group is not None:  # a sweep compares all its runs at once
            self.action_sweep()
            return
        if pair is None:
            mark, c = key_name(self.app, "runs.mark", "space"), key_name(self.app, "runs.compare", "c")
            self.notify(f"To compare two runs: mark a run with {mark}, then press {c} on another.", severity="warning")
            return
        from .compare_runs import CompareRunsScreen  # imported on demand: start-up stays light

        self.app.push_screen(CompareRunsScreen(Path(pair[0]["dir"]), Path(pair[1]["dir"])))
