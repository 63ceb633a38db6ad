"""GRPO for real on CPU: a tiny model through the detached engine, with checkpoints, a kill and resume, the
gate at every checkpoint, and the reward guard's alert on a reward that can be gamed.

The planted case: a tiny base model taught to answer about a third of its prompts with `{}` and the rest
with a sentence. Rewarded by json_valid alone, which `{}` satisfies, GRPO learns to answer `{}` to
everything within a few steps: the reward climbs, the held-out task (exact JSON answers) stays at zero,
and the guard must say so instead of the run shipping a checkpoint that games its reward.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import kill_engines, read_events, tunedeck
from fixtures.planted_models import plant_braces

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status

pytestmark = pytest.mark.slow

STEPS, SAVE = 8, 4


@pytest.fixture(scope="module")
def planted_base(tmp_path_factory, tiny_model_dir) -> Path:
    from tunedeck.engine.data.demo_data import make_rows

    return plant_braces(tiny_model_dir, tmp_path_factory.mktemp("planted"), make_rows(200, seed=3))


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory, planted_base):
    """One GRPO run, killed inside its last save and resumed: (run dir, the first command, the resume)."""
    from tunedeck.engine.data.demo_data import make_rows, write_jsonl

    root = tmp_path_factory.mktemp("grpo")
    ws = root / "ws"
    data = write_jsonl(root / "prompts.jsonl", make_rows(48, seed=11))
    env = {"TUNEDECK_WORKSPACE": str(ws)}
    args = [
        "run",
        "grpo",
        "--data",
        str(data),
        "--set",
        f"model.base={json.dumps(str(planted_base))}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "method.grpo_num_generations=4",
        "--set",
        "method.grpo_max_completion_length=12",
        "--set",
        f"optim.max_steps={STEPS}",
        "--set",
        f"checkpoints.save_steps={SAVE}",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        "optim.learning_rate=2e-3",
        "--set",
        "gate.max_new_tokens=12",
        "--set",
        'rewards.checks=[{type="json_valid", weight=1.0}]',
        "--set",
        'notify.command="echo $TUNEDECK_ALERT >> alerts.txt"',
        "--set",
        'tracking.report_to=["tensorboard"]',
    ]
    first = tunedeck(*args, env={**env, "TUNEDECK_TEST_KILL_IN_SAVE_AT_STEP": str(STEPS)}, timeout=900)
    run = find_run(ws, first.stdout.strip().splitlines()[0])
    resumed = tunedeck("resume", run.name, env=env, timeout=900)
    yield run, first, resumed
    kill_engines(ws)  # a failed test must not leave a detached engine training behind


def test_grpo_trains_checkpoints_resumes_and_is_gated_with_rewards_from_the_checks(grpo_run):
    run, first, resumed = grpo_run
    assert "training: 8 steps" in first.stdout and "reward" in first.stdout
    assert "resumed from step 4" in resumed.stdout, resumed.stdout + resumed.stderr
    assert read_effective_status(run).state == C.COMPLETED
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(4, True), (8, True)]
    assert (run / "checkpoints/checkpoint-8/adapter_model.safetensors").exists()
    events = read_events(run)
    train = {e["step"]: e for e in events if e["kind"] == C.EV_TRAIN}
    assert sorted(train) == list(range(1, STEPS + 1))
    for e in train.values():  # each check's mean and spread, the clipped share, the completion statistics
        assert {
            "reward",
            "reward_std",
            "rewards/json_valid/mean",
            "rewards/json_valid/std",
            "completions/clipped_ratio",
            "completions/mean_length",
            "completions/near_empty_ratio",
        } <= set(e)
        assert e["reward"] == pytest.approx(e["rewards/json_valid/mean"])
    assert "kl" not in train[1]  # beta 0: TRL computes no KL
    samples = [e for e in events if e["kind"] == C.EV_LIVE_SAMPLES]
    assert samples and all(
        isinstance(s["rewards"]["json_valid"], float) and len(s["group_rewards"]) == 4
        for e in samples
        for s in e["samples"]
    )
    assert all(
        s["rewards"]["json_valid"] == (1.0 if _is_json(s["output"]) else 0.0) for e in samples for s in e["samples"]
    )
    gate = json.loads((run / "evals" / "gate.json").read_text())
    assert [r["checkpoint"] for r in gate["rows"]] == ["base", 4, 8]  # judged like SFT checkpoints, each at its save
    assert "optimised reward json_valid x1: mean" in gate["sentence"]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return bool(text.strip())
    except ValueError:
        return False


def test_a_gameable_reward_raises_the_alert_and_no_checkpoint_ships(grpo_run):
    run, _, _ = grpo_run
    events = read_events(run)
    train = [e for e in events if e["kind"] == C.EV_TRAIN]
    assert train[-1]["reward"] >= train[0]["reward"] + 0.3  # the policy learnt to please json_valid
    alerts = [e for e in events if e["kind"] == C.EV_WARNING and e.get("code") in C.REWARD_ALERTS]
    codes = [a["code"] for a in alerts]
    assert C.REWARD_HACKING in codes, [e.get("message") for e in events if e["kind"] == C.EV_WARNING]
    assert len(codes) == len(set(codes))  # each alert once, also across the resume
    hacking = next(a for a in alerts if a["code"] == C.REWARD_HACKING)
    assert "while the held-out task score did not" in hacking["message"] and hacking["step"] in (4, 8)
    gate = json.loads((run / "evals" / "gate.json").read_text())
    assert gate["verdict"] == "fail" and all(r["verdict"] == "fail" for r in gate["rows"] if r["checkpoint"] != "base")
    assert "reward guard: reward hacking at step" in gate["sentence"]
    notified = (run / "alerts.txt").read_text().split()
    assert C.REWARD_HACKING in notified  # through the [notify] command, with TUNEDECK_ALERT


def test_the_trackers_get_the_rewards_as_they_get_the_losses(grpo_run):
    pytest.importorskip("tensorboard")
    from fixtures.tracker_files import tensorboard_scalars

    run, _, _ = grpo_run
    tb = tensorboard_scalars(run / "tensorboard")
    for tag in (
        "train/loss",
        "train/reward",
        "train/rewards/json_valid/mean",
        "train/completions/clipped_ratio",
        "train/completions/near_empty_ratio",
    ):
        assert tag in tb and max(tb[tag]) == STEPS, tag


def test_the_monitor_shows_rewards_per_check_alerts_and_completions_with_rewards(grpo_run, tmp_path):
    from fixtures.app_harness import make_app, wait_for_text, wait_until
    from fixtures.app_harness import run as run_async

    from tunedeck.tui.screens.monitor import RunMonitorScreen
    from tunedeck.tui.widgets.live_samples import LiveSamples, render_samples
    from tunedeck.tui.widgets.rewards_pane import RewardsPane

    run, _, _ = grpo_run
    ws = tmp_path / "ws"
    shutil.copytree(run, ws / "runs" / run.name, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))

    async def scenario():
        app = make_app(ws, open_run=run.name)
        async with app.run_test(size=(150, 50)) as pilot:
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, RunMonitorScreen) and app.screen.history.caught_up,
                what="the monitor",
            )
            await wait_for_text(pilot, "Rewards", " json_valid", "clipped")
            pane = app.screen.query_one(RewardsPane)
            text = "\n".join(line.plain for line in pane.lines())
            assert pane.display and "! reward hacking at step" in text
            assert app.screen.query_one(LiveSamples).display
            assert "(json_valid " in render_samples(app.screen.history.live_samples).plain

    run_async(scenario())
