"""`?`: every key of every screen, read from the bindings themselves so it cannot go stale."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..app_keys import APP_BINDINGS


def key_sections() -> list[tuple[str, list[Binding]]]:
    """(section title, bindings) for the app and each screen; imports screens lazily."""
    from ..widgets.filter_input import FilterInput
    from ..widgets.list_table import ListTable
    from ..widgets.runs_table import RunsTable
    from .checkpoints import CheckpointsScreen
    from .compare_runs import CompareRunsScreen
    from .confirm import ConfirmScreen
    from .examples import ExamplesScreen
    from .export_dialog import ExportScreen
    from .monitor import RunMonitorScreen
    from .new_run import LaunchChoice
    from .playground import AskLine, PlaygroundScreen
    from .review import ReviewScreen
    from .runs import RunsScreen
    from .sweep import SweepScreen

    palette = Binding(App.COMMAND_PALETTE_BINDING, "command_palette", "Command palette: every action", id="app.palette")
    return [
        ("Everywhere", [*APP_BINDINGS, palette]),
        ("Lists", list(ListTable.BINDINGS)),
        ("Runs", [*RunsTable.BINDINGS, *RunsScreen.BINDINGS]),
        ("Filter box", list(FilterInput.BINDINGS)),
        ("Run monitor", list(RunMonitorScreen.BINDINGS)),
        ("Checkpoints", list(CheckpointsScreen.BINDINGS)),
        ("Examples", list(ExamplesScreen.BINDINGS)),
        ("Review", list(ReviewScreen.BINDINGS)),
        ("Playground", [*PlaygroundScreen.BINDINGS, *AskLine.BINDINGS]),
        ("Export", list(ExportScreen.BINDINGS)),
        ("Compare runs", list(CompareRunsScreen.BINDINGS)),
        ("Sweep", list(SweepScreen.BINDINGS)),
        ("Questions", list(ConfirmScreen.BINDINGS)),
        ("Launch", list(LaunchChoice.BINDINGS)),
    ]


def display_key(binding: Binding, keymap: dict[str, str]) -> str:
    keys = keymap.get(binding.id or "", binding.key) if binding.id else binding.key
    if binding.key_display and keys == binding.key:
        return binding.key_display
    names = {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter", "ctrl+p": "ctrl+p"}
    return " ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", tooltip="Close this list", id="help.close")]

    def compose(self) -> ComposeResult:
        keymap = getattr(self.app, "keymap_overrides", {})
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        for title, bindings in key_sections():
            table.add_row(Text(title, style="bold underline"), "")
            seen = set()
            for b in bindings:
                if b.action in seen or not b.description:
                    continue
                seen.add(b.action)
                table.add_row(display_key(b, keymap), b.tooltip or b.description)
            table.add_row("", "")
        with VerticalScroll(id="help-dialog"):
            yield Static("Keys  (esc closes; ctrl+p finds any action by name)", id="help-title")
            yield Static(table, id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
