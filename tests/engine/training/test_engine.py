"""The engine for real: tiny models trained on CPU by real (detached) engine processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, pid_alive, read_effective_status

pytestmark = pytest.mark.slow

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
    "optim.warmup_ratio=0.1",
    "--set",
    "gate.when=never",
]


def run_args(model: Path, data: Path, steps: int, save: int = 10, profile: str = "lora", *extra: str) -> list[str]:
    return [
        "run",
        profile,
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
        *FAST,
        *extra,
    ]


def run_dir_of(ws: Path, proc: subprocess.CompletedProcess) -> Path:
    run_id = proc.stdout.strip().splitlines()[0]
    return find_run(ws, run_id)


def train_losses(run_dir: Path) -> dict[int, float]:
    from tunedeck.engine.run.summary import metrics

    return metrics(run_dir)["train_loss"]


def test_sft_lora_trains_evaluates_and_checkpoints(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(*run_args(tiny_model_dir, sft_data, 20), check=True)
    run = run_dir_of(workspace, proc)
    assert "step 20/20" in proc.stdout and "eval loss" in proc.stdout
    status = read_effective_status(run)
    assert status.state == C.COMPLETED and status.step == 20 and status.total_steps == 20
    events = read_events(run)
    kinds = [e["kind"] for e in events]
    assert kinds.count(C.EV_EVAL) == 2 and kinds[-1] == C.EV_DONE
    train = [e for e in events if e["kind"] == C.EV_TRAIN]
    assert train[-1]["loss"] < train[0]["loss"]
    assert all(k in train[-1] for k in ("learning_rate", "grad_norm", "tokens_per_s", "epoch"))
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(10, True), (20, True)]
    assert (run / "checkpoints/checkpoint-20/adapter_model.safetensors").exists()
    record = json.loads(tunedeck("show", run.name, "--json", check=True).stdout)
    assert record["dataset"]["fingerprint"].startswith("sha256:")
    assert record["base_model"] == str(tiny_model_dir)
    assert record["hyperparameters"]["lora"]["r"] == 8
    assert record["metrics"]["best_eval_loss"] == status.best_eval_loss
    rows = json.loads(tunedeck("ls", "--json", check=True).stdout)
    assert {"id", "name", "state", "step", "total_steps", "best_eval_loss", "dir"} <= set(rows[0])
    assert rows[0]["state"] == C.COMPLETED
    # the held-out split is recorded and never trained on
    assert (
        record["dataset"]["eval_rows"] > 0 and record["dataset"]["train_rows"] + record["dataset"]["eval_rows"] == 240
    )


def test_full_fine_tuning(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(*run_args(tiny_model_dir, sft_data, 6, 3, "full", "--set", "optim.learning_rate=1e-3"), check=True)
    run = run_dir_of(workspace, proc)
    assert read_effective_status(run).state == C.COMPLETED
    ckpt = list_checkpoints(run)[-1]
    assert ckpt.complete and (ckpt.path / "model.safetensors").exists()


def test_dpo_lora(workspace, tiny_model_dir, dpo_data):
    proc = tunedeck(*run_args(tiny_model_dir, dpo_data, 6, 3, "dpo", "--set", "optim.learning_rate=5e-4"), check=True)
    run = run_dir_of(workspace, proc)
    assert read_effective_status(run).state == C.COMPLETED
    assert any(e["kind"] == C.EV_EVAL for e in read_events(run))
    assert list_checkpoints(run)[-1].complete


def _start_detached(workspace, tiny_model_dir, sft_data, steps, save, env=None, *extra):
    proc = tunedeck(*run_args(tiny_model_dir, sft_data, steps, save, "lora", *extra), "--detach", env=env, check=True)
    return run_dir_of(workspace, proc)


def _wait_checkpoint(run: Path, step: int, timeout: float = 120):
    wait_for(
        lambda: any(e["kind"] == C.EV_CHECKPOINT and e["step"] == step for e in read_events(run)),
        timeout=timeout,
        what=f"checkpoint-{step}",
    )


def test_kill_and_resume_matches_uninterrupted_run(workspace, tiny_model_dir, sft_data):
    ref = run_dir_of(workspace, tunedeck(*run_args(tiny_model_dir, sft_data, 30), check=True))
    slow = {"TUNEDECK_TEST_SLOW_STEP_S": "0.15"}
    run = _start_detached(workspace, tiny_model_dir, sft_data, 30, 10, slow)
    _wait_checkpoint(run, 10)
    pid = read_effective_status(run).pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: read_effective_status(run).state == C.CRASHED, timeout=30, what="crashed state")
    assert tunedeck("ls", "--json").stdout.count('"crashed"') == 1
    resumed = tunedeck("resume", run.name, check=True)
    assert "resumed from step 10" in resumed.stdout
    assert read_effective_status(run).state == C.COMPLETED
    ref_losses, losses = train_losses(ref), train_losses(run)
    assert sorted(losses) == sorted(ref_losses) == list(range(1, 31))
    for step in ref_losses:
        assert losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5), step


def test_kill_during_checkpoint_save_resumes_from_previous(workspace, tiny_model_dir, sft_data):
    run = _start_detached(workspace, tiny_model_dir, sft_data, 30, 10, {"TUNEDECK_TEST_KILL_IN_SAVE_AT_STEP": "20"})
    wait_for(lambda: read_effective_status(run).state == C.CRASHED, timeout=120, what="the kill inside the save")
    ckpts = {c.step: c.complete for c in list_checkpoints(run)}
    assert ckpts == {10: True, 20: False}  # the Trainer's files are there, the marker is not
    resumed = tunedeck("resume", run.name, check=True)
    assert "resumed from step 10" in resumed.stdout
    assert any(e.get("code") == "incomplete_checkpoint_removed" and e["step"] == 20 for e in read_events(run))
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(10, True), (20, True), (30, True)]


def test_stop_saves_a_final_checkpoint(workspace, tiny_model_dir, sft_data):
    run = _start_detached(workspace, tiny_model_dir, sft_data, 200, 100, {"TUNEDECK_TEST_SLOW_STEP_S": "0.1"})
    wait_for(lambda: (read_effective_status(run).step or 0) >= 3, timeout=120, what="training to start")
    assert tunedeck("checkpoint", run.name, check=True).returncode == 0
    wait_for(lambda: any(e["kind"] == C.EV_CHECKPOINT for e in read_events(run)), timeout=60, what="checkpoint now")
    assert tunedeck("stop", run.name, "--wait", check=True).returncode == 0
    status = read_effective_status(run)
    assert status.state == C.STOPPED
    last = list_checkpoints(run)[-1]
    assert last.complete and last.step == status.step < 200
    assert len(list_checkpoints(run)) == 2


def test_sigterm_is_a_stop(workspace, tiny_model_dir, sft_data):
    run = _start_detached(workspace, tiny_model_dir, sft_data, 200, 100, {"TUNEDECK_TEST_SLOW_STEP_S": "0.1"})
    wait_for(lambda: (read_effective_status(run).step or 0) >= 2, timeout=120, what="training to start")
    os.kill(read_effective_status(run).pid, signal.SIGTERM)
    wait_for(lambda: read_effective_status(run).state == C.STOPPED, timeout=60, what="stopped")
    assert list_checkpoints(run)[-1].complete


def test_nan_stops_with_error_and_keeps_last_good_checkpoint(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(*run_args(tiny_model_dir, sft_data, 30, 5), env={"TUNEDECK_TEST_NAN_AT_STEP": "8"})
    assert proc.returncode == 1
    run = run_dir_of(workspace, proc)
    assert read_effective_status(run).state == C.FAILED
    errors = [e for e in read_events(run) if e["kind"] == C.EV_ERROR]
    assert len(errors) == 1 and errors[0]["code"] == "nan" and errors[0]["step"] == 8
    assert "step 8" in errors[0]["message"]
    assert [c.step for c in list_checkpoints(run)] == [5]
    assert all(isinstance(e["loss"], float) for e in read_events(run) if e["kind"] == C.EV_TRAIN and e["step"] < 8)


def test_nan_skip_policy_continues(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        *run_args(tiny_model_dir, sft_data, 12, 6, "lora", "--set", "optim.nan_policy=skip"),
        env={"TUNEDECK_TEST_NAN_AT_STEP": "4"},
        check=True,
    )
    run = run_dir_of(workspace, proc)
    assert read_effective_status(run).state == C.COMPLETED
    assert any(e.get("code") == "nan_skipped" and e["step"] == 4 for e in read_events(run))


def test_engine_outlives_the_launching_process_group(workspace, tiny_model_dir, sft_data):
    """A terminal closing sends SIGHUP to its session and process group; the engine must not care."""
    args = " ".join(run_args(tiny_model_dir, sft_data, 300, 100)) + " --detach"
    script = f"{sys.executable} -m tunedeck.tui.cli {args} > {workspace}.out; sleep 60"
    shell = subprocess.Popen(
        ["setsid", "bash", "-c", script], cwd=ROOT, env={**os.environ, "TUNEDECK_TEST_SLOW_STEP_S": "0.05"}
    )
    out = Path(f"{workspace}.out")
    run_id = wait_for(lambda: out.exists() and out.read_text().strip(), timeout=120, what="run id")
    run = find_run(workspace, run_id.splitlines()[0])
    wait_for(lambda: (read_effective_status(run).step or 0) >= 1, timeout=120, what="training to start")
    pgid, sid = os.getpgid(shell.pid), os.getsid(shell.pid)
    os.killpg(pgid, signal.SIGHUP)
    os.killpg(pgid, signal.SIGKILL)
    shell.wait()
    step = read_effective_status(run).step
    wait_for(lambda: read_effective_status(run).step > step + 3, timeout=60, what="training to go on")
    status = read_effective_status(run)
    assert status.state == C.RUNNING and pid_alive(status.pid)
    assert os.getpgid(status.pid) != pgid and os.getsid(status.pid) != sid
    tunedeck("stop", run.name, "--wait", check=True)
    assert read_effective_status(run).state == C.STOPPED


def test_second_engine_on_a_run_is_refused(workspace, tiny_model_dir, sft_data):
    run = _start_detached(workspace, tiny_model_dir, sft_data, 300, 100, {"TUNEDECK_TEST_SLOW_STEP_S": "0.05"})
    wait_for(lambda: read_effective_status(run).step, timeout=120, what="training to start")
    second = subprocess.run(
        [sys.executable, "-m", "tunedeck.engine.training.worker", str(run)], capture_output=True, text=True, cwd=ROOT
    )
    assert second.returncode == 3 and "another engine is already running" in second.stderr
    refused = tunedeck("resume", run.name)
    assert refused.returncode == 2 and "only stopped, crashed or failed runs resume" in refused.stderr
    tunedeck("stop", run.name, "--wait", check=True)


@pytest.mark.parametrize(
    "profile_text, expected",
    [
        (
            "[optim]\nlearning_rat = 1e-4\n",
            r":2: unknown key 'learning_rat' in \[optim\] \(did you mean 'learning_rate'\?\)",
        ),
        ('[lora]\nr = "big"\n', r":2: 'lora.r' must be an integer, not a string"),
        ("[optim\nepochs = 1\n", r":1: TOML syntax error"),
    ],
)
def test_bad_profiles_give_one_clear_message(workspace, tmp_path, sft_data, profile_text, expected):
    import re

    profile = tmp_path / "bad.toml"
    profile.write_text(profile_text)
    proc = tunedeck("run", str(profile), "--data", str(sft_data))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tunedeck: error: ") and re.search(expected, lines[0]), proc.stderr
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())


def test_bad_dataset_and_model_give_clear_messages(workspace, tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "user", "content": "hi"}\n'
    )
    proc = tunedeck("run", "lora", "--data", str(bad), "--set", f"model.base={tiny_model_dir}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.jsonl" in proc.stderr and ":2" in proc.stderr
    missing = tunedeck("run", "lora", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(bad.read_text().splitlines()[0] + "\n")
    nomodel = tunedeck("run", "lora", "--data", str(good), "--set", f"model.base={tmp_path / 'no-model'}")
    assert nomodel.returncode == 2 and "model.base" in nomodel.stderr and "Traceback" not in nomodel.stderr
