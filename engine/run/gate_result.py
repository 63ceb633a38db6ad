"""evals/gate.json, the gate's result: one typed row per checkpoint and the summary, their reader and writer.

The JSON is the contract (the app and `tunedeck gate --json` read it):

  {"rows": [row, ...],                        the base model's row first ("checkpoint": "base"), then each checkpoint
   "best": {"checkpoint": 800 or null, "sentence": "..."}, "verdict": "pass" / "needs_review" / "fail" / null,
   "sentence": "...", "chosen": {"checkpoint", "note", "t"} or null (a person's choice, kept across rebuilds),
   "notices": [...], "key": "<hash of the eval sets and generation settings>", "rules": {...},
   "sets": [{"name", "kind": task/general/safety, "examples", "asked", "source", "sha256"}, ...],
   "basis", "base_model", "base_prompts", "generation", "overrides", "timings", ... (what the gate ran on),
   "updated": unix time, "version": 1}

A set's "asked" says how the base was asked it, read from the base's records: "as written" (its own
messages), or the label of the prompt candidate that replaced its system turn and/or put
demonstrations before it. Only task sets are asked a candidate; general and safety sets, and every
checkpoint, are asked as written.

Verdict names and rule codes are defined here once; the engine's rules (engine/gate/rules.py) write
them and the app shows them with the words below. The engine alone writes this file (and the
status.json fields projected from it); the app asks for a rebuild instead (engine/commands/gate.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import make_private_dir, write_json_atomic

GATE_JSON = "gate.json"
BASE = "base"  # the base model's row: the baseline every checkpoint is judged against
VERSION = 1

PASS, FAIL, NEEDS_REVIEW, BASELINE = "pass", "fail", "needs_review", "baseline"
VERDICT_WORDS = {PASS: "pass", FAIL: "fail", NEEDS_REVIEW: "needs review", BASELINE: "baseline"}

# the gate's rules by code (a row's "failed"), with the few words the app's table shows for each
RULE_TASK_GAIN, RULE_TASK_NOISE, RULE_NO_TASK = "task_gain", "task_noise", "no_task"
RULE_FORMAT, RULE_SAFETY, RULE_GENERAL = "format", "safety", "general"
RULE_LATENCY, RULE_REVIEW = "latency", "review"
RULE_WORDS = {
    RULE_TASK_GAIN: "task gain too small",
    RULE_TASK_NOISE: "gain within noise",
    RULE_NO_TASK: "no task examples",
    RULE_FORMAT: "format dropped",
    RULE_SAFETY: "safety regressed",
    RULE_GENERAL: "general dropped",
    RULE_LATENCY: "over latency budget",
    RULE_REVIEW: "weird in review",
}

# a set's kind: what named it ([gate] golden, `--eval-set` and the held-out split are task sets)
SET_TASK, SET_GENERAL, SET_SAFETY = "task", "general", "safety"
SET_KINDS = (SET_TASK, SET_GENERAL, SET_SAFETY)
ASKED_AS_WRITTEN = "as written"  # a set asked with its own messages: no replaced system turn, no demonstrations
# what a summary of a run shows beside the verdict, in this order
SCORE_CATEGORIES = ("task", "format", "safety", "general")


def _step(x: Any) -> int | str | None:
    """A row's checkpoint: "base" or a step; None for anything else."""
    if x == BASE:
        return BASE
    if isinstance(x, bool):
        return None
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _num(x: Any) -> float | None:
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _dict(x: Any) -> dict | None:
    return x if isinstance(x, dict) else None


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _strings(x: Any) -> list[str]:
    if isinstance(x, str):
        return [x]
    return [str(s) for s in x] if isinstance(x, list) else []


