"""A multi-turn playground: each model continues its own conversation; ctrl+n starts afresh."""

from __future__ import annotations

import pytest
from fixtures.app_harness import COMPLETED, copy_workspace, make_app, run, wait_until
from textual.widgets import Input

from tunedeck.engine.gate.playground import RequestError, parse_request
from tunedeck.tui.screens.playground import PlaygroundScreen
from tunedeck.tui.widgets.exchange import Exchange


class FakeClient:
    """Answers like the engine's playground process, numbering its answers; records what it was sent."""

    checkpoint, info, alive = 4, {}, True

    def __init__(self) -> None:
        self.sent: list[tuple[list, list]] = []

    def ask(self, messages, max_new_tokens=None, timeout=None, base_messages=None):
        self.sent.append((messages, base_messages))
        n = len(self.sent)
        return {
            "step": 4,
            "base": {"text": f"base answer {n}", "latency_ms": 1.0, "new_tokens": 3},
            "checkpoint": {"text": f"tuned answer {n}", "latency_ms": 1.0, "new_tokens": 3},
        }

    def close(self, grace=None) -> None:
        pass


class FakePlayground(PlaygroundScreen):
    def start_engine(self, checkpoint) -> None:
        self.post_message(PlaygroundScreen.Ready(self.fake))


def test_base_messages_are_checked_like_messages():
    req = parse_request(
        '{"id": 1, "messages": [{"role": "user", "content": "q"}], '
        '"base_messages": [{"role": "user", "content": "q"}]}',
        32,
    )
    assert req["base_messages"] == [{"role": "user", "content": "q"}]
    with pytest.raises(RequestError, match='"base_messages" must be'):
        parse_request('{"id": 1, "messages": [{"role": "user", "content": "q"}], "base_messages": []}', 32)


def test_each_model_continues_its_own_conversation_until_ctrl_n(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))
    client = FakeClient()

    async def ask(pilot, screen, prompt):
        n = len(screen.query(Exchange))
        screen.query_one("#playground-prompt", Input).value = prompt
        screen.query_one("#playground-prompt", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.query(Exchange)) == n + 1 and not screen.busy, what="the answers")

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = FakePlayground(ws / "runs" / COMPLETED)
            screen.fake = client
            app.push_screen(screen)
            await wait_until(pilot, lambda: screen.client is client and not screen.busy, what="ready")
            await ask(pilot, screen, "first question")
            await ask(pilot, screen, "and then?")
            mine, base = client.sent[1]
            assert [m["content"] for m in mine] == ["first question", "tuned answer 1", "and then?"]
            assert [m["content"] for m in base] == ["first question", "base answer 1", "and then?"]
            assert screen.query(Exchange)[1].turn == 2
            await pilot.press("ctrl+n")
            await ask(pilot, screen, "fresh")
            assert [m["content"] for m in client.sent[2][0]] == ["fresh"]

    run(go())
