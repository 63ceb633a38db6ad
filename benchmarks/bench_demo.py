"""`tunedeck demo` accuracy over seeds: the real pipeline (assets, run, engine worker, gate), one run per seed.

Prints, per seed, the gate's task score (golden JSON match and free-text chrF) of the base and of every
checkpoint, the best, and the gate's sentence (task, format, safety, general); accuracy is what matters
here, timings on a shared machine are noisy.

    python benchmarks/bench_demo.py [--seeds 42 7] [--workspace DIR] [--set KEY=VALUE ...]

Each seed's line also splits its wall time: training (the engine's run_started to train_end events,
evaluations and saves included), gate (gate start to summary) and the rest (assets, worker start).
`--set` passes profile overrides (e.g. optim.epochs=10) to compare settings on the same code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def task_scores(run_dir: Path) -> dict:
    """{"base" or step: share of golden task examples passed}, from the gate's summary."""
    from tunedeck.engine.run.gate_result import read_gate_summary

    rows = read_gate_summary(run_dir).rows
    return {str(r.checkpoint): (r.task or 0.0) / 100 for r in rows}


def phase_seconds(run_dir: Path) -> tuple[float, float]:
    """(training, gate) seconds from the run's events: run_started to train_end, gate start to summary."""
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.event_log import read_events

    t: dict = {}
    for e in read_events(run_dir / C.EVENTS_JSONL):
        key = f"gate_{e.get('phase')}" if e["kind"] == C.EV_GATE else e["kind"]
        t.setdefault(key, e["t"])
    return t[C.EV_TRAIN_END] - t[C.EV_RUN_STARTED], t["gate_summary"] - t["gate_start"]


def gate_line(run_dir: Path) -> str:
    from tunedeck.engine.run.gate_result import read_gate_summary

    summary = read_gate_summary(run_dir)
    return f"verdict {summary.verdict}: {summary.sentence}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    ap.add_argument("--workspace", default="")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    from tunedeck.engine.commands.demo import start_demo_run

    for seed in a.seeds:
        ws = Path(a.workspace or tempfile.mkdtemp(prefix="bench-demo-")) / f"seed{seed}"
        t0 = time.perf_counter()
        run_dir = start_demo_run(ws, detach=False, overrides=[f"optim.seed={seed}", *a.overrides])
        subprocess.run(
            [sys.executable, "-m", "tunedeck.engine.training.worker", str(run_dir)],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        scores = task_scores(run_dir)
        best = max((v for k, v in scores.items() if k != "base"), default=0.0)
        shown = "  ".join(f"{k}={v:.3f}" for k, v in scores.items())
        train_s, gate_s = phase_seconds(run_dir)
        print(
            f"seed {seed}: best {best:.3f}  ({shown})  {time.perf_counter() - t0:.0f}s "
            f"(training {train_s:.0f}s, gate {gate_s:.0f}s)  {run_dir}",
            flush=True,
        )
        print(f"  {gate_line(run_dir)}", flush=True)


if __name__ == "__main__":
    main()
