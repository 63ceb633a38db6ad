"""Sweeps without a model: points from a grid or seeded ranges, the record, the ranking by the gate, the Slurm array."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tunedeck

from tunedeck.engine.config.profile_schema import GateConfig
from tunedeck.engine.gate.best_checkpoint import summarize
from tunedeck.engine.gate.rules import base_row, judge_checkpoint
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import write_gate_summary
from tunedeck.engine.run.status_writer import write_status
from tunedeck.engine.scheduling.sweep import (
    SweepError,
    SweepRecord,
    SweepRun,
    differing_keys,
    grid_points,
    load_record,
    parse_grid,
    parse_range,
    points_from_args,
    public_rows,
    rank_runs,
    short_keys,
    verdict_sentence,
    write_record,
)
from tunedeck.engine.scheduling.sweep_slurm import sweep_array_script

# ---- points --------------------------------------------------------------------------------------


def test_grid_resolves_short_keys_and_makes_every_combination():
    grid = parse_grid(["learning_rate=1e-4,2e-4", "lora.r=8,16,32"])
    assert grid == {"optim.learning_rate": ["1e-4", "2e-4"], "lora.r": ["8", "16", "32"]}
    points = grid_points(grid)
    assert len(points) == 6
    assert points[0] == {"optim.learning_rate": "1e-4", "lora.r": "8"}
    assert points[-1] == {"optim.learning_rate": "2e-4", "lora.r": "32"}


@pytest.mark.parametrize(
    "items, message",
    [
        (["learning_rat=1e-4,2e-4"], "unknown key"),
        (["optim.learning_rate"], "expected KEY="),
        (["optim.learning_rate=1e-4,"], "comma-separated values"),
        (["optim.learning_rate=1e-4,1e-4"], "repeated"),
        (["optim.learning_rate=1e-4", "learning_rate=2e-4"], "given twice"),
    ],
)
def test_bad_grids_name_the_argument(items, message):
    with pytest.raises(SweepError, match=message) as e:
        parse_grid(items)
    assert "--grid" in str(e.value)


def test_random_points_are_seeded_inside_their_ranges():
    args = (["lora.r=8,16"], ["optim.learning_rate=1e-5:1e-3:log", "lora.alpha=8:64"], 12)
    a, b = points_from_args(*args, seed=3), points_from_args(*args, seed=3)
    assert a == b and len(a) == 12
    assert a != points_from_args(*args, seed=4)
    for p in a:
        assert 1e-5 <= float(p["optim.learning_rate"]) <= 1e-3
        assert 8 <= int(p["lora.alpha"]) <= 64 and p["lora.alpha"].isdigit()  # integer bounds draw integers
        assert p["lora.r"] in ("8", "16")
    # log-uniform: about half the draws fall below the geometric middle (1e-4), not 10% as uniform would give
    many = points_from_args([], ["optim.learning_rate=1e-5:1e-3:log"], 400, seed=0)
    below = sum(float(p["optim.learning_rate"]) < 1e-4 for p in many)
    assert 150 < below < 250


@pytest.mark.parametrize(
    "grid, ranges, samples, message",
    [
        ([], [], None, "nothing to sweep"),
        ([], ["optim.learning_rate=1e-5:1e-3"], None, "--samples"),
        ([], ["optim.learning_rate=1e-3:1e-5"], 3, "LOW must be below HIGH"),
        ([], ["optim.learning_rate=0:1e-3:log"], 3, "LOW > 0"),
        ([], ["optim.learning_rate=a:b"], 3, "must be numbers"),
        (["lora.r=8,16"], ["lora.r=4:64"], 3, "both --grid and --range"),
        ([], ["optim.learning_rate=1e-5:1e-3"], 0, "at least 1"),
        (
            [
                "lora.r=" + ",".join(str(i) for i in range(1, 40)),
                "lora.alpha=" + ",".join(str(i) for i in range(1, 40)),
            ],
            [],
            None,
            "narrow the grid",
        ),
    ],
)
def test_bad_sweeps_say_what_to_change(grid, ranges, samples, message):
    with pytest.raises(SweepError, match=message):
        points_from_args(grid, ranges, samples, seed=0)


def test_range_parsing():
    r = parse_range("learning_rate=1e-5:1e-3:log")
    assert (r.key, r.low, r.high, r.log, r.integer) == ("optim.learning_rate", 1e-5, 1e-3, True, False)
    assert parse_range("lora.r=4:64").integer


def test_short_keys_keep_the_section_when_two_keys_share_a_name():
    assert short_keys(["optim.learning_rate", "lora.r"]) == {"optim.learning_rate": "learning_rate", "lora.r": "r"}
    assert short_keys(["optim.batch_size", "gate.batch_size"]) == {
        "optim.batch_size": "optim.batch_size",
        "gate.batch_size": "gate.batch_size",
    }


# ---- the record ------------------------------------------------------------------------------------


def test_record_round_trips_through_toml(tmp_path):
    rec = SweepRecord(
        name="lr",
        profile="lora",
        data="/d/train.jsonl",
        grid={"optim.learning_rate": ["1e-4", "2e-4"]},
        runs=[SweepRun("r1", {"optim.learning_rate": "1e-4"}), SweepRun("r2", {"optim.learning_rate": "2e-4"})],
        sets=["optim.epochs=2"],
    )
    path = write_record(tmp_path, rec)
    assert path == tmp_path / "sweeps" / "lr.toml"
    assert 'profile = "lora"' in path.read_text()
    back = load_record(tmp_path, "lr")
    assert back.runs == rec.runs and back.grid == rec.grid and back.sets == rec.sets and back.profile == "lora"
    with pytest.raises(SweepError, match="no sweep named 'nope'.*sweeps: lr"):
        load_record(tmp_path, "nope")


# ---- ranking by the gate ---------------------------------------------------------------------------


def _records(task_pass: int, fmt_fail: int = 0, n: int = 50, latency: float = 100.0) -> list[dict]:
    return [
        {
            "id": f"g{i}",
            "tags": ["task", "format"],
            "pass": i < task_pass,
            "format_pass": i >= fmt_fail,
            "latency_ms": latency,
        }
        for i in range(n)
    ]


def _gated_run(ws: Path, run_id: str, state: str, checkpoints: dict[int, dict]) -> None:
    """A run directory with a real gate summary: base task 50%, checkpoints as given."""
    run_dir = ws / "runs" / run_id
    (run_dir / "evals").mkdir(parents=True)
    write_status(run_dir, state=state, name=run_id, step=800)
    if not checkpoints:
        return
    rules = GateConfig(min_task_gain=2.0, significance=0.0)
    base = _records(25)
    rows = [base_row(base)] + [
        judge_checkpoint(base, _records(**kw), rules, checkpoint=step) for step, kw in checkpoints.items()
    ]
    write_gate_summary(run_dir, summarize(rows, rules))


@pytest.fixture
def ranked_sweep(tmp_path):
    ws = tmp_path / "ws"
    _gated_run(ws, "s-1", C.COMPLETED, {400: dict(task_pass=30), 800: dict(task_pass=28)})  # passes, 60%
    _gated_run(ws, "s-2", C.COMPLETED, {400: dict(task_pass=35), 800: dict(task_pass=41)})  # passes, 82%
    _gated_run(ws, "s-3", C.COMPLETED, {800: dict(task_pass=45, fmt_fail=10)})  # fails format, 90%
    _gated_run(ws, "s-4", C.FAILED, {})  # no gate
    _gated_run(ws, "s-5", C.COMPLETED, {800: dict(task_pass=20)})  # fails task, 40%
    rec = SweepRecord(
        name="lr",
        profile="lora",
        data="d.jsonl",
        runs=[
            SweepRun(f"s-{i}", {"optim.learning_rate": lr, "lora.r": "16"})
            for i, lr in enumerate(["1e-4", "2e-4", "3e-4", "4e-4", "5e-4"], 1)
        ],
    )
    write_record(ws, rec)
    return ws, rec


def test_passing_runs_rank_first_by_their_best_checkpoint_then_the_rest_by_task(ranked_sweep):
    ws, rec = ranked_sweep
    ranked = rank_runs(ws, rec)
    assert [x["id"] for x in ranked] == ["s-2", "s-1", "s-3", "s-5", "s-4"]
    top = ranked[0]
    assert top["verdict"] == "pass" and top["best_checkpoint"] == 800 and top["task"] == 82.0
    assert top["task_vs_base"] == 32.0 and top["task_ci"][0] > 0
    assert ranked[1]["best_checkpoint"] == 400  # s-1's best is its earlier, better checkpoint
    assert ranked[2]["verdict"] == "fail" and ranked[2]["best_checkpoint"] is None and ranked[2]["checkpoint"] == 800
    assert any("format validity" in r for r in ranked[2]["reasons"])
    assert ranked[4]["state"] == C.FAILED and ranked[4]["verdict"] is None and ranked[4]["task"] is None
    assert differing_keys(rec) == ["optim.learning_rate"]  # r is the same everywhere: not a difference
    sentence = verdict_sentence(rec, ranked)
    assert sentence.startswith("learning_rate=2e-4 wins: checkpoint-800 task 82.0% (+32.0 vs base), format 100% (=)")
    assert "1 other run(s) also pass" in sentence


def test_no_passing_run_names_the_closest_and_why(tmp_path):
    ws = tmp_path / "ws"
    _gated_run(ws, "a", C.COMPLETED, {800: dict(task_pass=45, fmt_fail=10)})
    _gated_run(ws, "b", C.RUNNING, {})
    rec = SweepRecord(
        name="x", profile="lora", data="d", runs=[SweepRun("a", {"lora.r": "8"}), SweepRun("b", {"lora.r": "16"})]
    )
    sentence = verdict_sentence(rec, rank_runs(ws, rec))
    assert sentence.startswith(
        "no run passed the gate (1 of 2 runs still queued or running); the closest, r=8, checkpoint-800 task 90.0%"
    )
    assert "fails: format validity 80.0% dropped 20.0 points" in sentence


def test_sweep_show_prints_the_table_and_json_in_ranked_order(ranked_sweep):
    ws, _ = ranked_sweep
    env = {"TUNEDECK_WORKSPACE": str(ws)}
    out = tunedeck("sweep", "show", "lr", env=env, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "sweep lr: lora over optim.learning_rate (5 runs)"
    assert "learning_rate" in lines[1] and "task (95% CI vs base)" in lines[1] and "verdict" in lines[1]
    ids = [line.split()[-1] for line in lines[2:7]]
    assert ids == ["s-2", "s-1", "s-3", "s-5", "s-4"]
    assert "checkpoint-800" in lines[2] and "82.0% (+32.0) [" in lines[2] and "pass" in lines[2]
    assert lines[-1].startswith("learning_rate=2e-4 wins: checkpoint-800 task 82.0%")
    data = json.loads(tunedeck("sweep", "show", "lr", "--json", env=env, check=True).stdout)
    assert [r["id"] for r in data["runs"]] == ids
    assert data["runs"][0]["params"] == {"optim.learning_rate": 2e-4, "lora.r": 16}
    assert data["runs"][0]["best_checkpoint"] == 800 and data["runs"][0]["verdict"] == "pass"
    assert data["sentence"].startswith("learning_rate=2e-4 wins")
    missing = tunedeck("sweep", "show", "nope", env=env)
    assert missing.returncode == 2 and "no sweep named 'nope'" in missing.stderr and "Traceback" not in missing.stderr


def test_public_rows_hide_internal_fields(ranked_sweep):
    ws, rec = ranked_sweep
    assert all(not k.startswith("_") for row in public_rows(rank_runs(ws, rec)) for k in row)


# ---- Slurm ----------------------------------------------------------------------------------------


def test_slurm_array_script_runs_one_run_per_task(tmp_path):
    dirs = [tmp_path / "runs" / f"r-{i}" for i in range(3)]
    text = sweep_array_script(
        "lr", dirs, gpus_per_task=1, partition="gpu", time_limit="02:00:00", max_parallel=2, python="/opt/py/bin/python"
    )
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-2%2" in text and "#SBATCH --gpus-per-node=1" in text
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --time=02:00:00" in text
    for d in dirs:
        assert f"  {d.resolve()}\n" in text
    assert 'RUN="${RUNS[$SLURM_ARRAY_TASK_ID]}"' in text
    assert text.rstrip().endswith('/opt/py/bin/python -m tunedeck.engine.training.worker "$RUN"')
    multi = sweep_array_script("lr", dirs, gpus_per_task=4, python="/p")
    assert (
        '--nproc-per-node=4 -m tunedeck.engine.training.worker "$RUN"' in multi
        and "%" not in multi.split("--array=")[1].split("\n")[0]
    )
