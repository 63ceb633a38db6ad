"""KTO: unpaired preference data (one answer per row, labelled true or false) in TRL's and LLaMA-Factory's
layouts, read as KTO and never as SFT, counted by inspect, and trained for real with TRL's KTOTrainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_events, tunedeck

from tunedeck.engine.data.dataset import DatasetError, load_dataset
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status

Q = {"role": "user", "content": "Name a primary colour."}
GOOD = {"role": "assistant", "content": "Red."}
BAD = {"role": "assistant", "content": "Purple."}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def kto_data(tmp_path_factory, demo_rows) -> Path:
    """Demo extraction rows: the right JSON answer labelled true, a wrong key labelled false, alternating."""
    rows = []
    for i, r in enumerate(demo_rows[:96]):
        answer = r["messages"][-1]["content"]
        good = i % 2 == 0
        rows.append(
            {
                "messages": r["messages"][:-1]
                + [{"role": "assistant", "content": answer if good else answer.replace('"age"', '"years"')}],
                "label": good,
            }
        )
    return write_jsonl(tmp_path_factory.mktemp("kto") / "kto.jsonl", rows)


def test_trl_layout_prompt_completion_label(tmp_path):
    ds = load_dataset(
        write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"prompt": [Q], "completion": [GOOD], "label": True},
                {"prompt": "2+2=", "completion": "5", "label": False},
            ],
        ),
        method="kto",
    )
    assert ds.format == "kto" and ds.method == "kto" and not ds.problems
    assert ds.rows == [
        {"prompt": [Q], "completion": [GOOD], "label": True},
        {"prompt": "2+2=", "completion": "5", "label": False},
    ]


def test_llama_factory_layouts_messages_label_and_conversations_kto_tag(tmp_path):
    # kto_en_demo.json: messages + label; data/README.md: conversations + kto_tag (as text in some exports)
    path = tmp_path / "kto_demo.json"
    path.write_text(
        json.dumps(
            [
                {"messages": [Q, GOOD], "label": True},
                {
                    "conversations": [
                        {"from": "human", "value": Q["content"]},
                        {"from": "gpt", "value": BAD["content"]},
                    ],
                    "kto_tag": "false",
                    "system": "Be brief.",
                },
            ],
            indent=2,
        )
    )
    ds = load_dataset(path, method="auto")
    assert ds.format == "kto" and not ds.problems and ds.lines == [2, 15]  # where each object opens
    assert ds.rows[0] == {"prompt": [Q], "completion": [GOOD], "label": True}
    assert ds.rows[1] == {
        "prompt": [{"role": "system", "content": "Be brief."}, Q],
        "completion": [BAD],
        "label": False,
    }
    assert ds.label_counts() == {"desirable": 1, "undesirable": 1}


def test_alpaca_with_a_kto_tag_is_kto_not_sft(tmp_path):
    ds = load_dataset(
        write_jsonl(
            tmp_path / "d.jsonl",
            [
                {
                    "instruction": "Name a primary colour.",
                    "output": "Purple.",
                    "kto_tag": False,
                    "history": [["Hi", "Hello."]],
                }
            ],
        ),
        method="auto",
    )
    assert ds.format == "kto" and not ds.problems
    assert ds.rows == [
        {
            "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, Q],
            "completion": [BAD],
            "label": False,
        }
    ]


def test_bad_labels_and_missing_prompts_name_their_line(tmp_path):
    ds = load_dataset(
        write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"messages": [Q, GOOD], "label": True},
                {"messages": [Q, BAD], "label": "maybe"},
                {"messages": [GOOD], "label": True},
            ],
        ),
        method="kto",
    )
    assert [(p.category, p.line) for p in ds.problems if p.severity == "error"][:1] == [("invalid_label", 2)]
    assert "label must be true" in ds.problems[0].message
    assert 3 in ds.invalid_lines() and ds.lines == [1]


def test_kto_data_is_never_read_as_sft(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"messages": [Q, GOOD], "label": True}, {"messages": [Q, BAD], "label": False}]
    )
    with pytest.raises(DatasetError, match="KTO data .* method kto"):
        load_dataset(path, method="sft")
    with pytest.raises(DatasetError, match="use method kto"):
        load_dataset(path, method="dpo")


def test_inspect_detects_kto_counts_labels_and_warns_when_one_side_is_rare(tmp_path):
    rows = [{"messages": [Q, GOOD], "label": True}] * 19 + [{"messages": [Q, BAD], "label": False}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    proc = tunedeck("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["format"] == "kto" and report["method"] == "kto"
    assert report["labels"]["desirable"] == 19 and report["labels"]["undesirable"] == 1
    assert "5% undesirable" in report["labels"]["warning"] and "kto_undesirable_weight" in report["labels"]["warning"]
    text = tunedeck("inspect", str(path)).stdout
    assert "19 desirable, 1 undesirable" in text and "unbalanced" in text


def test_heldout_gate_never_scores_against_an_undesirable_answer():
    from tunedeck.engine.gate.eval_sets import held_out_set

    held = held_out_set(
        [{"prompt": [Q], "completion": [GOOD], "label": True}, {"prompt": [Q], "completion": [BAD], "label": False}]
    )
    assert [ex.reference for ex in held.examples] == ["Red."]


@pytest.mark.slow
def test_kto_lora_trains_checkpoints_and_gates(workspace, tmp_path, tiny_model_dir, kto_data):
    from tunedeck.engine.data.demo_data import make_eval_set

    golden = make_eval_set(tmp_path / "golden.jsonl", 8, seed=5)
    proc = tunedeck(
        "run",
        "kto",
        "--data",
        str(kto_data),
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.learning_rate=5e-4",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "optim.max_steps=4",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "checkpoints.eval_steps=2",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        "gate.max_new_tokens=16",
        "--set",
        "gate.min_task_gain=-100",
        "--set",
        "gate.significance=0",
    )
    assert proc.returncode == 0, proc.stderr
    run = find_run(workspace, proc.stdout.strip().splitlines()[0])
    status = read_effective_status(run)
    assert status.state == C.COMPLETED and status.step == 4
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(2, True), (4, True)]
    assert (run / "checkpoints/checkpoint-4/adapter_model.safetensors").exists()
    events = read_events(run)
    assert any(e["kind"] == C.EV_EVAL for e in events)  # the held-out split of a KTO run has a validation loss
    train = [e for e in events if e["kind"] == C.EV_TRAIN]
    assert train and all(isinstance(e["loss"], float) for e in train)
    gate = json.loads((run / "evals" / "gate.json").read_text())
    assert [r["checkpoint"] for r in gate["rows"]] == ["base", 2, 4]  # judged like SFT checkpoints


@pytest.mark.slow
def test_kto_full_fine_tuning(workspace, tiny_model_dir, kto_data):
    proc = tunedeck(
        "run",
        "kto",
        "--data",
        str(kto_data),
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        'method.adapter="none"',
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.learning_rate=1e-4",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "optim.max_steps=2",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "checkpoints.eval_steps=2",
        "--set",
        'gate.when="never"',
    )
    assert proc.returncode == 0, proc.stderr
    run = find_run(workspace, proc.stdout.strip().splitlines()[0])
    assert read_effective_status(run).state == C.COMPLETED
    ckpt = list_checkpoints(run)[-1]
    assert ckpt.complete and (ckpt.path / "model.safetensors").exists()


def test_kto_needs_two_rows_per_batch(workspace, tiny_model_dir, kto_data):
    proc = tunedeck(
        "run",
        "kto",
        "--data",
        str(kto_data),
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        "optim.batch_size=1",
    )
    assert proc.returncode == 2 and "KTO needs at least 2 rows per batch" in proc.stderr


# ---- KTO rows rendered as SFT renders them (engine/data/preference_tokens.py) --------------------------------------

TEXTS = ["Name a primary colour.", "Red.", "Purple.", "Answer in one word."] * 4
SYSTEM = {"role": "system", "content": "Answer in one word."}


def test_kto_prompts_are_the_gates_prompt_and_only_the_completion_trains():
    """Under Mistral-Nemo's template the system message is in the prompt's last [INST], as the gate asks it; the
    completion ids are the answer and </s>. Raw string rows are prompt, then completion and eos, as TRL does."""
    from fixtures.template_models import FAMILIES, family_tokenizer

    from tunedeck.engine.data.loss_masks import MaskEncoder
    from tunedeck.engine.data.preference_tokens import kto_ids
    from tunedeck.engine.gate.generate import render_prompt

    tok = family_tokenizer(FAMILIES["mistral_nemo"], TEXTS)
    ids = kto_ids(MaskEncoder(tok), {"prompt": [SYSTEM, Q], "completion": [BAD], "label": False})
    assert (
        tok.decode(ids["prompt_ids"])
        == render_prompt(tok, [SYSTEM, Q])
        == "<s>[INST]Answer in one word.\n\nName a primary colour.[/INST]"
    )
    assert tok.decode(ids["completion_ids"]) == "Purple.</s>" and ids["label"] is False
    raw = kto_ids(MaskEncoder(tok), {"prompt": "Name a primary colour. ", "completion": "Red.", "label": True})
    assert (
        tok.decode(raw["prompt_ids"]) == "<s>Name a primary colour. "
        and tok.decode(raw["completion_ids"]) == "Red.</s>"
    )


def test_string_kto_rows_keep_their_label_when_rendered_with_the_chat_template(tmp_path):
    from fixtures.template_models import FAMILIES, family_tokenizer

    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.scheduling.preflight import run_preflight

    model = tmp_path / "m"
    family_tokenizer(FAMILIES["qwen2_5"], TEXTS).save_pretrained(model)
    from transformers import Qwen2Config

    Qwen2Config(
        vocab_size=1024, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    ).save_pretrained(model)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": "Name a primary colour.", "completion": c, "label": c == "Red."} for c in ("Red.", "Purple.") * 3],
    )
    pre = run_preflight("kto", str(data), [f"model.base={model}", "data.val_fraction=0"])
    assert pre.profile.data.apply_chat_template == "on" and pre.record_fields["loss_masking"].startswith(
        "the completions"
    )
    rows = prepare_data(pre.profile).train_rows
    assert rows[:2] == [
        {"prompt": [Q], "completion": [GOOD], "label": True},
        {"prompt": [Q], "completion": [BAD], "label": False},
    ]


@pytest.mark.slow
def test_the_kto_trainer_gets_the_ids_sft_rendering_gives(tmp_path):
    """TRL's KTOTrainer on a tiny Mistral model: its dataset is preference_tokens' ids, with the KL completions of
    each batch rotated by one as TRL builds them."""
    from fixtures.template_models import FAMILIES, build_family_model

    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.data.loss_masks import MaskEncoder
    from tunedeck.engine.data.preference_tokens import kto_ids
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.training.train import build_trainer

    model_dir = build_family_model(FAMILIES["mistral_nemo"], tmp_path / "model", TEXTS)
    data = write_jsonl(
        tmp_path / "kto.jsonl",
        [{"prompt": [SYSTEM, Q], "completion": [GOOD if i % 2 else BAD], "label": bool(i % 2)} for i in range(8)],
    )
    profile = load_profile(
        "kto",
        [
            f"model.base={model_dir}",
            f"data.path={data}",
            "optim.max_steps=1",
            "optim.precision=fp32",
            "data.val_fraction=0",
            "optim.batch_size=4",
        ],
    )

    class Guard:
        bad_step = None

    prepared = prepare_data(profile)
    trainer = build_trainer(tmp_path / "run", profile, prepared, [], Guard())
    encoder = MaskEncoder(trainer.processing_class)
    expected = [kto_ids(encoder, r) for r in prepared.train_rows]
    got = trainer.train_dataset.to_list()
    assert [{k: g[k] for k in ("prompt_ids", "completion_ids", "label")} for g in got] == expected
    completions = [e["completion_ids"] for e in expected]
    assert [g["KL_completion_ids"] for g in got] == [
        completions[3],
        *completions[:3],
        completions[7],
        *completions[4:7],
    ]
    assert "[INST]Answer in one word.\n\nName a primary colour.[/INST]" in trainer.processing_class.decode(
        got[0]["prompt_ids"]
    )
