"""Compare runs, driven through the real app with Pilot: mark on the runs screen, compare, go back."""

from __future__ import annotations

import re

from fixtures.app_harness import (
    COMPLETED,
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

from tunedeck.tui.screens.compare_runs import CompareLossPlot, CompareRunsScreen
from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.widgets.runs_table import RunsTable

_ = utc  # a pytest fixture, used by name


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_mark_one_run_move_and_compare(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, RUNNING))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for_text(pilot, "extract·c0a1", "support·r2d2")
            table = app.screen.query_one(RunsTable)
            assert table.cursor_row == 0  # support, the newest
            await pilot.press("space")
            marked = re.compile(r"support·r2d2\s+A\s")
            text = await wait_until(
                pilot, lambda: marked.search(screen_text(app)) and screen_text(app), what="the A mark on support"
            )
            assert not re.search(r"extract·c0a1\s+[AB]\s", text)
            await pilot.press("j", "c")
            await wait_until(pilot, lambda: isinstance(app.screen, CompareRunsScreen), what="the compare screen")
            # the panes fill in over several refreshes: wait for every row read below, then read once
            text = await wait_for_text(
                pilot,
                "Profile differences (4)",
                "best checkpoint-400",
                "lora.r",
                "optim.max_steps",
                "fingerprint",
                "task/format/safety",
                "Data: different data",
                "Gate extract·c0a1",
            )
            assert "support·r2d2 vs extract·c0a1" in text  # A is the marked run, B the one under the cursor
            assert "━ support·r2d2 train" in text and "━ extract·c0a1 train" in text  # the plot's legend
            assert re.search(r"lora\.r\s+8\s+16", text), line_with(text, "lora.r")
            assert re.search(r"optim\.learning_rate\s+0\.0001\s+0\.0002", text)
            assert re.search(r"optim\.max_steps\s+1000\s+400", text)
            assert re.search(r"fingerprint\s+8b907451196b4cf4\s+07529d3ea957c146", text)
            assert re.search(r"gate\s+no gate results\s+pass, best checkpoint-400", text)
            assert re.search(r"task/format/safety\s+-\s+84% / 100% / 100%", text)
            assert re.search(r"rows\s+1274 \(1147 train / 127 eval\)\s+1137 \(1024 train / 113 eval\)", text)
            assert "Data: different data" in text
            assert "Gate extract·c0a1: checkpoint-400: task 84.0% (+6.0 vs base)" in text
            plot = app.screen.query_one(CompareLossPlot)
            assert plot.comparison is not None and plot.failed is None
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on the runs screen")
            assert app.screen.marked == [RUNNING]  # the mark survives the round trip

    run(scenario())


def test_two_marked_runs_compare_wherever_the_cursor_is(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, RUNNING, OVERFIT))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for_text(pilot, "classify·0f17", "extract·c0a1")
            await pilot.press("space", "j", "j", "space", "k")  # classify, then extract; cursor back on support
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, CompareRunsScreen), what="the compare screen")
            text = await wait_for_text(pilot, "classify·0f17 vs extract·c0a1", "Profile differences")
            assert "support·r2d2" not in text

    run(scenario())


def test_compare_without_a_mark_says_what_to_do(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, RUNNING))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            await pilot.press("c")
            await wait_until(
                pilot,
                lambda: any("mark a run with space, then press c on another" in n for n in app.notices),
                what="the hint",
            )
            assert isinstance(app.screen, RunsScreen)
            # marking the run under the cursor and pressing c on it still needs another run
            await pilot.press("space", "c")
            await pilot.pause(0.2)
            assert isinstance(app.screen, RunsScreen)
            # space again unmarks
            await pilot.press("space")
            await wait_until(pilot, lambda: app.screen.marked == [], what="the mark removed")

    run(scenario())


def test_a_run_without_run_toml_shows_why_its_profile_is_missing(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED, RUNNING))
    (ws / "runs" / RUNNING / "run.toml").unlink()

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            app.push_screen(CompareRunsScreen(ws / "runs" / COMPLETED, ws / "runs" / RUNNING))
            text = await wait_for_text(
                pilot,
                "Profiles not compared",
                "run.toml is missing",
                "Data: unknown",
                "fingerprint",
                "Profile differences (0)",
            )
            assert f"{RUNNING}: run.toml is missing, so its profile and dataset are unknown" in text
            assert "Data: unknown: a run record could not be read" in text
            assert re.search(r"fingerprint\s+07529d3ea957c146\s+-", text)
            assert "Profile differences (0)" in text

    run(scenario())
