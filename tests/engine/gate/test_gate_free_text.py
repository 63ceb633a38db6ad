"""The gate on free-text data with no golden set: similarity by default, the base's best prompt, re-judging.

One tiny model is fine-tuned for real on free-text answers (a sentence, not JSON); the held-out
split is the eval set. Unit tests for the pieces come first, the run after.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tunedeck

from tunedeck.engine.data.demo_data import DESCRIBE_SYSTEM, make_descriptions, write_jsonl
from tunedeck.engine.gate.eval_sets import FREE_TEXT_MIN, FREE_TEXT_RUBRIC, held_out_set, verdict_basis

ROWS = make_descriptions(8, seed=3)


# ---- no model -------------------------------------------------------------------------------------


def test_free_text_references_get_a_similarity_check_and_json_ones_keep_exact_match():
    json_row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": '{"a": 1}'}]}
    s = held_out_set(ROWS + [json_row])
    assert [c.spec() for c in s.examples[0].checks] == [{"type": "chrf", "min": FREE_TEXT_MIN, "value": None}]
    assert [c.type for c in s.examples[-1].checks] == ["exact_match", "json_valid"]
    assert verdict_basis([s]).startswith("similarity to held-out references (chrF >= 50) and exact match for JSON ones")
    judged = held_out_set(ROWS, judge=True)
    assert [c.spec() for c in judged.examples[0].checks] == [{"type": "rubric", "rubric": FREE_TEXT_RUBRIC}]
    assert verdict_basis([judged]).startswith("a rubric judge's grading against held-out references")
    assert "golden set with checks" in verdict_basis([judged])


def test_a_reworded_answer_passes_where_exact_match_fails():
    ex = held_out_set(ROWS).examples[0]
    from tunedeck.engine.gate.check_spec import Context
    from tunedeck.engine.gate.checks import parse_check

    words = ex.reference.rstrip(".").split(" is a ")
    reworded = f"{words[0]} works as a {words[1]}."
    ctx = Context(reference=ex.reference)
    assert ex.checks[0](reworded, ctx).passed
    assert not parse_check("exact_match", reference=ex.reference)(reworded, ctx).passed
    assert not ex.checks[0]("I cannot say.", ctx).passed


def test_few_shot_demonstrations_go_before_the_example_after_its_system_turn():
    from tunedeck.engine.config.profile_schema import GateConfig
    from tunedeck.engine.gate.base_prompts import Candidate, candidates, with_demonstrations

    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    demos = [("q1", "a1"), ("q2", "a2")]
    assert [m["content"] for m in with_demonstrations(prompt, demos)] == ["S", "q1", "a1", "q2", "a2", "Q"]
    assert with_demonstrations("Q", demos[:1]) == "q1\na1\n\nQ"
    gate = GateConfig(base_system_prompt="A", base_prompts=["B", "A"], base_few_shot=3)
    assert candidates(gate) == [Candidate("A", 0), Candidate("A", 3), Candidate("B", 0), Candidate("B", 3)]
    assert candidates(GateConfig()) == [Candidate("", 0)]


def test_the_best_base_candidate_wins_ties_go_to_the_first():
    from tunedeck.engine.config.profile_schema import GateConfig
    from tunedeck.engine.gate.base_prompts import choose

    def recs(*ok):
        return [
            {
                "id": str(i),
                "tags": ["task"],
                "pass": v,
                "checks": [{"type": "chrf", "pass": v, "score": 60.0 if v else 10.0}],
            }
            for i, v in enumerate(ok)
        ]

    results = [recs(True, False), recs(True, True), recs(True, True)]
    assert choose(results, GateConfig()) == 1
    assert choose(results, GateConfig(task_metric="chrf")) == 1
    assert choose([[], []], GateConfig()) == 0


# ---- a real run -----------------------------------------------------------------------------------


def cli(*args: str, ws: Path):
    return tunedeck(*args, env={"TUNEDECK_WORKSPACE": str(ws)})


@pytest.fixture(scope="module")
def free_text_run(tmp_path_factory, tiny_model_dir):
    """40 steps on free-text answers; the gate runs at the end on the held-out split (no golden set)."""
    root = tmp_path_factory.mktemp("free")
    ws = root / "ws"
    data = write_jsonl(root / "describe.jsonl", make_descriptions(240, seed=0))
    proc = tunedeck(
        "run",
        "demo-cpu",
        "--data",
        str(data),
        "--name",
        "free",
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        "optim.max_steps=40",
        "--set",
        "checkpoints.save_steps=20",
        "--set",
        "checkpoints.eval_steps=20",
        "--set",
        "gate.max_new_tokens=20",
        env={"TUNEDECK_WORKSPACE": str(ws)},
    )
    assert proc.returncode == 0, proc.stderr
    return ws, ws / "runs" / proc.stdout.strip().splitlines()[0]


def gate_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "evals" / "gate.json").read_text())


@pytest.mark.slow
def test_the_held_out_verdict_rests_on_similarity_and_says_so(free_text_run):
    ws, run_dir = free_text_run
    summary = gate_json(run_dir)
    assert summary["basis"].startswith("similarity to held-out references (chrF >= 50)")
    assert summary["sentence"].endswith(f"(rests on {summary['basis']})")
    first = json.loads((run_dir / "evals" / "checkpoint-40.jsonl").read_text().splitlines()[0])
    assert first["checks"][0]["type"] == "chrf" and 0 <= first["checks"][0]["score"] <= 100
    for row in summary["rows"]:
        assert 0 <= row["check_scores"]["task"]["chrf"] <= 100
    assert summary["base_prompts"] == [
        {
            "prompt": "",
            "few_shot": 0,
            "task": summary["rows"][0]["task"],
            "format": None,
            "safety": None,
            "general": None,
            "chosen": True,
        }
    ]


@pytest.mark.slow
def test_eval_tries_base_prompts_and_records_overrides(free_text_run):
    ws, run_dir = free_text_run
    proc = cli(
        "eval",
        run_dir.name,
        "--checkpoint",
        "40",
        "--json",
        "--set",
        "gate.task_metric=chrf",
        "--set",
        f"gate.base_prompts={json.dumps([DESCRIBE_SYSTEM + ' Answer in one short sentence.'])}",
        "--set",
        "gate.base_few_shot=2",
        ws=ws,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    cands = summary["base_prompts"]
    assert [(c["prompt"] != "", c["few_shot"]) for c in cands] == [(False, 0), (False, 2), (True, 0), (True, 2)]
    assert sum(c["chosen"] for c in cands) == 1
    chosen = next(c for c in cands if c["chosen"])
    assert chosen["task"] == max(c["task"] for c in cands) == summary["rows"][0]["task"]
    assert any("can only favour the base" in n for n in summary["notices"])
    base = [json.loads(line) for line in (run_dir / "evals" / "base.jsonl").read_text().splitlines()]
    assert {r["few_shot"] for r in base} == {chosen["few_shot"]}
    assert summary["rows"][0]["task_metric"] == "chrf"
    assert {o["key"]: (o["value"], o["was"]) for o in summary["overrides"]} == {
        "gate.task_metric": ("chrf", "pass_rate"),
        "gate.base_few_shot": (2, 0),
        "gate.base_prompts": ([DESCRIBE_SYSTEM + " Answer in one short sentence."], []),
    }
    row = summary["rows"][-1]
    assert row["checkpoint"] == 40 and row["task_metric"] == "chrf"
    assert row["task_score"] == pytest.approx(row["check_scores"]["task"]["chrf"], abs=1e-3)


@pytest.mark.slow
def test_gate_rejudges_without_a_model_and_keeps_the_overrides(free_text_run):
    ws, run_dir = free_text_run
    proc = cli("gate", run_dir.name, "--json", "--set", "gate.min_task_gain=100", ws=ws)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "fail" and all("task_gain" in r["failed"] for r in summary["rows"][1:])
    keys = {o["key"]: o["value"] for o in summary["overrides"]}
    assert keys["gate.min_task_gain"] == 100.0
    again = json.loads(cli("gate", run_dir.name, "--json", ws=ws).stdout)  # a plain rebuild keeps them
    assert again["rules"]["min_task_gain"] == 100.0 and again["overrides"] == summary["overrides"]
    text = cli("gate", run_dir.name, ws=ws).stdout
    assert "override: gate.min_task_gain = 100.0 (run.toml: 20.0)" in text
    reset = json.loads(cli("gate", run_dir.name, "--json", "--reset", ws=ws).stdout)
    assert (
        reset["overrides"] == []
        and reset["rules"]["min_task_gain"] == 20.0
        and reset["rules"]["task_metric"] == "pass_rate"
    )


@pytest.mark.slow
def test_override_mistakes_are_one_line_before_any_model_loads(free_text_run, tmp_path):
    ws, run_dir = free_text_run
    cases = [
        (["eval", run_dir.name, "--set", "optim.learning_rate=1"], "only [gate] keys can change after training"),
        (["eval", run_dir.name, "--set", "gate.min_task_gian=3"], "unknown key (did you mean"),
        (["gate", run_dir.name, "--set", "gate.task_metric=exact"], "'gate.task_metric' must be one of"),
        (["gate", run_dir.name, "--set", "gate.max_new_tokens=8"], "changes what the models generate"),
        (["eval", run_dir.name, "--eval-set", str(tmp_path / "nope.jsonl")], "nope.jsonl: --eval-set: no such file"),
    ]
    for args, message in cases:
        proc = cli(*args, ws=ws)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert message in proc.stderr.strip().splitlines()[-1], proc.stderr
    old = cli("eval", run_dir.name, "--set", str(tmp_path / "nope.jsonl"), ws=ws)
    assert "deprecated; use --eval-set" in old.stderr and "nope.jsonl: --set: no such file" in old.stderr
