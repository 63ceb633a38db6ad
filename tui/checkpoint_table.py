"""What the checkpoints screen shows for a run: the base model and every checkpoint, with gate results.

Three sources, read defensively: the checkpoint folders and their completion markers (step, epoch,
losses), evals/gate.json (scores, verdicts, reasons, best, chosen, the sentence) and the run's events
(the eval loss of a checkpoint pruned by the engine or deleted by hand, whose folder is gone but whose
gate row is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.run.gate_result import BASE, GateRow, GateSet, GateSummary, read_gate_summary
from tunedeck.engine.run.store import list_checkpoints


@dataclass
class CheckpointRow:
    key: str  # "base" or the step as text: the table's row key
    label: str  # "base model" or "checkpoint-800"
    step: int | None
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    gate: GateRow | None = None  # the gate's row (engine/run/gate_result.py); None: not evaluated
    complete: bool = True  # False: a save cut short, never used
    present: bool = True  # False: the folder is gone (pruned or deleted); its gate results remain
    best: bool = False
    chosen: bool = False

    @property
    def evaluated(self) -> bool:
        return self.gate is not None

    # the gate row's fields, as the table shows them
    task = property(lambda self: self.gate.task if self.gate else None)
    format = property(lambda self: self.gate.format if self.gate else None)
    safety = property(lambda self: self.gate.safety if self.gate else None)
    general = property(lambda self: self.gate.general if self.gate else None)
    p95_ms = property(lambda self: self.gate.latency_p95_ms if self.gate else None)
    verdict = property(lambda self: self.gate.verdict if self.gate else None)  # pass / fail / needs_review / baseline
    reasons = property(lambda self: self.gate.reasons if self.gate else [])
    failed = property(lambda self: self.gate.failed if self.gate else [])  # rule codes: task_gain, safety, ...
    warnings = property(lambda self: self.gate.warnings if self.gate else [])
    vs_base = property(lambda self: self.gate.vs_base if self.gate else {})
    review = property(lambda self: self.gate.review if self.gate else None)  # {"sampled", "reviewed", "weird"}


@dataclass
class CheckpointTable:
    rows: list[CheckpointRow]
    sentence: str | None = None  # the gate's best-checkpoint sentence
    verdict: str | None = None  # the run's overall gate verdict
    best: int | None = None
    chosen: int | None = None
    notices: list[str] = field(default_factory=list)
    require_review: bool = False
    rules: dict = field(default_factory=dict)  # the rules the verdicts used (gate.json)
    base_prompts: list[dict] = field(default_factory=list)  # the base's prompt candidates and the chosen one
    overrides: list[dict] = field(default_factory=list)  # rules changed after training: key, value, was
    sets: list[GateSet] = field(default_factory=list)  # the eval sets, their kinds, how the base was asked each

    def row(self, key: str) -> CheckpointRow | None:
        return next((r for r in self.rows if r.key == key), None)


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def load_checkpoint_table(run_dir: Path) -> CheckpointTable:
    run_dir = Path(run_dir)
    gate = read_gate_summary(run_dir) or GateSummary()
    gate_rows = {r.checkpoint: r for r in gate.rows}
    chosen = gate.chosen.checkpoint if gate.chosen is not None else None

    rows: list[CheckpointRow] = [CheckpointRow(key=BASE, label="base model", step=None, gate=gate_rows.get(BASE))]
    folders = {c.step: c for c in list_checkpoints(run_dir)}
    for step in sorted(set(folders) | {s for s in gate_rows if isinstance(s, int)}):
        c = folders.get(step)
        row = CheckpointRow(
            key=str(step),
            label=f"checkpoint-{step}",
            step=step,
            present=c is not None,
            complete=c.complete if c is not None else True,
            best=step == gate.best,
            chosen=step == chosen,
            gate=gate_rows.get(step),
        )
        if c is not None and c.complete:
            row.epoch = _num(c.marker.get("epoch"))
            row.train_loss = _num(c.marker.get("train_loss"))
            row.eval_loss = _num(c.marker.get("eval_loss"))
        if row.eval_loss is None and row.gate is not None:
            row.eval_loss = row.gate.eval_loss
        rows.append(row)
    return CheckpointTable(
        rows=rows,
        sentence=gate.sentence or None,
        verdict=gate.verdict,
        best=gate.best,
        chosen=chosen,
        notices=gate.notices,
        require_review=bool(gate.rules.get("require_review")),
        rules=gate.rules,
        base_prompts=gate.base_prompts,
        overrides=gate.overrides,
        sets=gate.sets,
    )
