"""`e` on the run monitor ("eval now") judges the latest checkpoint with the gate, not only validation loss."""

from __future__ import annotations

import json

import pytest
from conftest import read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, read_effective_status, request_control

pytestmark = pytest.mark.slow


def test_eval_now_saves_a_checkpoint_and_runs_the_gate_on_it(workspace, tiny_model_dir, sft_data, tmp_path):
    from tunedeck.engine.data.demo_data import make_eval_set

    golden = make_eval_set(tmp_path / "golden.jsonl", 8, seed=1)
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--detach",
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=12",
        "--set",
        "checkpoints.save_steps=1000",
        "--set",
        "checkpoints.eval_steps=1000",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=8",
        "--set",
        "gate.when=never",
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        "gate.max_new_tokens=8",
        env={"TUNEDECK_TEST_SLOW_STEP_S": "0.3"},
        check=True,
    )
    run = find_run(workspace, proc.stdout.strip().splitlines()[0])
    wait_for(lambda: (read_effective_status(run).step or 0) >= 2, timeout=300, what="a few training steps")
    request_control(run, C.CTL_EVAL)  # what the monitor's `e` writes
    wait_for(lambda: read_effective_status(run).state not in C.LIVE_STATES, timeout=600, what="the run to end")
    events = read_events(run)
    asked = next(e["step"] for e in events if e["kind"] == C.EV_CONTROL and e.get("request") == C.CTL_EVAL)
    assert any(e["kind"] == C.EV_CHECKPOINT and e["step"] == asked for e in events)
    assert any(e["kind"] == C.EV_EVAL and e["step"] == asked for e in events)  # validation loss as before
    rows = [e for e in events if e["kind"] == C.EV_GATE and e.get("phase") == "row"]
    assert [r["checkpoint"] for r in rows] == [asked]  # gate.when = never: only the asked-for checkpoint
    summary = json.loads((run / "evals" / "gate.json").read_text())
    assert [r["checkpoint"] for r in summary["rows"]] == ["base", asked]
    assert read_effective_status(run).state == C.COMPLETED
