"""Hints name the keys as remapped in keymap.toml, not the defaults the user no longer has."""

from __future__ import annotations

from fixtures.app_harness import copy_workspace, make_app, run, wait_for_text, wait_until

from tunedeck.tui.keymap import key_name
from tunedeck.tui.widgets.runs_table import RunsTable


class FakeApp:
    keymap_overrides = {"runs.compare": "C,x", "runs.mark": "space"}


def test_key_name_takes_the_first_remapped_key():
    assert key_name(FakeApp(), "runs.compare", "c") == "C"
    assert key_name(FakeApp(), "runs.mark", "m") == "space"
    assert key_name(FakeApp(), "runs.delete", "d") == "d"
    assert key_name(object(), "runs.delete", "d") == "d"


def test_the_compare_hints_name_the_remapped_keys(tmp_path):
    ws = copy_workspace(tmp_path / "ws")

    async def go():
        app = make_app(ws, keymap={"runs.compare": "C", "runs.mark": "M"})
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            app.screen.query_one(RunsTable).focus()
            await pilot.press("C")
            await wait_until(
                pilot,
                lambda: any("mark a run with M, then press C on another" in n for n in app.notices),
                what="the compare hint",
            )
            await pilot.press("M")
            await wait_until(
                pilot,
                lambda: any("press C on another run to compare them" in n for n in app.notices),
                what="the mark hint",
            )

    run(go())
