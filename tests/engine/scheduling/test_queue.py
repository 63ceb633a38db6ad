"""The run queue for real: detached waiters, per-slot locks and queue order, with tiny models trained on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, read_events, tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, pid_alive, read_effective_status
from tunedeck.engine.scheduling.run_queue import (
    CANCELLED_MESSAGE,
    CPU_SLOT,
    QueueEntry,
    blockers,
    queue_entries,
    release_slots,
    slot_holders,
    slots_for,
    try_lock_slots,
)

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
    "gate.when=never",
]


def run_args(model: Path, data: Path, name: str, steps: int = 6, *extra: str) -> list[str]:
    return [
        "run",
        "lora",
        "--data",
        str(data),
        "--name",
        name,
        "--set",
        f"model.base={model}",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        f"checkpoints.save_steps={steps}",
        "--set",
        f"checkpoints.eval_steps={steps}",
        *FAST,
        *extra,
    ]


def launched(ws: Path, proc: subprocess.CompletedProcess) -> Path:
    assert proc.returncode == 0, proc.stderr
    return find_run(ws, proc.stdout.strip().splitlines()[0])


SLOW = {"TUNEDECK_TEST_SLOW_STEP_S": "0.3", "TUNEDECK_QUEUE_POLL_S": "0.2"}


def held(go_on: Path) -> dict[str, str]:
    """SLOW, and the run's steps wait until `go_on` exists: a first run cannot end before the test has seen
    the second one wait behind it, however long the second's launch takes on a busy machine."""
    return {**SLOW, "TUNEDECK_TEST_HOLD_UNTIL": str(go_on)}


# ---- without a model -----------------------------------------------------------------------------


def test_slots_are_the_gpus_asked_for_or_the_cpu():
    assert slots_for("", []) == [CPU_SLOT]
    assert slots_for("", ["0", "1"]) == ["gpu-0", "gpu-1"]
    assert slots_for("1, 3", ["0", "1", "2", "3"]) == ["gpu-1", "gpu-3"]
    assert slots_for("GPU-ab/c", []) == ["gpu-GPU-ab-c"]  # a UUID or odd name is still one file name


def test_slot_locks_are_all_or_nothing_and_name_their_holder(tmp_path):
    held = try_lock_slots(tmp_path, ["gpu-1"], "run-a")
    assert held and slot_holders(tmp_path, ["gpu-0", "gpu-1"]) == {"gpu-1": "run-a"}
    assert try_lock_slots(tmp_path, ["gpu-0", "gpu-1"], "run-b") is None
    assert slot_holders(tmp_path, ["gpu-0"]) == {}  # gpu-0 was not kept when gpu-1 could not be had
    release_slots(held)
    both = try_lock_slots(tmp_path, ["gpu-0", "gpu-1"], "run-b")
    assert both and slot_holders(tmp_path, ["gpu-0", "gpu-1"]) == {"gpu-0": "run-b", "gpu-1": "run-b"}
    release_slots(both)


def test_a_run_waits_only_for_earlier_runs_that_want_its_slots():
    def entry(i, rid, slots):
        return QueueEntry(i, rid, Path(rid), slots, 0.0, Path(rid))

    entries = [
        entry(1, "a", ["gpu-0"]),
        entry(2, "b", ["gpu-1"]),
        entry(3, "c", ["gpu-0", "gpu-1"]),
        entry(4, "d", ["gpu-1"]),
    ]
    assert blockers(entries, "a", ["gpu-0"]) == []
    assert blockers(entries, "b", ["gpu-1"]) == []  # a wants another GPU: b need not wait behind it
    assert [e.run_id for e in blockers(entries, "c", ["gpu-0", "gpu-1"])] == ["a", "b"]
    assert [e.run_id for e in blockers(entries, "d", ["gpu-1"])] == ["b", "c"]  # c came first: d never jumps it


# ---- with real engines ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_queued_run_waits_for_the_running_one_then_starts(workspace, tiny_model_dir, sft_data, tmp_path):
    go_on = tmp_path / "go-on"
    first = launched(
        workspace,
        tunedeck(
            *run_args(tiny_model_dir, sft_data, "first", 8),
            "--queue",
            "--detach",
            env=held(go_on),
        ),
    )
    wait_for(lambda: read_effective_status(first).state == C.RUNNING, what="the first run to start")
    second = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "second"), "--queue", "--detach", env=SLOW)
    )
    status = wait_for(lambda: (s := read_effective_status(second)).queue_position and s, what="the second run to wait")
    assert status.state == C.QUEUED and pid_alive(status.pid)
    assert f"waiting for the CPU slot (run {first.name})" in status.message
    listed = tunedeck("queue", "--json", check=True).stdout
    assert (
        f'"id": "{second.name}"' in listed
        and '"position": 1' in listed
        and first.name not in listed.split('"waiting_for"')[0]
    )
    waiter_pid = status.pid
    go_on.touch()

    wait_for(lambda: read_effective_status(second).state == C.COMPLETED, timeout=300, what="the second run to finish")
    a, b = read_effective_status(first), read_effective_status(second)
    assert a.state == C.COMPLETED
    assert b.started >= a.finished  # one after the other: never two runs in the slot at once
    assert b.pid == waiter_pid  # the waiter became the engine (exec): no gap a reader could see as a crash
    assert [e["state"] for e in read_events(second) if e["kind"] == C.EV_STATE] == [C.QUEUED, C.RUNNING]
    assert list_checkpoints(second)[-1].complete
    assert tunedeck("queue", check=True).stdout.strip() == "the queue is empty"


