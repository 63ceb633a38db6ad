"""The run monitor: loss curves, learning rate, grad norm and throughput, progress with ETA,
checkpoints, GPU and engine readings, and the tail of the event log, all live.

Two worker threads feed it: one follows the run directory (events from a byte offset, then the
status and checkpoints about once a second) and hands each chunk over only after the previous
one was applied, so a long history never floods the message queue ahead of key presses; the
other reads telemetry about once a second. What changed is drawn in one batch at most every
`refresh_interval` (1 s), the loss plot at most every `plot_interval` (2 s), which keeps the app
near 2% of a core while it follows a busy run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_number, fmt_rate, fmt_sci

from ..engine_client import control, resume
from ..messages import RunActionDone
from ..run_follower import RunFollower, RunUpdate
from ..run_history import RunHistory
from ..stop_questions import stop_question
from ..telemetry_history import TelemetryHistory
from ..telemetry_source import TelemetryReading
from ..throttle import Throttle
from ..widgets.checkpoint_strip import CheckpointStrip
from ..widgets.event_tail import EventTail
from ..widgets.gate_scores import GateScores
from ..widgets.gpu_pane import GpuPane
from ..widgets.live_samples import LiveSamples
from ..widgets.loss_plot import LossPlot
from ..widgets.metric_sparkline import MetricSparkline
from ..widgets.rewards_pane import RewardsPane
from ..widgets.run_progress import RunProgress
from ..worker_failures import RoutesWorkerFailures


def loss_masking_short(run_dir: Path) -> str:
    """What the run's loss covers, in a few words for the header ("" for runs recorded before it was kept)."""
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.run.run_record import load_run_record

    try:
        words = load_run_record(run_dir).loss_masking
    except (ProfileError, OSError):
        return ""
    for start, short in (
        ("assistant replies", "assistant replies"),
        ("completion only", "the completion"),
        ("all tokens", "ALL tokens"),
        ("the chosen and rejected", "the preferred answers"),
        ("the completions", "the completions"),
    ):
        if words.startswith(start):
            return short
    return words[:40]


