"""GGUF export: llama.cpp's conversion time against the merged safetensors export, and the round trip's agreement.

For one checkpoint of a run the gate has judged, alternating in one process (the machine is shared and noisy):
  - `export --merge` (the baseline: merge and write safetensors, then its artifact gate), and
  - `export --gguf TYPE` for each type (the same merge, llama.cpp's converter in a subprocess, the artifact gate
    through transformers' GGUF reader).
Printed per kind: median wall seconds of the whole export, the converter's own seconds (from the record), the
artifact gate's seconds, the ratio of GGUF to merged wall time (median of per-round paired ratios), the file
size, and the agreement with the gate: answers identical to the gate's recorded ones, task and format against
the checkpoint's.

Without --run it builds the test suite's tiny sentencepiece Llama (tests/engine/export/test_export_gguf.py) and trains
it as the tests do; with --run it measures that run (e.g. a SmolLM2 run from `tunedeck run demo-real ...`).

    python benchmarks/bench_gguf_export.py [--run RUN_DIR --checkpoint N] [--types f16,q8_0] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def tiny_run(root: Path) -> tuple[Path, int]:
    """The tests' tiny sentencepiece Llama, trained and gated as tests/engine/export/test_export_gguf.py trains it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.gguf_runs import STEP, TRAIN, build_spm_model

    from tunedeck.engine.data.demo_data import corpus, make_rows, write_jsonl

    rows = make_rows(240, seed=0)
    (root / "model").mkdir(parents=True)
    base = build_spm_model(root / "model", corpus(rows))
    data = write_jsonl(root / "train.jsonl", rows)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunedeck.tui.cli",
            "run",
            "lora",
            "--workspace",
            str(root / "ws"),
            "--data",
            str(data),
            "--set",
            f"model.base={base}",
            *TRAIN,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
    )
    return root / "ws" / "runs" / proc.stdout.strip().splitlines()[0], STEP


def one(run: Path, step: int, out: Path, gguf: str | None) -> dict:
    from tunedeck.engine.export.checkpoint_export import export_checkpoint

    t0 = time.perf_counter()
    result = export_checkpoint(run, out, checkpoint=step, merge=gguf is None, gguf=gguf)
    wall = time.perf_counter() - t0
    gate = result.artifact_gate
    size = result.gguf_file.stat().st_size if gguf else sum(p.stat().st_size for p in out.glob("*.safetensors"))
    return {
        "wall_s": wall,
        "convert_s": (result.record.get("gguf") or {}).get("convert_s"),
        "gate_s": gate.seconds,
        "bytes": size,
        "examples": gate.examples,
        "identical": gate.identical,
        "task": gate.task,
        "checkpoint_task": gate.checkpoint_task,
        "format": gate.format,
        "checkpoint_format": gate.checkpoint_format,
        "verdict": gate.verdict,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a run directory the gate has judged (default: build the tiny test run)")
    ap.add_argument("--checkpoint", type=int, help="its checkpoint to export (with --run)")
    ap.add_argument("--types", default="f16,q8_0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from tunedeck.engine.export.llama_cpp_source import locate

    locate()  # fetched before the clock runs: the download is once per machine, not per export
    work = Path(tempfile.mkdtemp(prefix="bench-gguf-"))
    try:
        return report(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, work: Path) -> int:
    run, step = (args.run, args.checkpoint) if args.run else tiny_run(work / "tiny")
    kinds = [None, *args.types.split(",")]
    rows: dict[str, list[dict]] = {str(k or "merged"): [] for k in kinds}
    for r in range(args.rounds):
        for k in kinds if r % 2 == 0 else reversed(kinds):
            rows[str(k or "merged")].append(one(run, step, work / f"out-{k or 'merged'}-{r}", k))
    out = {}
    for name, rs in rows.items():
        med = {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "gate_s") if rs[0][k] is not None}
        if rs[0]["convert_s"] is not None:
            med["convert_s"] = statistics.median(x["convert_s"] for x in rs)
        paired = [x["wall_s"] / m["wall_s"] for x, m in zip(rs, rows["merged"])]
        out[name] = {
            **med,
            "wall_vs_merged": statistics.median(paired),
            "bytes": rs[0]["bytes"],
            **{
                k: rs[0][k]
                for k in ("examples", "identical", "task", "checkpoint_task", "format", "checkpoint_format", "verdict")
            },
            "identical_every_round": len({x["identical"] for x in rs}) == 1,
        }
    if args.json:
        print(json.dumps({"run": str(run), "checkpoint": step, "rounds": args.rounds, "kinds": out}, indent=2))
        return 0
    print(f"{run.name} checkpoint-{step}, {args.rounds} rounds, medians")
    print("kind     wall s  convert s  gate s  x merged   MB    identical  task (ckpt)    format (ckpt)  verdict")
    for name, o in out.items():
        conv = f"{o['convert_s']:9.1f}" if "convert_s" in o else "        -"
        print(
            f"{name:8} {o['wall_s']:6.1f}  {conv}  {o['gate_s']:6.1f}  {o['wall_vs_merged']:7.2f}  "
            f"{o['bytes'] / 1e6:6.1f}  {o['identical']:3d}/{o['examples']:<3d}    {o['task']} ({o['checkpoint_task']})"
            f"    {o['format']} ({o['checkpoint_format']})  {o['verdict']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