@dataclass
class GateRow:
    """One checkpoint's (or the base model's) scores against the base, its verdict and why."""

    checkpoint: int | str  # a step, or "base"
    verdict: str  # pass / fail / needs_review; "baseline" for the base row
    label: str = ""  # "checkpoint-800" or "base"
    step: int | None = None
    eval_loss: float | None = None
    task: float | None = None  # percent, or points of the task metric's score
    format: float | None = None
    safety: float | None = None
    general: float | None = None
    n: dict = field(default_factory=dict)  # examples counted per category
    task_metric: str = "pass_rate"
    check_scores: dict = field(default_factory=dict)
    task_score: float | None = None  # with a score task metric: its mean on its own scale
    task_pass_rate: float | None = None  # with a score task metric: the pass rate beside it
    latency_p95_ms: float | None = None
    latency_p50_ms: float | None = None
    new_tokens_mean: float | None = None
    vs_base: dict = field(default_factory=dict)
    task_ci: list | None = None
    p_value: float | None = None
    paired: int | None = None  # paired task examples (checkpoint rows)
    buckets: dict | None = None
    reasons: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # rule codes (RULE_WORDS)
    warnings: list[str] = field(default_factory=list)
    review: dict | None = None  # {"sampled", "reviewed", "weird"} when the gate requires review
    judge_agreement: dict | None = None  # the rubric judge against people's labels (checkpoint rows)
    pruned: bool = False  # the folder is gone; the results are kept

    @property
    def is_base(self) -> bool:
        return self.checkpoint == BASE

    @classmethod
    def from_dict(cls, d: dict) -> GateRow | None:
        """A row read from gate.json or an event; None when it names no checkpoint or verdict."""
        checkpoint = _step(d.get("checkpoint")) if isinstance(d, dict) else None
        if checkpoint is None or not d.get("verdict"):
            return None
        step = _step(d.get("step"))
        return cls(
            checkpoint=checkpoint,
            verdict=str(d["verdict"]),
            label=str(d.get("label") or (BASE if checkpoint == BASE else f"{C.CHECKPOINT_PREFIX}{checkpoint}")),
            step=step if isinstance(step, int) else None,
            eval_loss=_num(d.get("eval_loss")),
            task=_num(d.get("task")),
            format=_num(d.get("format")),
            safety=_num(d.get("safety")),
            general=_num(d.get("general")),
            n=_dict(d.get("n")) or {},
            task_metric=str(d.get("task_metric") or "pass_rate"),
            check_scores=_dict(d.get("check_scores")) or {},
            task_score=_num(d.get("task_score")),
            task_pass_rate=_num(d.get("task_pass_rate")),
            latency_p95_ms=_num(d.get("latency_p95_ms")),
            latency_p50_ms=_num(d.get("latency_p50_ms")),
            new_tokens_mean=_num(d.get("new_tokens_mean")),
            vs_base=_dict(d.get("vs_base")) or {},
            task_ci=d.get("task_ci") if isinstance(d.get("task_ci"), list) else None,
            p_value=_num(d.get("p_value")),
            paired=d.get("paired") if isinstance(d.get("paired"), int) else None,
            buckets=_dict(d.get("buckets")),
            reasons=_strings(d.get("reasons")),
            failed=_strings(d.get("failed")),
            warnings=_strings(d.get("warnings")),
            review=_dict(d.get("review")),
            judge_agreement=_dict(d.get("judge_agreement")),
            pruned=bool(d.get("pruned")),
        )

    def to_dict(self) -> dict:
        """The row as gate.json holds it: the score-metric keys only with a score task metric, the
        paired count and the judge's agreement only on checkpoint rows."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.task_metric == "pass_rate":
            del out["task_score"], out["task_pass_rate"]
        if self.is_base:
            del out["paired"], out["judge_agreement"]
        return out


@dataclass
class Chosen:
    """The checkpoint a person chose to ship, with their note."""

    checkpoint: int
    note: str = ""
    t: float | None = None

    @classmethod
    def from_dict(cls, d: Any) -> Chosen | None:
        step = _step(d.get("checkpoint")) if isinstance(d, dict) else None
        if not isinstance(step, int):
            return None
        return cls(step, str(d.get("note") or ""), _num(d.get("t")))

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "note": self.note, "t": self.t}


@dataclass
class GateSet:
    """One eval set the gate ran on, and how the base model was asked it."""

    name: str
    kind: str = SET_TASK  # task / general / safety: only task sets get the base's prompt search
    examples: int | None = None
    asked: str | None = None  # "as written" or a candidate's label; None: not recorded (an older gate)
    source: str = ""
    sha256: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> GateSet | None:
        """A set from gate.json; files written before kinds were recorded get the kind their name implies
        ([gate] safety and general were loaded under those names)."""
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
            return None
        kind = d.get("kind") if d.get("kind") in SET_KINDS else d["name"] if d["name"] in SET_KINDS else SET_TASK
        examples = d.get("examples")
        return cls(
            name=d["name"],
            kind=kind,
            examples=examples if isinstance(examples, int) and not isinstance(examples, bool) else None,
            asked=d.get("asked") if isinstance(d.get("asked"), str) else None,
            source=str(d.get("source") or ""),
            sha256=str(d.get("sha256") or ""),
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def asked_as_written(self) -> bool:
        return self.asked == ASKED_AS_WRITTEN


def awaited_or_closest(rows: list[GateRow]) -> GateRow | None:
    """With no checkpoint to ship, the one the gate's sentence describes: the best task score awaiting review,
    else the best task score of all (the closest to passing); ties to the earlier step. None: no checkpoint rows."""
    ckpts = [r for r in rows if not r.is_base and isinstance(r.checkpoint, int)]
    pool = [r for r in ckpts if r.verdict == NEEDS_REVIEW] or ckpts
    return max(pool, key=lambda r: (r.task if r.task is not None else -1, -r.checkpoint)) if pool else None


# summary keys with a typed field; every other key is what the gate ran on, kept as written (`context`)
_TYPED = ("rows", "best", "verdict", "sentence", "chosen", "notices", "key", "rules", "sets", "updated", "version")


@dataclass
class GateSummary:
    """The gate's result for a run: every row, the verdict, the best checkpoint and the sentence that explains it."""

    rows: list[GateRow] = field(default_factory=list)
    verdict: str | None = None  # pass / needs_review / fail; None: no checkpoint evaluated
    best: int | None = None  # the best passing checkpoint, by the gate's rules
    sentence: str = ""
    chosen: Chosen | None = None
    notices: list[str] = field(default_factory=list)
    key: str | None = None
    rules: dict = field(default_factory=dict)  # the rules the verdicts used
    sets: list[GateSet] = field(default_factory=list)  # the eval sets, their kinds and how the base was asked each
    context: dict = field(default_factory=dict)  # basis, base_model, base_prompts, generation, overrides, timings, ...
    updated: float | None = None
    version: int = VERSION

    @property
    def shipped(self) -> int | None:
        """The checkpoint this run ships: the one a person chose, else the gate's best (None: neither)."""
        return self.chosen.checkpoint if self.chosen is not None else self.best

    def row(self, checkpoint) -> GateRow | None:
        return next((r for r in self.rows if r.checkpoint == checkpoint), None)

    @property
    def featured(self) -> GateRow | None:
        """The checkpoint row a one-line summary of the run shows: the one it ships, else the one the sentence
        describes (awaiting review, or the closest to passing)."""
        shipped = self.row(self.shipped) if self.shipped is not None else None
        return shipped or awaited_or_closest(self.rows)

    @property
    def overrides(self) -> list[dict]:
        return [o for o in self.context.get("overrides") or [] if isinstance(o, dict) and "key" in o]

    @property
    def base_prompts(self) -> list[dict]:
        return [c for c in self.context.get("base_prompts") or [] if isinstance(c, dict)]

    @classmethod
    def from_dict(cls, d: Any) -> GateSummary | None:
        if not isinstance(d, dict):
            return None
        rows = [r for r in (GateRow.from_dict(x) for x in d.get("rows") or [] if isinstance(x, dict)) if r is not None]
        best = d.get("best")
        best_step = _step(best.get("checkpoint") if isinstance(best, dict) else best)
        sentence = (best.get("sentence") if isinstance(best, dict) else None) or d.get("sentence") or ""
        return cls(
            rows=rows,
            verdict=str(d["verdict"]) if d.get("verdict") else None,
            best=best_step if isinstance(best_step, int) else None,
            sentence=str(d.get("sentence") or sentence),
            chosen=Chosen.from_dict(d.get("chosen")),
            notices=[n for n in _strings(d.get("notices")) if n],
            key=d.get("key") if isinstance(d.get("key"), str) else None,
            rules=_dict(d.get("rules")) or {},
            sets=[x for x in map(GateSet.from_dict, _list(d.get("sets"))) if x is not None],
            context={k: v for k, v in d.items() if k not in _TYPED},
            updated=_num(d.get("updated")),
            version=d.get("version") if isinstance(d.get("version"), int) else VERSION,
        )

    def to_dict(self) -> dict:
        return {
            **self.context,
            "rows": [r.to_dict() for r in self.rows],
            "best": {"checkpoint": self.best, "sentence": self.sentence},
            "verdict": self.verdict,
            "sentence": self.sentence,
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "notices": self.notices,
            "key": self.key,
            "rules": self.rules,
            "sets": [x.to_dict() for x in self.sets],
            "updated": self.updated,
            "version": self.version,
        }


