"""Each event kind has one typed definition (engine/run/events.py), and the tests' writers check every
event against it (TUNEDECK_CHECK_EVENTS, set in tests/conftest.py): here, that the check catches what it
must and lets through what the engine writes."""

from __future__ import annotations

import json

import pytest

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventWriter, read_events
from tunedeck.engine.run.events import EVENT_TYPES, GATE_PHASES, EventMismatch, event_problem

TRAIN = {
    "step": 2,
    "epoch": 0.5,
    "loss": 1.25,
    "learning_rate": 1e-3,
    "grad_norm": float("nan"),  # written as "nan"
    "tokens_per_s": None,
    "tokens_seen": 640,
}


def test_every_event_kind_of_the_contract_has_a_definition():
    kinds = {v for k, v in vars(C).items() if k.startswith("EV_")}
    assert kinds == set(EVENT_TYPES)
    assert set(GATE_PHASES) == {"start", "progress", "row", "summary"}


def test_a_checking_writer_writes_what_the_definition_describes(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEDECK_CHECK_EVENTS", "1")
    writer = EventWriter(tmp_path / "events.jsonl")
    writer.emit(C.EV_TRAIN, **TRAIN, **{"rewards/json_valid/mean": 0.5, "reward": 0.5})  # GRPO's open figures
    writer.emit(C.EV_EVAL, step=2, epoch=0.5, eval_loss=1.5, eval_mean_token_accuracy=0.4)
    writer.emit(C.EV_WARNING, code="tracker", tracker="wandb", message="offline")
    writer.emit(C.EV_GATE, phase="progress", stage="base", done=3, total=8)
    with pytest.raises(EventMismatch, match=r"events.jsonl: train event: tokens_seen: Field required"):
        writer.emit(C.EV_TRAIN, **{k: v for k, v in TRAIN.items() if k != "tokens_seen"})
    with pytest.raises(EventMismatch, match=r"done event: step: Extra inputs are not permitted"):
        writer.emit(C.EV_DONE, state=C.COMPLETED, message="training finished", step=4)
    writer.close()
    events = read_events(tmp_path / "events.jsonl")
    assert [e["kind"] for e in events] == ["train", "eval", "warning", "gate"]  # nothing of the refused ones
    assert events[0]["grad_norm"] == "nan"


def test_an_unchecked_writer_writes_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNEDECK_CHECK_EVENTS", raising=False)
    writer = EventWriter(tmp_path / "events.jsonl")
    writer.emit("a_kind_from_a_newer_engine", anything=1)
    writer.close()
    assert json.loads((tmp_path / "events.jsonl").read_text())["anything"] == 1


@pytest.mark.parametrize(
    "event, problem",
    [
        ({"kind": "nope"}, "unknown kind 'nope'"),
        ({"kind": "gate", "phase": "finish"}, "gate event: unknown phase 'finish'"),
        ({"kind": "train", **TRAIN, "grad_norm": 1.0, "step": 2.5}, "train event: step: Input should be a valid int"),
        ({"kind": "train", **TRAIN, "grad_norm": 1.0, "step": True}, "train event: step: Input should be a valid int"),
        ({"kind": "train", **TRAIN, "grad_norm": 1.0, "rewards/x/mean": [1]}, "rewards/x/mean is [1], not a figure"),
        (
            {"kind": "gate", "phase": "summary", "checkpoint": 4, "best": 4, "verdict": "pass", "sentence": "."}
            | {"rows": 1},
            "gate event: summary: Field required",
        ),
        ({"kind": "sample", "gpus": [{"index": 0}]}, "sample event: gpus.0.name: Field required"),
        (
            {"kind": "live_samples", "step": 4, "samples": [{"prompt": "q", "reference": None, "output": "a"}]},
            "live_samples event: samples.0.new_tokens: Field required",
        ),
    ],
)
def test_the_check_names_what_is_wrong(event, problem):
    assert problem in event_problem({"t": 1.0, **event})


def test_a_gate_row_as_the_runner_writes_it_passes():
    row = {
        "t": 1.0,
        "kind": "gate",
        "phase": "row",
        "checkpoint": "base",
        "verdict": "baseline",
        "task": 40.0,
        "format": 100.0,
        "safety": None,
        "general": 85.0,
        "latency_p95_ms": 120.5,
        "reasons": [],
        "warnings": ["few examples"],
        "task_delta": None,
        "vs_base": {"task": None},
        "p_value": None,
        "n": {"task": 20, "format": 20, "safety": 0, "general": 20},
    }
    assert event_problem(row) is None
    assert "gate event: n: Input should be a valid dictionary" in event_problem({**row, "n": 20})
