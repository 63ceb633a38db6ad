"""Everything the monitor knows about one run, built up from what the follower reads.

Mutated only on the UI thread (the follower thread reads and parses; the app applies), so it needs
no locks. Each part carries a version so that widgets redraw only what changed.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_line import EventLine
from tunedeck.engine.run.formatting import is_number
from tunedeck.engine.run.store import Checkpoint

from .event_lines import log_tail_line
from .gate_view import GateResults
from .metric_series import MetricSeries
from .overfitting import RISING_EVALS, BestEval, OverfitWarning, best_eval, detect_overfitting
from .reward_series import RewardSeries
from .run_follower import RunUpdate
from .telemetry_history import TelemetryHistory
from .telemetry_source import reading_from_sample

EVENT_LINES = 500
RATE_WINDOW = 30  # train events used for the step rate behind the ETA


class RunHistory:
    def __init__(self, run_dir: Path, rising_evals: int = RISING_EVALS) -> None:
        self.run_dir = Path(run_dir)
        self.rising_evals = rising_evals
        self.train_loss = MetricSeries()
        self.learning_rate = MetricSeries()
        self.grad_norm = MetricSeries()
        self.tokens_per_s = MetricSeries()
        self.eval_loss = MetricSeries()
        self.total_steps: int | None = None
        self.row: dict = {}
        self.checkpoints: list[Checkpoint] = []
        self.gate = GateResults()  # gate events and evals/gate.json: the newer source wins, whatever the order read
        self.lines: deque[EventLine] = deque(maxlen=EVENT_LINES)
        self.lines_total = 0  # lines ever added; the tail widget appends lines_total - seen
        self.recorded = TelemetryHistory()
        self.engine_pid: int | None = None
        self.engine_host: str | None = None
        self._rate: deque[tuple[float, float]] = deque(maxlen=RATE_WINDOW)
        self.caught_up = False
        self.skipped_lines = 0
        self.live_samples: list[dict] = []  # "live_samples" events: what the model wrote after each evaluation
        self.rewards = RewardSeries()  # GRPO: rewards per check, clipped share, KL, the reward guard's alerts
        self.version = {
            "series": 0,
            "row": 0,
            "checkpoints": 0,
            "samples": 0,
            "gate": 0,
            "lines": 0,
            "live": 0,
            "rewards": 0,
        }

    # ---- applying what was read -------------------------------------------------------------

    def apply(self, update: RunUpdate) -> set[str]:
        changed: set[str] = set()
        for ev in update.events:
            changed |= self._apply_event(ev)
        if update.row is not None:
            self.row = update.row
            if is_number(update.row.get("total_steps")):
                self.total_steps = int(update.row["total_steps"])
            changed.add("row")
        if update.checkpoints is not None and _ckpt_key(update.checkpoints) != _ckpt_key(self.checkpoints):
            self.checkpoints = update.checkpoints
            changed.add("checkpoints")
        if update.gate_file is not None:
            self.gate.merge_file(update.gate_file)
            changed.add("gate")
        if update.caught_up and not self.caught_up:
            self.caught_up = True
            changed.add("row")
        for part in changed:
            self.version[part] += 1
        return changed

    def _apply_event(self, ev: dict) -> set[str]:
        kind = ev.get("kind")
        changed: set[str] = set()
        if kind == C.EV_TRAIN:
            step = ev.get("step")
            if is_number(step):
                self.train_loss.append(step, ev.get("loss"))
                self.learning_rate.append(step, ev.get("learning_rate"))
                self.grad_norm.append(step, ev.get("grad_norm"))
                self.tokens_per_s.append(step, ev.get("tokens_per_s"))
                if is_number(ev.get("t")):
                    self._rate.append((ev["t"], step))
                return {"series", "rewards"} if self.rewards.add(ev) else {"series"}
            return changed
        if kind == C.EV_EVAL:
            if is_number(ev.get("step")):
                self.eval_loss.append(ev["step"], ev.get("eval_loss"))
                changed.add("series")
        elif kind == C.EV_SAMPLE:
            self.recorded.add(reading_from_sample(ev))
            return {"samples"}
        elif kind == C.EV_RUN_STARTED:
            if is_number(ev.get("total_steps")):
                self.total_steps = int(ev["total_steps"])
            if ev.get("pid"):
                self.engine_pid = ev.get("pid")
            self._rate.clear()
        elif kind == C.EV_STATE:
            self.engine_pid = ev.get("pid") or self.engine_pid
            self.engine_host = ev.get("host") or self.engine_host
        elif kind == C.EV_RESUMED:
            cut = ev.get("from_step") or 0
            for s in (self.train_loss, self.learning_rate, self.grad_norm, self.tokens_per_s, self.eval_loss):
                s.truncate_after(cut)
            self._rate.clear()
            self.live_samples = [e for e in self.live_samples if (e.get("step") or 0) <= cut]
            self.rewards.truncate_after(cut)
            changed |= {"series", "live", "rewards"}
        elif kind == C.EV_LIVE_SAMPLES:
            self.live_samples.append(ev)
            changed.add("live")
        elif kind == C.EV_GATE:
            self.gate.add_event(ev)
            changed.add("gate")
        elif kind == C.EV_WARNING and self.rewards.add_alert(ev):
            changed.add("rewards")
        line = log_tail_line(ev)
        if line is not None:
            self.lines.append(line)
            self.lines_total += 1
            changed.add("lines")
        return changed

    # ---- derived ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.row.get("state") or C.QUEUED

    @property
    def is_live(self) -> bool:
        return self.state in C.LIVE_STATES

    @property
    def step(self) -> int:
        last = self.train_loss.last
        steps = [int(last[0])] if last else []
        if is_number(self.row.get("step")):
            steps.append(int(self.row["step"]))
        return max(steps) if steps else 0

    def best_eval(self) -> BestEval | None:
        return best_eval(self.eval_loss)

    def overfitting(self) -> OverfitWarning | None:
        return detect_overfitting(self.train_loss, self.eval_loss, self.rising_evals)

    def steps_per_second(self) -> float | None:
        if len(self._rate) < 2:
            return None
        (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def eta_seconds(self) -> float | None:
        if not self.is_live or not self.total_steps:
            return None
        rate = self.steps_per_second()
        if not rate:
            return None
        return max(0.0, (self.total_steps - self.step) / rate)

    def engine_pid_here(self) -> int | None:
        """The engine's pid while it is alive on this machine (for live process readings)."""
        import socket

        pid = self.row.get("pid") or self.engine_pid
        host = self.row.get("host") or self.engine_host
        if not self.is_live or not pid:
            return None
        return int(pid) if host == socket.gethostname() else None

    def elapsed(self) -> float | None:
        return self.row.get("duration_s")


def _ckpt_key(ckpts: list[Checkpoint]) -> list[tuple]:
    return [(c.step, c.complete, c.marker.get("eval_loss")) for c in ckpts]
