"""The playground screen on a real tiny LoRA run, driven with Pilot: a typed prompt gets the base's and
the checkpoint's answers side by side (the same text the models give when loaded here), switching
checkpoints, a bad checkpoint's or a dead engine's one-line reason, and no engine process left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import wait_for
from fixtures.app_harness import make_app, run, screen_text, wait_for_text, wait_until
from fixtures.small_runs import reference
from textual.widgets import Input

from tunedeck.tui.screens.playground import AskLine, PlaygroundScreen
from tunedeck.tui.widgets.exchange import Exchange, visible_text

pytestmark = pytest.mark.slow

LOAD_S = 180  # starting the engine imports torch and loads two models: slow on a busy 2-core machine
ANSWER_S = 120


@pytest.fixture(scope="module")
def lora_run(tiny_lora_run) -> Path:
    return tiny_lora_run  # conftest's, shared with the other app tests


@pytest.fixture(scope="module")
def question(demo_rows) -> list[dict]:
    return demo_rows[-1]["messages"][:-1]  # a system turn and a user turn; the reply is what training taught


async def ready(pilot, screen: PlaygroundScreen) -> None:
    await wait_until(pilot, lambda: screen.client is not None and not screen.busy, LOAD_S, "the playground to load")


async def answer(pilot, screen: PlaygroundScreen, prompt: str) -> Exchange:
    """Type the prompt as a user would, press enter, wait for both answers."""
    before = len(screen.query(Exchange))
    box = screen.query_one("#playground-prompt", Input)
    box.value = prompt
    await pilot.press("enter")
    await wait_until(
        pilot, lambda: len(screen.query(Exchange)) == before + 1 and not screen.busy, ANSWER_S, "both answers"
    )
    return screen.query(Exchange).last()


async def ask_line(pilot, keys: str, value: str) -> None:
    """Open the one-line question behind `keys`, type `value`, press enter."""
    await pilot.press(keys)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, AskLine), what="the question")
    pilot.app.screen.query_one(Input).value = value
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, AskLine), what="the question to close")


def test_a_prompt_gets_both_answers_side_by_side_and_leaving_closes_the_engine(lora_run, question):
    system, user = question[0]["content"], question[1]["content"]
    shown: dict[str, tuple[str, str]] = {}

    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = PlaygroundScreen(lora_run, 2)
            app.push_screen(screen)
            await wait_for_text(pilot, "loading the base model and checkpoint-2…")
            await ready(pilot, screen)
            proc = screen.client._proc
            await wait_for_text(pilot, "checkpoint-2 vs base", "lora · fp32 · cpu", "enter sends the prompt")

            await pilot.press("enter")  # an empty prompt does nothing
            await pilot.pause(0.2)
            assert not screen.query(Exchange) and not screen.busy

            await ask_line(pilot, "ctrl+s", system)
            assert screen.system_prompt == system
            first = await answer(pilot, screen, user)
            shown["checkpoint-2"] = first.texts()
            text = screen_text(app)
            assert "› " + user in text and "system: " + system[:40] in text
            assert "base · gate's system prompt" in text and "checkpoint-2" in text
            assert text.count("new tokens") == 2 and text.count(" ms · ") == 2
            assert screen.query_one("#playground-prompt", Input).value == ""  # sent: the box is empty again

            await ask_line(pilot, "ctrl+o", "4")
            await wait_until(pilot, lambda: screen.client.checkpoint == 4 and not screen.busy, ANSWER_S, "the switch")
            await wait_for_text(pilot, "checkpoint-4 vs base")
            second = await answer(pilot, screen, user)
            shown["checkpoint-4"] = second.texts()
            assert first.texts() == shown["checkpoint-2"]  # the earlier exchange stays, as it was
            assert (
                len(screen.query(Exchange)) == 2
                and "checkpoint-4" in second.query_one(".answer-checkpoint").border_title
            )

            await ask_line(pilot, "ctrl+o", "999")  # a step that does not exist: the old one keeps answering
            await wait_for_text(pilot, "checkpoint-999 does not exist", "still checkpoint-4 vs base")
            assert screen.client.checkpoint == 4 and screen.client.alive

            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, PlaygroundScreen), what="the screen to close")
            await wait_until(pilot, lambda: proc.poll() is not None, 30, "the engine process to exit")
            assert app.failures == []

    run(scenario())
    # loaded here, independently of the playground process: the same greedy text on each side
    base = visible_text(reference(lora_run, None, question))
    assert shown["checkpoint-4"][1] != base  # the two columns differ, so a swap would show
    assert shown["checkpoint-2"] == (base, visible_text(reference(lora_run, 2, question)))
    assert shown["checkpoint-4"] == (base, visible_text(reference(lora_run, 4, question)))


def test_a_bad_checkpoint_or_a_dead_engine_shows_why_in_one_line_and_ctrl_o_starts_again(lora_run, question):
    async def scenario():
        app = make_app(lora_run.parent.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = PlaygroundScreen(lora_run, 999)
            app.push_screen(screen)
            text = await wait_for_text(
                pilot, "✗ checkpoint-999 does not exist", "complete checkpoints: 2, 4", timeout=LOAD_S
            )
            assert "Traceback" not in text and screen.client is None and not screen.busy
            screen.query_one("#playground-prompt", Input).value = "hello"
            await pilot.press("enter")  # nothing to ask: nothing happens
            assert not screen.query(Exchange)

            await ask_line(pilot, "ctrl+o", "latest")  # start again, on a checkpoint that exists
            await wait_for_text(pilot, "loading the base model and the latest checkpoint…")
            await ready(pilot, screen)
            assert screen.client.checkpoint == 4
            exchange = await answer(pilot, screen, question[1]["content"])
            assert all(exchange.texts())

            proc = screen.client._proc
            os.kill(proc.pid, signal.SIGKILL)  # the engine dies (out of memory, say)
            wait_for(lambda: proc.poll() is not None, 30, what="the engine to die")
            exchange = await answer(pilot, screen, "still there?")
            assert exchange.texts() == ("✗ no answer: the model process stopped",) * 2
            text = await wait_for_text(pilot, "✗ the playground process exited (code -9)", "ctrl+o starts it")
            assert "Traceback" not in text and screen.client is None

            await ask_line(pilot, "ctrl+o", "2")
            await ready(pilot, screen)
            assert screen.client.checkpoint == 2
            proc = screen.client._proc
        wait_for(lambda: proc.poll() is not None, 30, what="the engine process to exit with the app")
        assert app.failures == []

    run(scenario())


def test_control_characters_in_an_answer_are_shown_not_dropped():
    assert visible_text("a\x0bb\x00c\x7f") == "a␋b␀c␡"
    assert visible_text("line one\n\tline two") == "line one\n\tline two"
