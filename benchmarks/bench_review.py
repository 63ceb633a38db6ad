"""Review mode: the time from a label's key press to the rebuilt verdict, on a large eval set.

Each label in review mode is appended and fsynced (engine/reviews.add_review), then the gate
rebuilds every row from the records on disk (engine/gate.summarize_run) so the verdict on screen
is current. This measures that step on a run with many examples and checkpoints, against the floor
of simply reading and parsing every records file once (which the rebuild cannot avoid), and
reports the medians and their ratio. The records are synthetic, as the gate writes them.

The app does not rebuild in its own process: the engine alone writes gate.json, so the app runs
`tunedeck gate RUN --rebuild` (tui/gate_view.request_gate_rebuild) and reads the result. That path
is measured too, alternating with the in-process rebuild, and its cost over it is the process start.

    python benchmarks/bench_review.py [--examples 5000] [--checkpoints 10] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def record(i: int, model, passed: bool, key: str) -> dict:
    tags = ["task", "format"] if i % 10 else ["safety"]
    return {
        "id": f"golden:{i}",
        "set": "golden",
        "tags": tags,
        "checkpoint": model,
        "prompt": [{"role": "user", "content": f"Route ticket {i}: the parcel never arrived " * 3}],
        "system_prompt": None,
        "output": '{"team": "shipping", "priority": "high"}' if passed else "Shipping, probably.",
        "reference": '{"team": "shipping", "priority": "high"}',
        "checks": [
            {"type": "json_valid", "pass": passed, "reason": "valid JSON" if passed else "not JSON"},
            {"type": "json_equal", "pass": passed, "reason": "equal" if passed else "not equal"},
        ],
        "pass": passed,
        "format_pass": passed if "format" in tags else None,
        "latency_ms": 200.0 + i % 50,
        "new_tokens": 12,
        "key": key,
    }


def build_run(root: Path, n_examples: int, n_checkpoints: int) -> Path:
    from tunedeck.engine.gate.example_records import write_records
    from tunedeck.engine.run.status_writer import write_status

    run_dir = root / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    write_status(run_dir, state="completed")  # a finished run: no engine owns it, so the app's rebuild runs now
    (run_dir / "run.toml").write_text(
        '[run]\nid = "bench"\nname = "bench"\n\n[model]\nbase = "tiny"\n\n'
        "[gate]\nrequire_review = true\nreview_sample = 20\nmin_task_gain = 2.0\n"
    )
    rng = random.Random(0)
    write_records(run_dir, "base", [record(i, "base", rng.random() < 0.5, "k") for i in range(n_examples)])
    for c in range(1, n_checkpoints + 1):
        step = 100 * c
        ck = run_dir / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir()
        (ck / "tunedeck-complete.json").write_text(json.dumps({"step": step, "eval_loss": 1.0 / c}))
        share = 0.5 + 0.4 * c / n_checkpoints
        write_records(run_dir, step, [record(i, step, rng.random() < share, "k") for i in range(n_examples)])
    return run_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from tunedeck.engine.gate.example_records import BASE, evaluated_steps, read_records
    from tunedeck.engine.gate.rebuild import summarize_run
    from tunedeck.engine.gate.reviews import add_review, sample_for_review
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.tui.gate_view import request_gate_rebuild

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = build_run(Path(tmp), args.examples, args.checkpoints)
        summarize_run(run_dir)  # the first build, as after an evaluation
        step = evaluated_steps(run_dir)[-1]
        sample = sample_for_review(run_dir, step)
        floor, label, app_path = [], [], []
        for r in range(args.rounds):
            t = time.perf_counter()
            read_records(run_dir, BASE)
            for s in evaluated_steps(run_dir):
                read_records(run_dir, s)
            floor.append(time.perf_counter() - t)
            t = time.perf_counter()
            add_review(run_dir, step, sample[r % len(sample)], "understandable")
            summary = summarize_run(run_dir)
            label.append(time.perf_counter() - t)
            t = time.perf_counter()
            add_review(run_dir, step, sample[(r + 1) % len(sample)], "understandable")
            done, error = request_gate_rebuild(run_dir)
            assert done and not error, error
            read_gate_summary(run_dir)
            app_path.append(time.perf_counter() - t)
        row = summary.row(step)
        out = {
            "examples": args.examples,
            "checkpoints": args.checkpoints,
            "rounds": args.rounds,
            "read_all_records_median_s": round(statistics.median(floor), 4),
            "label_to_verdict_median_s": round(statistics.median(label), 4),
            "ratio_to_reading_once": round(statistics.median(label) / statistics.median(floor), 2),
            "app_label_to_verdict_median_s": round(statistics.median(app_path), 4),
            "app_ratio_to_in_process": round(statistics.median(app_path) / statistics.median(label), 2),
            "review_after": row.review,
        }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.examples} examples x ({args.checkpoints} checkpoints + base), {args.rounds} rounds")
        print(f"  read and parse every records file once : median {out['read_all_records_median_s'] * 1000:.0f} ms")
        print(
            f"  label + rebuild the verdict            : median {out['label_to_verdict_median_s'] * 1000:.0f} ms "
            f"({out['ratio_to_reading_once']:.2f}x reading once)"
        )
        print(
            f"  the app's path (tunedeck gate --rebuild): median {out['app_label_to_verdict_median_s'] * 1000:.0f} ms "
            f"({out['app_ratio_to_in_process']:.2f}x the in-process rebuild)"
        )
        print(f"  checkpoint-{step} review state after the rounds: {out['review_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
