"""The monitor's top lines: what the run is, its state, the gate verdict, and a progress bar with ETA."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_duration

from ..formatting import text_bar
from ..gate_view import verdict_style, verdict_word
from ..run_history import RunHistory
from ..run_states import state_label, state_style
from .runs_table import run_label


class RunProgress(Widget):
    DEFAULT_CSS = """
    RunProgress { height: 2; width: 1fr; }
    """

    def __init__(self, history: RunHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history

    def render(self) -> RenderResult:
        h = self.history
        row = h.row
        width = self.size.width
        # before the first status read the state is unknown: say nothing rather than "queued"
        title = Text.assemble(
            (run_label(row) if row else h.run_dir.name, "bold"),
            "  ",
            (state_label(h.state), state_style(h.state)) if row else "",
        )
        method = "/".join(x for x in (row.get("method"), row.get("adapter")) if x)
        if method:
            title.append(f"  {method}")
        if row.get("base_model"):
            title.append(f" on {Path(str(row['base_model'])).name}")
        gate = h.gate
        if gate.verdict or gate.sentence:  # and the checkpoint the run ships: a person's choice, else the gate's best
            chosen = ", chosen" if gate.chosen is not None else ""
            best = f" (checkpoint {gate.shipped}{chosen})" if gate.shipped is not None else ""
            title.append("  gate: ")
            title.append(f"{verdict_word(gate.verdict) or 'see log'}{best}", style=verdict_style(gate.verdict))
        elif (h.state not in C.LIVE_STATES or h.state == C.QUEUED) and row.get(
            "message"
        ):  # how it ended, or where it waits
            title.append(f"  {row['message']}", style="dim")
        title.truncate(width, overflow="ellipsis")

        step, total = h.step, h.total_steps
        if total:
            tail = f" {step}/{total} {100 * step / total:.0f}%"
        else:
            tail = f" step {step}"
        tail += f"  elapsed {fmt_duration(h.elapsed())}"
        if h.state == C.RUNNING:
            eta = h.eta_seconds()
            tail += f"  ETA {fmt_duration(eta) if eta is not None else '…'}"
            rate = h.steps_per_second()
            if rate:
                tail += f"  {rate:.2f} steps/s" if rate < 10 else f"  {rate:.0f} steps/s"
        elif h.state == C.COMPLETED:
            tail += "  done"
        bar_w = max(0, min(40, width - len(tail)))
        bar = Text(text_bar(step / total if total else 0.0, bar_w), style=state_style(h.state) or "")
        line2 = Text.assemble(bar, tail)
        line2.truncate(width, overflow="ellipsis")
        return Text("\n").join([title, line2])
