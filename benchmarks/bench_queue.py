"""The run queue's costs: the hop every engine now takes through tunedeck.engine.scheduling.run_queue, how soon a
queued run starts once its slot is free, and what a waiter's scan of the queue costs. Prints figures; not a test.

    python benchmarks/bench_queue.py [--rounds 7]

1. Start-up hop: a trivial "engine" (python -c pass) started directly and through
   `python -m tunedeck.engine.scheduling.run_queue RUN -- ...` (takes the run's slot lock, then exec), alternated; the
   ratio is hop / direct. The real engine then spends seconds importing torch, so what matters is the
   absolute difference.
2. Hand-over: a waiter queued behind a held CPU slot; the slot is released at t0 and the "engine"
   prints its start time. Baseline: the poll interval (TUNEDECK_QUEUE_POLL_S, 1 s by default).
3. Scan: queue_entries over 100 tickets (what `tunedeck queue` reads) against the 10th waiter's scan,
   which stops at its own ticket.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tunedeck.engine.config.profile_loading import load_profile  # noqa: E402
from tunedeck.engine.run.run_record import RunRecord, write_run_record  # noqa: E402
from tunedeck.engine.run.status_writer import write_status  # noqa: E402
from tunedeck.engine.scheduling.run_queue import enqueue, queue_entries, release_slots, try_lock_slots  # noqa: E402


def make_run(ws: Path, name: str) -> Path:
    run_dir = ws / "runs" / name
    (run_dir / "control").mkdir(parents=True)
    write_run_record(run_dir, RunRecord(id=name, name=name, profile=load_profile("lora")))
    write_status(run_dir, state="queued", name=name)
    return run_dir


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}


def hop(run_dir: Path, rounds: int) -> None:
    direct, through = [], []
    engine = [sys.executable, "-c", "pass"]
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(engine, check=True, env=env())
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tunedeck.engine.scheduling.run_queue", str(run_dir), "--", *engine],
            check=True,
            env=env(),
        )
        through.append(time.perf_counter() - t)
    d, h = statistics.median(direct), statistics.median(through)
    print(
        f"start-up hop: direct {d * 1000:.0f} ms, through the queue {h * 1000:.0f} ms "
        f"(+{(h - d) * 1000:.0f} ms, ratio {h / d:.2f})"
    )


def hand_over(ws: Path, rounds: int) -> None:
    delays = []
    poll = float(os.environ.get("TUNEDECK_QUEUE_POLL_S", "1.0"))
    for i in range(rounds):
        run_dir = make_run(ws, f"wait-{i}")
        held = try_lock_slots(ws, ["cpu"], "holder")
        enqueue(run_dir, ["cpu"])
        out = run_dir / "started"
        engine = [sys.executable, "-c", f"import time; open({str(out)!r}, 'w').write(repr(time.time()))"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunedeck.engine.scheduling.run_queue", str(run_dir), "--wait", "--", *engine],
            env=env(),
        )
        while not (run_dir / "status.json").read_text().count('"queue_position"'):
            time.sleep(0.05)
        t0 = time.time()
        release_slots(held)
        proc.wait(timeout=60)
        delays.append(float(out.read_text()) - t0)
    med = statistics.median(delays)
    print(
        f"hand-over: a freed slot to the queued engine's start, median {med * 1000:.0f} ms "
        f"(poll interval {poll * 1000:.0f} ms; ratio {med / poll:.2f})"
    )


def scan(ws: Path, rounds: int) -> None:
    import psutil

    qs = ws / "scan"
    for i in range(100):
        d = qs / "runs" / f"r{i:03d}"
        d.mkdir(parents=True)
        write_status(
            d, state="queued", pid=os.getpid(), host=socket.gethostname(), pid_started=psutil.Process().create_time()
        )
        enqueue(d, ["cpu"])
    n = rounds * 5
    t = time.perf_counter()
    for _ in range(n):
        queue_entries(qs)
    full = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(n):
        queue_entries(qs, until="r009")
    tenth = (time.perf_counter() - t) / n
    print(f"scan: 100 tickets {full * 1000:.1f} ms; the 10th waiter's {tenth * 1000:.1f} ms (ratio {tenth / full:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        hop(make_run(ws, "hop"), args.rounds)
        hand_over(ws, args.rounds)
        scan(ws, args.rounds)


if __name__ == "__main__":
    main()
