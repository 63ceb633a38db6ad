"""The export dialog on a real tiny LoRA run, driven with Pilot: what it writes loads with PEFT or plain
transformers and answers as the checkpoint did; the CLI's refusal shows as its one line; stopping a
running export asks first and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import wait_for
from fixtures.app_harness import make_app, run, screen_text, wait_for_widget_text, wait_until
from fixtures.gguf_runs import DRIFTED_TEMPLATE, STEP, converter_cache, gguf_run
from fixtures.small_runs import checkpoint_texts, half_written, no_leftovers, texts
from textual.widgets import Input, Log, RadioSet, Select

from tunedeck.engine.export.gguf_convert import GGUF_TYPES
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.export_dialog import ExportScreen, cli_errors, default_output

pytestmark = pytest.mark.slow

EXPORT_S = 180  # a subprocess that imports torch and transformers, on a busy 2-core machine
GGUF_EXPORT_S = 600  # a merge, llama.cpp's converter and the artifact gate's generations, on the same machine


@pytest.fixture(scope="module")
def lora_run(tiny_lora_run) -> Path:
    return tiny_lora_run  # conftest's, shared with the other app tests


@pytest.fixture(scope="module")
def prompts(demo_rows) -> list:
    return [r["messages"][:-1] for r in demo_rows[-2:]]


async def open_dialog(pilot, run_dir: Path, step: int, dismissed: list) -> ExportScreen:
    screen = ExportScreen(run_dir, step, run_dir.parent.parent)
    pilot.app.push_screen(screen, dismissed.append)
    await wait_until(
        pilot,
        lambda: pilot.app.screen is screen and screen.query_one("#export-out", Input).has_focus,
        what="the export dialog",
    )
    return screen


async def export_to(pilot, screen: ExportScreen, out: Path) -> str:
    """Type the output directory, press enter, wait for the result; the result as drawn, without whitespace
    (where a message holding a path wraps depends on the path's length)."""
    screen.query_one("#export-out", Input).value = str(out)
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.running, what="the export to start")
    await wait_until(pilot, lambda: not screen.running, EXPORT_S, "the export to finish")
    return await wait_for_widget_text(
        pilot, screen.query_one("#export-result"), screen.result_text
    )  # drawn, not just set


def test_adapter_export_loads_with_peft_and_answers_like_the_checkpoint(lora_run, tiny_model_dir, tmp_path, prompts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    dismissed: list = []

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, lora_run, 4, dismissed)
            text = screen_text(app)
            assert "Export checkpoint-4 of train" in text and "Adapter only (PEFT format)" in text
            default = default_output(lora_run.parent.parent, "train", 4, merged=False)
            assert (
                screen.query_one("#export-out", Input).value
                == str(default)
                == str(lora_run.parent.parent / "exports" / "train-checkpoint-4")
            )
            drawn = await export_to(pilot, screen, out)
            assert screen.exported == out, screen.result_text
            assert "exportedcheckpoint-4of" in drawn and "LoRAadapter(PEFTformat)" in drawn
            assert "PeftModel.from_pretrained" in screen.result_text and "Traceback" not in screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: dismissed, what="the dialog to close")
            assert app.failures == []

    run(scenario())
    assert dismissed == [out]
    assert {"adapter_model.safetensors", "adapter_config.json", "tunedeck-export.json"} <= {
        p.name for p in out.iterdir()
    }
    no_leftovers(tmp_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out))
    assert texts(model, out, prompts) == checkpoint_texts(lora_run, 4, prompts)


def test_merged_export_loads_with_transformers_and_answers_like_the_checkpoint(lora_run, tmp_path, prompts):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    dismissed: list = []

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, lora_run, 2, dismissed)
            await pilot.press("shift+tab")  # to the choice, then the second option
            assert screen.query_one(RadioSet).has_focus
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: screen.merge, what="the merged choice")
            # the default output follows the choice
            assert screen.query_one("#export-out", Input).value.endswith("train-checkpoint-2-merged")
            await pilot.press("tab")
            drawn = await export_to(pilot, screen, out)
            assert screen.exported == out, screen.result_text
            assert "mergedmodel(safetensors)" in drawn
            progress = "\n".join(str(line) for line in screen.query_one(Log).lines)
            assert "loading the base model" in progress and "merging checkpoint-2's adapter into the base" in progress
            await pilot.press("escape")
            await wait_until(pilot, lambda: dismissed, what="the dialog to close")

    run(scenario())
    assert dismissed == [out]
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and not any(n.startswith("adapter_") for n in names)
    assert texts(AutoModelForCausalLM.from_pretrained(str(out)), out, prompts) == checkpoint_texts(lora_run, 2, prompts)


