"""Start engine processes: detached (own session, no terminal, survives SSH hang-ups) or attached."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tunedeck.engine.config.workspace import absolute_path
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.status_writer import process_start_time, write_status


def visible_gpu_count(gpus: str = "") -> int:
    if gpus.strip():
        return len([g for g in gpus.split(",") if g.strip()])
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return len([g for g in cvd.split(",") if g.strip() and g.strip() != "-1"])
    from tunedeck.engine.observe.telemetry import gpu_readings

    return len(gpu_readings() or [])


def resolve_processes(run_dir: Path) -> tuple[int, str]:
    """(processes per node, GPU list) from the run's [resources]; one process on a CPU-only machine."""
    from tunedeck.engine.run.run_record import load_run_record

    res = load_run_record(run_dir).profile.resources
    n = res.processes or max(1, visible_gpu_count(res.gpus))
    return n, res.gpus


def _worker_cmd(run_dir: Path, resume: bool, processes: int = 1, queue: bool = False) -> list[str]:
    worker = ["-m", "tunedeck.engine.training.worker", str(run_dir)] + (["--resume"] if resume else [])
    if processes <= 1:
        cmd = [sys.executable, *worker]
    else:  # torchrun on one node; a free rendezvous port is picked by --standalone
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *worker]
    # every engine enters through the run queue: it takes the run's GPU locks (waiting its turn when
    # queued), then becomes the engine by exec, keeping its pid and the locks (engine/scheduling/run_queue.py)
    return [
        sys.executable,
        "-m",
        "tunedeck.engine.scheduling.run_queue",
        str(run_dir),
        *(["--wait"] if queue else []),
        "--",
        *cmd,
    ]


def _env(gpus: str = "") -> dict[str, str]:
    env = dict(os.environ)
    if gpus.strip():
        env["CUDA_VISIBLE_DEVICES"] = gpus.strip()
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _private_log(path: Path) -> int:
    """Open (creating) the engine log readable by its owner only; returns the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def spawn_detached(run_dir: Path, resume: bool = False, queue: bool = False) -> int:
    """Start the engine in a new session with stdin closed and output in engine.log; return its pid.

    A short-lived sh (itself in a new session) backgrounds the worker and exits, so the worker is
    re-parented to init: no zombie is left in a long-lived launcher (the app), and a SIGHUP to the
    launching terminal's session never reaches it. With `queue`, the run takes its place in the
    queue now and its engine waits, detached, until its GPUs are free.
    """
    run_dir = absolute_path(run_dir)  # the child runs from the run directory: never hand it a relative path
    processes, gpus = resolve_processes(run_dir)
    _starting(run_dir, "queued" if queue else "starting")
    if queue:
        from tunedeck.engine.scheduling.run_queue import enqueue, run_slots

        enqueue(run_dir, run_slots(run_dir))
    pid = _spawn_in_background(run_dir, _worker_cmd(run_dir, resume, processes, queue), run_dir / C.ENGINE_LOG, gpus)
    _started(run_dir, pid)
    return pid


def _starting(run_dir: Path, message: str) -> None:
    """Queued from now on (a resumed run too), with no pid until the engine's is known."""
    write_status(
        run_dir, state=C.QUEUED, pid=None, pid_started=None, finished=None, message=message, queue_position=None
    )  # a place in the queue is the waiter's to write, not an earlier attempt's


def _started(run_dir: Path, pid: int) -> None:
    """The pid the engine runs as (the queue's waiter and the worker replace themselves by exec, keeping
    it): an engine that dies before its first heartbeat reads as crashed at once, not a minute later."""
    write_status(run_dir, pid=pid, pid_started=process_start_time(pid), host=socket.gethostname())


def spawn_eval_detached(run_dir: Path, checkpoints: str = "all") -> int:
    """Start `tunedeck eval RUN --checkpoint ...` detached, like the engine: it outlives the app and the SSH session.

    Its progress and results arrive as "gate" events in events.jsonl; its output goes to eval.log.
    """
    run_dir = absolute_path(run_dir)  # the child runs from the run directory: never hand it a relative path
    cmd = [sys.executable, "-m", "tunedeck.engine.commands.cli", "eval", str(run_dir), "--checkpoint", checkpoints]
    return _spawn_in_background(run_dir, cmd, run_dir / C.EVAL_LOG, load_gpus(run_dir))


def load_gpus(run_dir: Path) -> str:
    from tunedeck.engine.run.run_record import load_run_record

    return load_run_record(run_dir).profile.resources.gpus


def _spawn_in_background(run_dir: Path, argv: list[str], log: Path, gpus: str) -> int:
    cmd = " ".join(shlex.quote(a) for a in argv)
    os.close(_private_log(log))
    script = f"umask 077; {cmd} </dev/null >>{shlex.quote(str(log))} 2>&1 & echo $!"
    out = subprocess.run(
        ["/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        cwd=str(run_dir),
        env=_env(gpus),
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def spawn_attached(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    """Start the engine as a child in this terminal's process group (Ctrl-C asks it to stop)."""
    run_dir = absolute_path(run_dir)  # the child runs from the run directory: never hand it a relative path
    processes, gpus = resolve_processes(run_dir)
    _starting(run_dir, "starting")
    log = os.fdopen(_private_log(run_dir / C.ENGINE_LOG), "ab")
    try:
        proc = subprocess.Popen(
            _worker_cmd(run_dir, resume, processes),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(run_dir),
            env=_env(gpus),
        )
    finally:
        log.close()
    _started(run_dir, proc.pid)
    return proc
