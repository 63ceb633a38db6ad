"""The app is a disposable client: two instances follow one real engine, and a terminal hang-up
(tmux killing a session sends SIGHUP to the app in it) never reaches the engine."""

from __future__ import annotations

import os
import sys
import time

import pytest
from conftest import ROOT, tunedeck, wait_for
from fixtures.tmux import TMUX, Tmux

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, pid_alive, read_effective_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (CI installs it; apt-get install tmux)"),
]


def test_two_apps_follow_one_engine_and_a_hang_up_does_not_stop_it(workspace, tiny_model_dir, sft_data):
    args = [
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=400",
        "--set",
        "checkpoints.save_steps=200",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        "checkpoints.logging_steps=1",
        "--detach",
    ]
    run = find_run(workspace, tunedeck(*args, env={"TUNEDECK_TEST_SLOW_STEP_S": "0.1"}, check=True).stdout.split()[0])
    wait_for(lambda: (read_effective_status(run).step or 0) >= 2, timeout=120, what="training to start")
    tmux = Tmux(f"tunedeck-detach-{os.getpid()}")
    app = f"{sys.executable} -m tunedeck.tui.cli app --workspace {workspace} --open {run.name} --no-telemetry"
    env = {"TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    try:
        tmux.start("one", app, env)
        tmux.start("two", app, env)
        for session in ("one", "two"):
            tmux.wait_for(session, "running", "Loss", timeout=60)
        tmux("kill-session", "-t", "one")  # the terminal goes away: SIGHUP to the app in it
        step = read_effective_status(run).step
        wait_for(
            lambda: read_effective_status(run).step >= step + 5, timeout=60, what="training to go on after the hang-up"
        )
        status = read_effective_status(run)
        assert status.state == C.RUNNING and pid_alive(status.pid)
        # the other instance still follows live: the step it shows keeps moving
        first = tmux.capture("two")
        deadline = time.monotonic() + 30
        while tmux.capture("two") == first and time.monotonic() < deadline:
            time.sleep(0.5)
        assert tmux.capture("two") != first
    finally:
        tmux.kill_server()
    tunedeck("stop", run.name, "--wait", check=True)
    assert read_effective_status(run).state == C.STOPPED
