"""Disk full during a save and out-of-memory: clear errors, nothing earlier lost."""

from __future__ import annotations

import pytest
from conftest import read_events, tunedeck

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status

pytestmark = pytest.mark.slow


def _args(model, data, steps, save, *extra):
    return [
        "run",
        "lora",
        "--data",
        str(data),
        "--set",
        f"model.base={model}",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        f"checkpoints.save_steps={save}",
        "--set",
        f"checkpoints.eval_steps={save}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        *extra,
    ]


def test_disk_full_during_save(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(*_args(tiny_model_dir, sft_data, 20, 5), env={"TUNEDECK_TEST_ENOSPC_AT_STEP": "10"})
    assert proc.returncode == 1
    run = find_run(workspace, proc.stdout.split()[0])
    assert read_effective_status(run).state == C.FAILED
    errors = [e for e in read_events(run) if e["kind"] == C.EV_ERROR]
    assert len(errors) == 1 and errors[0]["code"] == "disk_full"
    assert "disk is full" in errors[0]["message"] and "checkpoint-10" in errors[0]["message"]
    assert "traceback" not in errors[0]
    ckpts = {c.step: c.complete for c in list_checkpoints(run)}
    assert ckpts == {5: True, 10: False}  # the earlier one intact, the partial one never counted
    resumed = tunedeck("resume", run.name, check=True)  # and usable
    assert "resumed from step 5" in resumed.stdout and read_effective_status(run).state == C.COMPLETED


def test_out_of_memory_names_remedies(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(*_args(tiny_model_dir, sft_data, 10, 5), env={"TUNEDECK_TEST_OOM_AT_STEP": "3"})
    assert proc.returncode == 1
    run = find_run(workspace, proc.stdout.split()[0])
    error = [e for e in read_events(run) if e["kind"] == C.EV_ERROR][-1]
    assert error["code"] == "oom"
    for remedy in ("batch_size", "grad_accum", "gradient_checkpointing", "max_seq_len", "qlora"):
        assert remedy in error["message"]
    assert "error: out of GPU memory" in proc.stdout


def test_auto_batch_size_keeps_the_effective_batch(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        *_args(
            tiny_model_dir,
            sft_data,
            8,
            4,
            "--set",
            "optim.batch_size=8",
            "--set",
            "optim.grad_accum=2",
            "--set",
            "optim.auto_batch_size=true",
        ),
        env={"TUNEDECK_TEST_OOM_ABOVE_BATCH": "2"},
        check=True,
    )
    run = find_run(workspace, proc.stdout.split()[0])
    assert read_effective_status(run).state == C.COMPLETED
    warnings = [e["message"] for e in read_events(run) if e.get("code") == "auto_batch_size"]
    assert len(warnings) == 2  # 8 -> 4 -> 2
    assert "batch_size 2 and grad_accum 8 (same effective batch 16)" in warnings[-1]
