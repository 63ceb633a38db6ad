"""The rewards pane of a GRPO run's monitor: the reward and each check's mean and spread, the share of
completions cut at the length limit, KL when beta > 0, the completion statistics, and the reward guard's
alerts, each with a sparkline of its history. Hidden for runs that log no reward.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tunedeck.engine.run.formatting import is_number

from ..formatting import sparkline
from ..reward_series import RewardSeries
from .gpu_pane import wrap_words

LABEL_W, VALUE_W = 12, 13
ALERT_STYLE = "bold red"


def _value(mean, std=None, percent: bool = False) -> str:
    if not is_number(mean):
        return "-"
    text = f"{mean:.0%}" if percent else f"{mean:.3g}"
    return text + (f" ±{std:.2g}" if is_number(std) else "")


def _line(label: str, value: str, series, width: int, style: str = "", lo=None, hi=None) -> Text:
    spark_w = max(0, width - LABEL_W - VALUE_W - 2)
    _, ys = series.points(2 * spark_w) if spark_w else ([], [])
    return Text.assemble(
        (f"{label[:LABEL_W]:<{LABEL_W}}", "bold"),
        (f"{value:>{VALUE_W}}", style),
        "  ",
        (sparkline(ys, spark_w, lo, hi), style or "cyan"),
    )


def rewards_pane_lines(r: RewardSeries, width: int) -> list[Text]:
    width = max(30, width)
    lines = [Text("Rewards", style="bold")]
    std = r.reward_std.last
    lines.append(
        _line("reward", _value(r.latest("reward"), std[1] if std else None), r.series["reward"], width, "bold")
    )
    for name, (mean, spread) in r.checks.items():
        m, s = mean.last, spread.last
        lines.append(_line(f" {name}", _value(m[1] if m else None, s[1] if s else None), mean, width, lo=0, hi=1))
    clipped = r.latest("completions/clipped_ratio")
    lines.append(
        _line(
            "clipped",
            _value(clipped, percent=True),
            r.series["completions/clipped_ratio"],
            width,
            "yellow" if is_number(clipped) and clipped >= 0.5 else "",
            0,
            1,
        )
    )
    if r.has_kl:
        lines.append(_line("KL", _value(r.latest("kl")), r.series["kl"], width))
    lines.append(
        _line("length", _value(r.latest("completions/mean_length")), r.series["completions/mean_length"], width)
    )
    for key, label in (("completions/identical_share", "same text"), ("completions/near_empty_ratio", "empty")):
        if len(r.series[key]):
            value = r.latest(key)
            lines.append(
                _line(
                    label,
                    _value(value, percent=True),
                    r.series[key],
                    width,
                    "yellow" if is_number(value) and value >= 0.5 else "",
                    0,
                    1,
                )
            )
    for alert in r.alerts:  # never colour alone: the words say it (NO_COLOR); the event log has the advice
        head = f"! {str(alert.get('code', '')).replace('_', ' ')} at step {alert.get('step')}:"
        for i, part in enumerate(wrap_words(f"{head} {alert.get('summary') or alert.get('message', '')}", width - 2)):
            lines.append(Text(part if i == 0 else "  " + part, style=ALERT_STYLE))
    return lines


class RewardsPane(Widget):
    DEFAULT_CSS = """
    RewardsPane { height: auto; width: 1fr; margin-bottom: 1; }
    """

    def __init__(self, rewards: RewardSeries, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rewards = rewards

    def show(self) -> None:
        """New rewards or alerts: visible once the run has logged a reward."""
        self.display = bool(self.rewards)
        self.refresh(layout=True)

    def lines(self) -> list[Text]:
        return rewards_pane_lines(self.rewards, self.size.width or 36)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(rewards_pane_lines(self.rewards, width))

    def render(self) -> RenderResult:
        return Text("\n").join(self.lines())
