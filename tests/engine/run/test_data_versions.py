"""Data versions: each run records its files and row hashes; comparing two runs counts rows added and removed."""

from __future__ import annotations

import json
from pathlib import Path

from tunedeck.engine.data.versions import diff_data
from tunedeck.engine.run.data_rows import DATA_ROWS_JSON, read_data_rows
from tunedeck.engine.scheduling.preflight import create_run, run_preflight
from tunedeck.tui.run_comparison import compare_runs


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def launch(ws: Path, tmp: Path, data: list[Path], golden: Path | None = None) -> Path:
    profile = tmp / "p.toml"
    profile.write_text(
        'extends = "lora"\n[data]\napply_chat_template = "off"\nval_fraction = 0.2\n'
        + (f'[gate]\ngolden = "{golden}"\n' if golden else '[gate]\nwhen = "never"\n')
    )
    pre = run_preflight(str(profile), [str(p) for p in data], [], workspace=ws, check_model=False)
    return create_run(pre, ws, "r")


def test_multiset_differences():
    a = {"train": ["x", "y", "y"], "eval": ["e"], "eval_sets": [{"name": "golden", "examples": ["g1", "g2"]}]}
    b = {
        "train": ["x", "y", "z"],
        "eval": ["e"],
        "eval_sets": [{"name": "golden", "examples": ["g1", "g3"]}, {"name": "safety", "examples": ["s"]}],
    }
    d = diff_data(a, b)
    assert (d.train.added, d.train.removed, d.train.kept) == (1, 1, 2)
    assert d.lines() == [
        "train rows +1 −1 (2 kept)",
        "held-out rows same 1 rows",
        "eval set golden: +1 −1 (1 kept)",
        "eval set safety: only in B",
    ]


def test_a_run_records_its_rows_and_a_comparison_counts_what_changed(tmp_path):
    ws = tmp_path / "ws"
    base = write_jsonl(tmp_path / "base.jsonl", [chat(f"q{i}", f"a{i}") for i in range(40)])
    fixes = write_jsonl(tmp_path / "fixes.jsonl", [chat(f"fix{i}", f"better{i}") for i in range(5)])
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps({"id": f"g{i}", **chat(f"gq{i}", f"ga{i}")}) + "\n" for i in range(3)))
    first = launch(ws, tmp_path, [base], golden)
    second = launch(ws, tmp_path, [base, fixes], golden)
    rows = read_data_rows(first)
    assert (first / DATA_ROWS_JSON).is_file() and len(rows["train"]) + len(rows["eval"]) == 40
    assert rows["files"][0]["path"] == str(base) and len(rows["files"][0]["sha256"]) == 64
    assert [s["name"] for s in rows["eval_sets"]] == ["golden"] and len(rows["eval_sets"][0]["examples"]) == 3
    c = compare_runs(first, second)
    added_train = len(read_data_rows(second)["train"]) - len(rows["train"])
    added_eval = 5 - added_train
    assert c.data_changes[0] == f"train rows +{added_train} −0 ({len(rows['train'])} kept)"
    assert c.data_changes[1].startswith(f"held-out rows {'+' + str(added_eval) if added_eval else 'same'}")
    assert c.data_changes[2] == "eval set golden: same 3 rows"
