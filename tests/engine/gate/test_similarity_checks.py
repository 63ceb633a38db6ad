"""Similarity checks (chrf, bleu, rouge_l, token_f1) and the gate's score-based task metric."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from tunedeck.engine.config.profile_schema import GateConfig
from tunedeck.engine.gate.best_checkpoint import describe_row
from tunedeck.engine.gate.check_spec import CheckSpecError, Context
from tunedeck.engine.gate.checks import parse_check
from tunedeck.engine.gate.rules import judge_checkpoint
from tunedeck.engine.gate.scores import check_scores
from tunedeck.engine.gate.similarity import squad_normalize, token_f1
from tunedeck.engine.gate.statistics import paired_score_test

REF = "The capital of France is Paris."


def run(spec, output: str, reference: str | None = REF):
    return parse_check(spec, reference=reference)(output, Context(reference=reference))


# ---- the scores, against the libraries' own published behaviour ---------------------------------


def test_scores_match_sacrebleu_and_rouge_score():
    import sacrebleu
    from rouge_score import rouge_scorer

    out = "Paris is the capital of France."
    assert run("chrf", out).score == pytest.approx(sacrebleu.sentence_chrf(out, [REF]).score, abs=1e-3)
    assert run("bleu", out).score == pytest.approx(
        sacrebleu.metrics.BLEU(effective_order=True).sentence_score(out, [REF]).score, abs=1e-3
    )
    want = rouge_scorer.RougeScorer(["rougeL"]).score(REF, out)["rougeL"].fmeasure
    assert run("rouge_l", out).score == pytest.approx(want, abs=1e-4)


def test_identical_and_unrelated_answers_sit_at_the_ends_of_each_scale():
    for t, top in (("chrf", 100.0), ("bleu", 100.0), ("rouge_l", 1.0), ("token_f1", 1.0)):
        same, other = run(t, REF), run(t, "zzz qqq")
        assert same.passed and same.score == pytest.approx(top)
        assert not other.passed and other.score < top * 0.2, (t, other.score)


def test_token_f1_is_squads():
    assert squad_normalize("The  Eiffel Tower!") == "eiffel tower"
    assert token_f1("the Eiffel Tower", "Eiffel tower") == 1.0
    assert token_f1("Eiffel tower in Paris", "Eiffel Tower") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("", "") == 1.0 and token_f1("", "Paris") == 0.0


def test_min_passes_at_the_threshold_and_the_reason_shows_the_score():
    r = run({"type": "rouge_l", "min": 0.5}, "capital of France")  # LCS 3: precision 1, recall 1/2
    assert r.score == pytest.approx(2 / 3, abs=1e-4) and r.passed and r.reason == "ROUGE-L 0.67 >= 0.50"
    r = run({"type": "rouge_l", "min": 0.67}, "capital of France")
    assert not r.passed and "< 0.67" in r.reason
    assert run({"type": "chrf", "min": 0}, "x").passed  # 0 accepts anything
    assert run({"type": "token_f1", "value": "Paris"}, "paris").score == 1.0  # value replaces the reference
    assert run("chrf", "Paris").to_dict()["score"] == run("chrf", "Paris").score


def test_mistakes_name_the_option():
    with pytest.raises(CheckSpecError, match=r"0-1 scale, not 50 \(50 looks like a percentage: write 0.5\)") as e:
        parse_check({"type": "rouge_l", "min": 50}, reference=REF)
    assert e.value.field == "min"
    with pytest.raises(CheckSpecError, match="0-100 scale, not 150"):
        parse_check({"type": "chrf", "min": 150}, reference=REF)
    with pytest.raises(CheckSpecError, match="must be a number"):
        parse_check({"type": "bleu", "min": "high"}, reference=REF)
    with pytest.raises(CheckSpecError, match="needs a reference or a 'value'"):
        parse_check("token_f1", reference=None)
    with pytest.raises(CheckSpecError, match="did you mean 'min'"):
        parse_check({"type": "chrf", "minimum": 3}, reference=REF)


def test_an_eval_set_line_with_a_bad_min_names_file_line_and_field(tmp_path):
    from tunedeck.engine.gate.eval_sets import EvalSetError, load_eval_set

    f = tmp_path / "set.jsonl"
    f.write_text(
        '{"prompt": "q", "reference": "a", "checks": ["chrf"]}\n'
        '{"prompt": "q", "reference": "a", "checks": [{"type": "token_f1", "min": 80}]}\n'
    )
    with pytest.raises(EvalSetError, match=r"set.jsonl:2: checks\[0\].min: 'min' for token_f1 is on a 0-1 scale"):
        load_eval_set(f, "golden")


# ---- the gate on scores ---------------------------------------------------------------------------


def rec(i: int, score: float, ok: bool | None = None, tags=("task",)) -> dict:
    ok = score >= 0.5 if ok is None else ok
    return {
        "id": f"heldout:{i}",
        "tags": list(tags),
        "pass": ok,
        "format_pass": None,
        "latency_ms": 10.0,
        "new_tokens": 5,
        "checks": [{"type": "rouge_l", "pass": ok, "reason": "", "score": score}],
    }


def records(scores_: list[float]) -> list[dict]:
    return [rec(i, s) for i, s in enumerate(scores_)]


rng = random.Random(3)
BASE_SCORES = [rng.uniform(0.1, 0.45) for _ in range(60)]
BASE = records(BASE_SCORES)
RULES = GateConfig(min_task_gain=2.0, task_metric="rouge_l")


def test_rows_report_mean_scores_per_category_beside_pass_rates():
    rows = records([0.2, 0.6]) + [rec(9, 1.0, tags=("general",))]
    assert check_scores(rows) == {"task": {"rouge_l": 0.4}, "general": {"rouge_l": 1.0}}
    row = judge_checkpoint(BASE, records([s + 0.1 for s in BASE_SCORES]), GateConfig(), checkpoint=10)
    assert row.task_metric == "pass_rate" and row.check_scores["task"]["rouge_l"] > 0


def test_a_score_metric_passes_a_real_gain_that_pass_rates_cannot_see():
    # every answer gets closer to the reference, none crosses the 0.5 pass mark: pass rate says nothing changed
    better = records([s + 0.04 for s in BASE_SCORES])
    assert judge_checkpoint(BASE, better, replace(RULES, task_metric="pass_rate"), checkpoint=10).failed == [
        "task_gain"
    ]
    row = judge_checkpoint(BASE, better, RULES, checkpoint=10)
    assert row.verdict == "pass", row.reasons
    assert row.task == pytest.approx(100 * (sum(BASE_SCORES) / 60 + 0.04), abs=0.01)
    assert row.vs_base["task"] == pytest.approx(4.0, abs=0.01)
    assert row.task_score == pytest.approx(row.task / 100, abs=1e-4) and row.task_pass_rate == 0.0
    lo, hi = row.task_ci
    assert lo == pytest.approx(4.0, abs=0.01) and hi == pytest.approx(4.0, abs=0.01)  # every example gained 4 points
    assert row.p_value < 1e-6
    assert "task ROUGE-L 0." in describe_row(row) and "(+4.0 points vs base)" in describe_row(row)


def test_a_noisy_score_gain_is_within_noise_and_says_which_test():
    r = random.Random(5)
    noisy = records([min(1.0, max(0.0, s + r.choice([-0.3, 0.32]))) for s in BASE_SCORES])
    row = judge_checkpoint(BASE, noisy, replace(RULES, min_task_gain=0.5), checkpoint=10)
    assert row.failed in (["task_noise"], ["task_gain"]), row.reasons
    assert "Wilcoxon p=" in row.reasons[0] and "95% CI" in row.reasons[0]
    lo, hi = row.task_ci
    assert lo < 0 < hi


def test_a_score_metric_with_no_such_check_fails_no_task():
    row = judge_checkpoint(BASE, BASE, replace(RULES, task_metric="chrf"), checkpoint=10)
    assert row.failed == ["no_task"] and "no task example has a chrf check" in row.reasons[0]


def test_paired_score_test_is_seeded_and_handles_no_change():
    a, b = [0.1, 0.5, 0.3, 0.9] * 5, [0.2, 0.4, 0.5, 0.9] * 5
    assert paired_score_test(a, b) == paired_score_test(a, b)
    p, (lo, hi) = paired_score_test(a, a)
    assert p == 1.0 and lo == hi == 0.0
