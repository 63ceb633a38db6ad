"""GRPO's rewards, data, guard and monitor pieces without a model: rewards come from the gate's check registry."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import read_events, tunedeck

from tunedeck.engine.gate.check_spec import Context
from tunedeck.engine.gate.checks import parse_check
from tunedeck.engine.gate.rewards import RewardError, RewardSpecError, parse_reward_checks, reward_functions
from tunedeck.engine.run import contract as C

JSON_REF = json.dumps({"name": "Ana", "age": 31})
PROMPT = [{"role": "user", "content": "Ana, 31"}]


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# A planted prompt set: each completion's reward under each check is known by construction.
PLANTED = [
    # completion, reference, {check: expected reward}
    (
        '{"name": "Ana", "age": 31}',
        JSON_REF,
        {"json_valid": 1.0, "json_equal": 1.0, "regex": 1.0, "short": 1.0, "mentions": 1.0},
    ),
    (
        '{"age": 31, "name": "Ana"}',
        JSON_REF,
        {"json_valid": 1.0, "json_equal": 1.0, "regex": 1.0, "short": 1.0, "mentions": 1.0},
    ),
    ("{}", JSON_REF, {"json_valid": 1.0, "json_equal": 0.0, "regex": 1.0, "short": 1.0, "mentions": 0.0}),
    (
        "Ana is 31 years old and lives far away",
        JSON_REF,
        {"json_valid": 0.0, "json_equal": 0.0, "regex": 0.0, "short": 0.0, "mentions": 1.0},
    ),
    ("", JSON_REF, {"json_valid": 0.0, "json_equal": 0.0, "regex": 0.0, "short": 1.0, "mentions": 0.0}),
]
SPECS = [
    {"type": "json_valid", "weight": 0.2},
    {"type": "json_equal", "weight": 1.0},
    {"type": "regex", "pattern": r"^\{.*\}$", "weight": 0.1},
    {"type": "max_length", "words": 5, "name": "short", "weight": 0.1},
    {"type": "contains", "value": "Ana", "name": "mentions", "weight": 0.5},
]


def test_rewards_on_a_planted_prompt_set_are_the_gate_checks_verdicts():
    checks = parse_reward_checks(SPECS)
    funcs, weights = reward_functions(checks)
    assert [f.__name__ for f in funcs] == ["json_valid", "json_equal", "regex", "short", "mentions"]
    assert weights == [0.2, 1.0, 0.1, 0.1, 0.5]
    completions = [chat(c) for c, _, _ in PLANTED]
    refs = [r for _, r, _ in PLANTED]
    for f in funcs:
        got = f(
            prompts=[PROMPT] * len(PLANTED),
            completions=completions,
            completion_ids=[[1]] * len(PLANTED),
            reference=refs,
        )
        assert got == [want[f.__name__] for _, _, want in PLANTED], f.__name__
    # one registry: the gate's own parse and run of the same spec agree with every reward
    for (text, ref, want), spec in [(p, s) for p in PLANTED for s in SPECS]:
        gate_spec = {k: v for k, v in spec.items() if k not in ("weight", "name")}
        result = parse_check(gate_spec, reference=ref)(text, Context(reference=ref))
        assert result.passed == (want[spec.get("name") or spec["type"]] == 1.0)


def test_a_scored_check_gives_its_score_on_zero_to_one():
    (chrf,) = parse_reward_checks([{"type": "chrf"}])
    ref = "Ana is a nurse in Lisbon, aged 31."
    gate = parse_check({"type": "chrf"}, reference=ref)
    for text in (ref, "Ana is a nurse in Porto.", "zzz"):
        value = chrf.value(text, ref, {})
        assert value == pytest.approx(gate(text, Context(reference=ref)).score / 100)
    assert chrf.value(ref, ref, {}) == pytest.approx(1.0)
    assert 0.0 < chrf.value("Ana is a nurse in Porto.", ref, {}) < 1.0


@pytest.fixture
def scorers(tmp_path):
    (tmp_path / "grpo_scorers_td.py").write_text(
        textwrap.dedent("""
        def half(output, example):
            return 0.5 if output else 0.0
        def graded(output, example):
            return {"pass": True, "score": 0.25, "reason": "a quarter"}
        def polite(output, example):
            return "please" in output
        def broken(output, example):
            return {}["missing"]
        def garbage(output, example):
            return "yes"
        def out_of_range(output, example):
            return 3.0
    """)
    )
    return tmp_path


def test_python_scorers_give_their_score_or_one_and_zero(scorers):
    checks = parse_reward_checks(
        [
            {"type": "python", "scorer": "grpo_scorers_td:half", "name": "half"},
            {"type": "python", "scorer": "grpo_scorers_td:graded", "name": "graded"},
            {"type": "python", "scorer": "grpo_scorers_td:polite", "name": "polite"},
        ],
        base_dir=scorers,
    )
    half, graded, polite = checks
    assert half.value("x", None, {}) == 0.5 and half.value("", None, {}) == 0.0
    assert graded.value("x", None, {}) == 0.25
    assert polite.value("please", None, {}) == 1.0 and polite.value("no", None, {}) == 0.0
    # the gate reads the same scorer: a bare score passes at min 0.5
    gate = parse_check({"type": "python", "scorer": "grpo_scorers_td:half"}, base_dir=scorers)
    assert gate("x", Context()).passed is True and gate("x", Context()).score == 0.5


@pytest.mark.parametrize(
    "fn,message",
    [
        ("broken", "reward broken: python scorer grpo_scorers_td:broken raised KeyError: 'missing'"),
        ("garbage", "reward garbage: scorer grpo_scorers_td:garbage returned str, not a bool"),
        (
            "out_of_range",
            "reward out_of_range: scorer grpo_scorers_td:out_of_range returned the score 3.0; "
            "a score is a number from 0 to 1",
        ),
    ],
)
def test_a_python_scorer_that_fails_or_returns_garbage_is_an_error_naming_it(scorers, fn, message):
    (check,) = parse_reward_checks(
        [{"type": "python", "scorer": f"grpo_scorers_td:{fn}", "name": fn}], base_dir=scorers
    )
    (func,), _ = reward_functions([check])
    with pytest.raises(RewardError) as e:
        func(prompts=[PROMPT], completions=[chat("x")], completion_ids=[[1]], reference=[None])
    assert str(e.value) == message
    # the gate keeps scoring such an example as a failure with the same reason
    gate = parse_check({"type": "python", "scorer": f"grpo_scorers_td:{fn}"}, base_dir=scorers)
    assert gate("x", Context()).passed is False


@pytest.mark.parametrize(
    "items,message",
    [
        (
            [{"type": "jsn_valid"}],
            "rewards.checks[0].type: unknown check type 'jsn_valid' (did you mean 'json_valid'?)",
        ),
        ([{"type": "regex", "pattern": "("}], "rewards.checks[0].pattern: invalid regular expression '('"),
        (
            [{"type": "json_valid", "wieght": 1}],
            "rewards.checks[0].wieght: unknown option 'wieght' (did you mean 'weight'?)",
        ),
        (
            [{"type": "regex", "pattern": "a"}, {"type": "regex", "pattern": "b"}],
            "rewards.checks[1].name: two reward checks are named 'regex'",
        ),
        ([{"type": "json_valid", "weight": 0}], "rewards.checks: every weight is 0"),
        (
            [{"type": "max_length"}],
            "rewards.checks[0].chars: a max_length check needs 'chars', 'words' and/or 'tokens'",
        ),
        (
            [{"type": "rubric", "rubric": "polite"}],
            "rewards.checks[0]: a rubric reward needs a judge: set gate.judge_url",
        ),
        ([], "GRPO needs at least one reward check"),
    ],
)
def test_reward_specs_are_checked_by_the_registry(items, message):
    with pytest.raises(RewardSpecError) as e:
        parse_reward_checks(items)
    assert message in str(e.value)


def test_a_reference_check_on_a_row_without_reference_is_an_error_not_a_zero():
    (check,) = parse_reward_checks([{"type": "json_equal"}])
    assert check.needs_reference
    with pytest.raises(RewardError, match="compares with a reference answer, and this prompt has none"):
        check.value("{}", None, {})
    with pytest.raises(RewardError, match="json_equal: the reference is not valid JSON"):
        check.value("{}", "not json", {})


# ---- the profile and pre-flight --------------------------------------------------------------------


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prompts(n: int = 12, reference: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"Person {i}, {20 + i}"}]
        if reference:
            msgs.append({"role": "assistant", "content": json.dumps({"n": i})})
        rows.append({"messages": msgs})
    return rows


def test_a_bad_reward_check_stops_the_launch_naming_the_profile_file_line_and_key(tmp_path, workspace):
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts())
    profile = tmp_path / "mine.toml"
    profile.write_text('extends = "grpo"\n\n[rewards]\nchecks = [{type = "regex", pattern = "(", weight = 1.0}]\n')
    proc = tunedeck("run", str(profile), "--data", str(data), "--set", "model.base=/nonexistent/model")
    assert proc.returncode == 2
    assert f"{profile}:4: rewards.checks[0].pattern: invalid regular expression" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(workspace.glob("runs/*"))  # no run directory was made
    proc = tunedeck(
        "run",
        "grpo",
        "--data",
        str(data),
        "--set",
        "model.base=/nonexistent/model",
        "--set",
        'rewards.checks=[{type="jsn_valid"}]',
    )
    assert proc.returncode == 2 and "--set: rewards.checks[0].type: unknown check type 'jsn_valid'" in proc.stderr


def test_a_reference_check_on_prompts_without_references_stops_the_launch_with_their_lines(tmp_path, workspace):
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts(reference=False))
    proc = tunedeck("run", "grpo", "--data", str(data), "--set", "model.base=/nonexistent/model")
    assert proc.returncode == 2
    assert (
        "reward json_equal (json_equal) compares each completion with the prompt's reference answer, but" in proc.stderr
    )
    assert f"{data}:1" in proc.stderr or f"{data}:2" in proc.stderr


def test_num_generations_must_divide_the_completions_of_a_step(tmp_path, workspace):
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts())
    proc = tunedeck(
        "run",
        "grpo",
        "--data",
        str(data),
        "--set",
        "model.base=/nonexistent/model",
        "--set",
        "optim.batch_size=3",
        "--set",
        "optim.grad_accum=1",
    )
    assert proc.returncode == 2
    assert "method.grpo_num_generations = 8 must divide the completions of one optimiser step" in proc.stderr


def test_the_checks_shape_is_checked_when_the_profile_loads(tmp_path):
    from tunedeck.engine.config.profile_loading import ProfileError, load_profile

    profile = tmp_path / "p.toml"
    profile.write_text('extends = "grpo"\n[rewards]\nchecks = ["json_valid"]\n')
    with pytest.raises(ProfileError) as e:
        load_profile(profile)
    assert str(e.value).startswith(f"{profile}:3: 'rewards.checks' must be a list of tables")
    loaded = load_profile("grpo")
    assert loaded.method.method == "grpo" and loaded.rewards.checks[1] == {"type": "json_equal", "weight": 1.0}


# ---- GRPO's data --------------------------------------------------------------------------------


def test_grpo_reads_prompts_with_optional_references_from_every_prompt_layout(tmp_path):
    from tunedeck.engine.data.dataset import DatasetError, load_dataset

    rows = [
        {
            "messages": [
                {"role": "system", "content": "JSON."},
                {"role": "user", "content": "Ana"},
                {"role": "assistant", "content": "{}"},
            ]
        },
        {"messages": [{"role": "user", "content": "Bo"}]},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "chat.jsonl", rows), method="grpo")
    assert ds.rows == [{"prompt": rows[0]["messages"][:2], "completion": chat("{}")}, {"prompt": rows[1]["messages"]}]
    ds = load_dataset(
        write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Say hi"}, {"prompt": "Say hi", "completion": "hi"}]),
        method="grpo",
    )
    assert ds.format == "prompt_completion" and ds.rows == [
        {"prompt": "Say hi"},
        {"prompt": "Say hi", "completion": "hi"},
    ]
    ds = load_dataset(
        write_jsonl(
            tmp_path / "alpaca.jsonl",
            [{"instruction": "Add", "input": "1 2"}, {"instruction": "Add", "input": "1 2", "output": "3"}],
        ),
        method="grpo",
    )
    assert ds.rows[0] == {"prompt": [{"role": "user", "content": "Add\n\n1 2"}]} and ds.rows[1]["completion"] == chat(
        "3"
    )
    bad = load_dataset(
        write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "assistant", "content": "x"}]}]), method="grpo"
    )
    assert [(p.line, p.category) for p in bad.problems] == [(1, "prompt_end")]
    with pytest.raises(DatasetError, match="GRPO needs prompts .*plain text has no prompt to answer"):
        load_dataset(write_jsonl(tmp_path / "text.jsonl", [{"text": "hello"}]), method="grpo")
    sft = load_dataset(tmp_path / "pc.jsonl", method="sft")
    assert "prompts without answers are GRPO data (method grpo)" in sft.problems[0].message


def test_inspect_says_what_grpo_will_see(tmp_path):
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts(6) + prompts(2, reference=False))
    report = json.loads(tunedeck("inspect", str(data), "--method", "grpo", "--json").stdout)
    assert report["method"] == "grpo" and report["tokens"] is None
    g = report["grpo"]
    assert (g["prompts"], g["with_reference"], g["json_references"], g["no_reference_lines"]) == (8, 6, 6, [7, 8])
    text = tunedeck("inspect", str(data), "--method", "grpo").stdout
    assert (
        "GRPO: 8 prompts; 6 with a reference answer (6 JSON)" in text
        and "2 prompts without a reference (lines 7, 8)" in text
    )


# ---- the guard ----------------------------------------------------------------------------------


def guard(windows: int = 4):
    from tunedeck.engine.training.reward_guard import RewardGuard

    return RewardGuard(windows, 1.0, "json_valid x1")


def test_reward_rising_while_the_held_out_task_does_not_is_reward_hacking():
    g = guard()
    g.add_task("base", 10.0)
    for step, reward in enumerate([0.2, 0.3, 0.8, 0.9], 1):
        assert g.add_window(step, {"reward": reward}) == []
    (alert,) = g.add_task(4, 10.0)
    assert alert.code == C.REWARD_HACKING and alert.step == 4
    assert "rose from 0.25 (steps 1-2) to 0.85 (steps 3-4)" in alert.message
    assert "10.0% for the base model, 10.0% for checkpoint-4" in alert.message
    assert g.add_task(8, 5.0) == []  # raised once per run


def test_no_alert_when_the_task_rises_with_the_reward_or_the_reward_is_flat():
    g = guard()
    g.add_task("base", 10.0)
    for step, reward in enumerate([0.2, 0.3, 0.8, 0.9], 1):
        g.add_window(step, {"reward": reward})
    assert g.add_task(4, 30.0) == []
    flat = guard()
    flat.add_task("base", 10.0)
    for step in range(1, 5):
        flat.add_window(step, {"reward": 0.5})
    assert flat.add_task(4, 0.0) == []
    few = guard()
    few.add_task("base", 10.0)
    few.add_window(1, {"reward": 0.1})
    few.add_window(2, {"reward": 0.9})
    assert few.add_task(2, 0.0) == []  # fewer than guard_windows windows since the base: not judged yet


def test_completions_collapsing_to_one_text_is_an_alert_once_but_a_model_that_always_did_is_not():
    g = guard()
    assert g.add_window(1, {"reward": 0.1, "completions/identical_share": 0.1}) == []
    assert g.add_window(2, {"reward": 0.5, "completions/identical_share": 0.9}) == []  # one window is not a trend
    (alert,) = g.add_window(3, {"reward": 0.9, "completions/identical_share": 1.0})
    assert alert.code == C.COMPLETION_COLLAPSE and "same text as a completion of another prompt" in alert.message
    assert "steps 2-3" in alert.message and "against 10% at step 1" in alert.message
    assert g.add_window(4, {"reward": 0.9, "completions/identical_share": 1.0}) == []
    always = guard()
    for step in range(1, 5):
        assert always.add_window(step, {"reward": 0.2, "completions/clipped_ratio": 1.0}) == []  # a base that rambles


def test_the_guard_remembers_a_resumed_run_from_its_events():
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.run.reward_history import history_from_events
    from tunedeck.engine.training.reward_guard import RewardGuard

    events = [
        {"kind": C.EV_TRAIN, "step": s, "reward": r} for s, r in [(1, 0.1), (2, 0.2), (3, 0.9), (4, 0.9), (5, 0.1)]
    ]
    events += [
        {"kind": C.EV_GATE, "phase": "row", "checkpoint": "base", "task": 20.0},
        {"kind": C.EV_RESUMED, "from_step": 4},
        {"kind": C.EV_TRAIN, "step": 5, "reward": 0.95},
        {"kind": C.EV_WARNING, "code": C.COMPLETION_COLLAPSE, "step": 3, "message": "m"},
    ]
    h = history_from_events(events)
    assert h.rewards() == [(1, 0.1), (2, 0.2), (3, 0.9), (4, 0.9), (5, 0.95)] and h.task == {"base": 20.0}
    g = RewardGuard.for_profile(load_profile("grpo"), h)
    assert g.raised == {C.COMPLETION_COLLAPSE}
    (alert,) = g.add_task(5, 20.0)
    assert alert.code == C.REWARD_HACKING


def test_completion_window_statistics_and_samples():
    from tunedeck.engine.training.completion_window import CompletionWindow

    w = CompletionWindow(["a", "b"], [1.0, 0.5])
    p1, p2 = [{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]
    logged = {}
    prompts_ = [p1, p1, p2, p2]
    w.on_scored(
        "a", prompts_, ["{}", "x", "{}", ""], [[1, 2], [1, 2], [1, 2], [9]], ["r1"] * 2 + ["r2"] * 2, [1, 0, 1, 0]
    )
    assert w.latest == []  # "b" has not scored the batch yet
    w.on_scored(
        "b",
        prompts_,
        ["{}", "x", "{}", ""],
        [[1, 2], [1, 2], [1, 2], [9]],
        ["r1"] * 2 + ["r2"] * 2,
        [1, 1, 0, 0],
        lambda k, v: logged.__setitem__(k, v),
    )
    assert logged == {"completions/near_empty_ratio": 0.25, "completions/identical_share": 0.5}
    s = w.samples(3)
    assert [x["prompt"] for x in s] == ["one", "two"]
    assert s[0] == {
        "prompt": "one",
        "reference": "r1",
        "output": "{}",
        "new_tokens": 2,
        "rewards": {"a": 1, "b": 1},
        "reward": 1.5,
        "group_rewards": [1.5, 0.5],
    }
    assert w.most_common() == ("{}", 2)


# ---- what the app shows -------------------------------------------------------------------------


def test_the_rewards_pane_and_live_samples_show_rewards_per_check_and_alerts():
    from tunedeck.tui.reward_series import RewardSeries
    from tunedeck.tui.widgets.live_samples import render_samples
    from tunedeck.tui.widgets.rewards_pane import rewards_pane_lines

    r = RewardSeries()
    assert not r
    for step, (valid, equal) in enumerate([(0.2, 0.0), (0.6, 0.1), (0.9, 0.2)], 1):
        assert r.add(
            {
                "step": step,
                "reward": 0.2 * valid + equal,
                "reward_std": 0.1,
                "rewards/json_valid/mean": valid,
                "rewards/json_valid/std": 0.3,
                "rewards/json_equal/mean": equal,
                "rewards/json_equal/std": 0.1,
                "completions/clipped_ratio": 0.25,
                "completions/mean_length": 12.0,
                "kl": 0.01 * step,
            }
        )
    assert not r.add({"step": 4, "loss": 1.0})  # an SFT train event carries no reward
    r.add_alert({"code": C.REWARD_HACKING, "step": 3, "summary": "reward hacking? the reward rose", "message": "long"})
    text = "\n".join(line.plain for line in rewards_pane_lines(r, 90))
    assert "reward" in text and " json_valid" in text and "0.9 ±0.3" in text and " json_equal" in text
    assert "clipped" in text and "25%" in text and "KL" in text and "0.03" in text
    assert "! reward hacking at step 3: reward hacking? the reward rose" in text
    r.truncate_after(2)
    assert r.latest("reward") == pytest.approx(0.2 * 0.6 + 0.1)
    sample = {
        "step": 3,
        "samples": [
            {
                "prompt": "Ana",
                "reference": "{}",
                "output": "{}",
                "rewards": {"json_valid": 1.0},
                "reward": 1.0,
                "group_rewards": [1.0, 0.0],
            }
        ],
    }
    assert "reward 1 (json_valid 1); its group: 1 0" in render_samples([sample]).plain


def _log_rewards(events, steps_and_rewards, total: int) -> None:
    """A GRPO run's train events as the engine logs them: only the step and the reward matter here."""
    for step, reward in steps_and_rewards:
        events.emit(
            C.EV_TRAIN,
            step=step,
            epoch=step / total,
            loss=0.0,
            learning_rate=2e-5,
            grad_norm=0.5,
            tokens_per_s=None,
            tokens_seen=None,
            reward=reward,
        )


