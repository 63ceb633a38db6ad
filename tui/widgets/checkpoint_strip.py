"""One line of checkpoints: step, complete or not, eval loss, gate verdict when known; newest kept
when they do not all fit."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tunedeck.engine.run.formatting import fmt_loss, is_number

from ..gate_view import verdict_style, verdict_word
from ..run_history import RunHistory

LABEL = "Checkpoints "


def checkpoint_items(history: RunHistory) -> list[Text]:
    best = history.best_eval()
    items = []
    for c in history.checkpoints:
        t = Text()
        t.append(str(c.step), style="bold")
        if c.complete:
            t.append(" ✓", style="green")
            loss = c.marker.get("eval_loss")
            if is_number(loss):
                t.append(f" {fmt_loss(loss, 3)}")
        else:
            t.append(" ✗ partial", style="red")
        if best is not None and c.step == best.step:
            t.append(" ★", style="green")
        verdict = history.gate.verdict_for(c.step)
        if verdict:
            t.append(f" {verdict_word(verdict)}", style=verdict_style(verdict))
        items.append(t)
    return items


class CheckpointStrip(Widget):
    DEFAULT_CSS = """
    CheckpointStrip { height: 1; width: 1fr; }
    """

    def __init__(self, history: RunHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history

    def render(self) -> RenderResult:
        items = checkpoint_items(self.history)
        head = Text(LABEL, style="bold")
        if not items:
            return head + Text("none yet", style="dim")
        sep = Text(" │ ", style="dim")
        room = self.size.width - len(head)
        shown: list[Text] = []
        used = 0
        for item in reversed(items):
            need = len(item) + (len(sep) if shown else 0)
            if used + need > room - 2 and shown:
                head.append("… ", style="dim")
                break
            shown.insert(0, item)
            used += need
        return head + sep.join(shown)