def test_a_non_empty_output_shows_the_cli_refusal_and_stays_untouched(lora_run, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    dismissed: list = []

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, lora_run, 4, dismissed)
            drawn = await export_to(pilot, screen, taken)
            assert (
                screen.result_text
                == f"✗ {taken} already exists and is not empty; choose a new output directory or remove it"
            )
            assert "alreadyexistsandisnotempty;chooseanewoutputdirectory" in drawn
            text = screen_text(app)
            assert "Traceback" not in text and "tunedeck: error" not in text and screen.exported is None
            # the user may fix the path and try again: the box is editable and focused
            box = screen.query_one("#export-out", Input)
            assert box.has_focus and not box.disabled
            await pilot.press("escape")
            await wait_until(pilot, lambda: dismissed, what="the dialog to close")

    run(scenario())
    assert dismissed == [None]
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"
    no_leftovers(tmp_path)


def test_escape_while_exporting_asks_then_stops_it_and_writes_nothing(lora_run, tmp_path, monkeypatch):
    out = tmp_path / "stopped"
    dismissed: list = []
    # the export holds with its files written into its temp folder (engine/export/checkpoint_export.py), so the
    # stop lands half-way however fast the machine; nothing ever lets it go on
    monkeypatch.setenv("TUNEDECK_TEST_HOLD_EXPORT_UNTIL", str(tmp_path / "never"))

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, lora_run, 4, dismissed)
            screen.query_one("#export-out", Input).value = str(out)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.running, what="the export to start")
            await wait_until(pilot, lambda: half_written(out), EXPORT_S, "the export to write into its temp folder")
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("n")  # no: it keeps running
            assert screen.running and not dismissed
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: dismissed, 60, "the export to stop and the dialog to close")

    run(scenario())
    assert dismissed == [None]
    assert not out.exists()
    no_leftovers(tmp_path)


def test_quitting_the_app_mid_export_leaves_the_export_running_to_completion(lora_run, tmp_path, monkeypatch):
    out = tmp_path / "detached"
    go_on = tmp_path / "go-on"
    monkeypatch.setenv("TUNEDECK_TEST_HOLD_EXPORT_UNTIL", str(go_on))  # held half-written until the app is gone

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, lora_run, 4, [])
            screen.query_one("#export-out", Input).value = str(out)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.process is not None, what="the export to start")
        return screen.process

    proc = run(scenario())
    assert proc.poll() is None  # the app closed without waiting for it
    go_on.touch()
    wait_for(lambda: proc.poll() is not None, EXPORT_S, what="the export to finish on its own")
    assert (
        proc.returncode == 0
        and (out / "tunedeck-export.json").exists()
        and (out / "adapter_model.safetensors").exists()
    )
    no_leftovers(tmp_path)


def test_a_full_finetuning_run_offers_the_full_model_or_a_gguf(lora_run, tmp_path):
    run_dir = tmp_path / "ws" / "runs" / "full-run"
    run_dir.mkdir(parents=True)
    record = (lora_run / "run.toml").read_text()
    assert 'adapter = "lora"' in record
    (run_dir / "run.toml").write_text(record.replace('adapter = "lora"', 'adapter = "none"'))

    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(pilot, run_dir, 6, [])
            text = screen_text(app)
            assert "Full fine-tuning run: there is no adapter" in text and "Full model (safetensors)" in text
            assert "Adapter only" not in text and "Merged standalone" not in text and "GGUF file for llama.cpp" in text
            assert (screen.kind, screen.merge, screen.gguf) == ("full", False, None)
            assert screen.query_one("#export-out", Input).value == str(
                tmp_path / "ws" / "exports" / "train-checkpoint-6"
            )

    run(scenario())


def test_cli_errors_are_the_cli_lines_or_a_crash_s_last_line():
    assert cli_errors(["loading", "tunedeck: error: OUT is not empty"], 2) == ["OUT is not empty"]
    assert cli_errors(
        ["usage: tunedeck export ...", "tunedeck export: error: the following arguments are required: OUT"], 2
    ) == ["the following arguments are required: OUT"]
    crash = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "OSError: disk full"]
    assert cli_errors(crash, 1) == ["OSError: disk full"]
    assert cli_errors([], -9) == ["the export exited with code -9"]


