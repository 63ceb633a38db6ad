"""The eval gate's decision: scores, rules, verdicts, the best checkpoint and the sentence that explains it.

Everything here works on per-example records (engine/gate/records.py) and needs no model, so the
app can recompute a verdict the moment a review label lands.

Scores (percent, 0-100; None when no example counts toward it):
  task     examples tagged task that pass all their evaluated checks
  format   examples tagged format or carrying a json_valid/json_schema check, judged on those checks
  safety   examples tagged safety that pass all their checks
  general  examples tagged general that pass all their checks
A check that was skipped (a rubric with no judge endpoint) counts neither way; an example whose
every check was skipped drops out of the scores, and the row says so in a warning.

Similarity checks (chrf, bleu, rouge_l, token_f1) keep a score per example; each row carries the
mean score of every such check per category (`check_scores`), beside the pass rates.

The task metric ([gate] task_metric): "pass_rate" (default) compares the share of task examples
that pass; a similarity check type ("chrf", "rouge_l", ...) compares that check's mean score on the
task examples instead. Then `task` and its gain are in points of that score (x 100 for the 0-1
scales), `task_score` is the mean on the check's own scale and `task_pass_rate` the pass rate.

Rules ([gate] in the profile), each naming itself in `reasons` when it fails:
  task_gain    task must beat the base by at least min_task_gain points
  task_noise   with min_task_gain > 0 and significance > 0: the gain must be significant (two-sided
               p < significance): McNemar's exact test on paired pass/fail for pass_rate; for a
               score, Wilcoxon's signed-rank test on the paired per-example scores, with a seeded
               paired bootstrap 95% interval of the mean gain
  no_task      there must be task examples at all
  format       format validity may drop by at most max_format_drop points
  safety       safety may drop by at most max_safety_drop points; at 0, no safety example the base
               passed may fail
  general      general capability may drop by at most max_general_drop points
  latency      p95 latency per example at most latency_p95_ms (when > 0)
  review       with require_review: the sampled failures, once all labelled, may hold at most
               max_weird_share "weird" labels; until all are labelled the verdict is needs_review
Verdicts: "pass", "fail" (every failed rule in reasons), "needs_review"; the base row is "baseline".
When review labels and rubric-judge verdicts cover the same examples, a row also carries the judge's
agreement with people (judge_agreement: share and Cohen's kappa, with n) and warns below
[gate] min_judge_agreement.
The best checkpoint is the passing one with the highest task score, ties to the earlier step.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import make_private_dir, write_json_atomic
from tunedeck.engine.gate.records import BASE, GATE_JSON, evals_dir, evaluated_steps, read_records
from tunedeck.engine.gate.judge_agreement import agreement_warning, judge_agreement

PASS, FAIL, NEEDS_REVIEW, BASELINE = "pass", "fail", "needs_review", "baseline"
CATEGORIES = ("task", "format", "safety", "general")
SMALL_SET = 30          # fewer paired task examples than this: warn that noise may decide
DEFAULT_ALPHA = 0.05


class GateError(ValueError):
    """The gate cannot run as asked (no such checkpoint, no eval set, data changed); str() says what to do."""


# ---- statistics -------------------------------------------------------------------------------

def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial test at 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_diff_ci(b: int, c: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval (points) for the paired difference in pass rates, Agresti-Min (+0.5 per cell).

    b: base passed, checkpoint failed; c: base failed, checkpoint passed; n: pairs.
    """
    if n <= 0:
        return (-100.0, 100.0)
    b_, c_, n_ = b + 0.5, c + 0.5, n + 2.0
    d = (c_ - b_) / n_
    se = math.sqrt(max((b_ + c_) - (c_ - b_) ** 2 / n_, 0.0)) / n_
    return (max(-1.0, d - z * se) * 100, min(1.0, d + z * se) * 100)


def min_detectable_gain(n: int, alpha: float) -> float:
    """The smallest gain (points) that could be significant on n pairs: all discordant pairs one way."""
    if n <= 0:
        return 100.0
    k = max(1, math.ceil(math.log2(2 / alpha) + 1e-9)) if alpha > 0 else 1
    return min(100.0, 100.0 * k / n)


BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same records always give the same interval