@pytest.mark.slow
def test_cancelling_a_queued_run(workspace, tiny_model_dir, sft_data, tmp_path):
    go_on = tmp_path / "go-on"
    first = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "first", 30), "--queue", "--detach", env=held(go_on))
    )
    wait_for(lambda: read_effective_status(first).state == C.RUNNING, what="the first run to start")
    second = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "second"), "--queue", "--detach", env=SLOW)
    )
    wait_for(lambda: read_effective_status(second).queue_position, what="the second run to wait")
    out = tunedeck("stop", second.name, "--wait", check=True).stdout
    assert f"run {second.name}: stopped" in out
    status = read_effective_status(second)
    assert status.state == C.STOPPED and status.message == CANCELLED_MESSAGE
    assert list_checkpoints(second) == [] and not any(e["kind"] == C.EV_RUN_STARTED for e in read_events(second))
    assert queue_entries(workspace) == []
    assert read_effective_status(first).state == C.RUNNING  # the running run is not touched

    # a cancelled run can be queued again: it waits behind the running one as before
    tunedeck("resume", second.name, "--queue", "--detach", env=SLOW, check=True)
    status = wait_for(lambda: (s := read_effective_status(second)).queue_position and s.pid and s, what="queued again")
    assert status.state == C.QUEUED and f"(run {first.name})" in status.message
    go_on.touch()  # a held step cannot read the stop request
    tunedeck("stop", first.name, "--wait", check=True)
    wait_for(lambda: read_effective_status(second).state == C.COMPLETED, timeout=300, what="the resumed run to run")
    assert read_effective_status(second).started >= read_effective_status(first).finished


@pytest.mark.slow
def test_the_queue_survives_the_launching_process_being_killed(workspace, tiny_model_dir, sft_data, tmp_path):
    go_on = tmp_path / "go-on"
    first = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "first", 10), "--queue", "--detach", env=held(go_on))
    )
    wait_for(lambda: read_effective_status(first).state == C.RUNNING, what="the first run to start")
    # `tunedeck run --queue` without --detach follows the queued run in its terminal; then the terminal goes away
    out = Path(f"{workspace}.out")
    args = " ".join(run_args(tiny_model_dir, sft_data, "second")) + " --queue"
    err = Path(f"{workspace}.err")
    shell = subprocess.Popen(
        ["setsid", "bash", "-c", f"{sys.executable} -m tunedeck.tui.cli {args} > {out} 2> {err}; sleep 60"],
        cwd=ROOT,
        env={**os.environ, **SLOW},
    )
    wait_for(lambda: err.exists() and "waiting for its GPUs" in err.read_text(), what="the run to queue")
    run_id = out.read_text().split()[0]
    second = find_run(workspace, run_id)
    waiter = wait_for(
        lambda: read_effective_status(second).queue_position and read_effective_status(second).pid, what="the waiter"
    )
    os.killpg(os.getpgid(shell.pid), signal.SIGHUP)
    os.killpg(os.getpgid(shell.pid), signal.SIGKILL)
    shell.wait()
    assert read_effective_status(second).state == C.QUEUED and pid_alive(waiter)
    go_on.touch()
    wait_for(
        lambda: read_effective_status(second).state == C.COMPLETED, timeout=300, what="the queued run to run anyway"
    )
    assert read_effective_status(second).started >= read_effective_status(first).finished


@pytest.mark.slow
def test_a_busy_gpu_refuses_a_plain_run_and_holds_a_queued_one(workspace, tiny_model_dir, sft_data):
    """A GPU named in resources.gpus is locked whether or not the machine has one (here it has none: torch trains on
    CPU)."""
    gpu = ["--set", 'resources.gpus="7"']
    held = try_lock_slots(workspace, ["gpu-7"], "someone-else")
    try:
        refused = tunedeck(*run_args(tiny_model_dir, sft_data, "plain"), *gpu)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "GPU 7 is in use by run someone-else: add --queue to start this run when it is free" in refused.stderr
        assert not list((workspace / "runs").glob("*plain*"))  # refused before a run exists
        queued = launched(
            workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "queued"), *gpu, "--queue", "--detach", env=SLOW)
        )
        status = wait_for(lambda: (s := read_effective_status(queued)).queue_position and s, what="the run to wait")
        assert "waiting for GPU 7 (run someone-else)" in status.message
        tunedeck("stop", queued.name, "--wait", check=True)
        refused = tunedeck("resume", queued.name)  # a resume is refused the same way, before any engine starts
        assert refused.returncode == 2 and "GPU 7 is in use by run someone-else" in refused.stderr
        assert read_effective_status(queued).state == C.STOPPED
        tunedeck("resume", queued.name, "--queue", "--detach", env=SLOW, check=True)
        wait_for(lambda: read_effective_status(queued).queue_position, what="queued again")
    finally:
        release_slots(held)
    wait_for(
        lambda: read_effective_status(queued).state == C.COMPLETED,
        timeout=300,
        what="the run to start once the GPU is free",
    )


@pytest.mark.slow
def test_a_killed_waiter_reads_as_crashed_and_leaves_the_queue(workspace, tiny_model_dir, sft_data, tmp_path):
    go_on = tmp_path / "go-on"
    first = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "first", 30), "--queue", "--detach", env=held(go_on))
    )
    wait_for(lambda: read_effective_status(first).state == C.RUNNING, what="the first run to start")
    second = launched(
        workspace, tunedeck(*run_args(tiny_model_dir, sft_data, "second"), "--queue", "--detach", env=SLOW)
    )
    pid = wait_for(
        lambda: read_effective_status(second).queue_position and read_effective_status(second).pid, what="the waiter"
    )
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: read_effective_status(second).state == C.CRASHED, timeout=30, what="crashed")
    assert queue_entries(workspace) == []
    go_on.touch()
    tunedeck("stop", first.name, "--wait", check=True)
