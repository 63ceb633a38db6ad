"""The chosen theme is kept between sessions (settings.toml next to keymap.toml)."""

from __future__ import annotations

from fixtures.app_harness import copy_workspace, make_app, run, wait_until

from tunedeck.tui.settings import load_settings, settings_path


def test_the_theme_chosen_is_the_theme_next_time(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ws = copy_workspace(tmp_path / "ws", runs=())

    async def first():
        app = make_app(ws, remember_theme=True)
        async with app.run_test(size=(100, 30)) as pilot:
            default = app.theme
            assert default != "nord"
            app.theme = "nord"
            await wait_until(pilot, lambda: load_settings().get("theme") == "nord", what="the theme saved")

    async def second():
        app = make_app(ws, remember_theme=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.theme == "nord", what="the saved theme")

    async def not_remembering():
        app = make_app(ws)  # tests and embedded apps neither read nor write the user's settings
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.theme != "nord"

    run(first())
    assert settings_path() == tmp_path / "config" / "tunedeck" / "settings.toml"
    run(second())
    run(not_remembering())
