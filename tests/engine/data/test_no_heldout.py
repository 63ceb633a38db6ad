"""Runs without a held-out split: a warning that names the cause, training to the end, the gate on [gate]'s sets."""

from __future__ import annotations

import json

import pytest
from conftest import read_events, tunedeck

from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.data.prepare import PreparedData
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status
from tunedeck.engine.scheduling.preflight import no_heldout_warning

FAST = [
    "--set",
    "optim.precision=fp32",
    "--set",
    "optim.learning_rate=3e-3",
    "--set",
    "optim.batch_size=8",
    "--set",
    "optim.grad_accum=1",
    "--set",
    "checkpoints.logging_steps=1",
    "--set",
    "optim.max_steps=6",
    "--set",
    "checkpoints.save_steps=3",
    "--set",
    "checkpoints.eval_steps=3",
]
NO_SPLIT = ["--set", "data.val_fraction=0"]


def _prepared(n_train: int) -> PreparedData:
    return PreparedData([{"text": "x"}] * n_train, [], "text", "sha256:0", [])


def test_the_warning_names_the_real_cause():
    p = Profile()
    p.data.val_fraction = 0.0
    assert "data.val_fraction = 0 and no data.eval_file" in no_heldout_warning(p, _prepared(50))
    assert "early_stopping_patience" not in no_heldout_warning(p, _prepared(50))
    p.checkpoints.early_stopping_patience = 3  # as the lora profile sets it: say that it cannot act
    assert "early_stopping_patience has no validation loss to watch" in no_heldout_warning(p, _prepared(50))
    p.data.val_fraction = 0.1  # a split that came out empty: one valid row cannot be split
    text = no_heldout_warning(p, _prepared(1))
    assert "only 1 valid row" in text and "val_fraction = 0" not in text.replace("val_fraction = 0.1", "")
    p.data.eval_file = "/data/heldout.jsonl"
    assert "the held-out file /data/heldout.jsonl has no valid rows" in no_heldout_warning(p, _prepared(50))


@pytest.mark.slow
def test_trains_to_the_end_and_gates_on_the_named_golden_set(workspace, tmp_path, tiny_model_dir, sft_data):
    from tunedeck.engine.data.demo_data import make_eval_set

    golden = make_eval_set(tmp_path / "golden.jsonl", 12, seed=3)
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        *FAST,
        *NO_SPLIT,
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        "gate.max_new_tokens=16",
        "--set",
        "gate.min_task_gain=-100",
        "--set",
        "gate.significance=0",
    )
    assert proc.returncode == 0, proc.stderr
    assert "no held-out split (data.val_fraction = 0 and no data.eval_file)" in proc.stderr
    run = find_run(workspace, proc.stdout.strip().splitlines()[0])
    status = read_effective_status(run)
    assert status.state == C.COMPLETED and status.step == 6
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(3, True), (6, True)]
    kinds = [e["kind"] for e in read_events(run)]
    assert C.EV_EVAL not in kinds and C.EV_ERROR not in kinds
    gate = json.loads((run / "evals" / "gate.json").read_text())
    assert [s["name"] for s in gate["sets"]] == ["golden"]
    assert [r["checkpoint"] for r in gate["rows"]] == ["base", 3, 6]
    assert all(r["n"]["task"] == 12 for r in gate["rows"])


@pytest.mark.slow
def test_a_split_that_comes_out_empty_trains_and_skips_the_gate_with_a_notice(
    workspace, tmp_path, tiny_model_dir, demo_rows
):
    from tunedeck.engine.data.demo_data import write_jsonl

    one_row = write_jsonl(tmp_path / "one.jsonl", demo_rows[:1])  # val_fraction 0.1 of one row holds nothing out
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(one_row),
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        *FAST,
        "--set",
        'gate.when="end"',
    )
    assert proc.returncode == 0, proc.stderr
    assert "no held-out split (only 1 valid row: too few to hold any out at data.val_fraction = 0.1)" in proc.stderr
    assert "the eval gate will be skipped" in proc.stderr
    run = find_run(workspace, proc.stdout.strip().splitlines()[0])
    assert read_effective_status(run).state == C.COMPLETED
    events = read_events(run)
    skipped = [e for e in events if e["kind"] == C.EV_WARNING and e.get("code") == "gate_skipped"]
    assert len(skipped) == 1 and "no held-out rows" in skipped[0]["message"]
    assert not [e for e in events if e["kind"] == C.EV_ERROR]
    assert not (run / "evals" / "gate.json").exists()
    assert [c.step for c in list_checkpoints(run) if c.complete] == [3, 6]
