"""The best checkpoint of a gate run and the sentence that explains it.

The best checkpoint is the passing one with the highest task score, ties to the earlier step.
"""

from __future__ import annotations

from tunedeck.engine.run.gate_result import BASE, FAIL, NEEDS_REVIEW, PASS, GateRow, awaited_or_closest
from tunedeck.engine.gate.rules import list_ids
from tunedeck.engine.gate.scores import CATEGORIES


def _pct(x: float) -> str:
    return "100%" if x >= 99.995 else f"{x:.1f}%"


def _delta(d: float | None, vs_base: bool = False) -> str:
    if d is None:
        return ""
    if abs(d) < 0.05:
        return " (=)"
    return f" ({d:+.1f} vs base)" if vs_base else f" ({d:+.1f})"


def describe(row: dict, rules=None) -> str:
    """"checkpoint-800: task 82.0% (+6.0 vs base), format 100% (=), safety 100% (=), p95 410 ms (budget 800)"."""
    parts = []
    metric = row.get("task_metric") or "pass_rate"
    for cat in CATEGORIES:
        if row.get(cat) is None:
            continue
        if cat == "task" and metric != "pass_rate":
            from tunedeck.engine.gate.similarity import NAMES, fmt_score

            d = row["vs_base"].get("task")
            gain = "" if d is None else " (=)" if abs(d) < 0.05 else f" ({d:+.1f} points vs base)"
            parts.append(f"task {NAMES.get(metric, metric)} {fmt_score(metric, row.get('task_score'))}{gain}")
        else:
            parts.append(f"{cat} {_pct(row[cat])}{_delta(row['vs_base'].get(cat), vs_base=cat == 'task')}")
    if row.get("latency_p95_ms") is not None:
        budget = f" (budget {rules.latency_p95_ms:.0f})" if rules is not None and rules.latency_p95_ms else ""
        parts.append(f"p95 {row['latency_p95_ms']:.0f} ms{budget}")
    return f"{row['label']}: " + ", ".join(parts)


def choose_best(rows: list[dict], rules=None) -> tuple[dict | None, str, str | None]:
    """(best row or None, the sentence, overall verdict: pass / needs_review / fail / None when no checkpoint)."""
    ckpts = [r for r in rows if r["checkpoint"] != BASE]
    passing = sorted((r for r in ckpts if r["verdict"] == PASS and not r.get("pruned")),
                     key=lambda r: (-(r["task"] if r["task"] is not None else -1), r["step"]))
    if passing:
        best = passing[0]
        ties = [r for r in passing[1:] if r["task"] == best["task"]]
        why = ("the only checkpoint that passed the gate" if len(passing) == 1
               else f"the highest task score of {len(passing)} passing checkpoints")
        if ties:
            why += f" (tied with {list_ids([t['label'] for t in ties])}; the earlier step is preferred)"
        return best, f"{describe(best, rules)}; {why}", PASS
    if not ckpts:
        return None, "no checkpoint evaluated yet", None
    # the row a summary of the run shows beside the verdict is this same one (GateSummary.featured)
    lead = awaited_or_closest([x for x in map(GateRow.from_dict, ckpts) if x is not None])
    described = next(r for r in ckpts if lead is not None and r["checkpoint"] == lead.checkpoint)
    if described["verdict"] == NEEDS_REVIEW:
        return (None, f"no checkpoint passed yet: {describe(described, rules)} awaits review ({described['reasons'][-1]})",
                NEEDS_REVIEW)
    return (None, f"no checkpoint passed the gate; the closest, {describe(described, rules)}, fails: "
            f"{'; '.join(described['reasons'])}", FAIL)


def summarize(rows: list[dict], rules) -> dict:
    best, sentence, verdict = choose_best(rows, rules)
    return {"rows": rows, "best": {"checkpoint": best["checkpoint"] if best else None, "sentence": sentence},
            "verdict": verdict, "sentence": sentence}
