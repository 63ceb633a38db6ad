"""Sweeps for real: tiny models trained on CPU one after another, each gated, then ranked; stop and failure
semantics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import list_checkpoints, read_effective_status
from tunedeck.engine.scheduling.run_queue import CANCELLED_MESSAGE
from tunedeck.engine.scheduling.sweep import load_record

pytestmark = pytest.mark.slow

QUICK = {"TUNEDECK_QUEUE_POLL_S": "0.2"}


def base_args(model: Path, data: Path, steps: int, save: int) -> list[str]:
    return [
        "--data",
        str(data),
        "--set",
        f"model.base={json.dumps(str(model))}",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        f"checkpoints.save_steps={save}",
        "--set",
        f"checkpoints.eval_steps={save}",
    ]


def runs_of(ws: Path, name: str) -> list[Path]:
    return [ws / "runs" / r.id for r in load_record(ws, name).runs]


def test_a_two_point_sweep_runs_one_after_another_and_is_ranked_by_the_gate(
    workspace, tmp_path, tiny_model_dir, sft_data
):
    from tunedeck.engine.data.demo_data import BASE_PROMPT, make_eval_set

    golden = make_eval_set(tmp_path / "golden.jsonl", 20, seed=1)
    proc = tunedeck(
        "sweep",
        "demo-cpu",
        *base_args(tiny_model_dir, sft_data, 10, 5),
        "--name",
        "lr",
        "--grid",
        "learning_rate=1e-3,3e-3",
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        f"gate.base_system_prompt={json.dumps(BASE_PROMPT)}",
        # ten steps learn little: let checkpoints pass on "no regression" so ranking has passing runs
        "--set",
        "gate.min_task_gain=-100",
        "--set",
        "gate.significance=0",
        "--set",
        "gate.max_new_tokens=24",
        env=QUICK,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    first, second = runs_of(workspace, "lr")
    assert first.name.split("-")[2:4] == ["lr", "1"] and second.name.split("-")[2:4] == ["lr", "2"]
    a, b = read_effective_status(first), read_effective_status(second)
    assert a.state == b.state == C.COMPLETED
    assert b.started >= a.finished  # one run at a time on a machine without a GPU
    assert a.sweep == "lr" and a.sweep_params == {"optim.learning_rate": "1e-3"}
    record = (workspace / "sweeps" / "lr.toml").read_text()
    assert 'profile = "demo-cpu"' in record and first.name in record and second.name in record

    # the table printed at the end, and the same ranking as JSON
    out = proc.stdout.splitlines()
    assert any(line.startswith("sweep lr: demo-cpu over optim.learning_rate (2 runs)") for line in out)
    shown = json.loads(tunedeck("sweep", "show", "lr", "--json", check=True).stdout)
    runs = shown["runs"]
    assert {r["id"] for r in runs} == {first.name, second.name}
    gates = {
        r: json.loads((workspace / "runs" / r / "evals" / "gate.json").read_text()) for r in (first.name, second.name)
    }

    def best_task(run_id):  # what the gate itself chose, read from the run's own gate.json
        g = gates[run_id]
        return next(row["task"] for row in g["rows"] if row["checkpoint"] == g["best"]["checkpoint"])

    assert all(gates[r["id"]]["verdict"] == "pass" for r in runs)
    assert [r["id"] for r in runs] == sorted(gates, key=lambda rid: (-best_task(rid), rid))
    top = runs[0]
    assert top["verdict"] == "pass" and top["best_checkpoint"] == gates[top["id"]]["best"]["checkpoint"]
    assert top["params"] == {"optim.learning_rate": 1e-3 if top["id"] == first.name else 3e-3}
    assert shown["sentence"].startswith(
        f"learning_rate={'1e-3' if top['id'] == first.name else '3e-3'} wins: checkpoint-{top['best_checkpoint']} task"
    )
    assert out[-1] == shown["sentence"]


def test_a_failing_run_does_not_stop_the_sweep(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        "sweep",
        "lora",
        *base_args(tiny_model_dir, sft_data, 8, 4),
        "--name",
        "nan",
        "--grid",
        "optim.nan_policy=stop,skip",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "checkpoints.logging_steps=1",
        env={**QUICK, "TUNEDECK_TEST_NAN_AT_STEP": "3"},
        timeout=600,
    )
    failed, survived = runs_of(workspace, "nan")
    assert proc.returncode == 0, proc.stderr  # one run completed: the sweep has an answer
    assert read_effective_status(failed).state == C.FAILED
    assert any(e["kind"] == C.EV_ERROR and e.get("code") == "nan" for e in read_events(failed))
    assert read_effective_status(survived).state == C.COMPLETED
    assert read_effective_status(survived).started >= read_effective_status(failed).finished
    shown = json.loads(tunedeck("sweep", "show", "nan", "--json", check=True).stdout)
    assert [r["state"] for r in shown["runs"]] == [C.FAILED, C.COMPLETED]  # no gate ran: sweep order
    assert shown["sentence"] == "no run has gate results yet"


def test_stopping_a_sweep_stops_the_running_run_and_cancels_the_queued(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        "sweep",
        "lora",
        *base_args(tiny_model_dir, sft_data, 200, 100),
        "--name",
        "long",
        "--grid",
        "lora.r=4,8,16",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--detach",
        env={**QUICK, "TUNEDECK_TEST_SLOW_STEP_S": "0.1"},
    )
    assert proc.returncode == 0, proc.stderr
    running, *queued = runs_of(workspace, "long")
    wait_for(lambda: (read_effective_status(running).step or 0) >= 2, timeout=180, what="the first run to train")
    assert [read_effective_status(q).state for q in queued] == [C.QUEUED, C.QUEUED]
    listed = json.loads(tunedeck("queue", "--json", check=True).stdout)
    assert [(e["id"], e["position"], e["sweep"]) for e in listed] == [
        (queued[0].name, 1, "long"),
        (queued[1].name, 2, "long"),
    ]
    out = tunedeck("stop", "long", "--wait", check=True).stdout
    assert "sweep long: cancelling 2 queued run(s), stopping 1 running" in out
    status = read_effective_status(running)
    assert status.state == C.STOPPED and list_checkpoints(running)[-1].complete and status.step < 200
    for q in queued:
        assert read_effective_status(q).state == C.STOPPED and read_effective_status(q).message == CANCELLED_MESSAGE
        assert list_checkpoints(q) == []
    assert tunedeck("queue", check=True).stdout.strip() == "the queue is empty"


def test_bad_sweeps_fail_before_any_run_exists(workspace, tiny_model_dir, sft_data):
    args = base_args(tiny_model_dir, sft_data, 4, 2)
    bad_value = tunedeck("sweep", "lora", *args, "--name", "bad", "--grid", "lora.r=8,big")
    assert bad_value.returncode == 2 and "Traceback" not in bad_value.stderr
    assert "sweep point 2 (lora.r=big)" in bad_value.stderr and "'lora.r' must be an integer" in bad_value.stderr
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())
    assert not (workspace / "sweeps" / "bad.toml").exists()
    no_name = tunedeck("sweep", "lora", *args, "--grid", "lora.r=8,16")
    assert no_name.returncode == 2 and "--name NAME is required" in no_name.stderr
    swept_twice = tunedeck("sweep", "lora", *args, "--name", "x", "--grid", "lora.r=8,16", "--set", "lora.r=4")
    assert swept_twice.returncode == 2 and "lora.r is swept; leave it out of --set" in swept_twice.stderr


def test_a_slurm_sweep_writes_one_job_array(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        "sweep",
        "lora",
        *base_args(tiny_model_dir, sft_data, 4, 2),
        "--name",
        "arr",
        "--slurm",
        "--grid",
        "lora.r=8,16",
        "--partition",
        "gpu",
        "--max-parallel",
        "1",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "sbatch not found: submit" in proc.stderr
    script = (workspace / "sweeps" / "arr.sbatch").read_text()
    runs = runs_of(workspace, "arr")
    assert "#SBATCH --array=0-1%1" in script and "#SBATCH --partition=gpu" in script
    assert all(str(r) in script for r in runs)
    for r in runs:  # waiting in Slurm's queue is not a crash, however long it takes
        assert read_effective_status(r).state == C.QUEUED and read_effective_status(r).slurm_script.endswith(
            "arr.sbatch"
        )
