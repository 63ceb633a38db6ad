"""Live samples: the model's answers to fixed held-out prompts after each evaluation, shown in the monitor."""

from __future__ import annotations

import pytest
from conftest import read_events, tunedeck
from fixtures.app_harness import COMPLETED, append_events, copy_workspace, make_app, run, screen_text, wait_until

from tunedeck.engine.run import contract as C
from tunedeck.engine.training.live_samples import LiveSampler, pick_prompts, prompt_of
from tunedeck.tui.widgets.live_samples import LiveSamples, render_samples


def chat(q: str, a: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": q},
        {"role": "assistant", "content": a},
    ]
    return {"messages": msgs}


def test_prompts_come_from_every_layout_with_an_answer():
    p = prompt_of(chat("q", "a", system="sys"))
    assert p.prompt == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}] and p.reference == "a"
    pair = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    assert prompt_of(pair).reference == "good"
    assert (
        prompt_of({"prompt": "q", "completion": "a", "label": False}) is None
    )  # an undesirable answer is no reference
    assert prompt_of({"prompt": "q", "completion": "a"}).reference == "a"
    assert prompt_of({"text": "plain"}) is None
    rows = [{"text": "x"}, chat("q1", "a1"), chat("q2", " "), chat("q3", "a3"), chat("q4", "a4")]
    assert [p.reference for p in pick_prompts(rows, 2)] == ["a1", "a3"]


def test_a_failing_generation_is_one_warning_and_several_processes_skip():
    class Events:
        emitted: list = []

        def emit(self, kind, **f):
            self.emitted.append({"kind": kind, **f})

    events = Events()
    sampler = LiveSampler(pick_prompts([chat("q", "a")], 1))
    sampler.sample(object(), object(), 5, events)  # not a model: generation fails
    sampler.sample(object(), object(), 10, events)
    assert [e["code"] for e in events.emitted] == ["live_samples_failed"]
    other = LiveSampler(pick_prompts([chat("q", "a")], 1))
    other.sample(object(), object(), 5, events, world_size=2)
    assert events.emitted[-1]["code"] == "live_samples_skipped"


def test_the_pane_shows_the_newest_and_steps_back():
    sets = [
        {"step": 10, "samples": [{"prompt": "q", "reference": "r", "output": "old answer"}]},
        {"step": 20, "samples": [{"prompt": "q", "reference": "r", "output": "new answer"}]},
    ]
    newest = render_samples(sets).plain
    assert "step 20 · newest" in newest and "now new answer" in newest and "ref r" in newest
    assert "step 10 · 1 evaluation earlier" in render_samples(sets, 1).plain
    assert "newest" in render_samples(sets, 2).plain  # round to the newest


def test_the_monitor_shows_live_samples_and_v_steps_back(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))
    run_dir = ws / "runs" / COMPLETED
    append_events(
        run_dir,
        {
            "kind": C.EV_LIVE_SAMPLES,
            "step": 100,
            "samples": [{"prompt": "Extract: Ada, 36", "reference": '{"name": "Ada"}', "output": "Ada is 36"}],
        },
        {
            "kind": C.EV_LIVE_SAMPLES,
            "step": 200,
            "samples": [
                {"prompt": "Extract: Ada, 36", "reference": '{"name": "Ada"}', "output": '{"name": "Ada", "age": 36}'}
            ],
        },
    )

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(140, 45)) as pilot:
            app.open_run_by_id(COMPLETED)
            await wait_until(
                pilot,
                lambda: app.screen.query(LiveSamples) and app.screen.query_one(LiveSamples).display,
                what="the live samples",
            )
            pane = app.screen.query_one(LiveSamples)
            assert "step 200 · newest" in render_samples(pane.sets).plain
            await wait_until(pilot, lambda: "step 200" in screen_text(app), what="the pane drawn")
            await pilot.press("v")
            await wait_until(
                pilot, lambda: pane.back == 1 and "step 100" in screen_text(app), what="the earlier samples"
            )

    run(go())


@pytest.mark.slow
def test_the_engine_samples_after_each_evaluation(workspace, tiny_model_dir, sft_data):
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=2",
        "--set",
        "checkpoints.eval_steps=1",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "checkpoints.sample_prompts=2",
        check=True,
    )
    events = read_events(workspace / "runs" / proc.stdout.split()[0])
    samples = [e for e in events if e["kind"] == C.EV_LIVE_SAMPLES]
    evals = [e["step"] for e in events if e["kind"] == C.EV_EVAL]
    assert [e["step"] for e in samples] == evals == [1, 2]
    assert [s["prompt"] for s in samples[0]["samples"]] == [s["prompt"] for s in samples[1]["samples"]]  # fixed prompts
    assert len(samples[0]["samples"]) == 2 and all(0 < s["new_tokens"] <= 64 for s in samples[1]["samples"])
    assert all(s["reference"].startswith("{") for s in samples[0]["samples"])
    assert not [e for e in events if e.get("code", "").startswith("live_samples")]
