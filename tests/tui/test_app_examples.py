"""The per-example details screen on the recorded triage run, driven by keys through a real app."""

from __future__ import annotations

from fixtures.app_harness import copy_workspace, make_app, run, screen_text, wait_for_text, wait_until
from fixtures.make_gated_run import GATED

from tunedeck.tui.screens.examples import ExamplesScreen
from tunedeck.tui.widgets.list_table import ListTable

SIZE = (140, 45)


def shown_ids(app) -> list[str]:
    table = app.screen.query_one(ListTable)
    return [key.value for key in table.rows] if table.display else []


async def open_examples(pilot, run_dir, checkpoint, against="base", ready="all 50"):
    pilot.app.push_screen(ExamplesScreen(run_dir, checkpoint, against))
    return await wait_for_text(pilot, ready)


def test_regressions_first_with_both_outputs_and_check_reasons_side_by_side(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_examples(pilot, run_dir, 100)
            # the counts and the filter line are drawn in separate updates: wait for both
            await wait_for_text(pilot, "regressed 1 · fixed 3 · still failing 17 · all 50", "showing 1: regressed")
            await wait_until(pilot, lambda: shown_ids(app) == ["golden:t03"], what="the list")
            # the prompt, the reference, then base | checkpoint-100 with each check's reason
            await wait_for_text(
                pilot,
                "user: The app crashes when I open invoice 1003",
                "reference",
                '{"team": "technical", "priority": "low"}',  # the reference and the base's output
                "base  ✓",
                "checkpoint-100  ✗",
                '{"team": "billing", "priority": "low"}',
                "equal to the reference",
                '$.team: got "billing",',
                'expected "technical"',
                "latency 189 ms",
                "latency 199 ms",
                "system prompt used: Route the",
            )

            await pilot.press("2")
            await wait_for_text(pilot, "showing 3: fixed")
            await wait_until(
                pilot, lambda: shown_ids(app) == ["golden:t20", "golden:t21", "golden:t22"], what="the list"
            )
            await pilot.press("j")
            await wait_for_text(pilot, "golden:t21  fixed")
            await pilot.press("f")
            await wait_for_text(pilot, "showing 17: still failing")
            await pilot.press("f")
            await wait_for_text(pilot, "showing 50: all")
            await pilot.press("f")
            await wait_for_text(pilot, "showing 1: regressed")
            await wait_until(pilot, lambda: shown_ids(app) == ["golden:t03"], what="the list")

    run(go())


def test_tag_filter_shows_the_safety_regression_of_checkpoint_200(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_examples(pilot, run_dir, 200)
            await pilot.press("4", "t")  # tags cycle: any, format, safety, task
            await wait_for_text(pilot, "showing 40: all · tag format")
            await pilot.press("t")
            await wait_for_text(pilot, "showing 10: all · tag safety")
            await pilot.press("1")
            await wait_for_text(
                pilot,
                "showing 1: regressed · tag safety",
                "Sure, here is how: first open the admin console",  # the checkpoint complied
                "I can't help with that",  # the base refused
                "answered instead of refusing",
            )
            await wait_until(pilot, lambda: shown_ids(app) == ["safety:2"], what="the list")
            await pilot.press("t", "t")
            await wait_for_text(pilot, "showing 1: regressed · tag any")

    run(go())


def test_search_narrows_and_escape_clears_then_goes_back(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_examples(pilot, run_dir, 100)
            await pilot.press("4", "slash", *"PARCEL")
            await wait_for_text(pilot, "showing 7: all · tag any · search “PARCEL”")
            await wait_until(
                pilot,
                lambda: shown_ids(app) == [f"golden:t{i:02d}" for i in (1, 7, 13, 19, 25, 31, 37)],
                what="the list",
            )
            await pilot.press("space", *"1013", "enter")
            await wait_for_text(pilot, "showing 1: all")
            await wait_until(pilot, lambda: shown_ids(app) == ["golden:t13"], what="the list")
            assert isinstance(app.focused, ListTable)  # enter keeps the search and returns to the list
            await pilot.press("1")
            await wait_for_text(pilot, "No example matches these filters")
            await pilot.press("escape")
            await wait_for_text(pilot, "showing 1: regressed · tag any")
            assert "search" not in screen_text(app).splitlines()[2]
            await pilot.press("escape")
            await wait_until(
                pilot, lambda: not isinstance(app.screen, ExamplesScreen), what="back to the previous screen"
            )

    run(go())


def test_two_checkpoints_side_by_side_and_review_from_here(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        from tunedeck.tui.screens.review import ReviewScreen

        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_examples(pilot, run_dir, 400, against=300)
            await wait_for_text(
                pilot,
                "checkpoint-400 vs checkpoint-300: regressed 1 · fixed 0 · still failing 6 · all 50",
                "checkpoint-300  ✓",
                "checkpoint-400  ✗",
            )
            await wait_until(pilot, lambda: shown_ids(app) == ["golden:t33"], what="the list")
            await pilot.press("r")
            await wait_for_text(pilot, "checkpoint-400 · example 1 of 4 · 0/4 labelled")
            assert isinstance(app.screen, ReviewScreen) and app.screen.checkpoint == 400

    run(go())


def test_a_checkpoint_without_eval_results_says_how_to_get_them(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_examples(pilot, run_dir, 900, ready="checkpoint-900 has not been evaluated")
            await wait_for_text(
                pilot, f"No eval results for checkpoint-900 in {GATED}/evals.", f"Run `tunedeck eval {GATED}` first."
            )
            await wait_until(pilot, lambda: shown_ids(app) == [], what="the list")

    run(go())
