"""Run directory primitives: event log, atomic status, crash detection, lock, control, checkpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventReader, EventWriter
from tunedeck.engine.run.status import Status
from tunedeck.engine.run.status_writer import write_status
from tunedeck.engine.run.store import (
    EngineLock,
    RunLocked,
    create_run_dir,
    effective_state,
    find_run,
    is_locked,
    latest_complete_checkpoint,
    list_checkpoints,
    read_effective_status,
    read_written_status,
    request_control,
    sanitize_name,
    take_control_requests,
)
from tunedeck.engine.training.callbacks import best_step_by_eval_loss, checkpoints_to_prune


def train(step: int, loss: float) -> dict:
    """A train event's fields (engine/run/events.py TrainEvent)."""
    return dict(step=step, epoch=0.1, loss=loss, learning_rate=1e-3, grad_norm=1.0, tokens_per_s=None, tokens_seen=None)


def test_event_log_tail_and_torn_line(tmp_path):
    path = tmp_path / "events.jsonl"
    w = EventWriter(path)
    w.emit("train", **train(1, 1.0))
    reader = EventReader(path)
    assert [e["step"] for e in reader.read_new()] == [1]
    with open(path, "ab") as f:  # a write in progress: no newline yet
        f.write(b'{"kind":"train","step":2')
    assert reader.read_new() == []
    with open(path, "ab") as f:
        f.write(b',"loss":0.5}\n')
    assert [e["step"] for e in reader.read_new()] == [2]
    w.close()


def test_writer_after_kill_terminates_torn_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"kind":"train","step":1}\n{"kind":"train","st')  # killed mid-write
    w = EventWriter(path)
    w.emit("train", **train(2, float("nan")))
    w.close()
    reader = EventReader(path)
    events = reader.read_new()
    assert [e["step"] for e in events] == [1, 2]
    assert events[1]["loss"] == "nan"
    assert reader.skipped == 1


def test_garbage_lines_are_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'not json\n[1,2]\n{"no_kind":1}\n\xff\xfe\n{"kind":"eval","step":3}\n')
    reader = EventReader(path)
    assert [e["kind"] for e in reader.read_new()] == ["eval"]
    assert reader.skipped == 4


def test_status_is_atomic_and_private(tmp_path):
    run = create_run_dir(tmp_path, "x")
    write_status(run, state=C.COMPLETED, step=3)
    assert read_effective_status(run).state == C.COMPLETED
    assert oct(os.stat(run).st_mode & 0o777) == "0o700"
    assert oct(os.stat(run / C.STATUS_JSON).st_mode & 0o777) == "0o600"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_status_one_writer_keeps_other_fields_and_refuses_a_key_it_does_not_define(tmp_path):
    run = create_run_dir(tmp_path, "x")
    write_status(run, state=C.QUEUED, name="x", pid=None)
    write_status(run, step=3)
    assert json.loads((run / C.STATUS_JSON).read_text()).keys() == {
        "state",
        "name",
        "step",
        "updated",
    }  # only what is set
    with pytest.raises(TypeError, match="'stpe'"):
        write_status(run, stpe=4)  # a misspelt field never reaches the file
    written = read_written_status(run)
    assert (written.state, written.name, written.step) == (C.QUEUED, "x", 3)


def test_status_reads_files_of_earlier_versions_and_torn_values(tmp_path):
    old = {"state": "running", "pid": "12", "step": True, "loss": 1, "gate_scores": [], "retired_key": 1}
    status = Status.from_dict(old)
    assert (status.state, status.pid, status.step, status.loss, status.gate_scores) == ("running", None, None, 1, None)
    assert Status.from_dict([1, 2]) == Status() and Status().to_dict() == {}
    assert Status.from_dict(status.to_dict()) == status
    (tmp_path / C.STATUS_JSON).write_text('{"state": "runn')  # torn
    assert read_written_status(tmp_path) == Status()


def test_crashed_when_pid_is_gone(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status = Status(state=C.RUNNING, pid=proc.pid, host=socket.gethostname(), updated=time.time())
    assert effective_state(status) == C.CRASHED
    alive = Status(state=C.RUNNING, pid=os.getpid(), host=socket.gethostname(), updated=time.time())
    assert effective_state(alive) == C.RUNNING


def test_crashed_when_heartbeat_stale_on_other_host():
    status = Status(state=C.RUNNING, pid=1, host="elsewhere", heartbeat=time.time() - 3600)
    assert effective_state(status) == C.CRASHED
    fresh = replace(status, heartbeat=time.time())
    assert effective_state(fresh) == C.RUNNING
    assert effective_state(Status(state=C.COMPLETED)) == C.COMPLETED


def test_lock_refuses_second_engine(tmp_path):
    run = create_run_dir(tmp_path, "x")
    with EngineLock(run):
        assert is_locked(run)
        with pytest.raises(RunLocked):
            EngineLock(run).acquire()
        code = (
            "import sys; from tunedeck.engine.run.store import EngineLock, RunLocked\n"
            f"try: EngineLock({str(run)!r}).acquire()\nexcept RunLocked: sys.exit(3)"
        )
        assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert not is_locked(run)


def test_control_requests_are_taken_once(tmp_path):
    run = create_run_dir(tmp_path, "x")
    request_control(run, C.CTL_CHECKPOINT)
    request_control(run, C.CTL_STOP)
    assert [r["kind"] for r in take_control_requests(run)] == [C.CTL_CHECKPOINT, C.CTL_STOP]
    assert take_control_requests(run) == []
    with pytest.raises(ValueError):
        request_control(run, "explode")


def test_checkpoint_completeness_and_pruning(tmp_path):
    run = create_run_dir(tmp_path, "x")
    for step, loss in [(10, 2.0), (20, 1.0), (30, 1.5), (40, 1.7)]:
        d = run / C.CHECKPOINTS_DIR / f"checkpoint-{step}"
        d.mkdir()
        (d / "adapter_model.safetensors").write_bytes(b"x")
        (d / C.CHECKPOINT_MARKER).write_text(json.dumps({"step": step, "eval_loss": loss}))
    partial = run / C.CHECKPOINTS_DIR / "checkpoint-50"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"x")  # killed before its marker
    ckpts = list_checkpoints(run)
    assert [(c.step, c.complete) for c in ckpts] == [(10, True), (20, True), (30, True), (40, True), (50, False)]
    assert latest_complete_checkpoint(run).step == 40
    best = best_step_by_eval_loss(ckpts)
    assert best == 20
    assert [c.step for c in checkpoints_to_prune(ckpts, keep=2, best_step=best)] == [10]
    assert [c.step for c in checkpoints_to_prune(ckpts, keep=1, best_step=best)] == [10, 30]


def test_find_run_and_names(tmp_path):
    run = create_run_dir(tmp_path, "../../etc/passwd")
    assert run.parent == tmp_path / "runs"
    assert "/" not in run.name and ".." not in run.name
    write_status(run, name="mine")
    assert find_run(tmp_path, run.name[:15]) == run
    assert find_run(tmp_path, "mine") == run
    assert sanitize_name("") == "run"
    assert sanitize_name("a b/c") == "a-b-c"
