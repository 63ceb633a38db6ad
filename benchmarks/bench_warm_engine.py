"""What an engine costs to start cold, and what it would cost forked from a process that has imported the stack.

`python benchmarks/bench_warm_engine.py [--repeats 3]`

Every run's engine is a fresh `python -m tunedeck.engine.training.worker RUN_DIR` (DESIGN.md: the engine
enters through the run queue, which becomes it by exec), so every run pays for importing torch,
transformers, PEFT, TRL and datasets again. This measures, on the tiny model and a 6-step LoRA run (the test
suite's typical engine), the engine's CPU seconds and wall time:

  cold  the engine as a subprocess, as the product starts it (without the run queue's waiter in front);
  warm  the same engine code (worker.main) in a child forked from this process after it imported the
        stack: what a warm-start launcher would pay per run.

It is a measurement for a design decision, not a launcher: nothing in the product forks. One torch thread
(OMP_NUM_THREADS=1, as on the test suite's workers); medians of --repeats runs of each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SETTINGS = [
    "optim.max_steps=6",
    "checkpoints.save_steps=3",
    "checkpoints.eval_steps=3",
    "optim.precision=fp32",
    "gate.when=never",
]


def new_run(ws: Path, model: Path, data: Path) -> Path:
    from tunedeck.engine.scheduling.preflight import create_run, run_preflight

    pre = run_preflight("lora", str(data), [f"model.base={model}", *SETTINGS], workspace=ws)
    return create_run(pre, ws, None)


def finished(run_dir: Path) -> bool:
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.store import read_effective_status

    return read_effective_status(run_dir).state == C.COMPLETED


def cold(run_dir: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(run_dir / "engine.log", "ab") as log:
        subprocess.run(
            [sys.executable, "-m", "tunedeck.engine.training.worker", str(run_dir)],
            cwd=run_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.monotonic() - t0


def warm(run_dir: Path) -> tuple[float, float]:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: what a launcher's fork would run
        code = 1
        try:
            os.chdir(run_dir)
            fd = os.open(run_dir / "engine.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            from tunedeck.engine.training import worker

            code = worker.main([str(run_dir)])
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the forked engine failed: see {run_dir / 'engine.log'}")
    return usage.ru_utime + usage.ru_stime, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from tunedeck.engine.data.demo_data import corpus, make_rows, write_jsonl
    from tunedeck.engine.models.tiny_model import build_tiny_model

    root = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    rows = make_rows(240, seed=0)
    model = build_tiny_model(root / "tiny", corpus(rows))
    data = write_jsonl(root / "train.jsonl", rows)
    ws = root / "ws"
    figures = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        run = new_run(ws, model, data)
        figures["cold"].append(cold(run))
        assert finished(run), run
    # the stack the engine imports, imported here once: what a warm launcher holds
    import datasets  # noqa: F401
    from peft import LoraConfig  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401
    from trl import DPOTrainer, SFTTrainer  # noqa: F401

    import tunedeck.engine.gate.runner  # noqa: F401
    import tunedeck.engine.training.callbacks  # noqa: F401
    import tunedeck.engine.training.train  # noqa: F401

    for _ in range(args.repeats):
        run = new_run(ws, model, data)
        figures["warm"].append(warm(run))
        assert finished(run), run
    print(f"6-step LoRA runs of the tiny model, one torch thread, {args.repeats} of each (median):")
    for name, pairs in figures.items():
        cpu, wall = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        print(f"  {name}: {cpu:5.2f} s CPU, {wall:5.2f} s wall   (each: {', '.join(f'{c:.2f}' for c, _ in pairs)})")
    c, w = (statistics.median(p[0] for p in figures[k]) for k in ("cold", "warm"))
    print(f"  warm/cold CPU: {w / c:.2f}; saved per engine: {c - w:.2f} s of CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
