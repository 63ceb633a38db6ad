"""The rubric judge checked against people: agreement and Cohen's kappa from review labels, and the
judge's prompt, model and raw answer kept with every example. A real HTTP judge, no model."""

from __future__ import annotations

import json

import pytest
from fixtures.judge_server import JudgeServer

from tunedeck.engine.config.profile_schema import GateConfig
from tunedeck.engine.gate.checks import parse_check
from tunedeck.engine.gate.eval_sets import EvalExample
from tunedeck.engine.gate.example_records import write_records
from tunedeck.engine.gate.example_scoring import score_example
from tunedeck.engine.gate.judge_agreement import cohen_kappa, judge_agreement
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.gate.rebuild import summarize_run
from tunedeck.engine.gate.reviews import add_review

RUBRIC = "The answer is polite."


def test_cohen_kappa_known_values():
    assert cohen_kappa([(True, True), (False, False)] * 5) == 1.0
    assert cohen_kappa([(True, False), (False, True)] * 5) == -1.0
    # 20 pairs: 15 agree; each rater says pass 10 times -> chance 0.5, kappa (0.75 - 0.5) / 0.5
    pairs = [(True, True)] * 8 + [(False, False)] * 7 + [(True, False)] * 2 + [(False, True)] * 3
    assert cohen_kappa(pairs) == pytest.approx((15 / 20 - (0.5 * 0.55 + 0.5 * 0.45)) / (1 - (0.5 * 0.55 + 0.5 * 0.45)))
    assert cohen_kappa([(True, True)] * 3) is None  # one class only: chance agreement is total
    assert cohen_kappa([]) is None


def test_agreement_pairs_the_judges_verdict_with_the_label():
    recs = [{"id": f"x:{i}", "checks": [{"type": "rubric", "pass": i < 2}]} for i in range(4)]
    recs.append({"id": "x:9", "checks": [{"type": "rubric", "pass": None}]})  # skipped: no verdict to compare
    labels = {"x:0": "acceptable", "x:1": "weird", "x:2": "understandable", "x:3": "acceptable", "x:9": "weird"}
    assert judge_agreement(recs, labels) == {"n": 4, "agree": 2, "share": 0.5, "kappa": 0.0}
    assert judge_agreement(recs, {}) is None


@pytest.fixture
def judged_run(tmp_path):
    """A run dir whose checkpoint-10 records were graded by a real (local) judge that fails everything."""
    server = JudgeServer("FAIL: not polite")
    judge = Judge(server.url, "judge-7b", timeout=5)
    try:
        examples = [
            EvalExample(
                id=f"golden:{i}",
                set="golden",
                messages=[{"role": "user", "content": f"q{i}"}],
                prompt_text=None,
                reference=None,
                checks=[parse_check({"type": "rubric", "rubric": RUBRIC})],
                tags=("task",),
            )
            for i in range(6)
        ]
        base = [score_example(ex, "meh", 10.0, 3, checkpoint="base", key="k", judge=judge) for ex in examples]
        ckpt = [
            score_example(ex, f"Thank you! answer {i}", 10.0, 3, checkpoint=10, key="k", judge=judge)
            for i, ex in enumerate(examples)
        ]
    finally:
        server.close()
    run_dir = tmp_path / "run"
    write_records(run_dir, "base", base)
    write_records(run_dir, 10, ckpt)
    return run_dir, ckpt


def test_each_example_keeps_the_judges_prompt_model_and_raw_answer(judged_run):
    _, ckpt = judged_run
    trace = ckpt[0]["checks"][0]["judge"]
    assert trace["model"] == "judge-7b" and trace["reply"] == "FAIL: not polite"
    assert (
        RUBRIC in trace["prompt"]
        and "Thank you! answer 0" in trace["prompt"]
        and trace["url"].endswith("/v1/chat/completions")
    )
    assert json.loads(json.dumps(ckpt[0]))["checks"][0]["judge"] == trace  # survives the JSONL record


def test_the_gate_reports_agreement_and_warns_below_the_minimum(judged_run):
    run_dir, _ = judged_run
    rules = GateConfig(min_task_gain=-100, significance=0, min_judge_agreement=0.8)
    assert summarize_run(run_dir, rules).rows[1].judge_agreement is None  # nobody has labelled anything yet
    for i, label in enumerate(["understandable", "weird", "acceptable", "acceptable"]):
        add_review(run_dir, 10, f"golden:{i}", label)
    row = summarize_run(run_dir, rules).rows[1]
    assert row.judge_agreement == {"n": 4, "agree": 2, "share": 0.5, "kappa": 0.0}
    warning = [w for w in row.warnings if "rubric judge" in w]
    assert warning == [
        "the rubric judge agrees with people on 2 of 4 reviewed examples (50%, Cohen's kappa 0.00), "
        "below gate.min_judge_agreement 80%: check the rubric before trusting its verdicts"
    ]
    quiet = summarize_run(run_dir, GateConfig(min_task_gain=-100, significance=0, min_judge_agreement=0.5)).rows[1]
    assert not [w for w in quiet.warnings if "rubric judge" in w]
