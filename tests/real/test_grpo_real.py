"""GRPO on SmolLM2-135M-Instruct, the real-model tier: the second stage of the recipe GRPO is for.

SmolLM2 never answers the triage task in JSON zero-shot, so GRPO from the base has nothing to reward.
The session's SFT run (smollm2_lora_run: LoRA on the triage rows) is the first stage; `tunedeck export
--merge` turns its checkpoint into a plain model, and `tunedeck run grpo` trains on other triage prompts
from it, rewarded by json_valid and a python scorer that gives the share of the reference's fields an
answer gets right (a scored check: partial credit, so a group's completions differ). The gate judges the
checkpoint on the golden tickets against the SFT stage as its base. Whether GRPO raises the held-out
score over more steps is measured in BENCHMARKS.md (benchmarks/bench_grpo_real.py); here, the loop on a
real model and its real chat template: rewards per check, live samples, the gate, the reward in its sentence.
"""

from __future__ import annotations

import json

import pytest
from conftest import read_events, tunedeck

pytestmark = [pytest.mark.real, pytest.mark.slow]

STEPS = 4
SCORER = """import json


def fields(output, example):
    try:
        got = json.loads(output.strip())
    except ValueError:
        return 0.0
    if not isinstance(got, dict):
        return 0.0
    want = json.loads(example["reference"])
    return sum(got.get(k) == v for k, v in want.items()) / len(want)
"""


@pytest.fixture(scope="module")
def grpo_real_run(smollm2_merged, triage_data, smollm2_workspace, tmp_path_factory):
    from tunedeck.engine.data import ticket_triage as T
    from tunedeck.engine.data.demo_data import write_jsonl
    from tunedeck.engine.run.store import find_run

    sft_stage = smollm2_merged  # the session's SFT run's checkpoint, merged by the product's export
    root = tmp_path_factory.mktemp("grpo-real")
    (root / "triage_reward.py").write_text(SCORER)
    prompts = write_jsonl(root / "prompts.jsonl", T.tickets(48, seed=7))
    checks = (
        '[{type="json_valid", weight=0.1}, {type="python", scorer="triage_reward:fields", name="fields", weight=1.0}]'
    )
    proc = tunedeck(
        "run",
        "grpo",
        "--data",
        str(prompts),
        f"--set=model.base={json.dumps(str(sft_stage))}",
        f"--set=gate.golden={json.dumps(str(triage_data['golden']))}",
        f"--set=rewards.checks={checks}",
        f"--set=rewards.scorer_dir={json.dumps(str(root))}",
        "--set=method.grpo_num_generations=4",
        "--set=method.grpo_max_completion_length=32",
        "--set=optim.batch_size=8",
        "--set=optim.grad_accum=1",
        f"--set=optim.max_steps={STEPS}",
        f"--set=checkpoints.save_steps={STEPS}",
        "--set=checkpoints.logging_steps=1",
        "--set=optim.learning_rate=1e-4",
        "--set=optim.precision=fp32",
        "--set=optim.gradient_checkpointing=off",
        "--set=data.max_seq_len=256",
        "--set=data.val_fraction=0.0",
        "--set=gate.max_new_tokens=32",
        "--set=gate.batch_size=20",
        "--name",
        "grpo-smollm2",
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return find_run(smollm2_workspace, proc.stdout.strip().splitlines()[0])


def test_grpo_on_smollm2_scores_completions_with_the_checks_and_is_gated(grpo_real_run):
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.store import list_checkpoints, read_effective_status

    assert read_effective_status(grpo_real_run).state == C.COMPLETED
    assert [(c.step, c.complete) for c in list_checkpoints(grpo_real_run)] == [(STEPS, True)]
    events = read_events(grpo_real_run)
    train = [e for e in events if e["kind"] == C.EV_TRAIN]
    assert [e["step"] for e in train] == list(range(1, STEPS + 1))
    for e in train:  # the weighted sum of the checks' rewards, each on 0-1
        assert 0.0 <= e["rewards/fields/mean"] <= 1.0 and 0.0 <= e["rewards/json_valid/mean"] <= 1.0
        assert e["reward"] == pytest.approx(0.1 * e["rewards/json_valid/mean"] + e["rewards/fields/mean"], abs=1e-4)
    # the SFT stage half knows the task: partial credit differs within groups, so GRPO has a signal to follow
    assert any(e["rewards/fields/mean"] > 0 for e in train) and any(e["frac_reward_zero_std"] < 1 for e in train)
    samples = [s for e in events if e["kind"] == C.EV_LIVE_SAMPLES for s in e["samples"]]
    assert samples and all(
        set(s["rewards"]) == {"json_valid", "fields"} and len(s["group_rewards"]) == 4 for s in samples
    )
    gate = json.loads((grpo_real_run / "evals" / "gate.json").read_text())
    assert [r["checkpoint"] for r in gate["rows"]] == ["base", STEPS]  # the SFT stage is the base it is judged against
    assert all(isinstance(r["task"], (int, float)) for r in gate["rows"])
    assert "optimised reward json_valid x0.1 + fields x1: mean" in gate["sentence"]
