"""Sweeps and the queue in the app: a sweep folds into one group row, its ranked screen with every loss
curve, cancelling a queued run, stopping a sweep, and the queue choice when launching."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.app_harness import copy_workspace, make_app, run, screen_text, utc, wait_for_text, wait_until
from fixtures.make_sweep import RUN_IDS, make_sweep_workspace

from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.screens.sweep import SweepLossPlot, SweepScreen
from tunedeck.tui.widgets.list_table import ListTable
from tunedeck.tui.widgets.runs_table import RunsTable

_ = utc  # a pytest fixture, used by name


def stop_requests(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "control").glob("stop-*.json"))


def row_keys(table) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def test_a_sweep_is_one_group_that_enter_expands(tmp_path, utc):
    ws = make_sweep_workspace(copy_workspace(tmp_path / "ws", runs=("20250301-090000-extract-c0a1",)))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            text = await wait_for_text(pilot, "▸ lr (4)")
            table = app.screen.query_one(RunsTable)
            assert row_keys(table) == [
                "sweep:lr",
                "20250301-090000-extract-c0a1",
            ]  # the sweep sits where its newest run would
            line = next(row for row in text.splitlines() if "▸ lr (4)" in row)
            assert "1 running · 1 queued · 2 completed" in line and "2/4 runs" in line and "2 pass" in line
            table.move_cursor(row=0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: table.row_count == 6, what="the sweep's runs under it")
            assert row_keys(table) == ["sweep:lr", *RUN_IDS, "20250301-090000-extract-c0a1"]
            text = screen_text(app)
            assert "▾ lr (4)" in text
            assert "… queued #1" in next(row for row in text.splitlines() if "lr-4" in row)
            assert isinstance(app.screen, RunsScreen)  # enter on a group does not open a monitor
            table.move_cursor(row=0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: table.row_count == 2, what="the sweep folded again")

    run(scenario())


def test_s_on_a_queued_run_cancels_it(tmp_path, utc):
    ws = make_sweep_workspace(tmp_path / "ws")
    queued = ws / "runs" / RUN_IDS[3]

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            await wait_for_text(pilot, "▸ lr (4)")
            table = app.screen.query_one(RunsTable)
            await pilot.press("enter")
            await wait_until(pilot, lambda: table.row_count == 5, what="expanded")
            table.move_cursor(row=4)
            await wait_until(
                pilot, lambda: app.screen.selected and app.screen.selected["id"] == RUN_IDS[3], what="selected"
            )
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert f"Cancel queued run {RUN_IDS[3]}?" in screen_text(app)
            await pilot.press("y")
            await wait_until(pilot, lambda: stop_requests(queued), what="the cancel request")
            assert not stop_requests(ws / "runs" / RUN_IDS[2])  # the running run is not touched

    run(scenario())


def test_s_on_a_sweep_cancels_its_queued_runs_and_stops_the_running_one(tmp_path, utc):
    ws = make_sweep_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            await wait_for_text(pilot, "▸ lr (4)")
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert "Stop sweep lr?" in screen_text(app) and "Cancels its 1 queued run(s); its 1 running" in screen_text(
                app
            )
            await pilot.press("y")
            await wait_until(
                pilot, lambda: all(stop_requests(ws / "runs" / r) for r in RUN_IDS[2:]), what="stop requests"
            )
            assert not any(stop_requests(ws / "runs" / r) for r in RUN_IDS[:2])  # finished runs get none

    run(scenario())


def test_the_sweep_screen_ranks_its_runs_and_overlays_their_loss_curves(tmp_path, utc):
    ws = make_sweep_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(150, 40)) as pilot:
            await wait_for_text(pilot, "▸ lr (4)")
            await pilot.press("w")
            await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
            text = await wait_for_text(pilot, "learning_rate=2e-4 wins: checkpoint-800 task 82.0% (+32.0 vs base)")
            table = app.screen.query_one("#sweep-table", ListTable)
            assert row_keys(table) == [RUN_IDS[1], RUN_IDS[0], RUN_IDS[2], RUN_IDS[3]]
            first = next(row for row in text.splitlines() if RUN_IDS[1] in row)
            for value in ("2e-4", "checkpoint-800", "82.0% (+32.0)", "100% (=)", "pass"):
                assert value in first, (value, first)
            plot = app.screen.query_one(SweepLossPlot)
            await wait_until(pilot, lambda: plot.view is not None and len(plot.view.curves) == 4, what="curves")
            assert plot.failed is None
            # every run with a logged loss is drawn; the queued one has none yet
            assert sum(1 for train, _ in plot.view.curves.values() if len(train)) == 3
            assert "learning_rate=2e-4" in str(plot.border_title) and "learning_rate=4e-4" in str(plot.border_title)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs")
            await pilot.press("c")  # compare on a sweep: all its runs at once
            await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen from c")

    run(scenario())


@pytest.mark.slow  # it starts an engine
def test_launching_from_the_app_can_queue(workspace, tiny_model_dir, sft_data, tmp_path, monkeypatch):
    from conftest import wait_for

    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.store import read_effective_status
    from tunedeck.tui.screens.new_run import LaunchChoice, NewRunScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # no user profiles
    launched: list[str] = []

    async def scenario():
        app = make_app(workspace)
        async with app.run_test(size=(160, 50)) as pilot:
            screen = NewRunScreen(workspace, profile="demo-cpu", data=str(sft_data), on_launched=launched.append)
            app.push_screen(screen)
            await wait_until(
                pilot,
                lambda: app.screen is screen and screen.form.profile is not None and screen.picked is not None,
                what="the new-run screen",
            )
            for key, value in (("model.base", str(tiny_model_dir)), ("gate.when", "never"), ("optim.max_steps", 2)):
                screen.form.set_value(key, value)
            await pilot.pause()
            await wait_until(pilot, lambda: screen.dataset.report is not None, timeout=120, what="inspection")
            await pilot.press("ctrl+l")
            await wait_until(
                pilot, lambda: isinstance(app.screen, LaunchChoice), timeout=60, what="the launch question"
            )
            assert "Queue (q)" in screen_text(app)
            await pilot.press("q")
            await wait_until(pilot, lambda: launched, timeout=120, what="on_launched")

    run(scenario())
    run_dir = workspace / "runs" / launched[0]
    wait_for(lambda: read_effective_status(run_dir).state == C.COMPLETED, timeout=300, what="the queued run to run")
    events = (run_dir / "events.jsonl").read_text()
    assert '"state":"queued"' in events  # it went through the queue


def test_the_monitor_of_a_queued_run_says_where_it_waits_and_s_cancels(tmp_path, utc):
    ws = make_sweep_workspace(tmp_path / "ws")
    queued = ws / "runs" / RUN_IDS[3]

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            await wait_for_text(pilot, "▸ lr (4)")
            app.open_monitor(queued)
            await wait_for_text(pilot, "… queued", "queued #1: waiting for the CPU slot")
            # the footer follows the state in a later refresh: wait for it rather than read it once
            footer = await wait_until(
                pilot,
                lambda: next(
                    (line for line in screen_text(app).splitlines() if "esc Back" in line and " s Stop" in line), None
                ),
                what="the footer with Stop",
            )
            assert "Save now" not in footer and "Eval now" not in footer, footer  # nothing to save yet
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert f"Cancel queued run {RUN_IDS[3]}?" in screen_text(app)
            await pilot.press("y")
            await wait_until(pilot, lambda: stop_requests(queued), what="the cancel request")

    run(scenario())
