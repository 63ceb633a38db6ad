"""The workspace's layout (engine/config/workspace.py): the folder names existing workspaces hold, and which
workspace a run directory belongs to when links are involved."""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.config import workspace as W


def test_every_folder_keeps_the_name_existing_workspaces_hold(tmp_path):
    ws = tmp_path
    assert {
        "runs": W.runs_root(ws),
        "queue/tickets": W.queue_tickets_dir(ws),
        "queue/locks": W.queue_locks_dir(ws),
        "sweeps": W.sweeps_root(ws),
        "sweeps/lr.toml": W.sweep_record_path(ws, "lr"),
        "sweeps/lr.sbatch": W.sweep_script_path(ws, "lr"),
        "profiles": W.profiles_dir(ws),
        "profiles/runs/r1.toml": W.frozen_profile_path(ws, "r1"),
        "profiles/next-r1.toml": W.next_profile_path(ws, "r1"),
        "fixes/r1.jsonl": W.fixes_path(ws, "r1"),
        "failures": W.failures_dir(ws),
        "cache/gate": W.gate_cache_dir(ws),
        "exports": W.exports_dir(ws),
        "demo": W.demo_dir(ws),
        "demo-real": W.demo_real_dir(ws),
    } == {
        name: ws / name
        for name in (
            "runs",
            "queue/tickets",
            "queue/locks",
            "sweeps",
            "sweeps/lr.toml",
            "sweeps/lr.sbatch",
            "profiles",
            "profiles/runs/r1.toml",
            "profiles/next-r1.toml",
            "fixes/r1.jsonl",
            "failures",
            "cache/gate",
            "exports",
            "demo",
            "demo-real",
        )
    }


def test_the_workspace_of_a_run_named_through_links(tmp_path, monkeypatch):
    real = tmp_path / "disk" / "runs" / "r1"
    real.mkdir(parents=True)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "runs").symlink_to(tmp_path / "disk" / "runs")
    named = tmp_path / "ws" / "runs" / "r1"
    # the folder --workspace names: fixes, profiles, caches and exports go where the command line looks
    assert W.workspace_of(named) == tmp_path / "ws" and W.in_a_workspace(named)
    # the queue's: a run found by id and the same run found by its resolved path wait in one queue
    assert W.resolved_workspace_of(named) == W.resolved_workspace_of(real) == (tmp_path / "disk").resolve()
    assert not W.in_a_workspace(tmp_path / "elsewhere" / "r1")
    plain = tmp_path / "plain" / "runs" / "r2"
    plain.mkdir(parents=True)
    monkeypatch.chdir(plain)  # engines and eval processes run from the run directory: "." is still absolute
    assert W.workspace_of(Path(".")) == W.workspace_of("../r2") == (tmp_path / "plain").resolve()
    assert W.in_a_workspace(".")
