"""N on a run: the new-run screen opens on the next run from it (its frozen profile, its data plus fixes)."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.app_harness import COMPLETED, copy_workspace, make_app, run, utc, wait_for_text, wait_until

from tunedeck.engine.config.workspace import fixes_path
from tunedeck.tui.screens.new_run import NewRunScreen
from tunedeck.tui.widgets.runs_table import RunsTable

_ = utc  # a pytest fixture, used by name


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_n_on_a_run_opens_the_new_run_screen_with_the_next_run_and_what_changed(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws")
    fixes = fixes_path(ws, COMPLETED)
    fixes.parent.mkdir(parents=True)
    write_jsonl(fixes, [chat("q1", "a better answer")])

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for_text(pilot, "extract·c0a1")
            table = app.screen.query_one(RunsTable)
            table.move_cursor(row=[table.get_row_at(i)[0] for i in range(table.row_count)].index("extract·c0a1"))
            await pilot.press("N")
            await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run screen")
            screen = app.screen
            await wait_until(
                pilot, lambda: screen.form.profile is not None and screen._from_parent(), what="the next profile"
            )
            assert screen.form.profile.data.path == ["/data/extract.jsonl", str(fixes.resolve())]
            assert screen.form.profile.lora.r == 16 and screen.form.profile.optim.max_steps == 400
            assert screen.parent_changes() == [f"data.path: '' -> {['/data/extract.jsonl', str(fixes.resolve())]!r}"]
            await wait_for_text(pilot, f"next run from {COMPLETED}")
            from tunedeck.tui.path_suggester import PathSuggester

            assert isinstance(screen.query_one("#f-data--path").suggester, PathSuggester)  # paths complete
            assert screen.query_one("#f-model--base").suggester.models
            screen.form.set_value("optim.learning_rate", 1e-4)
            await wait_until(
                pilot,
                lambda: "optim.learning_rate: 0.0002 -> 0.0001" in "; ".join(screen.parent_changes()),
                what="an edit listed against the parent",
            )

    run(scenario())


def test_from_a_run_to_the_launched_next_run_with_its_fixes_and_parent(tmp_path, monkeypatch, tiny_model_dir, sft_data):
    """The issue's loop without leaving the app: N on a run, what changed shown, launch; the new run
    trains the parent's data plus its fixes with the parent's settings and names its parent."""
    from tunedeck.engine.run.run_record import load_run_record
    from tunedeck.engine.scheduling import launch
    from tunedeck.engine.scheduling.preflight import create_run, run_preflight
    from tunedeck.tui.screens.confirm import ConfirmScreen
    from tunedeck.tui.screens.monitor import RunMonitorScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr(launch, "spawn_detached", lambda run_dir, resume=False, queue=False: 4242)
    ws = tmp_path / "ws"
    profile = tmp_path / "parent.toml"
    profile.write_text(
        f'extends = "lora"\n[model]\nbase = "{tiny_model_dir}"\n[optim]\nmax_steps = 3\n'
        f'learning_rate = 3e-4\nprecision = "fp32"\n[gate]\nwhen = "never"\n'
    )
    parent = create_run(run_preflight(str(profile), str(sft_data), [], workspace=ws), ws, "extract")
    rows = [json.loads(line) for line in sft_data.read_text().splitlines()[:2]]
    fixes = fixes_path(ws, parent.name)
    fixes.parent.mkdir(parents=True)
    write_jsonl(fixes, [chat(r["messages"][0]["content"], '{"fixed": true}') for r in rows])

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for_text(pilot, "extract")
            await pilot.press("N")
            await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run screen")
            screen = app.screen
            await wait_until(pilot, lambda: screen._from_parent() and screen.parent_changes(), what="the changes")
            await wait_until(pilot, lambda: screen.dataset.report is not None, timeout=120, what="inspection")
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=60, what="summary")
            await wait_for_text(pilot, f"changed from {parent.name}: data.path")
            await pilot.press("y")
            await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), timeout=120, what="the monitor")
            return app.screen.run_dir

    child = run(scenario())
    record = load_run_record(child)
    assert record.parent == parent.name and child != parent and record.name == "extract"  # the parent's name
    assert record.profile.data.path == [str(sft_data), str(fixes.resolve())]
    assert record.profile.optim.learning_rate == 3e-4 and record.profile.optim.max_steps == 3
    assert record.rows == load_run_record(parent).rows + 2
