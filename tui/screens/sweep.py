"""A sweep's screen: its runs ranked by the gate, the sentence that names the winner, and every run's
loss curves overlaid.

The ranking is the engine's (engine/scheduling/sweep.py, the same as `tunedeck sweep show`); it is read in a
worker thread, again every few seconds while any of the sweep's runs is queued or running.
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
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_change, fmt_score_percent

from ..engine_client import stop_sweep
from ..formatting import truncate
from ..gate_view import verdict_style, verdict_word
from ..messages import RunActionDone
from ..plot_ticks import set_step_axes
from ..run_states import state_label, state_style
from ..stop_questions import sweep_stop_question
from ..widgets.list_table import ListTable
from ..widgets.safe_plot import SafePlot
from ..worker_failures import RoutesWorkerFailures

# one colour per run, in rank order; the ninth run reuses the first colour with another marker
PALETTE = ("cyan", "magenta", "green", "orange", "blue", "red", "yellow", "white")
RICH_COLOR = {"orange": "dark_orange"}
REFRESH_S = 3.0


@dataclass
class SweepView:
    name: str
    keys: list[str]  # the swept keys whose values differ
    labels: dict[str, str]  # key -> short column name
    raw: dict[str, dict]  # run id -> the values as given on the command line
    ranked: list[dict]
    sentence: str
    curves: dict[str, tuple]  # run id -> (train MetricSeries, eval MetricSeries)
    problem: str | None = None

    @property
    def live(self) -> bool:
        return any(r["state"] in C.LIVE_STATES for r in self.ranked)


def load_view(workspace: Path, name: str, keep_going=lambda: True) -> SweepView:
    from tunedeck.engine.config.workspace import runs_root
    from tunedeck.engine.scheduling.sweep import (
        SweepError,
        differing_keys,
        load_record,
        rank_runs,
        short_keys,
        verdict_sentence,
    )

    from ..run_comparison import read_loss_history

    try:
        record = load_record(workspace, name)
    except SweepError as e:
        return SweepView(name, [], {}, {}, [], "", {}, problem=str(e))
    ranked = rank_runs(workspace, record)
    keys = differing_keys(record)
    curves = {}
    for r in ranked:
        run_dir = runs_root(workspace) / r["id"]
        if run_dir.is_dir() and keep_going():
            history = read_loss_history(run_dir, keep_going)
            curves[r["id"]] = (history.train_loss, history.eval_loss)
    return SweepView(
        name,
        keys,
        short_keys(keys),
        {r.id: r.params for r in record.runs},
        ranked,
        verdict_sentence(record, ranked),
        curves,
    )


def params_label(view: SweepView, run_id: str) -> str:
    values = view.raw.get(run_id, {})
    return ", ".join(f"{view.labels[k]}={values.get(k, '-')}" for k in view.keys)


class SweepLossPlot(SafePlot):
    """Train loss (lines) and eval loss (dots) of every run of the sweep, one colour per run."""

    ALLOW_MAXIMIZE = True
    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: SweepView | None = None

    def show(self, view: SweepView) -> None:
        self.view = view
        parts: list = ["Loss  "]
        for i, r in enumerate(view.ranked):
            color = PALETTE[i % len(PALETTE)]
            parts += [(f"━{i + 1} ", RICH_COLOR.get(color, color)), f"{truncate(params_label(view, r['id']), 28)}  "]
        self.border_title = Text.assemble(*parts)
        self.refresh()

    def draw(self) -> str | None:
        v = self.view
        if v is None:
            return "reading the sweep's runs…"
        n = max(16, 2 * self.size.width)
        xs: list[float] = []
        ys: list[float] = []
        for i, r in enumerate(v.ranked):
            if r["id"] not in v.curves:
                continue
            train, evals = v.curves[r["id"]]
            color = PALETTE[i % len(PALETTE)]
            tx, ty = train.points(n)
            ex, ey = evals.points(n)
            if tx:
                self.plt.plot(tx, ty, marker="hd" if i < len(PALETTE) else "dot", color=color)
            if ex:
                self.plt.scatter(ex, ey, marker="●", color=color)
            xs += tx + ex
            ys += ty + ey
        if not xs:
            return "no run of the sweep has logged a loss yet"
        set_step_axes(self.plt, xs, ys, self.size.width, self.size.height)
        return None


def _score(value, delta) -> str:
    return "-" if value is None else fmt_score_percent(value) + fmt_change(delta)


def row_cells(view: SweepView, r: dict) -> dict:
    state = state_label(r["state"]) + (f" #{r['queue_position']}" if r.get("queue_position") else "")
    ck = r["best_checkpoint"] if r["best_checkpoint"] is not None else r["checkpoint"]
    ci = r.get("task_ci")
    cells = {
        "rank": str(r["rank"]),
        **{k: str(view.raw.get(r["id"], {}).get(k, "-")) for k in view.keys},
        "state": Text(state, style=state_style(r["state"])),
        "checkpoint": f"checkpoint-{ck}" if ck is not None else "-",
        "task": _score(r["task"], r["task_vs_base"]) + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""),
        "format": _score(r["format"], r["format_vs_base"]),
        "safety": _score(r["safety"], r["safety_vs_base"]),
        "p95": "-" if r["latency_p95_ms"] is None else f"{r['latency_p95_ms']:.0f} ms",
        "verdict": Text(verdict_word(r["verdict"]) or "-", style=verdict_style(r["verdict"])),
        "run": r["id"],
    }
    return cells


class SweepScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs", id="sweep.back"),
        Binding(
            "s",
            "stop",
            "Stop sweep",
            tooltip="Cancel the sweep's queued runs and stop its running one (asks first)",
            id="sweep.stop",
        ),
        Binding("f5", "reload", "Reload", tooltip="Read the sweep's runs again", id="sweep.reload"),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        view: SweepView

    def __init__(self, workspace: Path, name: str) -> None:
        super().__init__()
        self.workspace = Path(workspace)
        self.sweep_name = name
        self.view: SweepView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the sweep…", id="sweep-sentence", markup=False)
        yield ListTable(id="sweep-table")
        yield SweepLossPlot(id="sweep-plot")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"Sweep {self.sweep_name}"
        self.sub_title = str(self.workspace)
        self.query_one("#sweep-table").border_title = "Runs ranked by the gate (enter opens one)"
        self.query_one("#sweep-table", ListTable).focus()
        self.load()
        self.set_interval(REFRESH_S, self._refresh_if_live)

    def _refresh_if_live(self) -> None:
        if self.view is not None and self.view.live and self.app.screen is self:
            self.load()

    @work(thread=True, exit_on_error=False, group="sweep", exclusive=True, name="read sweep")
    def load(self) -> None:
        worker = get_current_worker()
        view = load_view(self.workspace, self.sweep_name, keep_going=lambda: not worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(self.Loaded(view))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        v = self.view = message.view
        sentence = self.query_one("#sweep-sentence", Static)
        if v.problem:
            sentence.update(Text(v.problem, style="red"))
            return
        sentence.update(v.sentence)
        columns = (
            ("rank", "#"),
            *[(k, v.labels[k]) for k in v.keys],
            ("state", "State"),
            ("checkpoint", "Checkpoint"),
            ("task", "Task (95% CI vs base)"),
            ("format", "Format"),
            ("safety", "Safety"),
            ("p95", "p95"),
            ("verdict", "Verdict"),
            ("run", "Run"),
        )
        self.query_one("#sweep-table", ListTable).show(columns, [(r["id"], row_cells(v, r)) for r in v.ranked])
        self.query_one(SweepLossPlot).show(v)
        self.sub_title = f"{len(v.ranked)} runs over {', '.join(v.keys)}"
        self.refresh_bindings()

    @on(DataTable.RowSelected)
    def _open_run(self, event: DataTable.RowSelected) -> None:
        from tunedeck.engine.config.workspace import runs_root

        rid = self.query_one("#sweep-table", ListTable).selected_key
        if rid and (runs_root(self.workspace) / rid).is_dir():
            self.app.open_monitor(runs_root(self.workspace) / rid)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return (self.view is not None and self.view.live) or None
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()

    def action_stop(self) -> None:
        if self.view is None or not self.view.live:
            return
        live = [r for r in self.view.ranked if r["state"] in C.LIVE_STATES]
        queued = sum(1 for r in live if r["state"] == C.QUEUED)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send_sweep_stop()

        self.app.push_screen(sweep_stop_question(self.sweep_name, queued, len(live) - queued), confirmed)

    @work(thread=True, exit_on_error=False, group="sweep-stop", name="stop sweep")
    def send_sweep_stop(self) -> None:
        self.post_message(stop_sweep(self.workspace, self.sweep_name))

    def on_run_action_done(self, message: RunActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        self.load()