def test_with_the_gate_at_the_end_the_guard_reads_the_rewards_against_its_rows(tmp_path):
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.run.event_log import EventWriter
    from tunedeck.engine.run.gate_result import GateRow, GateSummary
    from tunedeck.engine.training.reward_guard import guard_after_gate

    events = EventWriter(tmp_path / C.EVENTS_JSONL)
    _log_rewards(events, enumerate([0.1, 0.2, 0.3, 0.9, 0.9, 1.0], 1), total=6)
    profile = load_profile("grpo", ["gate.when=end", 'notify.command="echo $TUNEDECK_ALERT > alert.txt"'])
    summary = GateSummary(
        rows=[
            GateRow(checkpoint=6, verdict="fail", task=0.0),
            GateRow(checkpoint="base", verdict="baseline", task=0.0),
            GateRow(checkpoint=3, verdict="fail", task=0.0),
        ]
    )
    (alert,) = guard_after_gate(tmp_path, profile, summary, events)
    assert (alert.code, alert.step) == (C.REWARD_HACKING, 6)
    events.close()
    logged = [e for e in read_events(tmp_path) if e["kind"] == C.EV_WARNING]
    assert [e["code"] for e in logged] == [C.REWARD_HACKING]
    assert (tmp_path / "alert.txt").read_text().strip() == C.REWARD_HACKING  # the notify command ran before returning
    assert guard_after_gate(tmp_path, profile, summary, EventWriter(tmp_path / "other.jsonl")) == []  # raised once


