"""Benchmark reading a pretty-printed JSON array with a file line for every row.

tunedeck reads a `.json` array element by element (json's own C scanner, `raw_decode`) so that each
row knows the file line its object opens on. The baseline is plain `json.loads` of the same text,
which knows no lines. Both read the same file in the same run, alternating; prints seconds and the
ratio per round and the median ratio.

    python benchmarks/bench_json_rows.py [--rows 100000] [--repeat 3]

Goal: the line-tracking reader costs at most 1.5x the plain parse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_file(path: Path, n: int) -> Path:
    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"Question {i}: what is {i} plus {i}?"},
                {"from": "gpt", "value": f"{i} plus {i} is {2 * i}."},
            ],
            "system": "You are a careful assistant.",
            "tools": "[]",
        }
        for i in range(n)
    ]
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))  # as LLaMA-Factory ships its data
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from tunedeck.engine.data.sources import read_items

    with tempfile.TemporaryDirectory() as tmp:
        path = make_file(Path(tmp) / "rows.json", args.rows)
        print(f"{args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB, {path.read_text().count(chr(10)) + 1:,} lines")
        ratios, cpu_ratios = [], []
        for r in range(1, args.repeat + 1):
            # each side parses with the other's rows freed, so neither pays the other's garbage collection
            t0, c0 = time.perf_counter(), time.process_time()
            base = json.loads(path.read_bytes().decode("utf-8-sig"))
            t1, c1 = time.perf_counter(), time.process_time()
            n, first = len(base), base[0]
            del base
            t2, c2 = time.perf_counter(), time.process_time()
            items = list(read_items(path))
            t3, c3 = time.perf_counter(), time.process_time()
            assert len(items) == n and items[0][1] == first and items[1][0] == 16
            del items
            ratios.append((t3 - t2) / (t1 - t0))
            cpu_ratios.append((c3 - c2) / (c1 - c0))
            print(
                f"round {r}: json.loads {t1 - t0:.2f} s, tunedeck with lines {t3 - t2:.2f} s, "
                f"ratio {ratios[-1]:.2f} (CPU time {cpu_ratios[-1]:.2f})"
            )
        print(
            f"median ratio {statistics.median(ratios):.2f}, CPU time {statistics.median(cpu_ratios):.2f} (goal <= 1.5)"
        )


if __name__ == "__main__":
    main()