class RunMonitorScreen(RoutesWorkerFailures, Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs (or restore a zoomed pane)", id="monitor.back"),
        Binding("s", "stop", "Stop", tooltip="Save a checkpoint and stop (asks first)", id="monitor.stop"),
        Binding(
            "c",
            "checkpoint",
            "Save now",
            tooltip="Save a checkpoint at the next step, keep training",
            id="monitor.checkpoint",
        ),
        Binding(
            "e",
            "eval",
            "Eval now",
            tooltip="At the next step: validation loss, a checkpoint, and the eval gate on it",
            id="monitor.eval",
        ),
        Binding("r", "resume", "Resume", tooltip="Resume this stopped, crashed or failed run", id="monitor.resume"),
        Binding(
            "N",
            "next_run",
            "Next run",
            show=False,
            tooltip="The next run from this one: its settings, its data plus "
            "its fixes, what changed shown before launch",
            id="monitor.next_run",
        ),
        Binding(
            "v",
            "earlier_samples",
            "Earlier samples",
            show=False,
            tooltip="Live samples: step back to an earlier evaluation's answers (round to the newest)",
            id="monitor.earlier_samples",
        ),
        Binding(
            "o",
            "checkpoints",
            "Checkpoints",
            tooltip="Checkpoints and the eval gate: scores, verdicts, review, export",
            id="monitor.checkpoints",
        ),
        Binding(
            "m",
            "toggle_smoothing",
            "Smooth",
            tooltip="Smooth the train loss with an EMA (toggle)",
            id="monitor.smoothing",
        ),
        Binding("l", "toggle_log_scale", "Log", tooltip="Log scale for the loss axis (toggle)", id="monitor.log_scale"),
        Binding("z", "zoom", "Zoom", tooltip="Maximise the focused pane, or the loss plot (toggle)", id="monitor.zoom"),
        Binding("1", "focus_pane('loss-plot')", "Focus loss plot", show=False, id="monitor.focus_plot"),
        Binding("2", "focus_pane('side-pane')", "Focus GPU pane", show=False, id="monitor.focus_gpu"),
        Binding("3", "focus_pane('event-tail')", "Focus event log", show=False, id="monitor.focus_events"),
    ]

    @dataclass(eq=False)
    class DataRead(Message):
        """New data from a followed run. Not replaceable: every chunk of events must be applied."""

        run_dir: Path
        update: RunUpdate

    @dataclass(eq=False)
    class TelemetryRead(Message):
        reading: TelemetryReading

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, type(self))

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = RunHistory(self.run_dir)
        self.live = TelemetryHistory()
        self._applied = threading.Event()
        self._workers_stop = threading.Event()  # set on unmount: worker loops wake and end at once
        self._plot_throttle = Throttle(self, "plot_interval", self._draw_plot)
        self._show_throttle = Throttle(self, "refresh_interval", self._show_pending)
        self._pending: set[str] = set()
        self._state_seen: str | None = None

    # ---- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        h = self.history
        yield Header()
        yield RunProgress(h, id="progress")
        yield GateScores(h, id="gate-scores")
        yield Static("", id="overfit-warning", markup=False)
        with Horizontal(id="monitor-body"):
            with Vertical(id="monitor-left"):
                yield LossPlot(h, id="loss-plot")
                yield MetricSparkline("lr", h.learning_rate, fmt_sci, id="spark-lr")
                yield MetricSparkline("grad norm", h.grad_norm, partial(fmt_number, spec=".3f"), id="spark-grad")
                yield MetricSparkline("tokens/s", h.tokens_per_s, fmt_rate, id="spark-tps")
                yield CheckpointStrip(h, id="checkpoint-strip")
            with VerticalScroll(id="side-pane"):
                yield RewardsPane(h.rewards, id="rewards-pane")  # GRPO runs only
                yield GpuPane(self.live, h.recorded, id="gpu-pane")
                yield LiveSamples(id="live-samples")
        yield EventTail(h, id="event-tail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Run monitor"
        masking = loss_masking_short(self.run_dir)
        from tunedeck.engine.run.store import read_written_status

        parent = read_written_status(self.run_dir).parent  # the run this one is the next run from
        self.sub_title = (
            self.run_dir.name + (f" · from {parent}" if parent else "") + (f" · loss on {masking}" if masking else "")
        )
        self.query_one("#overfit-warning").display = False
        self.query_one(LiveSamples).display = False
        self.query_one(RewardsPane).display = False
        self.query_one("#side-pane").border_title = "Engine · GPU"
        self.query_one("#event-tail").border_title = "Events"
        plot = self.query_one(LossPlot)
        plot.update_title()
        plot.focus()
        self.follow_run()
        self.read_telemetry()

    # ---- following the run ------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="follow-run", exclusive=True, name="follow run")
    def follow_run(self) -> None:
        worker = get_current_worker()
        follower = RunFollower(self.run_dir, status_every_s=getattr(self.app, "status_interval", 1.0))
        interval = getattr(self.app, "poll_interval", 0.25)
        while not worker.is_cancelled and not self._workers_stop.is_set():
            update = follower.read()
            if update:
                self._applied.clear()
                self.post_message(self.DataRead(self.run_dir, update))
                while not self._applied.wait(0.5):  # back-pressure: one chunk in flight at a time
                    if worker.is_cancelled or self._workers_stop.is_set():
                        return
            if update.caught_up:
                self._workers_stop.wait(interval)

    def on_unmount(self) -> None:
        self._workers_stop.set()

    @on(DataRead)
    def _data_read(self, message: DataRead) -> None:
        try:
            changed = self.history.apply(message.update)
        finally:
            self._applied.set()
        self._pending |= changed
        self._show_throttle.request()

    def _show_pending(self) -> None:
        changed, self._pending = self._pending, set()
        self._show(changed)

    def _show(self, changed: set[str]) -> None:
        h = self.history
        if changed & {"row", "series"}:
            self.query_one(RunProgress).refresh()
        if "row" in changed and h.state != self._state_seen:
            self._state_seen = h.state
            self.refresh_bindings()
        if "series" in changed:
            for spark in self.query(MetricSparkline):
                spark.refresh()
            self._show_overfitting()
            self._plot_throttle.request()
        if changed & {"checkpoints", "gate", "series"}:
            self.query_one(CheckpointStrip).refresh()
        if "gate" in changed:
            self.query_one(RunProgress).refresh()
            self.query_one(GateScores).sync()
        if "lines" in changed:
            self.query_one(EventTail).sync()
        if changed & {"samples", "telemetry"}:
            self._refresh_gpu_pane()
        if "live" in changed:
            self.query_one(LiveSamples).show(h.live_samples)
        if "rewards" in changed:
            self.query_one(RewardsPane).show()

    def _show_overfitting(self) -> None:
        banner = self.query_one("#overfit-warning", Static)
        warning = self.history.overfitting()
        if warning is None:
            banner.display = False
            return
        banner.update("⚠ " + warning.sentence())
        banner.display = True

    def _draw_plot(self) -> None:
        plot = self.query_one(LossPlot)
        plot.update_title()
        plot.refresh()

    # ---- telemetry --------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="telemetry", exclusive=True, name="read telemetry")
    def read_telemetry(self) -> None:
        worker = get_current_worker()
        source = self.app.telemetry
        interval = getattr(self.app, "telemetry_interval", 1.0)
        while not worker.is_cancelled and not self._workers_stop.is_set():
            reading = source.read(self.history.engine_pid_here())
            self.post_message(self.TelemetryRead(reading))
            self._workers_stop.wait(interval)

    @on(TelemetryRead)
    def _telemetry_read(self, message: TelemetryRead) -> None:
        self.live.add(message.reading)
        self._pending.add("telemetry")  # drawn with the next batch: one screen update a second, not two
        self._show_throttle.request()

    def _refresh_gpu_pane(self) -> None:
        pane = self.query_one(GpuPane)
        # a new layout only when the height it needs differs from the height it has (checked on every
        # telemetry tick, so a layout that was missed is redone a second later)
        pane.refresh(layout=len(pane.lines()) != pane.size.height)

    # ---- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        state = self.history.state if self.history.row else None
        if action == "stop":  # a queued run is cancelled
            return state in (C.RUNNING, C.QUEUED)
        if action in ("checkpoint", "eval"):  # nothing to save or evaluate before training starts
            return state == C.RUNNING
        if action == "resume":
            return state in C.RESUMABLE_STATES
        return True

    def action_back(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        self.app.pop_screen()

    def action_stop(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send_control(C.CTL_STOP)

        self.app.push_screen(stop_question(self.run_dir.name, self.history.state == C.QUEUED), confirmed)

    def action_checkpoint(self) -> None:
        self.send_control(C.CTL_CHECKPOINT)

    def action_eval(self) -> None:
        self.send_control(C.CTL_EVAL)

    @work(thread=True, exit_on_error=False, group="run-action", name="control request")
    def send_control(self, kind: str) -> None:
        self.post_message(control(self.run_dir, kind))

    def action_resume(self) -> None:
        self.resume_run()

    @work(thread=True, exit_on_error=False, group="run-action", name="resume run")
    def resume_run(self) -> None:
        self.post_message(resume(self.run_dir))

    def on_run_action_done(self, message: RunActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")

    def action_earlier_samples(self) -> None:
        if not self.query_one(LiveSamples).step_back():
            self.notify(
                "No earlier live samples: they come after each evaluation ([checkpoints] sample_prompts).",
                severity="information",
            )

    def action_next_run(self) -> None:
        from ..next_run import open_next_run

        open_next_run(self.app, self.run_dir)

    def action_checkpoints(self) -> None:
        from .checkpoints import CheckpointsScreen

        self.app.push_screen(CheckpointsScreen(self.run_dir))

    def action_toggle_smoothing(self) -> None:
        plot = self.query_one(LossPlot)
        plot.smoothing = not plot.smoothing

    def action_toggle_log_scale(self) -> None:
        plot = self.query_one(LossPlot)
        plot.log_scale = not plot.log_scale

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        target = self.focused if self.focused is not None and self.focused.allow_maximize else self.query_one(LossPlot)
        self.maximize(target, container=False)

    def action_focus_pane(self, pane_id: str) -> None:
        self.query_one(f"#{pane_id}").focus()
