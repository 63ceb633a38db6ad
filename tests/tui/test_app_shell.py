"""The shell: keys, help, command palette, quitting, small terminals, NO_COLOR, start-up imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from fixtures.app_harness import COMPLETED, RUNNING, RUNS, copy_workspace, make_app, run, utc, wait_for_text, wait_until

from tunedeck.tui.screens.help import HelpScreen, key_sections
from tunedeck.tui.screens.monitor import RunMonitorScreen
from tunedeck.tui.screens.runs import RunsScreen

_ = utc
ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "trl", "peft", "datasets")


def test_every_binding_has_an_id_and_a_description():
    for title, bindings in key_sections():
        for b in bindings:
            assert b.id, (title, b)
            assert b.tooltip or b.description, (title, b)


def test_question_mark_lists_every_key(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(100, 60)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
            text = await wait_for_text(pilot, "Run monitor", "Checkpoints")
            for key, words in [
                ("q", "Quit the app"),
                ("/", "Filter runs"),
                ("s", "Stop the selected run"),
                ("d", "Delete the selected run"),
                ("enter", "Open the selected run"),
                ("m", "Smooth the train loss"),
                ("l", "Log scale"),
                ("c", "Save a checkpoint at the next step"),
                ("e", "At the next step: validation"),
                ("o", "Checkpoints and the eval gate"),
                ("j", "Next row"),
                ("ctrl+p", "Command palette"),
            ]:
                assert any(f" {key} " in line and words in line for line in text.splitlines()), (key, words)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="help closed")

    run(scenario())


def test_command_palette_offers_the_screen_actions_and_runs(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            await pilot.press("ctrl+p")
            await pilot.press(*"open run")
            await wait_for_text(pilot, f"Open run {COMPLETED}")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor via palette")
            await pilot.press("ctrl+p")
            await pilot.press(*"smooth")
            await wait_for_text(pilot, "Smooth the train loss")
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen.query_one("#loss-plot").smoothing, what="smoothing via palette")

    run(scenario())


def test_q_quits_and_the_app_draws_at_80x24(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws, open_run=COMPLETED)
        async with app.run_test(size=(80, 24)) as pilot:
            # the loss plot has room for its axis at 80x24
            text = await wait_for_text(pilot, "Loss", "Engine", "Events", "Checkpoints … 400 ✓", "q Quit", "┤")
            assert len(text.splitlines()) == 24 and max(len(line) for line in text.splitlines()) <= 80
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, what="app exits")
        assert app.return_code in (0, None)

    run(scenario())


def test_no_color_is_respected(tmp_path, utc, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            text = await wait_for_text(pilot, "extract·c0a1")
            assert app.no_color
            assert any(type(f).__name__ in ("Monochrome", "NoColor") for f in app._filters)
            assert "✓ completed" in text  # state is a word and a mark, never colour alone

    run(scenario())


def test_keymap_file_remaps_keys_by_binding_id(tmp_path, utc, monkeypatch):
    from tunedeck.tui.keymap import load_keymap

    cfg = tmp_path / "cfg" / "tunedeck"
    cfg.mkdir(parents=True)
    (cfg / "keymap.toml").write_text('[keys]\n"runs.filter" = "f"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    keymap, problem = load_keymap()
    assert keymap == {"runs.filter": "f"} and problem is None
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws, keymap=keymap)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for_text(pilot, "f Filter")
            await pilot.press("f")
            await wait_until(pilot, lambda: app.screen.query_one("#filter").has_focus, what="filter focused by f")

    run(scenario())
    (cfg / "keymap.toml").write_text("not = [toml")
    assert load_keymap()[1] is not None


def test_run_app_arguments():
    from tunedeck.tui.app import parse_args

    args = parse_args(["--workspace", "/w", "--open", "abc"])
    assert (args.workspace, args.open_run, args.no_telemetry) == ("/w", "abc", False)


def test_startup_imports_no_ml_library(tmp_path):
    """In a fresh interpreter: start the app, open a monitor, then look at sys.modules."""
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from fixtures.app_harness import make_app, wait_for_text
        from pathlib import Path

        async def main():
            app = make_app(Path({str(RUNS.parent)!r}), open_run={COMPLETED!r})
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for_text(pilot, "Loss", "Engine", "┤")
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
            print(json.dumps(heavy))

        asyncio.run(main())
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_worker_failures_are_routed_and_shown(tmp_path, utc, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,), live=(RUNNING,))
    monkeypatch.setattr(
        "tunedeck.engine.run.store.make_private_dir", lambda *a: (_ for _ in ()).throw(PermissionError("read-only"))
    )

    async def scenario():
        app = make_app(ws, open_run=RUNNING)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for_text(pilot, "▶ running")
            await pilot.press("c")  # the control request cannot be written
            await wait_until(pilot, lambda: app.failures, what="a routed failure")
            assert "PermissionError: read-only" in app.failures[0]
            assert any("read-only" in n for n in app.notices)
            assert app.is_running

    run(scenario())
