"""What the checkpoints screen shows for a run: the base model and every checkpoint, with gate results.

Three sources, read defensively: the checkpoint folders and their completion markers (step, epoch,
losses), evals/gate.json (scores, verdicts, reasons, best, chosen, the sentence) and the run's events
(the eval loss of a checkpoint pruned by the engine or deleted by hand, whose folder is gone but whose
gate row is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.gate.records import BASE
from tunedeck.engine.run.store import list_checkpoints

from .gate_results import read_gate_file


@dataclass
class CheckpointRow:
    key: str                     # "base" or the step as text: the table's row key
    label: str                   # "base model" or "checkpoint-800"
    step: int | None
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    task: float | None = None
    format: float | None = None
    safety: float | None = None
    p95_ms: float | None = None
    verdict: str | None = None   # pass / fail / needs_review / baseline; None: not evaluated
    reasons: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the gate's rule codes: task_gain, safety, format, ...
    warnings: list[str] = field(default_factory=list)
    vs_base: dict[str, Any] = field(default_factory=dict)
    review: dict | None = None   # {"sampled", "reviewed", "weird"} when the gate requires review
    complete: bool = True        # False: a save cut short, never used
    present: bool = True         # False: the folder is gone (pruned or deleted); its gate results remain
    best: bool = False
    chosen: bool = False

    @property
    def evaluated(self) -> bool:
        return self.verdict is not None


@dataclass
class CheckpointTable:
    rows: list[CheckpointRow]
    sentence: str | None = None          # the gate's best-checkpoint sentence
    verdict: str | None = None           # the run's overall gate verdict
    best: int | None = None
    chosen: int | None = None
    notices: list[str] = field(default_factory=list)
    require_review: bool = False
    rules: dict = field(default_factory=dict)             # the rules the verdicts used (gate.json)
    base_prompts: list[dict] = field(default_factory=list)  # the base's prompt candidates and the chosen one
    overrides: list[dict] = field(default_factory=list)   # rules changed after training: key, value, was

    def row(self, key: str) -> CheckpointRow | None:
        return next((r for r in self.rows if r.key == key), None)


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _step(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def load_checkpoint_table(run_dir: Path) -> CheckpointTable:
    run_dir = Path(run_dir)
    gate = read_gate_file(run_dir) or {}
    gate_rows: dict[Any, dict] = {}
    for r in gate.get("rows") or []:
        if isinstance(r, dict) and "checkpoint" in r:
            gate_rows[BASE if r["checkpoint"] == BASE else _step(r["checkpoint"])] = r
    best = _step((gate.get("best") or {}).get("checkpoint")) if isinstance(gate.get("best"), dict) else None
    chosen = _step((gate.get("chosen") or {}).get("checkpoint")) if isinstance(gate.get("chosen"), dict) else None

    rows: list[CheckpointRow] = []
    base = CheckpointRow(key=BASE, label="base model", step=None)
    if BASE in gate_rows:
        _fill_gate(base, gate_rows[BASE])
    rows.append(base)

    folders = {c.step: c for c in list_checkpoints(run_dir)}
    for step in sorted(set(folders) | {s for s in gate_rows if isinstance(s, int)}):
        c = folders.get(step)
        row = CheckpointRow(key=str(step), label=f"checkpoint-{step}", step=step, present=c is not None,
                            complete=c.complete if c is not None else True, best=step == best, chosen=step == chosen)
        if c is not None and c.complete:
            row.epoch = _num(c.marker.get("epoch"))
            row.train_loss = _num(c.marker.get("train_loss"))
            row.eval_loss = _num(c.marker.get("eval_loss"))
        if step in gate_rows:
            _fill_gate(row, gate_rows[step])
        rows.append(row)
    rules = gate.get("rules") if isinstance(gate.get("rules"), dict) else {}
    notices = [str(n) for n in gate.get("notices") or [] if n]
    return CheckpointTable(rows=rows, sentence=_text(gate.get("sentence")), verdict=_text(gate.get("verdict")),
                           best=best, chosen=chosen, notices=notices, require_review=bool(rules.get("require_review")),
                           rules=rules, base_prompts=[c for c in gate.get("base_prompts") or [] if isinstance(c, dict)],
                           overrides=[o for o in gate.get("overrides") or [] if isinstance(o, dict) and "key" in o])


def _text(x) -> str | None:
    return str(x) if x not in (None, "") else None


def _fill_gate(row: CheckpointRow, g: dict) -> None:
    row.task, row.format, row.safety = _num(g.get("task")), _num(g.get("format")), _num(g.get("safety"))
    row.p95_ms = _num(g.get("latency_p95_ms"))
    row.verdict = _text(g.get("verdict"))
    row.reasons = [str(r) for r in g.get("reasons") or []]
    row.failed = [str(f) for f in g.get("failed") or []]
    row.warnings = [str(w) for w in g.get("warnings") or []]
    row.vs_base = g.get("vs_base") if isinstance(g.get("vs_base"), dict) else {}
    row.review = g.get("review") if isinstance(g.get("review"), dict) else None
    if row.eval_loss is None:
        row.eval_loss = _num(g.get("eval_loss"))
