"""The eval gate's rules: one checkpoint's row against the base, with its verdict and the reasons for it.

Everything here works on per-example records (engine/gate/example_records.py) and needs no model, so a
verdict can be rebuilt the moment a review label lands. Scores come from engine/gate/scores.py.

The task metric ([gate] task_metric): "pass_rate" (default) compares the share of task examples
that pass; a similarity check type ("chrf", "rouge_l", ...) compares that check's mean score on the
task examples instead. Then `task` and its gain are in points of that score (x 100 for the 0-1
scales), `task_score` is the mean on the check's own scale and `task_pass_rate` the pass rate.

Rules ([gate] in the profile), each naming itself in `reasons` when it fails (codes: engine/run/gate_result.py):
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
"""

from __future__ import annotations

from tunedeck.engine.gate.scores import CATEGORIES, buckets, paired_outcomes, scale, scores, task_metric, task_points
from tunedeck.engine.gate.statistics import mcnemar_exact, min_detectable_gain, paired_diff_ci, paired_score_test
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import (
    BASE,
    BASELINE,
    FAIL,
    NEEDS_REVIEW,
    PASS,
    RULE_LATENCY,
    RULE_NO_TASK,
    RULE_REVIEW,
    RULE_SAFETY,
    RULE_TASK_GAIN,
    RULE_TASK_NOISE,
    GateRow,
)

SMALL_SET = 30  # fewer paired task examples than this: warn that noise may decide
DEFAULT_ALPHA = 0.05


class GateError(ValueError):
    """The gate cannot run as asked (no such checkpoint, no eval set, data changed); str() says what to do."""


def _metric_scores(s: dict, records: list[dict], metric: str) -> None:
    """Switch a scores() dict to a score task metric: task in points, the pass rate kept beside it."""
    if "task_pass_rate" in s:
        return
    pts = task_points(records, metric)
    s["task_pass_rate"] = s["task"]
    s["task"] = sum(pts.values()) / len(pts) if pts else None
    s["task_score"] = None if s["task"] is None else s["task"] * scale(metric) / 100.0
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


def list_ids(ids: list[str], k: int = 3) -> str:
    return ", ".join(ids[:k]) + (f" and {len(ids) - k} more" if len(ids) > k else "")


def base_row(base_records: list[dict], rules=None) -> GateRow:
    s = scores(base_records)
    metric = task_metric(rules)
    if metric != "pass_rate":
        _metric_scores(s, base_records, metric)
    return GateRow(
        checkpoint=BASE,
        label=BASE,
        step=None,
        eval_loss=None,
        **{k: _r(s[k]) for k in CATEGORIES},
        n=s["n"],
        **_metric_fields(s, metric),
        latency_p95_ms=_r(s["latency_p95_ms"], 1),
        latency_p50_ms=_r(s["latency_p50_ms"], 1),
        new_tokens_mean=_r(s["new_tokens_mean"], 1),
        verdict=BASELINE,
        warnings=_skip_warnings(s),
    )


def _skip_warnings(s: dict) -> list[str]:
    w = []
    if s["skipped_checks"]:
        w.append(f"{s['skipped_checks']} check(s) skipped and not counted ({s['skipped_reason']})")
    if s["unscored"]:
        w.append(f"{s['unscored']} example(s) had every check skipped and are left out of the scores")
    return w


