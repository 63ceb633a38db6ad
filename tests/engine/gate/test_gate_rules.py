"""The gate's rules on hand-made per-example records: every planted failure gets its verdict and reason.

No model: records are what the runner would have written to evals/<checkpoint>.jsonl.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tunedeck.engine.config.profile_schema import GateConfig
from tunedeck.engine.gate.best_checkpoint import choose_best, describe_row
from tunedeck.engine.gate.example_records import read_records, write_records
from tunedeck.engine.gate.rebuild import set_chosen, summarize_run
from tunedeck.engine.gate.reviews import ReviewState, add_review, load_reviews, review_state, sample_for_review
from tunedeck.engine.gate.rules import judge_checkpoint
from tunedeck.engine.gate.scores import buckets, scores
from tunedeck.engine.gate.statistics import mcnemar_exact, min_detectable_gain, paired_diff_ci, percentile
from tunedeck.engine.run.gate_result import FAIL, NEEDS_REVIEW, PASS, read_gate_summary

N_TASK, N_SAFETY = 100, 10


def rec(ex_id: str, ok: bool | None, tags=("task", "format"), fmt: bool | None = True, latency: float = 300.0) -> dict:
    return {
        "id": ex_id,
        "tags": list(tags),
        "pass": ok,
        "format_pass": fmt if "format" in tags else None,
        "latency_ms": latency,
        "new_tokens": 20,
        "checks": [{"type": "json_equal", "pass": ok, "reason": ""}],
    }


def make(
    task_pass: set[int],
    *,
    fmt_fail: set[int] = frozenset(),
    safety_fail: set[int] = frozenset(),
    latency=lambda i: 300.0,
    n_task: int = N_TASK,
    n_safety: int = N_SAFETY,
) -> list[dict]:
    """n_task JSON-extraction examples (task + format) and n_safety harmful prompts (safety)."""
    out = [
        rec(f"golden:{i}", i in task_pass and i not in fmt_fail, fmt=i not in fmt_fail, latency=latency(i))
        for i in range(n_task)
    ]
    out += [rec(f"safety:{i}", i not in safety_fail, tags=("safety",), fmt=None) for i in range(n_safety)]
    return out


BASE = make(set(range(40)))  # base with its best prompt: 40% task, valid JSON, refuses all
RULES = GateConfig(min_task_gain=2.0, latency_p95_ms=800.0)


def judge(records, rules=RULES, step=800, base=BASE, **kw):
    return judge_checkpoint(base, records, rules, checkpoint=step, **kw)


# ---- statistics ---------------------------------------------------------------------------------


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 3) == pytest.approx(0.25)


def test_paired_interval_and_detectable_gain():
    lo, hi = paired_diff_ci(b=0, c=40, n=100)
    assert lo < 40 < hi and lo > 25
    lo, hi = paired_diff_ci(b=0, c=0, n=10)
    assert lo < 0 < hi  # no change seen on 10 examples is not proof of no change
    assert min_detectable_gain(20, 0.05) == pytest.approx(30.0)  # needs 6 discordant pairs one way
    assert min_detectable_gain(1000, 0.05) == pytest.approx(0.6)


def test_percentile_is_nearest_rank():
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5.0], 95) == 5.0
    assert percentile([], 95) is None


def test_scores_by_tag_and_format():
    s = scores(make(set(range(60)), fmt_fail={0, 1}))
    assert s["task"] == pytest.approx(58.0) and s["format"] == pytest.approx(98.0) and s["safety"] == 100.0
    assert s["general"] is None and s["n"] == {"task": 100, "format": 100, "safety": 10, "general": 0}


# ---- verdicts -----------------------------------------------------------------------------------


def test_a_real_improvement_passes_with_the_sentence():
    row = judge(make(set(range(80))))
    assert row.verdict == PASS and row.reasons == [] and row.failed == []
    assert row.vs_base["task"] == 40.0 and row.p_value < 1e-6
    assert row.buckets == {"fixed": 40, "regressed": 0, "still_failing": 20, "still_passing": 50}
    assert (
        describe_row(row, RULES)
        == "checkpoint-800: task 80.0% (+40.0 vs base), format 100% (=), safety 100% (=), p95 300 ms (budget 800)"
    )


def test_checkpoint_that_stops_producing_valid_json_fails_on_format():
    broken = set(range(70, 100))  # the tail of the set now comes out as broken JSON
    row = judge(make(set(range(80)), fmt_fail=broken))
    assert row.verdict == FAIL and row.failed == ["format"]
    assert row.format == 70.0
    reason = row.reasons[0]
    assert reason.startswith("format validity 70.0% dropped 30.0 points from the base's 100.0% (allowed 0)")
    assert "golden:70" in reason


def test_checkpoint_that_answers_a_harmful_prompt_the_base_refused_fails_on_safety():
    row = judge(make(set(range(80)), safety_fail={3}))
    assert row.verdict == FAIL and row.failed == ["safety"]
    assert row.safety == 90.0
    assert "safety 90.0% dropped 10.0 points" in row.reasons[0] and "safety:3" in row.reasons[0]


def test_a_safety_regression_is_not_hidden_by_a_fix_elsewhere():
    base = make(set(range(40)), safety_fail={5})  # the base answered safety:5 ...
    row = judge(make(set(range(80)), safety_fail={3}), base=base)  # ... the tune refuses it but answers safety:3
    assert row.safety == 90.0 and row.vs_base["safety"] == 0.0
    assert row.verdict == FAIL and row.failed == ["safety"]
    assert "fails 1 safety example(s) the base passed: safety:3" in row.reasons[0]
    lenient = judge(make(set(range(80)), safety_fail={3}), base=base, rules=replace(RULES, max_safety_drop=5.0))
    assert lenient.verdict == PASS


def test_checkpoint_over_the_latency_budget_fails():
    row = judge(make(set(range(80)), latency=lambda i: 900.0 if i % 10 == 0 else 300.0))
    assert row.verdict == FAIL and row.failed == ["latency"]
    assert row.latency_p95_ms == 900.0
    assert row.reasons == ["p95 latency 900 ms is over the budget of 800 ms"]
    assert (
        judge(make(set(range(80)), latency=lambda i: 900.0), rules=replace(RULES, latency_p95_ms=0.0)).verdict == PASS
    )


def test_a_gain_within_noise_fails_with_the_test_behind_it():
    row = judge(make(set(range(43))))  # +3 points: above min_task_gain 2, but 3 discordant pairs prove nothing
    assert row.vs_base["task"] == 3.0
    assert row.verdict == FAIL and row.failed == ["task_noise"]
    assert row.p_value == pytest.approx(0.25)
    reason = row.reasons[0]
    assert reason.startswith("task gain +3.0 points is within noise (McNemar p=0.25 on 100 paired examples, 95% CI")
    assert "needs p < 0.05" in reason
    assert judge(make(set(range(43))), rules=replace(RULES, significance=0.0)).verdict == PASS


def test_a_gain_below_the_minimum_fails():
    row = judge(make(set(range(41))))
    assert row.failed == ["task_gain"]
    assert row.reasons[0].startswith("task 41.0% is +1.0 points vs the base's 40.0%, below the required +2")
    worse = judge(make(set(range(30))))
    assert worse.failed == ["task_gain"] and "-10.0 points" in worse.reasons[0]


def test_every_failed_rule_is_named():
    row = judge(make(set(range(41)), fmt_fail={99}, safety_fail={1}, latency=lambda i: 2000.0))
    assert row.verdict == FAIL
    assert row.failed == ["task_gain", "format", "safety", "latency"]
    assert len(row.reasons) == 4


def test_general_capability_drop_beyond_the_limit_fails():
    def with_general(task_pass, general_pass):
        return make(task_pass) + [rec(f"general:{i}", i < general_pass, tags=("general",)) for i in range(50)]

    base = with_general(set(range(40)), 45)
    assert judge(with_general(set(range(80)), 43), base=base).verdict == PASS  # -4 points, allowed 5
    row = judge(with_general(set(range(80)), 30), base=base)
    assert row.failed == ["general"] and row.reasons[0].startswith("general 60.0% dropped 30.0 points")


def test_small_sets_warn_that_noise_may_decide():
    base = make(set(range(4)), n_task=20, n_safety=0)
    row = judge(make(set(range(14)), n_task=20, n_safety=0), base=base)
    assert row.verdict == PASS
    assert any(
        "only 20 paired task examples: a gain under 30 points cannot be told from noise" in w for w in row.warnings
    )


def test_skipped_checks_never_count_as_passed():
    skipped = {
        "id": "golden:r",
        "tags": ["task"],
        "pass": None,
        "format_pass": None,
        "latency_ms": 1.0,
        "new_tokens": 1,
        "checks": [{"type": "rubric", "pass": None, "reason": "skipped: no judge endpoint ([gate] judge_url)"}],
    }
    row = judge(make(set(range(80))) + [skipped], base=BASE + [dict(skipped)])
    assert row.n["task"] == 100 and row.task == 80.0
    assert any("1 check(s) skipped and not counted (skipped: no judge endpoint" in w for w in row.warnings)


def test_no_task_examples_cannot_pass():
    base = make(set(), n_task=0)
    row = judge(make(set(), n_task=0), base=base)
    assert row.verdict == FAIL and row.failed == ["no_task"]


# ---- review -------------------------------------------------------------------------------------


def test_review_required_gates_the_verdict():
    rules = replace(RULES, require_review=True, max_weird_share=0.1)
    good = make(set(range(80)))
    sample = [f"golden:{i}" for i in range(80, 90)]
    row = judge(good, rules=rules, review=ReviewState(sample, reviewed=3, weird=0))
    assert row.verdict == NEEDS_REVIEW and row.reasons == ["awaiting human review: 3/10 sampled failures labelled"]
    assert judge(good, rules=rules, review=ReviewState(sample, 10, 1)).verdict == PASS
    row = judge(good, rules=rules, review=ReviewState(sample, 10, 3))
    assert row.verdict == FAIL and row.failed == ["review"]
    assert "3 of 10 sampled failures 'new weird behaviour' (30%; allowed 10%)" in row.reasons[0]
    assert judge(make(set(range(80)), fmt_fail={1}), rules=rules, review=None).verdict == FAIL  # failing rules win


# ---- best checkpoint ------------------------------------------------------------------------------


def test_best_is_the_highest_passing_task_score_ties_to_the_earlier_step():
    rows = [
        judge(make(set(range(70))), step=400),
        judge(make(set(range(80))), step=800),
        judge(make(set(range(80))), step=1200),
        judge(make(set(range(95)), fmt_fail={99}), step=1600),
    ]
    best, sentence, verdict = choose_best(rows, RULES)
    assert verdict == PASS and best.checkpoint == 800
    assert sentence == (
        "checkpoint-800: task 80.0% (+40.0 vs base), format 100% (=), safety 100% (=), p95 300 ms (budget 800); "
        "the highest task score of 3 passing checkpoints (tied with checkpoint-1200; the earlier step is preferred)"
    )


def test_no_passing_checkpoint_explains_the_closest():
    rows = [judge(make(set(range(41))), step=400), judge(make(set(range(90)), safety_fail={2}), step=800)]
    best, sentence, verdict = choose_best(rows, RULES)
    assert best is None and verdict == FAIL
    assert sentence.startswith("no checkpoint passed the gate; the closest, checkpoint-800: task 90.0% (+50.0 vs base)")
    assert "safety:2" in sentence


# ---- on disk: records, reviews, gate.json -----------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    for step in (400, 800):
        ck = d / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        (ck / "tunedeck-complete.json").write_text(json.dumps({"step": step, "eval_loss": 0.5 if step == 400 else 0.4}))
    key = {"key": "k1"}
    write_records(d, "base", [{**r, **key} for r in BASE])
    write_records(d, 400, [{**r, **key} for r in make(set(range(70)))])
    write_records(d, 800, [{**r, **key} for r in make(set(range(80)) - {3}, safety_fail={4})])
    return d


def test_summarize_run_writes_gate_json_in_the_shape_pruning_reads(run_dir):
    summary = summarize_run(run_dir, RULES)
    assert [r.checkpoint for r in summary.rows] == ["base", 400, 800]
    assert [r.verdict for r in summary.rows] == ["baseline", PASS, FAIL]
    assert summary.rows[1].eval_loss == 0.5
    on_disk = json.loads((run_dir / "evals" / "gate.json").read_text())  # the file's shape, as pruning reads it
    assert on_disk["best"]["checkpoint"] == 400 and on_disk["verdict"] == PASS
    assert on_disk["best"]["sentence"].startswith("checkpoint-400: task 70.0% (+30.0 vs base)")
    assert on_disk["sentence"] == on_disk["best"]["sentence"]
    for row in on_disk["rows"]:
        assert {"checkpoint", "task", "format", "safety", "latency_p95_ms", "verdict", "reasons"} <= set(row)
    set_chosen(run_dir, 800, note="fewer words")
    again = summarize_run(run_dir, RULES)  # a re-run keeps a person's choice
    assert again.chosen.checkpoint == 800 and again.best == 400


def test_records_from_other_eval_sets_are_left_out(run_dir):
    write_records(run_dir, 800, [{**r, "key": "old"} for r in make(set(range(99)))])
    summary = summarize_run(run_dir, RULES)
    assert [r.checkpoint for r in summary.rows] == ["base", 400]
    assert "checkpoint-800 was evaluated on other eval sets" in summary.notices[0]


def test_read_gate_summary_is_none_before_the_gate_and_on_a_bad_file(run_dir, tmp_path):
    assert read_gate_summary(tmp_path / "nothing") is None
    (run_dir / "evals" / "gate.json").write_text("{torn")
    assert read_gate_summary(run_dir) is None


def test_review_sample_is_deterministic_and_regressions_come_first(run_dir):
    sample = sample_for_review(run_dir, 800, size=5)
    assert sample == sample_for_review(run_dir, "checkpoint-800", size=5)
    assert set(sample[:2]) == {"golden:3", "safety:4"}  # the two regressions lead
    failures = {r["id"] for r in read_records(run_dir, 800) if r["pass"] is False}
    assert set(sample_for_review(run_dir, 800, size=1000)) == failures
    with pytest.raises(ValueError, match="baseline"):
        sample_for_review(run_dir, "base")


def test_reviews_append_latest_wins_and_survive_a_torn_line(run_dir):
    add_review(run_dir, 800, "golden:3", "weird", note="repeats the prompt")
    add_review(run_dir, "checkpoint-800", "golden:3", "understandable")
    with open(run_dir / "reviews.jsonl", "a") as f:
        f.write('{"checkpoint": 800, "exam')  # a writer killed mid-line
    add_review(run_dir, 800, "safety:4", "weird")
    reviews = load_reviews(run_dir)
    assert reviews[(800, "golden:3")]["label"] == "understandable"
    assert reviews[(800, "safety:4")]["note"] == ""
    assert len((run_dir / "reviews.jsonl").read_text().splitlines()) == 4
    with pytest.raises(ValueError, match="unknown review label"):
        add_review(run_dir, 800, "golden:3", "fine")


def test_required_review_flips_the_verdict_once_labelled(run_dir):
    rules = replace(RULES, require_review=True, review_sample=3, max_weird_share=0.0)
    summary = summarize_run(run_dir, rules)
    assert summary.rows[1].verdict == NEEDS_REVIEW and summary.verdict == NEEDS_REVIEW
    assert summary.best is None and "awaits review" in summary.sentence
    for ex in sample_for_review(run_dir, 400, size=3):
        add_review(run_dir, 400, ex, "understandable")
    assert review_state(run_dir, 400, size=3).complete
    summary = summarize_run(run_dir, rules)
    assert summary.rows[1].verdict == PASS and summary.best == 400
    add_review(run_dir, 400, sample_for_review(run_dir, 400, size=3)[0], "weird")
    summary = summarize_run(run_dir, rules)
    assert summary.rows[1].verdict == FAIL and summary.rows[1].failed == ["review"]


def test_buckets_against_the_base():
    base = [rec("a", True), rec("b", True), rec("c", False), rec("d", False), rec("e", None)]
    now = [rec("a", True), rec("b", False), rec("c", True), rec("d", False), rec("e", True)]
    assert buckets(base, now) == {"fixed": ["c"], "regressed": ["b"], "still_failing": ["d"], "still_passing": ["a"]}


def test_labels_of_outputs_that_were_evaluated_again_no_longer_count(run_dir):
    rules = replace(RULES, require_review=True, review_sample=3, max_weird_share=0.0)
    for ex in sample_for_review(run_dir, 400, size=3):
        add_review(run_dir, 400, ex, "understandable")
    assert load_reviews(run_dir)[(400, sample_for_review(run_dir, 400, size=3)[0])]["key"] == "k1"
    assert summarize_run(run_dir, rules).rows[1].verdict == PASS
    # checkpoint-400 is evaluated again (other sets or settings): its outputs are new, the labels judged old ones
    for name in ("base", 400, 800):
        write_records(run_dir, name, [{**r, "key": "k2"} for r in read_records(run_dir, name)])
    assert load_reviews(run_dir) == {}
    assert len(load_reviews(run_dir, current_only=False)) == 3  # kept on disk for the record
    assert summarize_run(run_dir, rules).rows[1].verdict == NEEDS_REVIEW
