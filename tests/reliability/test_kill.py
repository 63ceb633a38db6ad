"""SIGKILL at random moments, again and again on one run: it always resumes from a complete checkpoint."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from conftest import read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventReader
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status
from tunedeck.engine.run.summary import metrics

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("TUNEDECK_KILL_TRIALS", "4"))


def test_random_kills_always_resume_from_a_complete_checkpoint(workspace, tiny_model_dir, sft_data):
    rng = random.Random(int(os.environ.get("TUNEDECK_KILL_SEED", "1234")))
    steps = 60
    args = [
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        "checkpoints.save_steps=4",
        "--set",
        "checkpoints.eval_steps=3",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "checkpoints.keep=3",
        "--set",
        "gate.when=never",
        "--detach",
    ]
    slow = {"TUNEDECK_TEST_SLOW_STEP_S": "0.08"}
    run = find_run(workspace, tunedeck(*args, env=slow, check=True).stdout.split()[0])
    used = []
    for trial in range(TRIALS):
        wait_for(
            lambda: read_effective_status(run).state == C.RUNNING and (read_effective_status(run).step or 0) > 0,
            timeout=180,
            what=f"trial {trial}: training",
        )
        time.sleep(rng.uniform(0.0, 1.5))  # anywhere: a step, an eval, a save
        status = read_effective_status(run)
        if status.state != C.RUNNING:
            break
        os.kill(status.pid, signal.SIGKILL)
        wait_for(lambda: read_effective_status(run).state == C.CRASHED, timeout=30, what="crashed state")
        reader = EventReader(run / C.EVENTS_JSONL)
        reader.read_new()  # reads cleanly whatever the kill left
        complete = [c.step for c in list_checkpoints(run) if c.complete]
        expected = complete[-1] if complete else 0
        tunedeck("resume", run.name, "--detach", env=slow, check=True)
        ev = wait_for(
            lambda: [e for e in read_events(run) if e["kind"] == C.EV_RUN_STARTED][trial + 1 :],
            timeout=180,
            what="the resumed engine to start",
        )
        assert ev[0]["resumed_from"] == expected  # the newest complete checkpoint, never a partial one
        used.append(expected)
    wait_for(lambda: read_effective_status(run).state in C.FINAL_STATES, timeout=300, what="the run to end")
    assert read_effective_status(run).state == C.COMPLETED
    curve = metrics(run)["train_loss"]
    assert sorted(curve) == list(range(1, steps + 1))  # the loss curve continues without gaps or doubles
    assert all(c.complete for c in list_checkpoints(run))
