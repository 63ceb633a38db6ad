"""Two engine processes (torchrun, gloo on CPU) against one, at the same global batch.

Alternates `tunedeck run` with resources.processes = 1 (batch 16) and = 2 (batch 8 each) on the
demo task and prints tokens/s of each (the Trainer's own count over its runtime, all ranks), their
ratio, and the final eval loss of each.

    python benchmarks/bench_distributed.py [--rounds 2] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(model: Path, data: Path, ws: Path, steps: int, processes: int) -> dict:
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import find_run

    sets = [
        f"model.base={model}",
        f"optim.max_steps={steps}",
        f"resources.processes={processes}",
        f"optim.batch_size={16 // processes}",
        f"checkpoints.save_steps={steps}",
        f"checkpoints.eval_steps={steps}",
        "gate.when=never",
    ]
    args = [sys.executable, "-m", "tunedeck.tui.cli", "run", "demo-cpu", "--data", str(data), "--workspace", str(ws)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    events = read_events(find_run(ws, proc.stdout.split()[0]) / "events.jsonl")
    end = [e for e in events if e["kind"] == "train_end"][-1]
    evals = [e["eval_loss"] for e in events if e["kind"] == "eval"]
    # the Trainer gathers the token count over all ranks: it is already the global figure
    return {"tps": end["tokens_seen"] / end["train_runtime"], "eval_loss": evals[-1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    a = ap.parse_args()
    from tunedeck.engine.data.demo_data import corpus, make_rows, write_jsonl
    from tunedeck.engine.models.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    rows = make_rows(2200, seed=0)
    data = write_jsonl(tmp / "train.jsonl", rows)
    model = build_tiny_model(tmp / "model", corpus(rows))
    ratios = []
    for r in range(a.rounds):
        one = run(model, data, tmp / "ws", a.steps, 1)
        two = run(model, data, tmp / "ws", a.steps, 2)
        ratios.append(two["tps"] / one["tps"])
        print(
            f"round {r + 1}: 1 process {one['tps']:8.0f} tok/s (eval loss {one['eval_loss']:.4f})   "
            f"2 processes {two['tps']:8.0f} tok/s (eval loss {two['eval_loss']:.4f})   ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print(f"median ratio 2 processes / 1 process: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
