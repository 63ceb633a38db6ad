"""The new-run screen, driven through the real app with Pilot: profile, form, dataset, launch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.app_harness import make_app, run, screen_text, wait_for_text, wait_until

from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.new_run import NewRunScreen
from tunedeck.tui.widgets.hyperparam_form import HyperparamForm


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))


async def open_screen(app, pilot, ws: Path, **kwargs) -> NewRunScreen:
    screen = NewRunScreen(ws, **kwargs)
    app.push_screen(screen)
    await wait_until(
        pilot,
        lambda: app.screen is screen and screen.form.profile is not None and screen.picked is not None,
        what="new-run screen with a profile",
    )
    return screen


def field_value(form: HyperparamForm, key: str):
    return form.widget_for(key).value


async def set_fields(pilot, form: HyperparamForm, **values) -> None:
    for key, value in values.items():
        form.set_value(key.replace("__", "."), value)
    await pilot.pause()


def test_choosing_a_profile_fills_the_form(tmp_path):
    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(app, pilot, tmp_path / "ws", profile="lora")
            form = screen.form
            assert field_value(form, "lora.r") == "8" and field_value(form, "optim.learning_rate") == "0.0002"
            screen.query_one("#profile-list").focus()
            names = [e.name for e in screen.query_one("ProfilePicker").entries]
            await pilot.press("home", *["down"] * names.index("demo-cpu"))
            await wait_for_text(pilot, "demo-cpu changes vs lora", "lora.r: 8 -> 16")
            await pilot.press("enter")
            await wait_until(pilot, lambda: field_value(form, "lora.r") == "16", what="form filled from demo-cpu")
            assert field_value(form, "optim.learning_rate") == "0.003"
            assert field_value(form, "optim.scheduler") == "linear"
            assert field_value(form, "optim.auto_batch_size") is False
            assert screen.picked.name == "demo-cpu"
            assert "effective batch 16" in screen_text(app)

    run(scenario())


def test_an_invalid_value_shows_its_error_and_blocks_launch(tmp_path):
    ws = tmp_path / "ws"

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(app, pilot, ws, profile="lora")
            form = screen.form
            form.widget_for("lora.r").focus()
            await pilot.press("ctrl+a", "ctrl+k", "0")  # type an invalid rank
            await wait_until(pilot, lambda: "lora.r" in form.errors, what="an error for lora.r")
            assert "at least 1" in form.errors["lora.r"]
            err = form.query_one("#f-lora--r-error")
            assert err.display and "at least 1" in str(err.render())
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the pre-flight summary")
            assert "Cannot launch" in screen_text(app) and "BLOCKING" in screen_text(app)
            await pilot.press("escape")
            assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())
            form.widget_for("lora.r").focus()
            await pilot.press("end", "backspace", "8")  # back to valid: the error goes
            await wait_until(pilot, lambda: not form.errors, what="the error cleared")

    run(scenario())


def test_max_seq_len_change_retruncates_like_token_stats(tmp_path, tiny_model_dir, sft_data):
    from transformers import AutoTokenizer

    from tunedeck.engine.data.dataset import load_dataset
    from tunedeck.engine.data.token_stats import compute_token_stats

    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(app, pilot, tmp_path / "ws", profile="demo-cpu", data=str(sft_data))
            await set_fields(pilot, screen.form, model__base=str(tiny_model_dir))
            pane = screen.dataset
            await wait_until(pilot, lambda: pane.stats is not None, timeout=120, what="token statistics")
            first = pane.truncation
            lengths = sorted(pane.stats.lengths.tolist())
            short = int(lengths[len(lengths) // 2])  # about half the examples longer than this
            await set_fields(pilot, screen.form, data__max_seq_len=short)
            await wait_until(pilot, lambda: pane.truncation.max_seq_len == short, what="re-truncated")
            return first, pane.truncation, short, pane

    first, t, short, pane = run(scenario())
    ds = load_dataset(str(sft_data))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ref = compute_token_stats(ds.rows, tok, max_seq_len=short, assistant_only=pane.stats.assistant_only, lines=ds.lines)
    assert t.truncated == len(ref.truncated_lines) > first.truncated
    assert t.truncated / t.examples == pytest.approx(len(ref.truncated_lines) / ref.examples)
    # the trainable-token share is exact for unmasked data, an estimate (within a few points) for masked chat
    assert t.trainable_cut_share == pytest.approx(ref.trainable_cut_share, abs=0 if t.exact else 0.05)


def test_planted_problems_are_listed_with_their_lines(tmp_path, demo_rows):
    data = tmp_path / "planted.jsonl"
    lines = [json.dumps(r) for r in demo_rows[:8]]
    lines[2] = '{"messages": [broken json'
    lines[5] = json.dumps({"messages": []})
    data.write_text("\n".join(lines) + "\n")

    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(app, pilot, tmp_path / "ws", profile="demo-cpu", data=str(data))
            pane = screen.dataset
            await wait_until(pilot, lambda: pane.report is not None, timeout=60, what="inspection")
            got = {p["line"] for p in pane.problems}
            assert {3, 6} <= got
            await wait_for_text(pilot, "line 3", "line 6")
            ol = pane.query_one("#ds-problems")
            ol.focus()
            idx = next(i for i, p in enumerate(pane.problems) if p["line"] == 3)
            ol.highlighted = idx
            await pilot.press("enter")
            await wait_until(pilot, lambda: "broken json" in str(pane.query_one("#ds-raw").render()), what="raw line")
            blocking, _ = screen.blocking_and_warnings()
            assert any("dataset" in b for b in blocking)

    run(scenario())


def test_launch_creates_a_run_and_calls_on_launched(workspace, tiny_model_dir, sft_data):
    launched: list[str] = []

    async def scenario():
        app = make_app(workspace)
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(
                app, pilot, workspace, profile="demo-cpu", data=str(sft_data), on_launched=launched.append
            )
            await set_fields(
                pilot, screen.form, model__base=str(tiny_model_dir), gate__when="never", optim__max_steps=2
            )
            await wait_until(pilot, lambda: screen.dataset.report is not None, timeout=120, what="inspection")
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=60, what="summary")
            assert "memory:" in screen_text(app) and "Launch this run?" in screen_text(app)
            await pilot.press("y")
            await wait_until(pilot, lambda: launched, timeout=120, what="on_launched")

    run(scenario())
    run_dir = workspace / "runs" / launched[0]
    assert (run_dir / "run.toml").is_file() and (run_dir / "status.json").is_file()
    assert 'when = "never"' in (run_dir / "run.toml").read_text()


def test_save_as_profile_round_trips_and_keeps_comments(tmp_path):
    from tunedeck.engine.config.profile_loading import load_profile

    user_dir = tmp_path / "cfg" / "tunedeck" / "profiles"
    user_dir.mkdir(parents=True)
    house = user_dir / "house.toml"
    house.write_text('# our house style\ndescription = "house"\nextends = "lora"\n\n[lora]\nr = 32  # domain\n')

    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_screen(app, pilot, tmp_path / "ws", profile="house")
            assert field_value(screen.form, "lora.r") == "32"
            await set_fields(pilot, screen.form, lora__r=24, optim__epochs=2.0)
            await pilot.press("ctrl+s")  # a user profile: saved in place
            await wait_until(pilot, lambda: "r = 24" in house.read_text(), what="house.toml saved")
            edited = screen.form.profile
            # a shipped profile: asks for a name, writes extends + the differences
            screen.query_one("ProfilePicker").pick("demo-cpu")
            await wait_until(pilot, lambda: field_value(screen.form, "lora.r") == "16", what="demo-cpu picked")
            await set_fields(pilot, screen.form, optim__learning_rate=0.001)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen.query("#ask-name"), what="name prompt")
            await pilot.press("ctrl+a", "ctrl+k", *"tiny-fast", "enter")
            await wait_until(pilot, lambda: (user_dir / "tiny-fast.toml").exists(), what="new profile")
            return edited, screen.form.profile

    edited, new = run(scenario())
    text = house.read_text()
    assert "# our house style" in text and "# domain" in text and "epochs = 2" in text
    assert load_profile(house).to_dict() == {**edited.to_dict(), "extends": "lora"}
    saved = (user_dir / "tiny-fast.toml").read_text()
    assert 'extends = "demo-cpu"' in saved and "learning_rate = 0.001" in saved and "[lora]" not in saved
    a, b = load_profile(user_dir / "tiny-fast.toml").to_dict(), new.to_dict()
    for d in (a, b):
        d.pop("extends"), d.pop("description")
    assert a == b