def judge_checkpoint(
    base_records: list[dict],
    records: list[dict],
    rules,
    *,
    checkpoint: int,
    eval_loss: float | None = None,
    review=None,
    pruned: bool = False,
    base_scores: dict | None = None,
) -> GateRow:
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
        n, b, c, _ = paired_outcomes(base_records, records, "task")
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
        fail(RULE_NO_TASK, f"{what}: the gate cannot tell whether the model improved")
    elif vs["task"] is not None:
        gain = vs["task"]
        stats = (
            f"{test} p={p:.2g} on {n} paired examples, 95% CI {ci[0]:+.1f} to {ci[1]:+.1f}"
            if n
            else "no paired examples"
        )
        if gain < rules.min_task_gain - 1e-9:
            fail(
                RULE_TASK_GAIN,
                f"task {_task_text(s, metric)} is {gain:+.1f} points vs the base's {_task_text(bs, metric)}, "
                f"below the required {rules.min_task_gain:+g} ({stats})",
            )
        elif rules.min_task_gain > 0 and rules.significance > 0 and (p is None or p >= rules.significance):
            fail(
                RULE_TASK_NOISE,
                f"task gain {gain:+.1f} points is within noise ({stats}; needs p < {rules.significance:g})",
            )
        if 0 < n < SMALL_SET and metric == "pass_rate":
            warnings.append(
                f"only {n} paired task examples: a gain under {min_detectable_gain(n, alpha):.0f} points "
                f"cannot be told from noise; add examples to the eval set"
            )
        elif 0 < n < SMALL_SET:
            warnings.append(f"only {n} paired task examples: the gain's interval is wide; add examples to the eval set")

    for cat, limit in (
        ("format", rules.max_format_drop),
        ("safety", rules.max_safety_drop),
        ("general", getattr(rules, "max_general_drop", 100.0)),
    ):
        if s[cat] is None or bs[cat] is None:
            continue
        drop = bs[cat] - s[cat]
        _, _, _, regressed = paired_outcomes(base_records, records, cat)
        broke = f"; newly failing: {list_ids(regressed)}" if regressed else ""
        if drop > limit + 1e-9:
            name = "format validity" if cat == "format" else cat
            fail(
                cat,
                f"{name} {s[cat]:.1f}% dropped {drop:.1f} points from the base's {bs[cat]:.1f}% "
                f"(allowed {limit:g}){broke}",
            )
        elif cat == "safety" and limit == 0 and regressed:
            fail(
                RULE_SAFETY,
                f"fails {len(regressed)} safety example(s) the base passed: {list_ids(regressed)} "
                "(max_safety_drop = 0 allows no safety regression)",
            )

    if rules.latency_p95_ms and s["latency_p95_ms"] is not None and s["latency_p95_ms"] > rules.latency_p95_ms:
        fail(
            RULE_LATENCY,
            f"p95 latency {s['latency_p95_ms']:.0f} ms is over the budget of {rules.latency_p95_ms:.0f} ms",
        )

    verdict = FAIL if failed else PASS
    if rules.require_review:
        if review is not None and review.complete and review.sample:
            if review.weird_share > rules.max_weird_share + 1e-9:
                fail(
                    RULE_REVIEW,
                    f"review labelled {review.weird} of {review.reviewed} sampled failures 'new weird behaviour' "
                    f"({review.weird_share:.0%}; allowed {rules.max_weird_share:.0%})",
                )
                verdict = FAIL
        elif review is None or not review.complete:
            done = f"{review.reviewed}/{len(review.sample)}" if review is not None else "0/?"
            if verdict == PASS:
                verdict = NEEDS_REVIEW
                reasons.append(f"awaiting human review: {done} sampled failures labelled")

    bk = buckets(base_records, records)
    return GateRow(
        checkpoint=checkpoint,
        label=f"{C.CHECKPOINT_PREFIX}{checkpoint}",
        step=checkpoint,
        eval_loss=eval_loss,
        **{k: _r(s[k]) for k in CATEGORIES},
        n=s["n"],
        **_metric_fields(s, metric),
        latency_p95_ms=_r(s["latency_p95_ms"], 1),
        latency_p50_ms=_r(s["latency_p50_ms"], 1),
        new_tokens_mean=_r(s["new_tokens_mean"], 1),
        vs_base=vs,
        task_ci=[_r(ci[0]), _r(ci[1])] if ci else None,
        p_value=_r(p, 6) if p is not None else None,
        paired=n,
        buckets={k: len(v) for k, v in bk.items()},
        verdict=verdict,
        reasons=reasons,
        failed=failed,
        warnings=warnings,
        review=review.to_dict() if review is not None else None,
        pruned=pruned,
    )
