"""The runs screen, driven through the real app with Pilot over recorded run directories."""

from __future__ import annotations

import json

from fixtures.app_harness import (
    ALL,
    COMPLETED,
    CRASHED,
    GPU,
    OVERFIT,
    RUNNING,
    copy_workspace,
    make_app,
    run,
    screen_text,
    utc,
    wait_for_text,
    wait_until,
)

from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.widgets.runs_table import RunsTable

_ = utc  # a pytest fixture, used by name


def rows_by_name(app) -> dict[str, dict]:
    return {r["name"]: r for r in app.screen.rows}


def test_every_run_is_listed_with_its_state_and_values(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", live=(RUNNING,))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            text = await wait_for_text(pilot, "extract·c0a1", "support·r2d2")
            table = app.screen.query_one(RunsTable)
            assert table.row_count == len(ALL)
            # newest first
            assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [
                "chat·9b00",
                "classify·0f17",
                "summarize·dead",
                "support·r2d2",
                "extract·c0a1",
            ]
            line = next(row for row in text.splitlines() if "extract·c0a1" in row)
            for value in (
                "✓ completed",
                "████████ 400/400",
                "1.0395",
                "pass@400",
                "Qwen2.5-0.5B-Instruct",
                "sft/lora",
                "03-01 09:00",
                "3m34s",
            ):
                assert value in line, (value, line)
            assert "▶ running" in next(row for row in text.splitlines() if "support·r2d2" in row)
            assert "300/1000" in text
            assert "✗ crashed" in next(row for row in text.splitlines() if "summarize·dead" in row)
            assert "✗ failed" in next(row for row in text.splitlines() if "chat·9b00" in row)
            assert "■ stopped" in next(row for row in text.splitlines() if "classify·0f17" in row)

    run(scenario())


def test_slash_filters_and_esc_clears(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws")

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            table = app.screen.query_one(RunsTable)
            await pilot.press("slash")
            await pilot.press(*"crashed")
            await wait_until(pilot, lambda: table.row_count == 2, what="two crashed runs")
            await pilot.press("q")  # typed into the filter, does not quit
            assert app.is_running
            await wait_until(pilot, lambda: "No run matches" in screen_text(app), what="empty-filter message")
            await pilot.press("backspace", "escape")
            await wait_until(pilot, lambda: table.row_count == len(ALL), what="filter cleared")
            assert not app.screen.query_one("#filter").display
            # j/k move the cursor in the list
            await pilot.press("g")
            assert table.cursor_row == 0
            await pilot.press("j", "j")
            assert table.cursor_row == 2
            await pilot.press("k")
            assert table.cursor_row == 1
            await pilot.press("G")
            assert table.cursor_row == len(ALL) - 1

    run(scenario())


def test_enter_opens_the_monitor_and_esc_comes_back(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, OVERFIT))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            await pilot.press("enter")  # the newest run is first: classify
            await wait_for_text(pilot, "Run monitor", "classify·0f17")
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on the runs screen")

    run(scenario())


def test_stop_asks_then_writes_a_control_request(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,), live=(RUNNING,))
    control = ws / "runs" / RUNNING / "control"

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "▶ running")
            await pilot.press("s")
            await wait_for_text(pilot, f"Stop run {RUNNING}?")
            await pilot.press("n")  # no: nothing written
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="dialog closed")
            assert not control.exists() or not list(control.iterdir())
            await pilot.press("s")
            await wait_for_text(pilot, f"Stop run {RUNNING}?")
            await pilot.press("y")
            files = await wait_until(pilot, lambda: list(control.glob("stop-*.json")), what="stop request file")
            assert json.loads(files[0].read_text())["kind"] == "stop"

    run(scenario())


def test_delete_asks_refuses_live_runs_and_removes_the_directory(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING, CRASHED), live=(RUNNING,))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "summarize·dead", "support·r2d2")
            table = app.screen.query_one(RunsTable)
            assert table.selected_id == CRASHED  # newest first
            await pilot.press("d")
            await wait_for_text(pilot, f"Delete run {CRASHED}?", "cannot be undone")
            await pilot.press("escape")
            assert (ws / "runs" / CRASHED).exists()
            await pilot.press("d", "y")
            await wait_until(pilot, lambda: not (ws / "runs" / CRASHED).exists(), what="run deleted")
            await wait_until(pilot, lambda: table.row_count == 1, what="row gone")
            # the live run cannot be deleted: the key is not even offered
            assert table.selected_id == RUNNING
            await pilot.press("d")
            await pilot.pause(0.2)
            assert (ws / "runs" / RUNNING).exists()
            assert "Delete run" not in screen_text(app)

    run(scenario())


def test_resume_starts_a_detached_engine(tmp_path, utc, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(CRASHED,))
    started = []
    monkeypatch.setattr(
        "tunedeck.engine.scheduling.launch.spawn_detached",
        lambda run_dir, resume=False: started.append((run_dir, resume)) or 4321,
    )

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "summarize·dead")
            await pilot.press("r")
            await wait_until(pilot, lambda: started, what="spawn_detached called")
            assert started == [(ws / "runs" / CRASHED, True)]
            await wait_until(pilot, lambda: any("engine pid 4321" in n for n in app.notices), what="resume notice")

    run(scenario())


def test_new_runs_appear_while_the_screen_is_open(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            copy_workspace(ws, runs=(GPU,))  # e.g. `tunedeck run ... --detach` from another terminal
            await wait_for_text(pilot, "chat·9b00", "✗ failed")

    run(scenario())


def test_an_empty_workspace_says_how_to_start(tmp_path, utc):
    async def scenario():
        app = make_app(tmp_path / "empty")
        async with app.run_test(size=(100, 24)) as pilot:
            await wait_for_text(pilot, "No runs in", "tunedeck demo")

    run(scenario())
