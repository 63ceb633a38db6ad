"""One writer of gate.json and status.json: the app asks (`tunedeck gate RUN --rebuild/--choose`, or a
rebuild_gate control request while an engine owns the run) and the engine writes. The typed gate
result reads and writes the file's JSON unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

from fixtures.app_harness import copy_workspace, make_live
from fixtures.make_gated_run import GATED

from tunedeck.engine.gate.rebuild import serve_rebuild_requests, summarize_run
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary, read_gate_summary, status_fields
from tunedeck.engine.run.status import Status
from tunedeck.engine.run.store import read_written_status


def run_dir_of(tmp_path):
    return copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED


def gate_cli(run_dir, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tunedeck.engine.commands.cli",
            "gate",
            "--workspace",
            str(run_dir.parent.parent),
            run_dir.name,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def status(run_dir) -> Status:
    return read_written_status(run_dir)


def test_the_typed_result_reads_and_writes_what_the_engine_wrote(tmp_path):
    run_dir = run_dir_of(tmp_path)
    written = summarize_run(run_dir)
    on_disk = json.loads((run_dir / "evals" / "gate.json").read_text())
    assert GateSummary.from_dict(on_disk).to_dict() == on_disk
    assert read_gate_summary(run_dir).to_dict() == on_disk
    assert written.to_dict() == on_disk  # what the builder returns is what it wrote


def test_choosing_through_the_engine_updates_gate_json_and_status(tmp_path):
    run_dir = run_dir_of(tmp_path)
    proc = gate_cli(run_dir, "--choose", "300", "--note", "fewer words")
    assert proc.returncode == 0, proc.stderr
    summary = read_gate_summary(run_dir)
    assert summary.chosen.checkpoint == 300 and summary.chosen.note == "fewer words"
    assert summary.shipped == 300 and status(run_dir).gate_best == 300  # the runs list and the monitor agree
    assert gate_cli(run_dir, "--choose", "none").returncode == 0
    assert read_gate_summary(run_dir).chosen is None
    assert status(run_dir).gate_best == status_fields(read_gate_summary(run_dir))["gate_best"]
    bad = gate_cli(run_dir, "--choose", "12345")
    assert bad.returncode == 2 and "checkpoint-12345 has no gate results" in bad.stderr


def test_while_an_engine_owns_the_run_the_app_leaves_a_request_it_answers(tmp_path):
    run_dir = run_dir_of(tmp_path)
    make_live(run_dir)
    before = (run_dir / "evals" / "gate.json").read_bytes()
    proc = gate_cli(run_dir, "--choose", "300")
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "evals" / "gate.json").read_bytes() == before  # the engine owns it
    assert [p.name.split("-")[0] for p in (run_dir / C.CONTROL_DIR).iterdir()] == [C.CTL_REBUILD_GATE]
    summary = serve_rebuild_requests(run_dir)  # what the engine does when it next polls
    assert summary is not None and summary.chosen.checkpoint == 300
    assert not list((run_dir / C.CONTROL_DIR).iterdir())
    assert serve_rebuild_requests(run_dir) is None
