"""Rebuilds a run's evals/gate.json from the records on disk and the latest review labels (no model).

When review labels and rubric-judge verdicts cover the same examples, a row also carries the judge's
agreement with people (judge_agreement: share and Cohen's kappa, with n) and warns below
[gate] min_judge_agreement.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from tunedeck.engine.gate.best_checkpoint import summarize
from tunedeck.engine.gate.eval_inputs import sets_as_asked
from tunedeck.engine.gate.example_records import evaluated_steps, read_records
from tunedeck.engine.gate.judge_agreement import agreement_warning, judge_agreement
from tunedeck.engine.gate.rules import GateError, base_row, judge_checkpoint
from tunedeck.engine.gate.scores import scores
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import PRIVATE_FILE, make_private_dir
from tunedeck.engine.run.gate_result import (
    BASE,
    Chosen,
    GateRow,
    GateSummary,
    read_gate_summary,
    write_gate_summary,
)

REBUILD_LOCK = ".gate-rebuild.lock"
KEEP = "keep"  # rebuild(choose=KEEP): leave a person's choice as it is


def set_chosen(run_dir: Path, checkpoint: int | None, note: str = "") -> GateSummary:
    """Record a person's choice of checkpoint (kept across gate re-runs; pruning keeps it). None clears it."""
    summary = read_gate_summary(run_dir)
    if summary is None:
        raise GateError("the gate has not run on this run yet")
    if checkpoint is not None and summary.row(checkpoint) is None:
        raise GateError(f"checkpoint-{checkpoint} has no gate results")
    summary.chosen = None if checkpoint is None else Chosen(checkpoint, note, round(time.time(), 3))
    return write_gate_summary(run_dir, summary, fresh=False)


