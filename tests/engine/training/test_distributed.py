"""Two engine processes under torchrun (gloo on CPU), and the Slurm script generator."""

from __future__ import annotations

import subprocess

import pytest
from conftest import read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status
from tunedeck.engine.scheduling.slurm import sbatch_script, write_and_submit

COMMON = [
    "--set",
    "optim.precision=fp32",
    "--set",
    "optim.learning_rate=3e-3",
    "--set",
    "checkpoints.logging_steps=1",
    "--set",
    "optim.grad_accum=1",
    "--set",
    "gate.when=never",
    "--set",
    "optim.warmup_ratio=0.1",
]


def _run(model, data, steps, save, procs, batch, *extra):
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
        f"resources.processes={procs}",
        "--set",
        f"optim.batch_size={batch}",
        *COMMON,
        *extra,
    ]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(workspace, tiny_model_dir, sft_data):
    one = find_run(workspace, tunedeck(*_run(tiny_model_dir, sft_data, 24, 12, 1, 8), check=True).stdout.split()[0])
    two = find_run(workspace, tunedeck(*_run(tiny_model_dir, sft_data, 24, 12, 2, 4), check=True).stdout.split()[0])
    assert read_effective_status(two).state == C.COMPLETED
    events = read_events(two)
    steps = [e["step"] for e in events if e["kind"] == C.EV_TRAIN]
    assert steps == sorted(set(steps)) == list(range(1, 25))  # rank 0 alone writes: each step once
    assert len({e["pid"] for e in events if e["kind"] == C.EV_STATE}) == 1
    assert "rank 1" not in (two / C.ENGINE_LOG).read_text() or "Traceback" not in (two / C.ENGINE_LOG).read_text()

    def final_eval_loss(run_dir):
        return [e for e in read_events(run_dir) if e["kind"] == C.EV_EVAL][-1]["eval_loss"]

    assert final_eval_loss(two) == pytest.approx(final_eval_loss(one), rel=0.1)
    assert [c.step for c in list_checkpoints(two) if c.complete] == [12, 24]


@pytest.mark.slow
def test_stop_reaches_every_rank_and_resume_works(workspace, tiny_model_dir, sft_data):
    out = tunedeck(
        *_run(tiny_model_dir, sft_data, 400, 200, 2, 4),
        "--detach",
        env={"TUNEDECK_TEST_SLOW_STEP_S": "0.1"},
        check=True,
    )
    run = find_run(workspace, out.stdout.split()[0])
    wait_for(lambda: (read_effective_status(run).step or 0) >= 3, timeout=180, what="two-process training to start")
    tunedeck("stop", run.name, "--wait", check=True)
    status = read_effective_status(run)
    assert status.state == C.STOPPED
    stopped_at = status.step
    assert list_checkpoints(run)[-1].step == stopped_at and list_checkpoints(run)[-1].complete
    # every rank left: no engine process of this run remains
    wait_for(
        lambda: (
            subprocess.run(["pgrep", "-f", f"tunedeck.engine.training.worker {run}"], capture_output=True).returncode
            == 1
        ),
        timeout=60,
        what="all ranks to exit",
    )
    resumed = tunedeck("resume", run.name, "--detach", check=True)
    assert resumed.returncode == 0
    wait_for(lambda: (read_effective_status(run).step or 0) > stopped_at + 2, timeout=180, what="resumed training")
    tunedeck("stop", run.name, "--wait", check=True)
    assert read_effective_status(run).state == C.STOPPED
    assert any(e["kind"] == C.EV_RESUMED and e["from_step"] == stopped_at for e in read_events(run))


def test_slurm_script(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    text = sbatch_script(
        run, nodes=4, gpus_per_node=8, partition="gpu", time_limit="12:00:00", python="/opt/py/bin/python"
    )
    assert text.startswith("#!/bin/bash\n")
    for line in (
        "#SBATCH --nodes=4",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=12:00:00",
        f"#SBATCH --output={run.resolve()}/engine.log",
    ):
        assert line in text.splitlines()
    assert '--nnodes="$SLURM_NNODES" --nproc-per-node=8' in text
    assert "--rdzv-backend=c10d" in text and '--rdzv-endpoint="$MASTER_ADDR:29500"' in text
    assert f"-m tunedeck.engine.training.worker {run.resolve()}" in text and "--resume" not in text
    assert "--resume" in sbatch_script(run, nodes=2, gpus_per_node=1, resume=True)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0  # valid bash
    script, job = write_and_submit(run, nodes=2, gpus_per_node=1, submit=False)
    assert job is None and script.read_text().count("#SBATCH") >= 5 and oct(script.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("checkpointing", ["on", "off"])
def test_fsdp_checkpoints_activations_once(monkeypatch, tmp_path, checkpointing):
    """Under FSDP the activations are recomputed by FSDP's own wrapper or not at all, never also by the
    training argument (an extra all-gather per layer, and a second recompute); transformers takes the pair."""
    from transformers import TrainingArguments

    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.training.throughput import parallel_args

    monkeypatch.setenv("WORLD_SIZE", "2")
    profile = load_profile(
        "lora", ["resources.processes=2", "resources.strategy=fsdp", f"optim.gradient_checkpointing={checkpointing}"]
    )
    args = parallel_args(profile)
    assert args["activation_checkpointing"] is False
    assert args["fsdp_config"]["activation_checkpointing"] is (checkpointing == "on")
    monkeypatch.setenv("WORLD_SIZE", "1")  # build the arguments without a process group
    common = {"output_dir": str(tmp_path), "use_cpu": True, "activation_checkpointing": True}  # as train.py: GPU auto
    common.update({k: v for k, v in args.items() if k != "ddp_backend"})  # train.py applies parallel_args last
    built = TrainingArguments(**common)
    assert built.activation_checkpointing is False and built.gradient_checkpointing is False
    assert built.fsdp_config["activation_checkpointing"] is (checkpointing == "on")
