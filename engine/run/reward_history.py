"""A GRPO run's rewards read back from its event log: the logged reward windows, the gate's held-out task
scores, and the reward guard's alerts.

The reward guard rebuilds its memory from it when a run resumes (engine/training/reward_guard.py); the
gate's sentence names the reward a run optimised from it (engine/gate/rebuild.py). Train points logged
after the step a run resumed from are superseded, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.run import contract as C


@dataclass
class RewardHistory:
    windows: list[dict] = field(default_factory=list)  # train events that carry a reward, in step order
    task: dict = field(default_factory=dict)  # "base" or a step -> held-out task score (percent)
    alerts: list[dict] = field(default_factory=list)  # the guard's warning events

    def rewards(self) -> list[tuple[int, float]]:
        return [(int(w["step"]), float(w["reward"])) for w in self.windows]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def history_from_events(events) -> RewardHistory:
    h = RewardHistory()
    for ev in events:
        kind = ev.get("kind")
        if kind == C.EV_TRAIN and _number(ev.get("reward")) and _number(ev.get("step")):
            h.windows = [w for w in h.windows if w["step"] < ev["step"]] + [ev]
        elif kind == C.EV_RESUMED and _number(ev.get("from_step")):
            h.windows = [w for w in h.windows if w["step"] <= ev["from_step"]]
        elif (
            kind == C.EV_GATE and ev.get("checkpoint") is not None and _number(ev.get("task")) and not ev.get("summary")
        ):
            h.task[ev["checkpoint"]] = float(ev["task"])
        elif kind == C.EV_WARNING and ev.get("code") in C.REWARD_ALERTS:
            h.alerts.append(ev)
    return h


def read_reward_history(run_dir: Path) -> RewardHistory:
    from tunedeck.engine.run.event_log import read_events

    return history_from_events(read_events(Path(run_dir) / C.EVENTS_JSONL))


def reward_phrase(run_dir: Path, at_step: int | None = None) -> str | None:
    """What a GRPO run optimised, for the gate's sentence: the reward, how its mean moved up to `at_step`
    (the checkpoint the sentence is about; the last logged window follows where training went on past it),
    and the guard's alerts; None for other methods or before any reward was logged."""
    from tunedeck.engine.run.run_record import load_run_record

    try:
        profile = load_run_record(run_dir).profile
    except Exception:  # noqa: BLE001 - a run without a readable record has no reward to name
        return None
    if profile.method.method != "grpo":
        return None
    h = read_reward_history(run_dir)
    if not h.windows:
        return None
    first, last = h.windows[0], h.windows[-1]
    upto = [w for w in h.windows if at_step is None or w["step"] <= at_step] or [first]
    text = (
        f"optimised reward {describe_rewards(profile.rewards.checks)}: mean {first['reward']:.2f} at step "
        f"{first['step']} -> {upto[-1]['reward']:.2f} at step {upto[-1]['step']}"
    )
    if upto[-1] is not last:  # the checkpoint is not the end of training: where the reward went after it
        text += f" ({last['reward']:.2f} at step {last['step']}, the last logged)"
    if h.alerts:
        text += "; reward guard: " + ", ".join(
            f"{a.get('code').replace('_', ' ')} at step {a.get('step')}" for a in h.alerts
        )
    return text


def describe_rewards(checks: list[dict]) -> str:
    """[rewards] checks in words: 'json_valid x0.2 + json_equal x1'."""
    parts = []
    for item in checks:
        name = item.get("name") or item.get("type") or "?"
        weight = item.get("weight", 1.0)
        parts.append(f"{name} x{weight:g}" if isinstance(weight, (int, float)) else str(name))
    return " + ".join(parts)
