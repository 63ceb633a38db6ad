"""The tunedeck app: a disposable client that follows run directories.

Quitting leaves every engine running; opening the app again, from any terminal on the machine,
shows them live. Start-up imports no ML library (torch, transformers, trl, peft, datasets), and
the plotting library only when a monitor opens.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.message import Message
from textual.worker import Worker, WorkerState

from tunedeck.engine.config.workspace import resolve_workspace
from tunedeck.engine.run.store import RunNotFound, find_run

from .app_keys import APP_BINDINGS
from .command_palette import ActionCommands
from .keymap import load_keymap
from .run_bell import Outcome
from .screens.runs import RunsScreen
from .telemetry_source import LiveTelemetry, NoTelemetry, TelemetrySource

STYLES = Path(__file__).with_name("styles")
# every screen's stylesheet (tui/styles/), loaded at start: a screen's own CSS_PATH would load only once it is
# pushed, and the default screen's never. Each file's selectors name its screen or its widgets' ids.
STYLESHEETS = (
    "app",
    "runs",
    "monitor",
    "new_run",
    "checkpoints",
    "examples",
    "review",
    "playground",
    "export",
    "gate_rules",
    "compare_runs",
    "sweep",
)


class TunedeckApp(App[int]):
    CSS_PATH = [str(STYLES / f"{name}.tcss") for name in STYLESHEETS]  # absolute: subclasses may live anywhere
    TITLE = "tunedeck"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = list(APP_BINDINGS)

    @dataclass(eq=False)
    class OutcomesRead(Message):
        """How every run of the workspace ended (run id -> outcome), read for the bell (tui/run_bell.py)."""

        outcomes: dict[str, "Outcome"]

    def __init__(
        self,
        workspace: Path,
        open_run: str | None = None,
        telemetry: TelemetrySource | None = None,
        poll_interval: float = 0.25,
        status_interval: float = 1.0,
        scan_interval: float = 1.0,
        telemetry_interval: float = 1.0,
        plot_interval: float = 2.0,
        refresh_interval: float = 1.0,
        keymap: dict[str, str] | None = None,
        remember_theme: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace = Path(workspace)
        self.open_run = open_run
        self.telemetry: TelemetrySource = telemetry or LiveTelemetry()
        self.poll_interval = poll_interval
        self.status_interval = status_interval
        self.scan_interval = scan_interval
        self.telemetry_interval = telemetry_interval
        self.plot_interval = plot_interval  # the loss plot redraws at most this often
        self.refresh_interval = refresh_interval  # the other panes redraw at most this often
        self.keymap_overrides = keymap or {}
        self.remember_theme = remember_theme  # keep the ctrl+t theme in settings.toml (the CLI's app; not tests)
        self.known_runs: list[str] = []
        self.failures: list[str] = []  # every worker failure, routed here (tests read it)
        self.notices: list[str] = []  # every notification shown, newest last
        from .run_bell import RunBell

        self.run_bell = RunBell()  # rings when a run ends or gets its gate verdict (tui/run_bell.py)

    def notify(self, message: str, **kwargs) -> None:  # type: ignore[override]
        self.notices.append(str(message))
        del self.notices[:-100]
        super().notify(message, **kwargs)

    def get_default_screen(self) -> RunsScreen:
        return RunsScreen(self.workspace)

    def on_mount(self) -> None:
        if self.remember_theme:
            from .settings import load_settings

            saved = load_settings().get("theme")
            if isinstance(saved, str) and saved in self.available_themes:
                self.theme = saved
            self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(max(self.scan_interval, 1.0), self.watch_run_outcomes)
        self.watch_run_outcomes()
        if self.keymap_overrides:
            self.set_keymap(self.keymap_overrides)
        if self.open_run:
            self.open_run_by_id(self.open_run)

    # ---- navigation -------------------------------------------------------------------------

    def open_monitor(self, run_dir: Path) -> None:
        from .screens.monitor import RunMonitorScreen

        self.push_screen(RunMonitorScreen(run_dir))

    def open_run_by_id(self, ref: str) -> None:
        try:
            run_dir = find_run(self.workspace, ref)
        except RunNotFound as e:
            self.notify(str(e), title="No such run", severity="error")
            return
        self.open_monitor(run_dir)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def _theme_changed(self, theme) -> None:
        from .settings import save_setting, settings_path

        try:
            save_setting("theme", theme.name)
        except OSError as e:
            self.notify(
                f"The theme is not kept for next time: {settings_path()}: {e.strerror or e}", severity="warning"
            )

    # ---- the bell ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-bell", name="watch run outcomes")
    def watch_run_outcomes(self) -> None:
        from .run_bell import read_outcomes

        self.post_message(self.OutcomesRead(read_outcomes(self.workspace)))

    @on(OutcomesRead)
    def _outcomes_read(self, message: OutcomesRead) -> None:
        news = self.run_bell.update(message.outcomes)
        if news:
            self.bell()
            self.notify("\n".join(news), title="Run finished" if len(news) == 1 else "Runs finished", timeout=10)

    # ---- the one place worker failures go ---------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.route_worker_failure(event)

    def route_worker_failure(self, event: Worker.StateChanged) -> None:
        """Every worker runs with exit_on_error=False; its failure is logged and shown here, never lost."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = f"{event.worker.name or 'background task'} failed: {type(error).__name__}: {error}"
        self.failures.append(text)
        self.log.error(text)
        self.notify(text, title="Error", severity="error", timeout=10)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="tunedeck app", description="Follow and manage fine-tuning runs.")
    ap.add_argument("--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)")
    ap.add_argument(
        "--open",
        metavar="RUN_ID",
        dest="open_run",
        help="open this run's monitor directly (id, unique id prefix or name)",
    )
    ap.add_argument(
        "--no-telemetry", action="store_true", help="do not read NVML or psutil live; show what runs recorded"
    )
    return ap.parse_args(argv)


def run_app(argv: list[str]) -> int:
    args = parse_args(argv)
    workspace = resolve_workspace(args.workspace)
    keymap, problem = load_keymap()
    app = TunedeckApp(
        workspace,
        open_run=args.open_run,
        telemetry=NoTelemetry("live readings are off (--no-telemetry)") if args.no_telemetry else None,
        keymap=keymap,
        remember_theme=True,
    )
    if problem:
        print(f"tunedeck: ignoring keymap: {problem}", file=sys.stderr)
    app.run()
    return app.return_code or 0
