"""Eval gate verdicts as the app shows them, from "gate" events and evals/gate.json.

gate.json (engine/run/gate_result.py; callers read it with its load_gate_summary) holds "rows" (one per
checkpoint, plus the base model's), "best" {"checkpoint", "sentence"}, "verdict" (pass / needs_review /
fail), "sentence" and an optional user "chosen" {"checkpoint"}. Events: phase "start", "row" (per checkpoint) and "summary".

The gate is optional: a run without one simply has no verdicts. Both sources are read
defensively, since they come from another process and possibly another version of it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSING = frozenset({"pass", "passed", "ship", "ok", "accept", "accepted"})
FAILING = frozenset({"fail", "failed", "reject", "rejected", "blocked"})


@dataclass
class CheckpointVerdict:
    checkpoint: int | str
    verdict: str
    task: Any = None
    format: Any = None
    safety: Any = None
    latency_p95_ms: Any = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class GateResults:
    verdict: str | None = None
    best: int | str | None = None
    sentence: str | None = None
    checkpoints: dict[Any, CheckpointVerdict] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.verdict or self.sentence or self.checkpoints)

    def verdict_for(self, step: int) -> str | None:
        v = self.checkpoints.get(step) or self.checkpoints.get(str(step))
        return v.verdict if v else None

    def add_event(self, ev: dict) -> None:
        """One "gate" event: a per-checkpoint result, or a summary with `sentence`."""
        if ev.get("sentence"):
            self.sentence = str(ev["sentence"])
            if ev.get("verdict"):
                self.verdict = str(ev["verdict"])
            best = ev.get("best", ev.get("chosen", ev.get("checkpoint")))
            if best is not None:
                self.best = _step(best)
            return
        if ev.get("checkpoint") is not None and ev.get("verdict"):
            cv = _checkpoint_verdict(ev)
            self.checkpoints[cv.checkpoint] = cv

    def merge_file(self, data: dict) -> None:
        """evals/gate.json: fills in whatever the events did not say."""
        if not isinstance(data, dict):
            return
        self.verdict = self.verdict or _str(data.get("verdict"))
        self.sentence = self.sentence or _str(data.get("sentence") or data.get("summary"))
        chosen = data.get("chosen") or data.get("best")
        if isinstance(chosen, dict):
            chosen = chosen.get("checkpoint")
        if self.best is None and chosen is not None:
            self.best = _step(chosen)
        rows = data.get("rows") or data.get("checkpoints") or data.get("results") or []
        if isinstance(rows, dict):
            rows = [{"checkpoint": k, **v} if isinstance(v, dict) else {"checkpoint": k, "verdict": v}
                    for k, v in rows.items()]
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("checkpoint") is not None and row.get("verdict"):
                cv = _checkpoint_verdict(row)
                self.checkpoints.setdefault(cv.checkpoint, cv)


def _str(x: Any) -> str | None:
    return str(x) if x not in (None, "") else None


def _step(x: Any) -> int | str:
    try:
        return int(x)
    except (TypeError, ValueError):
        return str(x)


def _checkpoint_verdict(d: dict) -> CheckpointVerdict:
    reasons = d.get("reasons") or []
    if isinstance(reasons, str):
        reasons = [reasons]
    return CheckpointVerdict(checkpoint=_step(d["checkpoint"]), verdict=str(d["verdict"]), task=d.get("task"),
                             format=d.get("format"), safety=d.get("safety"),
                             latency_p95_ms=d.get("latency_p95_ms"), reasons=[str(r) for r in reasons])


def request_gate_rebuild(run_dir: Path, choose: Any = None, note: str = "", *, choosing: bool = False,
                         overrides: list[str] | None = None) -> tuple[bool, str]:
    """Ask the engine to rebuild gate.json and status.json (after a review label, or with `choosing`: to
    record `choose` as the checkpoint to ship, None clearing it). An engine that owns the run gets a
    control request and answers when it next polls; otherwise a short `tunedeck gate RUN --rebuild`
    runs to the end here (call from a worker thread). `overrides` (gate.KEY=VALUE): re-judge with changed
    rules instead (`tunedeck gate RUN --set ...`; finished runs only). (done now, the engine's error line or "")."""
    from tunedeck.engine.gate.rebuild import KEEP, ask_owning_engine

    run_dir = Path(run_dir)
    if not overrides and ask_owning_engine(run_dir, choose if choosing else KEEP, note):
        return False, ""
    cmd = [sys.executable, "-m", "tunedeck.engine.commands.cli", "gate", "--workspace", str(run_dir.parent.parent),
           str(run_dir)] + ([a for o in overrides for a in ("--set", o)] if overrides else ["--rebuild"])
    if choosing:
        cmd += ["--choose", "none" if choose is None else str(choose)] + (["--note", note] if note else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return True, (lines[-1].removeprefix("tunedeck: ").removeprefix("error: ") if proc.returncode and lines else "")


def verdict_style(verdict: str | None) -> str:
    v = (verdict or "").lower()
    if v in PASSING:
        return "green"
    if v in FAILING:
        return "red"
    return "yellow" if v else ""
