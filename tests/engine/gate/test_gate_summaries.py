"""Every summary of the gate shows general beside task, format and safety, each with its change against the base:
status.json's gate_scores (the runs list, `tunedeck ls`), `tunedeck show`, and the monitor's gate line."""

from __future__ import annotations

import json

from conftest import tunedeck
from fixtures.app_harness import COMPLETED, CRASHED, copy_workspace
from fixtures.make_gated_run import GATED, add_general_set

from tunedeck.engine.gate.rebuild import rebuild
from tunedeck.engine.run.gate_result import GateRow, read_gate_summary, row_scores, status_fields, vs_base_parts
from tunedeck.engine.run.summary import fill_gate_fields, run_row


def workspace(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, GATED))
    add_general_set(ws / "runs" / GATED)  # checkpoint-400 forgot 10 of the 15 general questions the base answers
    return ws


def test_status_carries_the_scores_of_the_checkpoint_the_run_ships_else_the_one_the_sentence_describes(tmp_path):
    run_dir = workspace(tmp_path) / "runs" / GATED
    status = json.loads((run_dir / "status.json").read_text())
    summary = read_gate_summary(run_dir)
    assert summary.shipped is None and "checkpoint-300" in summary.sentence
    assert status["gate_scores"] == {
        "checkpoint": 300,
        "task_metric": "pass_rate",
        "task": 85.0,
        "format": 100.0,
        "safety": 100.0,
        "general": 75.0,
        "vs_base": {"task": 35.0, "format": 5.0, "safety": 0.0, "general": 0.0},
    }
    rebuild(run_dir, choose=400, note="the one that forgot")  # a person ships 400: its loss of general shows
    status = json.loads((run_dir / "status.json").read_text())
    assert status["gate_best"] == 400 and status["gate_scores"]["vs_base"]["general"] == -50.0
    assert [part for part, _ in vs_base_parts(status["gate_scores"])] == ["T+32.5", "F+5", "S=", "G-50"]


def test_a_status_written_before_gate_scores_reads_them_from_gate_json(tmp_path):
    run_dir = workspace(tmp_path) / "runs" / COMPLETED
    row = run_row(run_dir)
    assert row["gate_verdict"] == "pass" and row["gate_scores"] is None  # an engine from before gate_scores
    filled = fill_gate_fields(row, run_dir)
    # its gate.json rows recorded no vs_base: the change is computed from the base row; no general set was run
    assert filled["gate_scores"]["checkpoint"] == 400 and filled["gate_scores"]["general"] is None
    assert [part for part, _ in vs_base_parts(filled["gate_scores"])] == ["T+6", "F=", "S=", "G-"]
    assert status_fields(None) == {"gate_verdict": None, "gate_best": None, "gate_scores": None}


def test_ls_and_show_print_every_score_against_the_base_and_how_each_set_was_asked(tmp_path):
    ws = workspace(tmp_path)
    env = {"TUNEDECK_WORKSPACE": str(ws)}
    ls = tunedeck("ls", env=env)
    assert ls.returncode == 0, ls.stderr
    header, *lines = ls.stdout.splitlines()
    assert " vs base " in header
    assert any(line.startswith(COMPLETED) and "T+6 F= S= G-" in line for line in lines)
    assert any(line.startswith(GATED) and "T+35 F+5 S= G=" in line for line in lines)
    show = tunedeck("show", GATED, env=env)
    assert show.returncode == 0, show.stderr
    assert (
        "vs base    checkpoint-300: task 85.0% (+35), format 100.0% (+5), safety 100.0% (=), general 75.0% (=)"
        in show.stdout
    )
    assert (
        "eval set   golden (task, 40 examples): the base asked 'Route the support ticket. Answer only with JSON: …'"
        in show.stdout
    )
    assert "eval set   general (general, 20 examples): the base asked as written" in show.stdout
    data = json.loads(tunedeck("show", GATED, "--json", env=env).stdout)["gate"]
    assert data["scores"]["general"] == 75.0 and [s["asked"] for s in data["sets"]][1:] == ["as written", "as written"]
    assert next(r for r in data["rows"] if r["checkpoint"] == 400)["vs_base"]["general"] == -50.0


def test_the_monitor_line_keeps_all_four_scores_at_80_columns():
    from tunedeck.tui.gate_view import scores_line, vs_base_cell

    row = GateRow.from_dict(
        {
            "checkpoint": 67,
            "verdict": "pass",
            "task": 55.0,
            "format": 100.0,
            "safety": 100.0,
            "general": 35.0,
            "vs_base": {"task": 47.0, "format": 60.0, "safety": 0.0, "general": -40.0},
        }
    )
    wide = scores_line(row, 120).plain
    assert wide == ("checkpoint-67 vs base: task 55.0% +47 · format 100.0% +60 · safety 100.0% = · general 35.0% -40")
    narrow = scores_line(row, 78).plain
    assert len(narrow) <= 78 and narrow == "67 vs base: task 55.0% +47 · fmt 100.0% +60 · safe 100.0% = · gen 35.0% -40"
    assert vs_base_cell(row_scores(row)).plain == "T+47 F+60 S= G-40"
    assert vs_base_cell(None).plain == "-"


def test_the_monitor_shows_the_gate_line_at_80x24_and_only_once_the_gate_has_judged(tmp_path):
    from fixtures.app_harness import make_app, run, screen_text, wait_until

    from tunedeck.tui.screens.monitor import RunMonitorScreen

    ws = workspace(tmp_path)
    run_dir = ws / "runs" / GATED
    rebuild(run_dir, choose=400, note="ships the one that forgot")

    def under_the_progress_row(app) -> str | None:
        lines = screen_text(app).splitlines()
        progress = next((i for i, line in enumerate(lines) if "500/500" in line), None)
        return lines[progress + 1].strip() if progress is not None and progress + 1 < len(lines) else None

    async def scenario():
        app = make_app(ws, open_run=GATED)
        gate_line = "400 vs base: task 82.5% +32.5 · fmt 100.0% +5 · safe 100.0% = · gen 25.0% -50"
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(  # the line right under the progress row, once drawn
                pilot,
                lambda: (
                    isinstance(app.screen, RunMonitorScreen)
                    and app.screen.history.caught_up
                    and app.screen.query_one("#gate-scores").display
                    and under_the_progress_row(app) == gate_line
                ),
                what=f"the gate line {gate_line!r} under the progress row",
            )
        app = make_app(ws, open_run="20250301-090000-extract-c0a1")
        line = "400 vs base: task 84.0% +6 · fmt 100.0% = · safe 100.0% = · gen -"
        async with app.run_test(size=(80, 24)) as pilot:  # a run whose gate.json recorded no vs_base, no general
            await wait_until(  # the line, once drawn (the pane may show before the screen is redrawn)
                pilot,
                lambda: (
                    isinstance(app.screen, RunMonitorScreen)
                    and app.screen.history.caught_up
                    and app.screen.query_one("#gate-scores").display
                    and line in screen_text(app)
                ),
                what=f"the gate line {line!r}",
            )
        copy_workspace(ws, runs=(CRASHED,))
        app = make_app(ws, open_run=CRASHED)
        async with app.run_test(size=(80, 24)) as pilot:  # no gate yet: no line, the plot keeps the row
            await wait_until(
                pilot,
                lambda: (
                    isinstance(app.screen, RunMonitorScreen)
                    and app.screen.history.caught_up
                    and bool(app.screen.history.row)
                ),
                what="the monitor",
            )
            await pilot.pause(0.2)
            assert not app.screen.query_one("#gate-scores").display and " vs base: " not in screen_text(app)

    run(scenario())
