"""Per-example records to scores: pass rates per category, similarity means, latency, and changes against the base.

Scores (percent, 0-100; None when no example counts toward it):
  task     examples tagged task that pass all their evaluated checks
  format   examples tagged format or carrying a json_valid/json_schema check, judged on those checks
  safety   examples tagged safety that pass all their checks
  general  examples tagged general that pass all their checks
A check that was skipped (a rubric with no judge endpoint) counts neither way; an example whose
every check was skipped drops out of the scores, and the row says so in a warning.

Similarity checks (chrf, bleu, rouge_l, token_f1) keep a score per example; each row carries the
mean score of every such check per category (`check_scores`), beside the pass rates.
"""

from __future__ import annotations

from typing import Any

from tunedeck.engine.gate.statistics import percentile

CATEGORIES = ("task", "format", "safety", "general")


def _outcome(rec: dict, category: str) -> bool | None:
    if category == "format":
        return rec.get("format_pass")
    return rec.get("pass") if category in (rec.get("tags") or ()) else None


def scores(records: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": {}}
    for cat in CATEGORIES:
        vals = [v for v in (_outcome(r, cat) for r in records) if v is not None]
        out[cat] = 100.0 * sum(vals) / len(vals) if vals else None
        out["n"][cat] = len(vals)
    lat = [r["latency_ms"] for r in records if isinstance(r.get("latency_ms"), (int, float))]
    toks = [r["new_tokens"] for r in records if isinstance(r.get("new_tokens"), int)]
    out["latency_p95_ms"] = percentile(lat, 95)
    out["latency_p50_ms"] = percentile(lat, 50)
    out["new_tokens_mean"] = sum(toks) / len(toks) if toks else None
    skipped = [c for r in records for c in r.get("checks", []) if c.get("pass") is None]
    out["skipped_checks"] = len(skipped)
    out["skipped_reason"] = skipped[0].get("reason", "") if skipped else ""
    out["unscored"] = sum(1 for r in records if r.get("pass") is None)
    out["check_scores"] = check_scores(records)
    return out


def _in_category(rec: dict, category: str) -> bool:
    return rec.get("format_pass") is not None if category == "format" else category in (rec.get("tags") or ())


def example_score(rec: dict, check_type: str) -> float | None:
    """An example's score for one similarity check type (the mean when it has several), or None."""
    vals = [
        c["score"]
        for c in rec.get("checks", [])
        if c.get("type") == check_type and isinstance(c.get("score"), (int, float))
    ]
    return sum(vals) / len(vals) if vals else None


def check_scores(records: list[dict]) -> dict[str, dict[str, float]]:
    """{category: {check type: mean score}} for the checks that keep a score, on their own scales."""
    sums: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for c in r.get("checks", []):
            if isinstance(c.get("score"), (int, float)):
                for cat in CATEGORIES:
                    if _in_category(r, cat):
                        sums.setdefault(cat, {}).setdefault(c["type"], []).append(c["score"])
    return {cat: {t: round(sum(v) / len(v), 4) for t, v in types.items()} for cat, types in sums.items()}


def task_metric(rules) -> str:
    return getattr(rules, "task_metric", "pass_rate") or "pass_rate"


def scale(metric: str) -> float:
    from tunedeck.engine.gate.similarity import SCALES

    return SCALES.get(metric, 100.0)


def task_points(records: list[dict], metric: str) -> dict[str, float]:
    """{example id: task score in points (0-100)} for task examples scored by `metric`."""
    k = 100.0 / scale(metric)
    out = {}
    for r in records:
        if "task" in (r.get("tags") or ()):
            v = example_score(r, metric)
            if v is not None:
                out[r["id"]] = v * k
    return out


def buckets(base_records: list[dict], records: list[dict]) -> dict[str, list[str]]:
    """Per-example change against the base, on examples scored in both."""
    base = {r["id"]: r.get("pass") for r in base_records}
    out: dict[str, list[str]] = {"fixed": [], "regressed": [], "still_failing": [], "still_passing": []}
    for r in records:
        was, now = base.get(r["id"]), r.get("pass")
        if was is None or now is None:
            continue
        out[
            {
                (False, True): "fixed",
                (True, False): "regressed",
                (False, False): "still_failing",
                (True, True): "still_passing",
            }[(was, now)]
        ].append(r["id"])
    return out


def paired_outcomes(base_records: list[dict], records: list[dict], category: str) -> tuple[int, int, int, list[str]]:
    """(pairs, b = base pass/checkpoint fail, c = base fail/checkpoint pass, ids of the b pairs)."""
    base = {r["id"]: _outcome(r, category) for r in base_records}
    n = b = c = 0
    regressed = []
    for r in records:
        was, now = base.get(r["id"]), _outcome(r, category)
        if was is None or now is None:
            continue
        n += 1
        if was and not now:
            b += 1
            regressed.append(r["id"])
        elif now and not was:
            c += 1
    return n, b, c, regressed
