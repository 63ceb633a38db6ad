"""Comparing two recorded runs (tui/run_comparison.py): profile differences, dataset records, best
gate results and loss series, and what a run without a readable run.toml turns into."""

from __future__ import annotations

import json
import shutil

from fixtures.app_harness import COMPLETED, OVERFIT, RUNNING, RUNS

from tunedeck.engine.config.profile_diff import flatten, profile_differences
from tunedeck.tui.run_comparison import (
    DIFFERENT_DATA,
    SAME_DATA,
    compare_runs,
    display_value,
)


def diffs(c) -> list[tuple[str, object, object]]:
    return [(d.key, d.a, d.b) for d in c.differences]


def test_only_differing_keys_in_profile_order():
    c = compare_runs(RUNS / COMPLETED, RUNS / RUNNING)
    assert diffs(c) == [
        ("model.base", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
        ("lora.r", 16, 8),
        ("optim.learning_rate", 0.0002, 0.0001),
        ("optim.max_steps", 400, 1000),
    ]
    assert c.profile_problem is None
    assert (c.a.label, c.b.label) == ("extract·c0a1", "support·r2d2")


def test_a_run_compared_with_itself_has_no_differences_and_the_same_data():
    c = compare_runs(RUNS / OVERFIT, RUNS / OVERFIT)
    assert c.differences == []
    assert c.data_match == SAME_DATA


def test_dataset_records_side_by_side():
    c = compare_runs(RUNS / COMPLETED, RUNS / RUNNING)
    a, b = c.a.record, c.b.record
    assert (a.dataset_path, a.dataset_format) == ("/data/extract.jsonl", "messages")
    assert a.dataset_fingerprint == "07529d3ea957c146"
    assert (a.rows, a.train_rows, a.eval_rows) == (1137, 1024, 113)
    assert (b.dataset_fingerprint, b.rows, b.train_rows, b.eval_rows) == ("8b907451196b4cf4", 1274, 1147, 127)
    assert c.data_match == DIFFERENT_DATA


def test_best_gate_result_of_the_extract_run_and_none_for_a_run_without_a_gate():
    c = compare_runs(RUNS / COMPLETED, RUNS / RUNNING)
    g = c.a.gate
    assert (g.verdict, g.checkpoint, g.checkpoint_verdict) == ("pass", 400, "pass")
    assert (g.task, g.format, g.safety, g.latency_p95_ms) == (84.0, 100.0, 100.0, 212.0)
    assert g.sentence == "checkpoint-400: task 84.0% (+6.0 vs base), format 100% (=), safety 100% (=), p95 212 ms"
    assert g.chosen is None
    assert c.b.gate is None


def test_the_users_chosen_checkpoint_is_kept_apart_from_the_best(tmp_path):
    run = shutil.copytree(RUNS / COMPLETED, tmp_path / COMPLETED)
    gate_file = run / "evals" / "gate.json"
    data = json.loads(gate_file.read_text())
    data["chosen"] = {"checkpoint": 300, "note": "smaller latency", "t": 1.0}
    gate_file.write_text(json.dumps(data))
    g = compare_runs(run, RUNS / RUNNING).a.gate
    assert (g.checkpoint, g.chosen, g.task) == (400, 300, 84.0)


def test_loss_series_come_from_the_event_logs():
    c = compare_runs(RUNS / COMPLETED, RUNS / RUNNING)
    assert c.a.train_loss.xs[0] == 5 and c.a.train_loss.xs[-1] == 400
    assert list(c.a.eval_loss.xs) == [50, 100, 150, 200, 250, 300, 350, 400]
    assert (c.a.best_eval.step, c.a.best_eval.loss) == (400, 1.03952)
    assert list(c.b.eval_loss.xs) == [100, 200, 300]
    assert c.b.train_loss.xs[-1] == 300


def test_a_missing_run_toml_gives_a_message_not_an_exception(tmp_path):
    run = shutil.copytree(RUNS / RUNNING, tmp_path / RUNNING)
    (run / "run.toml").unlink()
    c = compare_runs(RUNS / COMPLETED, run)
    assert c.b.record is None
    assert c.differences == []
    assert c.profile_problem == (
        f"Profiles not compared — {RUNNING}: run.toml is missing, so its profile and dataset are unknown"
    )
    assert c.data_match == "unknown: a run record could not be read"
    assert c.b.label == RUNNING
    assert list(c.b.eval_loss.xs) == [100, 200, 300]  # the curves still compare


def test_a_broken_run_toml_gives_a_message_not_an_exception(tmp_path):
    run = shutil.copytree(RUNS / RUNNING, tmp_path / RUNNING)
    (run / "run.toml").write_text("[run\nid = ")
    c = compare_runs(run, RUNS / COMPLETED)
    assert c.a.record is None and c.differences == []
    assert c.profile_problem.startswith(
        f"Profiles not compared — {RUNNING}: run.toml is unreadable: unreadable run record:"
    )
    assert str(run) not in c.profile_problem  # the path is not repeated in the message


def test_a_directory_that_is_not_a_run_at_all(tmp_path):
    c = compare_runs(tmp_path, RUNS / COMPLETED)
    assert c.a.record is None and c.a.gate is None and len(c.a.train_loss) == 0
    assert "run.toml is missing" in c.profile_problem


def test_flatten_and_display_values():
    assert flatten({"description": "", "optim": {"learning_rate": 2e-4, "seed": 42}}) == {
        "description": "",
        "optim.learning_rate": 2e-4,
        "optim.seed": 42,
    }
    assert [display_value(v) for v in (True, "", ["all-linear", "q_proj"], 1e-4, "cosine")] == [
        "true",
        '""',
        "[all-linear, q_proj]",
        "0.0001",
        "cosine",
    ]


def test_a_list_value_differs_as_a_whole():
    from tunedeck.engine.run.run_record import load_run_record

    a, b = load_run_record(RUNS / COMPLETED), load_run_record(RUNS / COMPLETED)
    b.profile.lora.target_modules = ["q_proj", "v_proj"]
    assert [(d.key, d.a, d.b) for d in profile_differences(a.profile, b.profile)] == [
        ("lora.target_modules", ["all-linear"], ["q_proj", "v_proj"])
    ]
