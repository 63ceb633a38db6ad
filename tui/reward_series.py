"""A GRPO run's rewards as the monitor keeps them: per-check mean and spread, the total, the clipped share,
KL and the completion statistics, each against step, and the reward guard's alerts.

Fed from the train events (the keys engine/training/grpo.py puts there) and the guard's warning events;
a run of another method never fills it, and the rewards pane stays hidden.
"""

from __future__ import annotations

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import is_number

from .metric_series import MetricSeries

# (train event key, label in the pane)
SHARED = (
    ("reward", "reward"),
    ("completions/clipped_ratio", "clipped"),
    ("kl", "KL"),
    ("completions/mean_length", "length"),
    ("completions/identical_share", "same text"),
    ("completions/near_empty_ratio", "empty"),
)


class RewardSeries:
    def __init__(self) -> None:
        self.series: dict[str, MetricSeries] = {key: MetricSeries() for key, _ in SHARED}
        self.reward_std = MetricSeries()
        self.checks: dict[str, tuple[MetricSeries, MetricSeries]] = {}  # name -> (mean, std), first seen first
        self.alerts: list[dict] = []

    def __bool__(self) -> bool:
        return len(self.series["reward"]) > 0

    def add(self, ev: dict) -> bool:
        """A train event; True when it carried a reward."""
        step = ev.get("step")
        if not is_number(step) or not is_number(ev.get("reward")):
            return False
        for key, _ in SHARED:
            self.series[key].append(step, ev.get(key))
        self.reward_std.append(step, ev.get("reward_std"))
        for key, value in ev.items():
            if key.startswith("rewards/") and key.endswith("/mean"):
                name = key[len("rewards/") : -len("/mean")]
                mean, std = self.checks.setdefault(name, (MetricSeries(), MetricSeries()))
                mean.append(step, value)
                std.append(step, ev.get(f"rewards/{name}/std"))
        return True

    def add_alert(self, ev: dict) -> bool:
        if ev.get("code") not in C.REWARD_ALERTS:
            return False
        self.alerts.append(ev)
        return True

    def truncate_after(self, step: float) -> None:
        """A resumed run: points after the step it resumed from are superseded."""
        for s in (*self.series.values(), self.reward_std, *(x for pair in self.checks.values() for x in pair)):
            s.truncate_after(step)

    def latest(self, key: str) -> float | None:
        last = self.series[key].last
        return last[1] if last else None

    @property
    def has_kl(self) -> bool:
        """TRL logs KL only when beta > 0."""
        return len(self.series["kl"]) > 0
