"""What the model writes now: the latest live samples (engine/training/live_samples.py) beside their references;
for GRPO, the latest completions with their rewards (engine/training/completion_window.py).

Hidden until the run has sampled once. `v` on the monitor steps back through earlier evaluations'
samples (and round to the newest), so a change between two evaluations can be read side by side.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

WIDTH_CHARS = 220  # each text is cut here: the pane shows a glimpse; the event log keeps it whole


def _cut(text: str, limit: int = WIDTH_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_samples(sets: list[dict], back: int = 0) -> Text:
    """The sample set `back` evaluations before the newest, as lines of prompt, reference and output."""
    if not sets:
        return Text("")
    back = back % len(sets)
    ev = sets[-1 - back]
    out = Text()
    where = "newest" if back == 0 else f"{back} evaluation{'s' if back > 1 else ''} earlier"
    out.append(f"step {ev.get('step')} · {where}", style="bold")
    if len(sets) > 1:
        out.append("  (v: earlier)", style="dim")
    for s in ev.get("samples") or []:
        out.append("\n› " + _cut(s.get("prompt", ""), 120), style="dim")
        out.append("\nref ", style="green")
        out.append(_cut(s.get("reference", "")))
        out.append("\nnow ", style="bold cyan")
        out.append(_cut(s.get("output", "")) or "(nothing)")
        if isinstance(s.get("rewards"), dict):
            out.append("\n" + reward_words(s), style="magenta")
    return out


def reward_words(sample: dict) -> str:
    """'reward 1.2 (json_valid 1, json_equal 0); its group: 1.2 0.2 0 1.2' for a GRPO sample."""
    checks = ", ".join(f"{k} {v:.3g}" for k, v in sample["rewards"].items() if isinstance(v, (int, float)))
    total = sample.get("reward")
    text = f"reward {total:.3g}" if isinstance(total, (int, float)) else "reward"
    group = [g for g in sample.get("group_rewards") or [] if isinstance(g, (int, float))]
    return (
        text
        + (f" ({checks})" if checks else "")
        + (f"; its group: {' '.join(f'{g:.2g}' for g in group)}" if len(group) > 1 else "")
    )


class LiveSamples(Static):
    DEFAULT_CSS = """
    LiveSamples { height: auto; margin-top: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.back = 0
        self.sets: list[dict] = []

    def show(self, sets: list[dict]) -> None:
        if len(sets) != len(self.sets):
            self.back = 0  # a new evaluation: back to the newest
        self.sets = list(sets)
        self.display = bool(self.sets)
        self.update(render_samples(self.sets, self.back))

    def step_back(self) -> bool:
        if len(self.sets) < 2:
            return False
        self.back = (self.back + 1) % len(self.sets)
        self.update(render_samples(self.sets, self.back))
        return True
