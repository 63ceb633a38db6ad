"""A run's checkpoints as candidates: the base model and every checkpoint with its gate results.

Above the table, the gate's best-checkpoint sentence; below it, the selected row's reasons in full.
From here a person evaluates (the work runs in a detached `tunedeck eval` process that outlives the
app), opens the per-example details, reviews sampled failures, marks the checkpoint to ship, tries
prompts in the playground, exports, deletes, or compares two checkpoints example by example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import gate_json_path
from tunedeck.engine.run.store import is_locked, read_effective_status

from ..checkpoint_table import CheckpointRow, CheckpointTable, load_checkpoint_table
from ..checkpoint_text import columns, gate_heading, row_detail, table_cells
from ..engine_client import rebuild_gate
from ..eval_process import EvalProcess, EvalReading
from ..widgets.list_table import ListTable
from ..worker_failures import RoutesWorkerFailures
from .checkpoint_keys import CHECKPOINTS_BINDINGS
from .confirm import ConfirmScreen


class CheckpointsScreen(RoutesWorkerFailures, Screen):
    BINDINGS = list(CHECKPOINTS_BINDINGS)

    @dataclass(eq=False)
    class Loaded(Message):
        """The checkpoints were read (`table` None: unchanged since `stamp`), with the evaluation's news."""

        table: CheckpointTable | None
        reading: EvalReading
        stamp: tuple

    @dataclass(eq=False)
    class ActionDone(Message):
        """A choice, deletion or re-judging finished: what to tell the user, and whether to read the table again."""

        text: str
        severity: str = "information"
        title: str = ""
        timeout: float | None = None
        reload: bool = False

    @dataclass(eq=False)
    class EvalStarted(Message):
        """The detached `tunedeck eval` started: its pid, and what it evaluates in words."""

        pid: int
        what: str

    def __init__(self, run_dir: Path, refresh_every_s: float = 1.0) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.refresh_every_s = refresh_every_s
        self.table: CheckpointTable | None = None
        self.compare_mark: str | None = None
        self.evaluation = EvalProcess(self.run_dir)
        self._stamp: tuple | None = None

    @property
    def eval_pid(self) -> int | None:
        """The pid of an evaluation this screen started, while it runs."""
        return self.evaluation.pid

    @property
    def evaluating(self) -> bool:
        """An evaluation is running, started here or elsewhere."""
        return self.evaluation.running

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="gate-sentence")
        yield Static("", id="eval-progress", classes="idle")
        yield ListTable(id="checkpoints-table")
        yield Static("", id="row-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Checkpoints"
        self.sub_title = self.run_dir.name
        self.evaluation.skip_history()
        self.query_one(ListTable).focus()
        self.reload()
        self.set_interval(self.refresh_every_s, self.poll)

    def on_screen_resume(self) -> None:
        self.reload()  # a review label or a choice made on another screen shows at once

    # ---- reading ----------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.reload()

    def poll(self) -> None:
        self.reload(quiet=True)

    @work(thread=True, exit_on_error=False, group="checkpoints", exclusive=True, name="read checkpoints")
    def reload(self, quiet: bool = False) -> None:
        reading = self.evaluation.read()
        gate_path = gate_json_path(self.run_dir)
        ckpt_dir = self.run_dir / C.CHECKPOINTS_DIR
        stamp = tuple(_stat(p) for p in (gate_path, ckpt_dir)) + (
            len(os.listdir(ckpt_dir)) if ckpt_dir.is_dir() else 0,
        )
        table = (
            None if quiet and stamp == self._stamp and self.table is not None else load_checkpoint_table(self.run_dir)
        )
        self.post_message(self.Loaded(table, reading, stamp))

    @on(Loaded)
    def _update(self, message: Loaded) -> None:
        if not self.is_mounted:  # closed while the files were read
            return
        self._stamp = message.stamp
        if self.evaluation.apply(message.reading):
            self._eval_ended()
        running = self.evaluation.running
        progress = self.query_one("#eval-progress", Static)
        progress.set_class(not running, "idle")
        if running:
            progress.update(Text(self.evaluation.progress.describe()))
        table = message.table
        if table is not None:
            self.table = table
            self._show_table()

    def _eval_ended(self) -> None:
        title, text, failed = self.evaluation.outcome()
        if failed:
            self.notify(text, title=title, severity="error", timeout=15)
        else:
            self.notify(text, title=title, timeout=8)
        self.reload()

    def _show_table(self) -> None:
        table = self.table
        assert table is not None
        self.query_one(ListTable).show(columns(table), [(r.key, table_cells(r, self.compare_mark)) for r in table.rows])
        self.query_one("#gate-sentence", Static).update(gate_heading(table))
        self._show_detail()

    def on_data_table_row_selected(self, _event) -> None:
        self.action_details()  # enter on the table: the table takes the key and says so with this message

    def on_data_table_row_highlighted(self, _event) -> None:
        if self.table is not None:
            self._show_detail()

    def _show_detail(self) -> None:
        self.query_one("#row-detail", Static).update(row_detail(self.selected, self.table))

    @property
    def selected(self) -> CheckpointRow | None:
        key = self.query_one(ListTable).selected_key
        return self.table.row(key) if self.table is not None and key is not None else None

    def _checkpoint(self, *, evaluated: bool = False, on_disk: bool = False) -> CheckpointRow | None:
        """The selected checkpoint row, or None after telling the user why it will not do."""
        row = self.selected
        if row is None or row.step is None:
            self.notify("Select a checkpoint row (the base model is the baseline).", severity="warning")
            return None
        if on_disk and (not row.present or not row.complete):
            why = "was deleted" if not row.present else "is incomplete (a save cut short)"
            self.notify(f"{row.label} {why}.", severity="warning")
            return None
        if evaluated and not row.evaluated:
            self.notify(f"{row.label} has no gate results yet: press e to evaluate it.", severity="warning")
            return None
        return row

    # ---- actions ----------------------------------------------------------------------------

    def action_next_run(self) -> None:
        from ..next_run import open_next_run

        open_next_run(self.app, self.run_dir)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_details(self) -> None:
        row = self._checkpoint(evaluated=True)
        if row is not None:
            from .examples import ExamplesScreen

            self.app.push_screen(ExamplesScreen(self.run_dir, row.step))

    def action_review(self) -> None:
        row = self._checkpoint(evaluated=True)
        if row is not None:
            from .review import ReviewScreen

            self.app.push_screen(ReviewScreen(self.run_dir, row.step))

    def action_compare(self) -> None:
        row = self._checkpoint(evaluated=True)
        if row is None:
            return
        if self.compare_mark is None or self.compare_mark == row.key:
            self.compare_mark = None if self.compare_mark == row.key else row.key
            if self.compare_mark:
                self.notify(f"{row.label} marked A: press c on another checkpoint to compare.")
            self._show_table()
            return
        from .examples import ExamplesScreen

        against = int(self.compare_mark)
        self.compare_mark = None
        self._show_table()
        self.app.push_screen(ExamplesScreen(self.run_dir, row.step, against=against))

    def action_playground(self) -> None:
        row = self._checkpoint(on_disk=True)
        if row is not None:
            from .playground import PlaygroundScreen

            self.app.push_screen(PlaygroundScreen(self.run_dir, row.step))

    def action_export(self) -> None:
        row = self._checkpoint(on_disk=True)
        if row is not None:
            from .export_dialog import ExportScreen

            self.app.push_screen(ExportScreen(self.run_dir, row.step, workspace=getattr(self.app, "workspace", None)))

    def action_choose(self) -> None:
        row = self._checkpoint(evaluated=True)
        if row is not None:
            self.set_chosen(None if row.chosen else row.step)

    @work(thread=True, exit_on_error=False, group="checkpoint-action", name="choose checkpoint")
    def set_chosen(self, step: int | None) -> None:
        done, error = rebuild_gate(self.run_dir, step, choosing=True)  # the engine writes gate.json
        if error:
            self.post_message(self.ActionDone(error, severity="error"))
            return
        text = f"checkpoint-{step} is chosen to ship." if step is not None else "No checkpoint is chosen now."
        if not done:
            text += " An engine is working on this run: the choice shows once it records it."
        self.post_message(self.ActionDone(text, reload=True))

    def action_delete(self) -> None:
        from tunedeck.engine.gate.checkpoint_removal import protected_steps

        row = self._checkpoint()
        if row is None:
            return
        if not row.present:
            self.notify(f"{row.label} is already deleted.", severity="warning")
            return
        why = protected_steps(self.run_dir).get(row.step)
        if why:
            self.notify(f"{row.label} is kept: {why}.", severity="error")
            return
        size = _folder_size(self.run_dir / C.CHECKPOINTS_DIR / row.label)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.delete(row.step)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {row.label}?",
                f"This removes its folder ({size / 1e6:.1f} MB) for good. Its gate results stay in the table.",
                danger=True,
            ),
            confirmed,
        )

    @work(thread=True, exit_on_error=False, group="checkpoint-action", name="delete checkpoint")
    def delete(self, step: int) -> None:
        from tunedeck.engine.gate.checkpoint_removal import CheckpointProtected, delete_checkpoint

        try:
            path = delete_checkpoint(self.run_dir, step)
        except CheckpointProtected as e:
            self.post_message(self.ActionDone(str(e), severity="error"))
            return
        self.post_message(self.ActionDone(f"Deleted {path.name}.", reload=True))

    def action_rules(self) -> None:
        from tunedeck.engine.run.store import engine_owns

        from .gate_rules import GateRulesScreen

        if self.table is None or not self.table.sentence:
            self.notify("The gate has not run yet: press e to evaluate first.", severity="warning")
            return
        if self.evaluating or engine_owns(self.run_dir):
            self.notify("An engine is working on this run; change its rules once it ends.", severity="warning")
            return

        def chosen(overrides: list[str] | None) -> None:
            if overrides:
                self.rejudge(overrides)
            elif overrides is not None:
                self.notify("No rule changed.")

        self.app.push_screen(GateRulesScreen(self.table.rules, self.table.overrides), chosen)

    @work(thread=True, exit_on_error=False, group="checkpoint-action", name="re-judge")
    def rejudge(self, overrides: list[str]) -> None:
        _, error = rebuild_gate(self.run_dir, overrides=overrides)  # the engine re-judges and writes gate.json
        if error:
            self.post_message(self.ActionDone(error, title="Rules not changed", severity="error", timeout=12))
            return
        self.post_message(self.ActionDone(f"Re-judged with {', '.join(overrides)}.", reload=True))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        self.notify(message.text, title=message.title, severity=message.severity, timeout=message.timeout)  # type: ignore[arg-type]
        if message.reload:
            self.reload()

    def action_evaluate(self) -> None:
        row = self.selected
        if row is not None and row.step is None:
            self.action_evaluate_all()
            return
        row = self._checkpoint(on_disk=True)
        if row is not None:
            self._start_eval(str(row.step), row.label)

    def action_evaluate_all(self) -> None:
        self._start_eval("all", "every complete checkpoint")

    def _start_eval(self, which: str, what: str) -> None:
        state = read_effective_status(self.run_dir).state
        if state in C.LIVE_STATES:
            self.notify(
                f"The run is {state}: evaluate once training has ended "
                "(or set gate.when = 'each_checkpoint' to evaluate each checkpoint as it is saved).",
                severity="warning",
            )
            return
        if self.evaluating or is_locked(self.run_dir):
            self.notify(
                "An engine is already working on this run (an evaluation or a resume); wait for it.", severity="warning"
            )
            return
        self.evaluation.restart_progress()
        self.spawn_eval(which, what)

    @work(thread=True, exit_on_error=False, group="checkpoint-action", name="start evaluation")
    def spawn_eval(self, which: str, what: str) -> None:
        self.post_message(self.EvalStarted(self.evaluation.start(which), what))

    @on(EvalStarted)
    def _eval_started(self, message: EvalStarted) -> None:
        self.evaluation.started(message.pid)
        progress = self.query_one("#eval-progress", Static)
        progress.set_class(False, "idle")
        progress.update(Text(self.evaluation.progress.describe()))
        self.notify(f"Evaluating {message.what} (engine pid {message.pid}); it keeps going if you leave the app.")


def _stat(path: Path) -> tuple:
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (0, 0)


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