async def choose_gguf(pilot, screen: ExportScreen, gguf_type: str) -> None:
    """With the keys: the GGUF choice (the last radio button), then the type in its list."""
    await pilot.press("shift+tab")
    assert screen.query_one(RadioSet).has_focus
    await pilot.press("down", "down", "enter")
    await wait_until(pilot, lambda: screen.kind == "gguf" and screen.query_one(Select).display, what="the GGUF choice")
    await pilot.press("tab")
    assert screen.query_one(Select).has_focus
    await pilot.press("enter")  # open the list at the chosen q8_0; the types above it are f16 and bf16
    steps = GGUF_TYPES.index(gguf_type) - GGUF_TYPES.index("q8_0")
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_until(pilot, lambda: screen.gguf == gguf_type, what=f"the type {gguf_type}")


def test_a_gguf_export_shows_the_artifact_gate_and_the_ollama_line(tmp_path_factory, sft_data, tmp_path, monkeypatch):
    run_dir = gguf_run(tmp_path_factory, sft_data)
    monkeypatch.setenv("XDG_CACHE_HOME", str(converter_cache(tmp_path_factory)))  # the export subprocess's cache
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    out = tmp_path / "gguf"
    dismissed: list = []

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(120, 50)) as pilot:
            screen = await open_dialog(pilot, run_dir, STEP, dismissed)
            assert not screen.query_one(Select).display  # types show once GGUF is chosen
            await choose_gguf(pilot, screen, "f16")
            assert screen.query_one("#export-out", Input).value.endswith(f"train-checkpoint-{STEP}-f16")
            await pilot.press("tab")
            screen.query_one("#export-out", Input).value = str(out)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.running, what="the export to start")
            await wait_until(pilot, lambda: not screen.running, GGUF_EXPORT_S, "the export to finish")
            assert screen.exported == out, screen.result_text
            result = screen.result_text
            lines = result.splitlines()
            assert (
                lines[-1] == "artifact gate: pass (within the gate's tolerances)"
                and "answers identical to the gate's" in lines[-2]
            )
            assert f"ollama create train-checkpoint-{STEP}-f16 -f {out / 'Modelfile'}" in result
            progress = "\n".join(str(line) for line in screen.query_one(Log).lines)
            assert "converting to GGUF (f16)" in progress and "artifact gate:" in progress
            assert "Traceback" not in screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: dismissed, what="the dialog to close")

    run(scenario())
    assert dismissed == [out] and (out / f"train-checkpoint-{STEP}-f16.gguf").exists() and (out / "Modelfile").exists()


def test_a_failed_artifact_gate_shows_the_cli_lines_and_the_error(tmp_path_factory, sft_data, tmp_path, monkeypatch):
    import shutil

    source = gguf_run(tmp_path_factory, sft_data)
    run_dir = shutil.copytree(source, tmp_path / "ws" / "runs" / source.name)
    (run_dir / "checkpoints" / f"checkpoint-{STEP}" / "chat_template.jinja").write_text(DRIFTED_TEMPLATE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(converter_cache(tmp_path_factory)))
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    out = tmp_path / "drifted"
    dismissed: list = []

    async def scenario():
        app = make_app(tmp_path / "ws")
        async with app.run_test(size=(120, 50)) as pilot:
            screen = await open_dialog(pilot, run_dir, STEP, dismissed)
            await choose_gguf(pilot, screen, "q8_0")
            screen.query_one("#export-out", Input).value = str(out)
            screen.query_one("#export-out", Input).focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.running, what="the export to start")
            await wait_until(pilot, lambda: not screen.running, GGUF_EXPORT_S, "the export to finish")
            result = screen.result_text
            lines = result.splitlines()
            assert screen.exported is None and screen.query_one("#export-result").has_class("error")
            assert any(ln.startswith("artifact gate FAILED: format validity") for ln in lines), result
            assert "answers identical to the gate's" in result  # the CLI's last lines, as it printed them
            assert lines[-1].startswith("✗ export failed its artifact gate: format validity") and str(out) in lines[-1]
            text = screen_text(app)
            assert "Traceback" not in text and "tunedeck: error" not in text
            # kept and marked; the box offers the next free name for another try
            box = screen.query_one("#export-out", Input)
            assert box.has_focus and not box.disabled and box.value != str(out)
            await pilot.press("escape")
            await wait_until(pilot, lambda: dismissed, what="the dialog to close")

    run(scenario())
    assert dismissed == [None]
    assert (out / "EXPORT-FAILED.txt").exists() and (out / "Modelfile").read_text().startswith(
        "# tunedeck: THIS EXPORT FAILED"
    )