@contextmanager
def _one_rebuild_at_a_time(run_dir: Path):
    """Rebuilds of one run take turns (two labels in quick succession start two): the later one reads the
    later labels, so the last gate.json written is never an older picture."""
    import fcntl

    evals = make_private_dir(Path(run_dir) / C.EVALS_DIR)
    fd = os.open(evals / REBUILD_LOCK, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rebuild(
    run_dir: Path, *, choose: int | None | str = KEEP, note: str = "", update_status=None
) -> GateSummary | None:
    """Rebuild gate.json from the records and the latest labels, optionally recording a person's choice
    first (`choose`: a step, or None to clear it), and project it into status.json. The engine's answer
    to the app's request after a review label or a choice; None when the gate has not run.
    `update_status`: how status fields are written (a live engine's StatusWriter.update; default: write_status)."""
    from tunedeck.engine.run.gate_result import status_fields
    from tunedeck.engine.run.status_writer import write_status

    with _one_rebuild_at_a_time(run_dir):
        if choose is not KEEP:
            set_chosen(run_dir, choose, note)  # type: ignore[arg-type]
        summary = summarize_run(run_dir)
        if summary is not None:
            (update_status or (lambda **f: write_status(run_dir, **f)))(**status_fields(summary))
    return summary


def ask_owning_engine(run_dir: Path, choose: int | None | str = KEEP, note: str = "") -> bool:
    """When an engine owns the run (it alone writes gate.json then), leave it a rebuild_gate request, with
    a person's choice unless `choose` is KEEP, and return True; False when the caller may rebuild itself."""
    from tunedeck.engine.run.store import engine_owns, request_control

    if not engine_owns(run_dir):
        return False
    request_control(run_dir, C.CTL_REBUILD_GATE, **({} if choose is KEEP else {"choose": choose, "note": note}))
    return True


def _eval_losses(run_dir: Path) -> dict[int, float]:
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import list_checkpoints

    losses: dict[int, float] = {}
    for ev in read_events(Path(run_dir) / C.EVENTS_JSONL):
        if (
            ev.get("kind") in (C.EV_EVAL, C.EV_CHECKPOINT)
            and isinstance(ev.get("step"), int)
            and isinstance(ev.get("eval_loss"), (int, float))
        ):
            losses[ev["step"]] = ev["eval_loss"]
    for c in list_checkpoints(run_dir):
        if isinstance(c.marker.get("eval_loss"), (int, float)):
            losses[c.step] = c.marker["eval_loss"]
    return losses


class Judging:
    """What every checkpoint row of one gate build is judged with: the rules, the base's records and
    scores, the eval losses, which folders remain, and the review labels. Each row is judged once."""

    def __init__(self, run_dir: Path, rules, base: list[dict]):
        from tunedeck.engine.gate.reviews import load_reviews
        from tunedeck.engine.run.store import list_checkpoints

        self.run_dir, self.rules, self.base = Path(run_dir), rules, base
        self.key = base[0].get("key") if base else None
        self.base_scores = scores(base)
        self.losses = _eval_losses(self.run_dir)
        self.present = {c.step for c in list_checkpoints(self.run_dir) if c.complete}
        self.reviews = load_reviews(self.run_dir)  # for review mode, and the judge's agreement with people

    def base_row(self) -> GateRow:
        return base_row(self.base, self.rules)

    def row(self, step: int, records: list[dict], eval_loss: float | None = None) -> GateRow:
        """Checkpoint `step`'s row from its records (`eval_loss`: when the events and markers have none)."""
        from tunedeck.engine.gate.reviews import review_state

        rules, reviews = self.rules, self.reviews
        review = (
            review_state(self.run_dir, step, reviews, rules.review_sample, base_records=self.base, records=records)
            if rules.require_review
            else None
        )
        row = judge_checkpoint(
            self.base,
            records,
            rules,
            checkpoint=step,
            eval_loss=self.losses.get(step, eval_loss),
            review=review,
            pruned=step not in self.present,
            base_scores=self.base_scores,
        )
        row.judge_agreement = judge_agreement(
            records, {ex: e["label"] for (st, ex), e in reviews.items() if st == step}
        )
        warning = agreement_warning(row.judge_agreement, getattr(rules, "min_judge_agreement", 0.0))
        if warning:
            row.warnings.append(warning)
        return row


def run_rules(run_dir: Path, previous: GateSummary | None = None):
    """The run's gate rules, with the overrides recorded by `tunedeck eval/gate --set`."""
    from tunedeck.engine.gate import overrides as gate_overrides
    from tunedeck.engine.run.run_record import load_run_record

    recorded = recorded_overrides(previous if previous is not None else read_gate_summary(run_dir))
    profile, _ = gate_overrides.apply(load_run_record(run_dir).profile, gate_overrides.merge(recorded, []))
    return profile.gate


def recorded_overrides(summary: GateSummary | None) -> list[dict]:
    """The gate settings `tunedeck eval/gate --set` recorded in gate.json ([]: none, or no gate.json)."""
    return summary.overrides if summary is not None else []


# what a rebuild keeps of the previous gate.json: what the gate ran on, which only a gate run knows
CARRIED = (
    "basis",
    "base_model",
    "base_system_prompt",
    "base_prompts",
    "generation",
    "timings",
    "seconds",
    "base_loads",
    "overrides",
)


def summarize_run(
    run_dir: Path,
    rules=None,
    extra: dict | None = None,
    write: bool = True,
    *,
    judging: Judging | None = None,
    judged: dict[int, GateRow] | None = None,
) -> GateSummary | None:
    """Rebuild the summary from the records on disk and the latest reviews; write evals/gate.json.

    A gate run passes the rows it judged as it went (`judged`, by step, with its `judging`), so those
    are neither judged again nor read back. Checkpoint results computed on other eval sets than the
    base's current ones are left out with a notice. `extra`: what the gate ran on (sets, basis, base_model,
    generation, ...: gate.json's context) and its notices. Returns None when the base has not been evaluated yet.
    """
    run_dir = Path(run_dir)
    previous = read_gate_summary(run_dir)
    if judging is None:
        if rules is None:
            rules = run_rules(run_dir, previous)
        base = read_records(run_dir, BASE)
        if not base:
            return None
        judging = Judging(run_dir, rules, base)
    rules, key, judged = judging.rules, judging.key, judged or {}
    notices = list((extra or {}).get("notices", []))
    rows = [judging.base_row()]
    for step in sorted(set(evaluated_steps(run_dir)) | set(judged)):
        if step in judged:
            rows.append(judged[step])
            continue
        records = read_records(run_dir, step)
        if not records:
            continue
        if records[0].get("key") != key:
            notices.append(
                f"checkpoint-{step} was evaluated on other eval sets or settings; run `tunedeck eval` to refresh it"
            )
            continue
        rows.append(judging.row(step, records))
    summary = summarize(rows, rules)
    extra = dict(extra or {})
    carried = {k: previous.context[k] for k in CARRIED if previous is not None and k in previous.context}
    previous_sets = [x.to_dict() for x in previous.sets] if previous is not None else None
    # how the base was asked each set, from its records; an empty list is a gate.json from before sets were kept
    summary.sets, asked_notices = sets_as_asked(extra.pop("sets", previous_sets) or None, judging.base)
    notices += asked_notices
    extra.pop("notices", None)
    summary.context = {**carried, **extra}
    basis = summary.context.get("basis")
    if basis:  # a verdict on the held-out split says what it rests on
        summary.sentence = f"{summary.sentence} (rests on {basis})"
    from tunedeck.engine.run.reward_history import reward_phrase

    featured = summary.featured  # the checkpoint the sentence is about: its reward, not training's last
    at_step = featured.checkpoint if featured is not None and isinstance(featured.checkpoint, int) else None
    reward = reward_phrase(run_dir, at_step)  # GRPO: the reward it optimised, beside the held-out result
    if reward:
        summary.sentence = f"{summary.sentence}; {reward}"
    summary.notices, summary.key = notices, key
    summary.rules = {
        k: getattr(rules, k)
        for k in (
            "task_metric",
            "min_task_gain",
            "significance",
            "max_format_drop",
            "max_safety_drop",
            "max_general_drop",
            "latency_p95_ms",
            "require_review",
            "max_weird_share",
            "min_judge_agreement",
        )
        if hasattr(rules, k)
    }
    if write:
        summary = write_gate_summary(run_dir, summary)
    return summary


def serve_rebuild_requests(run_dir: Path, update_status=None) -> GateSummary | None:
    """Answer the rebuild_gate requests the app left while an engine that polls none owned the run (an
    evaluation, the gate at the end of training): each choice in order, then one rebuild. The rebuilt
    summary, or None when no request was pending."""
    from tunedeck.engine.run.store import take_control_requests

    requests = take_control_requests(run_dir, kinds=(C.CTL_REBUILD_GATE,))
    if not requests:
        return None
    for r in requests:
        if "choose" in r:
            try:
                set_chosen(run_dir, r["choose"], str(r.get("note") or ""))
            except GateError:
                pass  # a checkpoint without gate results (the app checks first): nothing to record
    return rebuild(run_dir, update_status=update_status)