def paired_score_test(base: list[float], now: list[float]) -> tuple[float, tuple[float, float]]:
    """(Wilcoxon signed-rank two-sided p, paired bootstrap 95% interval of the mean difference) for
    per-example scores, in the units given. Zero differences are dropped by the test (Wilcoxon's
    own treatment); with no non-zero difference p is 1."""
    import numpy as np

    diffs = np.asarray(now, dtype=float) - np.asarray(base, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    idx = rng.integers(0, len(diffs), size=(BOOTSTRAP_RESAMPLES, len(diffs)))
    means = diffs[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    if not np.any(np.abs(diffs) > 1e-12):
        return 1.0, (float(lo), float(hi))
    from scipy.stats import wilcoxon

    p = float(wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)
    return (1.0 if math.isnan(p) else p), (float(lo), float(hi))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100): an observed value, never an interpolation."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


# ---- scores -----------------------------------------------------------------------------------

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
    vals = [c["score"] for c in rec.get("checks", []) if c.get("type") == check_type and isinstance(c.get("score"), (int, float))]
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


def _scale(metric: str) -> float:
    from tunedeck.engine.gate.similarity import SCALES

    return SCALES.get(metric, 100.0)


def task_points(records: list[dict], metric: str) -> dict[str, float]:
    """{example id: task score in points (0-100)} for task examples scored by `metric`."""
    k = 100.0 / _scale(metric)
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
        out[{(False, True): "fixed", (True, False): "regressed", (False, False): "still_failing",
             (True, True): "still_passing"}[(was, now)]].append(r["id"])
    return out


def _paired(base_records: list[dict], records: list[dict], category: str) -> tuple[int, int, int, list[str]]:
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


# ---- rows and rules ---------------------------------------------------------------------------

def _metric_scores(s: dict, records: list[dict], metric: str) -> None:
    """Switch a scores() dict to a score task metric: task in points, the pass rate kept beside it."""
    if "task_pass_rate" in s:
        return
    pts = task_points(records, metric)
    s["task_pass_rate"] = s["task"]
    s["task"] = sum(pts.values()) / len(pts) if pts else None
    s["task_score"] = None if s["task"] is None else s["task"] * _scale(metric) / 100.0
    s["n"] = {**s["n"], "task": len(pts)}


def _metric_fields(s: dict, metric: str) -> dict:
    out = {"task_metric": metric, "check_scores": s.get("check_scores", {})}
    if metric != "pass_rate":
        out["task_score"] = _r(s.get("task_score"), 4)
        out["task_pass_rate"] = _r(s.get("task_pass_rate"))
    return out


def _task_text(s: dict, metric: str) -> str:
    if metric == "pass_rate":
        return f"{s['task']:.1f}%"
    from tunedeck.engine.gate.similarity import NAMES, fmt_score

    return f"{NAMES.get(metric, metric)} {fmt_score(metric, s['task_score'])}"

def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _ids(ids: list[str], k: int = 3) -> str:
    return ", ".join(ids[:k]) + (f" and {len(ids) - k} more" if len(ids) > k else "")


def base_row(base_records: list[dict], rules=None) -> dict:
    s = scores(base_records)
    metric = task_metric(rules)
    if metric != "pass_rate":
        _metric_scores(s, base_records, metric)
    row = {"checkpoint": BASE, "label": BASE, "step": None, "eval_loss": None, **{k: _r(s[k]) for k in CATEGORIES},
           "n": s["n"], **_metric_fields(s, metric), "latency_p95_ms": _r(s["latency_p95_ms"], 1), "latency_p50_ms": _r(s["latency_p50_ms"], 1),
           "new_tokens_mean": _r(s["new_tokens_mean"], 1), "verdict": BASELINE, "reasons": [], "failed": [],
           "warnings": _skip_warnings(s), "vs_base": {}, "task_ci": None, "p_value": None, "buckets": None,
           "review": None, "pruned": False}
    return row


def _skip_warnings(s: dict) -> list[str]:
    w = []
    if s["skipped_checks"]:
        w.append(f"{s['skipped_checks']} check(s) skipped and not counted ({s['skipped_reason']})")
    if s["unscored"]:
        w.append(f"{s['unscored']} example(s) had every check skipped and are left out of the scores")
    return w


def judge_checkpoint(base_records: list[dict], records: list[dict], rules, *, checkpoint: int,
                     eval_loss: float | None = None, review=None, pruned: bool = False,
                     base_scores: dict | None = None) -> dict:
    """One checkpoint's row: scores, differences with the base, verdict and reasons.

    `rules` is a GateConfig (or anything with its attributes); `review` a reviews.ReviewState or None;
    `base_scores` is scores(base_records), when the caller judges several checkpoints against one base.
    """
    s, bs = scores(records), base_scores or scores(base_records)
    reasons: list[str] = []
    failed: list[str] = []
    warnings = _skip_warnings(s)
    vs = {k: _r(s[k] - bs[k]) if s[k] is not None and bs[k] is not None else None for k in CATEGORIES}

    def fail(code: str, why: str) -> None:
        failed.append(code)
        reasons.append(why)

    # task: the gain in points, and whether the paired test can tell it from noise
    metric = task_metric(rules)
    alpha = rules.significance if rules.significance > 0 else DEFAULT_ALPHA
    if metric == "pass_rate":
        n, b, c, _ = _paired(base_records, records, "task")
        p = mcnemar_exact(b, c) if n else None
        ci = paired_diff_ci(b, c, n) if n else None
        test = "McNemar"
    else:
        _metric_scores(s, records, metric)
        _metric_scores(bs, base_records, metric)
        vs["task"] = _r(s["task"] - bs["task"]) if s["task"] is not None and bs["task"] is not None else None
        now, was = task_points(records, metric), task_points(base_records, metric)
        common = [i for i in now if i in was]
        n = len(common)
        p, ci = paired_score_test([was[i] for i in common], [now[i] for i in common]) if n else (None, None)
        test = "Wilcoxon"
    if s["task"] is None:
        what = "no task examples scored" if metric == "pass_rate" else f"no task example has a {metric} check"
        fail("no_task", f"{what}: the gate cannot tell whether the model improved")
    elif vs["task"] is not None:
        gain = vs["task"]
        stats = f"{test} p={p:.2g} on {n} paired examples, 95% CI {ci[0]:+.1f} to {ci[1]:+.1f}" if n else "no paired examples"
        if gain < rules.min_task_gain - 1e-9:
            fail("task_gain", f"task {_task_text(s, metric)} is {gain:+.1f} points vs the base's {_task_text(bs, metric)}, "
                              f"below the required {rules.min_task_gain:+g} ({stats})")
        elif rules.min_task_gain > 0 and rules.significance > 0 and (p is None or p >= rules.significance):
            fail("task_noise", f"task gain {gain:+.1f} points is within noise ({stats}; needs p < {rules.significance:g})")
        if 0 < n < SMALL_SET and metric == "pass_rate":
            warnings.append(f"only {n} paired task examples: a gain under {min_detectable_gain(n, alpha):.0f} points "
                            f"cannot be told from noise; add examples to the eval set")
        elif 0 < n < SMALL_SET:
            warnings.append(f"only {n} paired task examples: the gain's interval is wide; add examples to the eval set")

    for cat, limit in (("format", rules.max_format_drop), ("safety", rules.max_safety_drop),
                       ("general", getattr(rules, "max_general_drop", 100.0))):
        if s[cat] is None or bs[cat] is None:
            continue
        drop = bs[cat] - s[cat]
        _, _, _, regressed = _paired(base_records, records, cat)
        broke = f"; newly failing: {_ids(regressed)}" if regressed else ""
        if drop > limit + 1e-9:
            name = "format validity" if cat == "format" else cat
            fail(cat, f"{name} {s[cat]:.1f}% dropped {drop:.1f} points from the base's {bs[cat]:.1f}% (allowed {limit:g}){broke}")
        elif cat == "safety" and limit == 0 and regressed:
            fail("safety", f"fails {len(regressed)} safety example(s) the base passed: {_ids(regressed)} "
                           "(max_safety_drop = 0 allows no safety regression)")

    if rules.latency_p95_ms and s["latency_p95_ms"] is not None and s["latency_p95_ms"] > rules.latency_p95_ms:
        fail("latency", f"p95 latency {s['latency_p95_ms']:.0f} ms is over the budget of {rules.latency_p95_ms:.0f} ms")

    verdict = FAIL if failed else PASS
    if rules.require_review:
        if review is not None and review.complete and review.sample:
            if review.weird_share > rules.max_weird_share + 1e-9:
                fail("review", f"review labelled {review.weird} of {review.reviewed} sampled failures 'new weird behaviour' "
                               f"({review.weird_share:.0%}; allowed {rules.max_weird_share:.0%})")
                verdict = FAIL
        elif review is None or not review.complete:
            done = f"{review.reviewed}/{len(review.sample)}" if review is not None else "0/?"
            if verdict == PASS:
                verdict = NEEDS_REVIEW
                reasons.append(f"awaiting human review: {done} sampled failures labelled")

    bk = buckets(base_records, records)
    return {"checkpoint": checkpoint, "label": f"{C.CHECKPOINT_PREFIX}{checkpoint}", "step": checkpoint,
            "eval_loss": eval_loss, **{k: _r(s[k]) for k in CATEGORIES}, "n": s["n"], **_metric_fields(s, metric),
            "latency_p95_ms": _r(s["latency_p95_ms"], 1), "latency_p50_ms": _r(s["latency_p50_ms"], 1),
            "new_tokens_mean": _r(s["new_tokens_mean"], 1), "vs_base": vs,
            "task_ci": [_r(ci[0]), _r(ci[1])] if ci else None, "p_value": _r(p, 6) if p is not None else None,
            "paired": n, "buckets": {k: len(v) for k, v in bk.items()},
            "verdict": verdict, "reasons": reasons, "failed": failed, "warnings": warnings,
            "review": review.to_dict() if review is not None else None, "pruned": pruned}


# ---- the best checkpoint and its sentence ---------------------------------------------------------

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
            why += f" (tied with {_ids([t['label'] for t in ties])}; the earlier step is preferred)"
        return best, f"{describe(best, rules)}; {why}", PASS
    waiting = [r for r in ckpts if r["verdict"] == NEEDS_REVIEW]
    if waiting:
        w = max(waiting, key=lambda r: (r["task"] or 0, -r["step"]))
        return None, f"no checkpoint passed yet: {describe(w, rules)} awaits review ({w['reasons'][-1]})", NEEDS_REVIEW
    if not ckpts:
        return None, "no checkpoint evaluated yet", None
    closest = max(ckpts, key=lambda r: (r["task"] if r["task"] is not None else -1, -r["step"]))
    return None, f"no checkpoint passed the gate; the closest, {describe(closest, rules)}, fails: {'; '.join(closest['reasons'])}", FAIL


def summarize(rows: list[dict], rules) -> dict:
    best, sentence, verdict = choose_best(rows, rules)
    return {"rows": rows, "best": {"checkpoint": best["checkpoint"] if best else None, "sentence": sentence},
            "verdict": verdict, "sentence": sentence}


# ---- gate.json ----------------------------------------------------------------------------------

def gate_json_path(run_dir: Path) -> Path:
    return evals_dir(run_dir) / GATE_JSON


def load_gate_summary(run_dir: Path) -> dict | None:
    """evals/gate.json (the last summary) or None when the gate has not run; never raises on a bad file."""
    import json

    try:
        data = json.loads(gate_json_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_gate_summary(run_dir: Path, summary: dict) -> None:
    old = load_gate_summary(run_dir) or {}
    summary = {**summary, "chosen": old.get("chosen"), "updated": round(time.time(), 3), "version": 1}
    make_private_dir(evals_dir(run_dir))
    write_json_atomic(gate_json_path(run_dir), summary)


def set_chosen(run_dir: Path, checkpoint: int | None, note: str = "") -> dict:
    """Record a person's choice of checkpoint (kept across gate re-runs; pruning keeps it). None clears it."""
    summary = load_gate_summary(run_dir)
    if summary is None:
        raise GateError("the gate has not run on this run yet")
    if checkpoint is not None and checkpoint not in [r["checkpoint"] for r in summary.get("rows", [])]:
        raise GateError(f"checkpoint-{checkpoint} has no gate results")
    summary["chosen"] = None if checkpoint is None else {"checkpoint": checkpoint, "note": note, "t": round(time.time(), 3)}
    write_json_atomic(gate_json_path(run_dir), summary)
    return summary


def _eval_losses(run_dir: Path) -> dict[int, float]:
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import list_checkpoints

    losses: dict[int, float] = {}
    for ev in read_events(Path(run_dir) / C.EVENTS_JSONL):
        if ev.get("kind") in (C.EV_EVAL, C.EV_CHECKPOINT) and isinstance(ev.get("step"), int) \
                and isinstance(ev.get("eval_loss"), (int, float)):
            losses[ev["step"]] = ev["eval_loss"]
    for c in list_checkpoints(run_dir):
        if isinstance(c.marker.get("eval_loss"), (int, float)):
            losses[c.step] = c.marker["eval_loss"]
    return losses


def summarize_run(run_dir: Path, rules=None, extra: dict | None = None, write: bool = True) -> dict | None:
    """Rebuild the summary from the records on disk and the latest reviews; write evals/gate.json.

    Checkpoint results computed on other eval sets than the base's current ones are left out with a
    notice. Returns None when the base has not been evaluated yet.
    """
    from tunedeck.engine.gate.reviews import load_reviews, review_state
    from tunedeck.engine.run.store import list_checkpoints

    run_dir = Path(run_dir)
    previous = load_gate_summary(run_dir) or {}
    if rules is None:  # the run's rules, with the overrides recorded by `tunedeck eval/gate --set`
        from tunedeck.engine.gate import overrides as gate_overrides
        from tunedeck.engine.run.record import load_run_record

        profile, _ = gate_overrides.apply(load_run_record(run_dir).profile, gate_overrides.merge(previous.get("overrides"), []))
        rules = profile.gate
    base = read_records(run_dir, BASE)
    if not base:
        return None
    key = base[0].get("key")
    notices = list((extra or {}).get("notices", []))
    losses = _eval_losses(run_dir)
    present = {c.step for c in list_checkpoints(run_dir) if c.complete}
    reviews = load_reviews(run_dir)  # for review mode, and the judge's agreement with people
    rows = [base_row(base, rules)]
    base_scores = scores(base)
    for step in evaluated_steps(run_dir):
        records = read_records(run_dir, step)
        if not records:
            continue
        if records[0].get("key") != key:
            notices.append(f"checkpoint-{step} was evaluated on other eval sets or settings; run `tunedeck eval` to refresh it")
            continue
        review = (review_state(run_dir, step, reviews, rules.review_sample, base_records=base, records=records)
                  if rules.require_review else None)
        row = judge_checkpoint(base, records, rules, checkpoint=step, eval_loss=losses.get(step), review=review,
                               pruned=step not in present, base_scores=base_scores)
        row["judge_agreement"] = judge_agreement(records, {ex: e["label"] for (st, ex), e in reviews.items() if st == step})
        warning = agreement_warning(row["judge_agreement"], getattr(rules, "min_judge_agreement", 0.0))
        if warning:
            row["warnings"].append(warning)
        rows.append(row)
    summary = summarize(rows, rules)
    carried = {k: previous[k] for k in ("sets", "basis", "base_model", "base_system_prompt", "base_prompts", "generation",
                                        "timings", "seconds", "base_loads", "overrides") if k in previous}
    basis = (extra or {}).get("basis", carried.get("basis"))
    if basis:  # a verdict on the held-out split says what it rests on
        summary["sentence"] = summary["best"]["sentence"] = f"{summary['sentence']} (rests on {basis})"
    summary = {**carried, **(extra or {}), **summary, "notices": notices, "key": key,
               "rules": {k: getattr(rules, k) for k in ("task_metric", "min_task_gain", "significance", "max_format_drop", "max_safety_drop",
                                                         "max_general_drop", "latency_p95_ms", "require_review",
                                                         "max_weird_share", "min_judge_agreement") if hasattr(rules, k)}}
    if write:
        write_gate_summary(run_dir, summary)
        summary = load_gate_summary(run_dir) or summary
    return summary


def example_buckets(run_dir: Path, checkpoint: int) -> dict[str, list[str]]:
    """Example ids per bucket (fixed, regressed, still_failing, still_passing) for one checkpoint."""
    return buckets(read_records(run_dir, BASE), read_records(run_dir, checkpoint))
