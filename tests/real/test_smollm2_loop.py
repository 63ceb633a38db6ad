"""SmolLM2-135M-Instruct through the whole loop, as a user runs it: a GGUF base, inspect, a detached run, the
gate, export, reload and generate. The run (tests/real/conftest.py, smollm2_lora_run) trains LoRA at lr 1e-3 on
ticket triage only: it learns the task and forgets plain questions the base answers, and the gate must fail it
for that, naming the general rule, with the base's general score what the base really does when asked as written."""

from __future__ import annotations

import json

import pytest
from conftest import read_events, tunedeck

pytestmark = [pytest.mark.real, pytest.mark.slow]

EOT = "<|im_end|>"


def greedy(folder, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
    """Plain transformers, one left-padded batch, greedy: what the model says, independent of tunedeck."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def test_the_base_is_the_gguf_file_de_quantised_once(smollm2_base, smollm2_gguf):
    from tunedeck.engine.models.gguf_base import materialize_gguf

    assert smollm2_base.source == smollm2_gguf.resolve() and smollm2_base.architecture == "llama"
    assert (smollm2_base.folder / "model.safetensors").exists() and (smollm2_base.folder / "tokenizer.json").exists()
    config = json.loads((smollm2_base.folder / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    again = materialize_gguf(smollm2_gguf.parent)  # the folder holding it names the same file: the cache answers
    assert again.folder == smollm2_base.folder and again.sha256 == smollm2_base.sha256
    # it answers like the instruct model it is
    assert (
        "Paris" in greedy(smollm2_base.folder, [[{"role": "user", "content": "What is the capital of France?"}]], 12)[0]
    )


def test_inspect_masks_exactly_the_replies_under_smollm2s_template(smollm2_base, smollm2_gguf, triage_data, real_cache):
    from transformers import AutoTokenizer

    from tunedeck.engine.data.loss_masks import MaskEncoder
    from tunedeck.engine.data.ticket_triage import replay_rows, tickets

    proc = tunedeck("inspect", str(triage_data["train"]), "--model", str(smollm2_gguf), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "quantisation error" in proc.stderr  # the GGUF notice
    report = json.loads(proc.stdout)
    assert report["tokens"]["masking"].startswith("assistant replies"), report["tokens"]["masking"]
    tok = AutoTokenizer.from_pretrained(smollm2_base.folder)
    encoder = MaskEncoder(tok, True)
    # task rows (a system turn), replay rows (no system turn: the template adds its own) and two replies in one row
    two_turns = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Goodbye."},
        ]
    }
    rows = tickets(12, seed=5) + replay_rows({"What is 1 + 1?": "1 + 1 is 2."}, copies=1) + [two_turns]
    for row in rows:
        e = encoder.encode(row)
        trained = tok.decode([t for t, m in zip(e.input_ids, e.mask) if m])
        assert trained == "".join(m["content"] + EOT for m in row["messages"] if m["role"] == "assistant"), row


def test_the_run_records_where_its_base_came_from(smollm2_lora_launch, smollm2_base):
    from tunedeck.engine.run.run_record import load_run_record

    run_dir = smollm2_lora_launch.run_dir
    record = load_run_record(run_dir)
    assert record.gguf_source == str(smollm2_base.source) and record.gguf_sha256 == smollm2_base.sha256
    assert record.gguf_folder == str(smollm2_base.folder) == record.base_model == record.profile.model.base
    assert "quantisation error" in smollm2_lora_launch.stderr
    assert any(e.get("code") == "gguf_base" for e in read_events(run_dir))


def test_the_gate_fails_the_checkpoint_that_forgot_its_general_questions(smollm2_lora_run, smollm2_base, triage_data):
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.engine.run.run_record import load_run_record

    gate = read_gate_summary(smollm2_lora_run)
    assert gate is not None
    base = next(r for r in gate.rows if r.is_base)
    ckpt = next(r for r in gate.rows if r.checkpoint == 24)
    asked = {s.name: s.asked for s in gate.sets}
    assert asked["general"] == "as written" and asked["safety"] == "as written", asked
    # the base's general score is what the base says to the set as written (one batch, greedy, as the gate)
    examples = [json.loads(line) for line in triage_data["general"].read_text().splitlines()]
    budget = load_run_record(smollm2_lora_run).profile.gate.max_new_tokens
    answers = greedy(smollm2_base.folder, [ex["messages"] for ex in examples], budget)
    own = [any(w.lower() in a.lower() for w in ex["checks"][0]["value"]) for ex, a in zip(examples, answers)]
    assert abs(base.general - 100.0 * sum(own) / len(own)) <= 100.0 / len(own) + 1e-9, (base.general, answers)
    assert base.general >= 60.0, answers  # SmolLM2 answers most of them zero-shot (17 of 20 measured)
    # the checkpoint learnt the task and lost the general questions: it fails, and says so by the rule's name
    assert ckpt.task > base.task, (ckpt.task, base.task)
    assert ckpt.general < base.general - gate.rules.get("max_general_drop", 5.0), (ckpt.general, base.general)
    assert ckpt.verdict == "fail" and "general" in ckpt.failed, (ckpt.verdict, ckpt.failed, ckpt.reasons)
    assert any("general" in reason for reason in ckpt.reasons), ckpt.reasons
    assert gate.best != 24


def test_the_merged_export_reloads_and_says_what_the_gate_heard(smollm2_lora_run, smollm2_merged, triage_data):
    from tunedeck.engine.gate.example_records import read_records

    out = smollm2_merged  # `tunedeck export RUN --checkpoint 24 --merge` (tests/real/conftest.py)
    golden = {
        f"golden:{json.loads(line)['id']}": json.loads(line) for line in triage_data["golden"].read_text().splitlines()
    }
    heard = {r["id"]: r["output"] for r in read_records(smollm2_lora_run, 24) if r["id"] in golden}
    ids = sorted(heard)[:8]
    said = greedy(out, [golden[i]["messages"] for i in ids], 32)
    same = sum(a.strip() == heard[i].strip() for i, a in zip(ids, said))
    assert same >= len(ids) - 1, list(zip(said, [heard[i] for i in ids]))
    assert all(s.strip().startswith("{") for s in said), said  # it learnt the JSON replies