def test_the_sentence_gives_the_reward_at_the_checkpoint_it_names_and_where_training_took_it(tmp_path):
    """The SmolLM2 benchmark's case: checkpoint-50 ships, checkpoint-100 (a higher reward) fails on general
    questions; the sentence about checkpoint-50 must not credit it with step 100's reward."""
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.run.event_log import EventWriter
    from tunedeck.engine.run.reward_history import reward_phrase
    from tunedeck.engine.run.run_record import RunRecord, write_run_record

    write_run_record(tmp_path, RunRecord(id="r", name="r", profile=load_profile("grpo", [])))
    events = EventWriter(tmp_path / C.EVENTS_JSONL)
    _log_rewards(events, [(2, 0.6), (50, 0.87), (98, 1.0), (100, 1.04)], total=100)
    events.close()
    said = "optimised reward json_valid x0.2 + json_equal x1: mean 0.60 at step 2 -> "
    assert reward_phrase(tmp_path, 50) == said + "0.87 at step 50 (1.04 at step 100, the last logged)"
    assert reward_phrase(tmp_path, 100) == said + "1.04 at step 100"
    assert reward_phrase(tmp_path) == said + "1.04 at step 100"  # no checkpoint named: the whole run
    assert reward_phrase(tmp_path, 1) == said + "0.60 at step 2 (1.04 at step 100, the last logged)"


def test_the_form_edits_reward_checks_as_a_toml_inline_array():
    from tunedeck.engine.config.profile_schema import ALL_KEYS
    from tunedeck.tui.widgets.hyperparam_form import parse_text, to_text

    spec = ALL_KEYS["rewards.checks"]
    checks = [{"type": "json_valid", "weight": 0.2}, {"type": "max_length", "words": 40, "weight": 0.1}]
    text = to_text(spec, checks)
    assert text == '[{type = "json_valid", weight = 0.2}, {type = "max_length", words = 40, weight = 0.1}]'
    assert parse_text(spec, text) == checks and parse_text(spec, "") == []
    with pytest.raises(ValueError, match="must be a TOML list of tables"):
        parse_text(spec, "[{type = ")
