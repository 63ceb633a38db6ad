"""The playground process and its client against real tiny runs: both answers, switching, bad lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from fixtures.small_runs import reference

pytestmark = pytest.mark.slow

MAX_NEW = 16


@pytest.fixture(scope="module")
def lora_run(small_lora_run) -> Path:
    return small_lora_run  # conftest's: 6 steps, checkpoints 3 and 6, the base asked with the demo's system prompt


@pytest.fixture(scope="module")
def client(lora_run):
    from tunedeck.engine.gate.playground import PlaygroundClient

    c = PlaygroundClient(lora_run, 3)
    c.start()
    yield c
    c.close()


@pytest.fixture(scope="module")
def question(demo_rows) -> list[dict]:
    return demo_rows[-1]["messages"][:-1]


def test_the_client_module_does_not_import_torch():
    code = (
        "import sys, tunedeck.engine.gate.playground; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), check=True)
    assert out.stdout.strip() == "[]"


def test_ask_returns_both_answers_side_by_side(client, lora_run, question):
    assert client.checkpoint == 3 and client.info["adapter"] == "lora"
    reply = client.ask(question, max_new_tokens=MAX_NEW)
    assert "error" not in reply, reply
    assert reply["step"] == 3
    for side in ("base", "checkpoint"):
        assert set(reply[side]) == {"text", "latency_ms", "new_tokens"}
        assert 0 < reply[side]["new_tokens"] <= MAX_NEW and reply[side]["latency_ms"] > 0
    assert reply["checkpoint"]["text"] == reference(lora_run, 3, question)
    assert reply["base"]["text"] == reference(lora_run, None, question)  # the base with [gate] base_system_prompt


def test_switch_changes_the_checkpoint_and_a_bad_switch_changes_nothing(client, lora_run, question):
    from tunedeck.engine.gate.playground import PlaygroundError

    assert client.switch(6) == 6
    reply = client.ask(question, max_new_tokens=MAX_NEW)
    assert reply["step"] == 6 and reply["checkpoint"]["text"] == reference(lora_run, 6, question)
    with pytest.raises(PlaygroundError, match="checkpoint-999 does not exist"):
        client.switch(999)
    assert client.checkpoint == 6 and client.ask(question, max_new_tokens=MAX_NEW)["step"] == 6
    assert client.switch(3) == 3 and client.switch(3) == 3  # switching to the active one is a no-op


def test_malformed_requests_get_error_lines_and_the_process_keeps_serving(client, question):
    client._send("this is not JSON")
    reply = client._await(lambda r: r.get("id") is None, 60, "to answer")
    assert "not a JSON line" in reply["error"]
    bad = client.ask([{"role": "user"}])
    assert "messages" in bad["error"] and isinstance(bad["id"], int)
    assert "max_new_tokens" in client.ask(question, max_new_tokens=0)["error"]
    assert "unknown cmd" in client.request({"cmd": "reload"})["error"]
    assert client.alive and "error" not in client.ask(question, max_new_tokens=4)


def test_a_wrong_checkpoint_fails_start_with_its_reason(lora_run):
    from tunedeck.engine.gate.playground import PlaygroundClient, PlaygroundError

    c = PlaygroundClient(lora_run, 999)
    with pytest.raises(PlaygroundError, match=r"checkpoint-999 does not exist.*complete checkpoints: 3, 6"):
        c.start(timeout=120)
    assert not c.alive


def test_full_finetune_run_answers_from_a_separate_copy_of_the_base(small_full_run, question):
    from tunedeck.engine.gate.playground import PlaygroundClient

    run = small_full_run
    with PlaygroundClient(run, "latest") as c:
        assert c.checkpoint == 6
        reply = c.ask(question, max_new_tokens=MAX_NEW)
        assert reply["checkpoint"]["text"] == reference(run, 6, question)
        assert reply["base"]["text"] == reference(run, None, question)  # the checkpoint's weights did not leak into it
        assert c.switch(3) == 3
        assert c.ask(question, max_new_tokens=MAX_NEW)["checkpoint"]["text"] == reference(run, 3, question)
        proc = c._proc
    assert proc.returncode == 0  # EOF on stdin: a clean exit
    assert (run / "playground.log").exists()


def test_a_closed_client_never_starts_a_process(tmp_path):
    from tunedeck.engine.gate.playground import PlaygroundClient, PlaygroundError

    client = PlaygroundClient(tmp_path)
    client.close()  # the screen left before the worker got to start()
    with pytest.raises(PlaygroundError, match="closed"):
        client.start()
    assert not client.alive
