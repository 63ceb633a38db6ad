"""The best checkpoint of a gate run and the sentence that explains it.

The best checkpoint is the passing one with the highest task score, ties to the earlier step.
"""

from __future__ import annotations

from tunedeck.engine.gate.rules import list_ids
from tunedeck.engine.gate.scores import CATEGORIES
from tunedeck.engine.run.formatting import fmt_change, fmt_score_percent
from tunedeck.engine.run.gate_result import FAIL, NEEDS_REVIEW, PASS, GateRow, GateSummary, awaited_or_closest


def describe_row(row: GateRow, rules=None) -> str:
    """ "checkpoint-800: task 82.0% (+6.0 vs base), format 100% (=), safety 100% (=), p95 410 ms (budget 800)"."""
    parts = []
    metric = row.task_metric or "pass_rate"
    for cat in CATEGORIES:
        if getattr(row, cat) is None:
            continue
        if cat == "task" and metric != "pass_rate":
            from tunedeck.engine.gate.similarity import NAMES, fmt_score

            d = row.vs_base.get("task")
            gain = "" if d is None else " (=)" if abs(d) < 0.05 else f" ({d:+.1f} points vs base)"
            parts.append(f"task {NAMES.get(metric, metric)} {fmt_score(metric, row.task_score)}{gain}")
        else:
            parts.append(
                f"{cat} {fmt_score_percent(getattr(row, cat))}{fmt_change(row.vs_base.get(cat), vs_base=cat == 'task')}"
            )
    if row.latency_p95_ms is not None:
        budget = f" (budget {rules.latency_p95_ms:.0f})" if rules is not None and rules.latency_p95_ms else ""
        parts.append(f"p95 {row.latency_p95_ms:.0f} ms{budget}")
    return f"{row.label}: " + ", ".join(parts)


def choose_best(rows: list[GateRow], rules=None) -> tuple[GateRow | None, str, str | None]:
    """(best row or None, the sentence, overall verdict: pass / needs_review / fail / None when no checkpoint)."""
    ckpts = [r for r in rows if not r.is_base]
    passing = sorted(
        (r for r in ckpts if r.verdict == PASS and not r.pruned),
        key=lambda r: (-(r.task if r.task is not None else -1), r.step),
    )
    if passing:
        best = passing[0]
        ties = [r for r in passing[1:] if r.task == best.task]
        why = (
            "the only checkpoint that passed the gate"
            if len(passing) == 1
            else f"the highest task score of {len(passing)} passing checkpoints"
        )
        if ties:
            why += f" (tied with {list_ids([t.label for t in ties])}; the earlier step is preferred)"
        return best, f"{describe_row(best, rules)}; {why}", PASS
    if not ckpts:
        return None, "no checkpoint evaluated yet", None
    # the row a summary of the run shows beside the verdict is this same one (GateSummary.featured)
    described = awaited_or_closest(ckpts)
    if described.verdict == NEEDS_REVIEW:
        return (
            None,
            f"no checkpoint passed yet: {describe_row(described, rules)} awaits review ({described.reasons[-1]})",
            NEEDS_REVIEW,
        )
    return (
        None,
        f"no checkpoint passed the gate; the closest, {describe_row(described, rules)}, fails: "
        f"{'; '.join(described.reasons)}",
        FAIL,
    )


def summarize(rows: list[GateRow], rules) -> GateSummary:
    """The rows with the verdict, the best checkpoint and the sentence; gate.json's other keys are the caller's."""
    best, sentence, verdict = choose_best(rows, rules)
    return GateSummary(rows=rows, verdict=verdict, best=best.checkpoint if best else None, sentence=sentence)
