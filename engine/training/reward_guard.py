"""The reward guard: an alert when a GRPO policy learns to please its reward instead of doing its task.

It reads what the run logs: the mean reward of each logged window, the completion statistics of those
windows (TRL's clipped share, and engine/training/completion_window.py's), and the held-out task score the
gate gives each checkpoint (gate.when = "each_checkpoint" scores them during training; with "end" the
guard looks once, after the gate). Two alerts, each raised at most once per run:

  reward_hacking       at a checkpoint, over the logged windows since the latest earlier held-out score that
                       has at least N of them ([rewards] guard_windows; the base model's score counts as
                       step 0), the mean reward rose, last N/2 windows over first N/2, by at least RISE_SHARE
                       of the most the reward can give, while the checkpoint's held-out task score is not
                       above that earlier score
  completion_collapse  in the last two windows, completions sit at the length limit, at nothing, or at one
                       text shared by different prompts (COLLAPSE), where the first window measured did not

An alert is a warning event with its code and step (the monitor shows it), goes to the [notify] command,
and with [rewards] on_alert = "stop" stops training with a final checkpoint. A resumed run rebuilds the
guard's memory from its event log (engine/run/reward_history.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary
from tunedeck.engine.run.reward_history import RewardHistory, describe_rewards, read_reward_history

RISE_SHARE = 0.1  # of the largest reward (the sum of the weights): smaller rises are noise on small batches
# (logged key, share of completions from which it is a collapse, in words); a first window at or above
# BASELINE_BELOW was already like that, which is the model, not a collapse
COLLAPSE = (
    ("completions/clipped_ratio", 0.9, "cut at the length limit"),
    ("completions/near_empty_ratio", 0.9, "empty"),
    ("completions/identical_share", 0.8, "the same text as a completion of another prompt"),
)
BASELINE_BELOW = 0.5
ADVICE = (
    "the policy may be pleasing the reward rather than doing the task: read its completions (live samples), "
    "add a reward check that needs the task done (json_equal or a schema against references), lower the "
    "learning rate, or set method.grpo_beta"
)


@dataclass
class Alert:
    code: str
    step: int
    message: str


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


class RewardGuard:
    def __init__(self, windows: int, max_reward: float, reward_words: str):
        self.n = max(2, windows)
        self.max_reward = max_reward if max_reward > 0 else 1.0
        self.reward_words = reward_words
        self.rewards: list[tuple[int, float]] = []
        self.stats: list[tuple[int, dict]] = []
        self.task: dict = {}  # "base" or a step -> held-out task score (percent)
        self.raised: set[str] = set()

    @classmethod
    def for_profile(cls, profile, history: RewardHistory | None = None) -> "RewardGuard":
        checks = profile.rewards.checks
        guard = cls(
            profile.rewards.guard_windows, sum(float(c.get("weight", 1.0)) for c in checks), describe_rewards(checks)
        )
        if history is not None:  # a resumed run: what it logged before, without raising again
            for w in history.windows:
                guard.add_window(int(w["step"]), w)
            guard.task.update(history.task)
            guard.raised = {a.get("code") for a in history.alerts}  # replaying raises nothing new
        return guard

    def add_window(self, step: int, logs: dict) -> list[Alert]:
        if isinstance(logs.get("reward"), (int, float)):
            self.rewards.append((step, float(logs["reward"])))
        self.stats.append((step, {k: float(logs[k]) for k, _, _ in COLLAPSE if isinstance(logs.get(k), (int, float))}))
        return self._collapse()

    def add_task(self, checkpoint, task: float) -> list[Alert]:
        self.task[checkpoint] = float(task)
        return self._hacking(checkpoint) if isinstance(checkpoint, int) else []

    def _hacking(self, step: int) -> list[Alert]:
        """At checkpoint `step`: against the latest earlier task score (the base's at step 0) with at least N
        logged windows since it, did the reward rise (the last half of them over the first half) while the
        task score did not?"""
        if C.REWARD_HACKING in self.raised:
            return []
        points = sorted(
            ((0 if s == "base" else s), t)
            for s, t in self.task.items()
            if s == "base" or (isinstance(s, int) and s < step)
        )
        for ref_step, ref_task in reversed(points):
            windows = [(s, r) for s, r in self.rewards if ref_step < s <= step]
            if len(windows) >= self.n:
                break
        else:
            return []
        half = self.n // 2
        before, after = _mean([r for _, r in windows[:half]]), _mean([r for _, r in windows[-half:]])
        if after - before < RISE_SHARE * self.max_reward or self.task[step] > ref_task:
            return []
        where = "the base model" if ref_step == 0 else f"checkpoint-{ref_step}"
        self.raised.add(C.REWARD_HACKING)
        return [
            Alert(
                C.REWARD_HACKING,
                step,
                f"reward hacking? the training reward ({self.reward_words}) rose from {before:.2f} (steps "
                f"{windows[0][0]}-{windows[half - 1][0]}) to {after:.2f} (steps {windows[-half][0]}-{windows[-1][0]}) "
                f"while the held-out task score did not: {ref_task:.1f}% for {where}, {self.task[step]:.1f}% for "
                f"checkpoint-{step}",
            )
        ]

    def _collapse(self) -> list[Alert]:
        if C.COMPLETION_COLLAPSE in self.raised:
            return []
        for key, level, words in COLLAPSE:
            seen = [(s, st[key]) for s, st in self.stats if key in st]
            if len(seen) < 3 or seen[0][1] >= BASELINE_BELOW:
                continue
            recent = seen[-2:]
            if recent[0][0] != self.stats[-2][0] or recent[1][0] != self.stats[-1][0]:
                continue  # the last two windows must both have measured it
            if all(v >= level for _, v in recent):
                self.raised.add(C.COMPLETION_COLLAPSE)
                return [
                    Alert(
                        C.COMPLETION_COLLAPSE,
                        recent[-1][0],
                        f"completions collapsed: {min(v for _, v in recent):.0%} or more of them were {words} in the "
                        f"last two logged windows (steps {recent[0][0]}-{recent[1][0]}), against {seen[0][1]:.0%} at "
                        f"step {seen[0][0]}",
                    )
                ]
        return []


def notify_alert(run_dir: Path, profile, alert: Alert, events, background: bool = True) -> None:
    """The [notify] command with TUNEDECK_ALERT set; during training on a thread, so a slow script cannot
    hold the steps (not a daemon: the engine waits for it, at most notify.TIMEOUT_S, before it exits; after
    training, in line)."""
    command = profile.notify.command
    if not command.strip():
        return
    from tunedeck.engine.observe.notify import run_notify_command

    args, kwargs = (command, run_dir, C.RUNNING, None, alert.message), {"events": events, "alert": alert.code}
    if background:
        threading.Thread(target=run_notify_command, args=args, kwargs=kwargs, name="notify alert").start()
    else:
        run_notify_command(*args, **kwargs)


def emit_alerts(alerts: list[Alert], run_dir: Path, profile, events, extra: str = "", background: bool = True) -> None:
    """Each alert as a warning event and through the [notify] command; `extra` follows its figures."""
    for a in alerts:
        message = f"{a.message}{extra}; {ADVICE}"
        events.emit(C.EV_WARNING, code=a.code, step=a.step, message=message, summary=a.message)
        notify_alert(run_dir, profile, Alert(a.code, a.step, message), events, background)


def guard_after_gate(run_dir: Path, profile, summary: GateSummary | None, events) -> list[Alert]:
    """gate.when = "end": once the gate has scored every checkpoint, the guard reads the run's rewards
    against them (the alerts raised during training are not raised again)."""
    if profile.method.method != "grpo" or summary is None:
        return []
    history = read_reward_history(run_dir)
    guard = RewardGuard.for_profile(profile, RewardHistory(history.windows, {}, history.alerts))
    alerts: list[Alert] = []
    for row in sorted(summary.rows, key=lambda r: -1 if r.is_base else r.checkpoint):
        if row.task is not None:
            alerts += guard.add_task(row.checkpoint, row.task)
    emit_alerts(alerts, run_dir, profile, events, background=False)
    return alerts