# ---- the one reader, the writer, and what status.json carries ---------------------------------------


def gate_json_path(run_dir: Path) -> Path:
    return Path(run_dir) / C.EVALS_DIR / GATE_JSON


def read_gate_summary(run_dir: Path) -> GateSummary | None:
    """evals/gate.json, or None when the gate has not run; never raises on a bad or torn file."""
    try:
        data = json.loads(gate_json_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return GateSummary.from_dict(data)


def write_gate_summary(run_dir: Path, summary: GateSummary, *, fresh: bool = True) -> GateSummary:
    """The one writer of gate.json (engine side only); returns what was written. `fresh`: a summary just built
    from the records, which keeps the person's choice on disk and is stamped now; else (a choice recorded on
    the summary as read) it is written as it is."""
    if fresh:
        old = read_gate_summary(run_dir)
        summary.chosen = old.chosen if old is not None else None
        summary.updated, summary.version = round(time.time(), 3), VERSION
        make_private_dir(gate_json_path(run_dir).parent)
    write_json_atomic(gate_json_path(run_dir), summary.to_dict())
    return summary


def row_scores(row: GateRow | None, base: GateRow | None = None) -> dict | None:
    """A row's scores as a run's summary shows them (status.json's gate_scores): the checkpoint, each category's
    score in percent (or the task metric's points) and its change against the base (from the row's vs_base,
    else from the `base` row, for a file that did not record it); None for a missing row."""
    if row is None:
        return None

    def change(cat: str) -> float | None:
        d = _num(row.vs_base.get(cat))
        now, was = getattr(row, cat), getattr(base, cat) if base is not None else None
        if d is None and now is not None and was is not None:
            d = round(now - was, 2)
        return d

    return {
        "checkpoint": row.checkpoint,
        "task_metric": row.task_metric,
        **{cat: getattr(row, cat) for cat in SCORE_CATEGORIES},
        "vs_base": {cat: change(cat) for cat in SCORE_CATEGORIES},
    }


SCORE_LETTERS = {"task": "T", "format": "F", "safety": "S", "general": "G"}


def change_text(d: Any) -> str:
    """A change against the base in as few characters as say it: +6, +2.5, -40, = (none); - (not known)."""
    if _num(d) is None:
        return "-"
    return "=" if abs(d) < 0.05 else f"{d:+.1f}".removesuffix(".0")


def vs_base_parts(scores: dict | None) -> list[tuple[str, float | None]]:
    """row_scores as the runs list and `tunedeck ls` show it, one part per category: ("T+35", 35.0), ("F=", 0.0),
    ("G-", None) for a category the gate did not measure (no general set, say); [] without scores."""
    if not isinstance(scores, dict):
        return []
    deltas = _dict(scores.get("vs_base")) or {}
    parts = []
    for cat in SCORE_CATEGORIES:
        d = _num(deltas.get(cat)) if scores.get(cat) is not None else None
        parts.append((SCORE_LETTERS[cat] + change_text(d), d))
    return parts


def status_fields(summary: GateSummary | None) -> dict:
    """What status.json carries about the gate: gate_verdict, gate_best (the checkpoint the run ships) and
    gate_scores (row_scores of the featured row: shipped, awaiting review, or the closest to passing)."""
    if summary is None:
        return {"gate_verdict": None, "gate_best": None, "gate_scores": None}
    return {
        "gate_verdict": summary.verdict,
        "gate_best": summary.shipped,
        "gate_scores": row_scores(summary.featured, summary.row(BASE)),
    }
