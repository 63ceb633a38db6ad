"""Loss masks under the published chat templates TRL ships (trl/chat_templates/*.jinja), on tiny tokenizers
and models built with each family's special tokens.

Expected trained text is computed here without the masking code: each trained assistant reply followed by
the family's end-of-turn token (the last reply may also carry what the template writes at the end of a
conversation, Phi-3.5's eos). The masked tokens are decoded group by group and compared with it.
Mistral's published templates (tests/fixtures/templates/, TRL ships none) put the system message into the last
[INST] and rewrite earlier turns as a conversation grows: their replies are located in one render.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.template_models import (
    CHATML_SPECIALS,
    FAMILIES,
    NO_SYSTEM_TEMPLATE,
    QWEN3,
    build_family_model,
    build_tokenizer,
    family_tokenizer,
)

from tunedeck.engine.data.chat_render import ChatRenderer
from tunedeck.engine.data.dataset import load_dataset
from tunedeck.engine.data.loss_masks import MaskEncoder, MaskError, encode_spans, located_spans
from tunedeck.engine.data.token_stats import compute_token_stats
from tunedeck.engine.gate.generate import ChatPrompt, render_prompt

TEXTS = [
    "Ana is 31 and lives in Porto.",
    "Bo is 42, a baker in Oslo.",
    "What is the weather in Oslo?",
    "Return the person as JSON.",
    "get_weather city Oslo",
    "It is sunny and 21 degrees.",
] * 4
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def conversation(system: bool = True) -> list[dict]:
    msgs = [{"role": "system", "content": "Return the person as JSON."}] if system else []
    return msgs + [
        {"role": "user", "content": "Ana is 31 and lives in Porto."},
        {"role": "assistant", "content": '{"name": "Ana", "age": 31}'},
        {"role": "user", "content": "Bo is 42, a baker in Oslo."},
        {"role": "assistant", "content": '{"name": "Bo", "age": 42}'},
    ]


def trained_groups(tok, encoded) -> list[str]:
    groups, current = [], []
    for token, bit in zip(encoded.input_ids, encoded.mask):
        if bit:
            current.append(token)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return [tok.decode(g) for g in groups]


def assert_replies_only(tok, encoded, replies: list[str], end_of_turn: str, lead: str = "") -> None:
    """The masked tokens are exactly each reply (after the template's lead) and its end of turn; only the last may
    also hold what the template writes at the very end of a conversation (Phi-3.5's eos)."""
    groups = trained_groups(tok, encoded)
    assert len(groups) == len(replies), groups
    for i, (group, reply) in enumerate(zip(groups, replies)):
        expected = lead + reply + end_of_turn
        rest = group[len(expected) :] if group.startswith(expected) else None
        assert rest == "" or (i == len(groups) - 1 and rest is not None and rest.strip() == tok.eos_token), (
            group,
            reply,
        )


ANA, BO = '{"name": "Ana", "age": 31}', '{"name": "Bo", "age": 42}'


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_published_templates_train_the_replies_and_their_end_of_turn_only(name):
    fam = FAMILIES[name]
    tok = family_tokenizer(fam, TEXTS)
    encoded = MaskEncoder(tok).encode({"messages": conversation()})
    assert_replies_only(tok, encoded, [ANA, BO], fam.end_of_turn, fam.reply_lead)
    # the system prompt and the user's turns never train, and the system prompt is in the context
    text = tok.decode([t for t, b in zip(encoded.input_ids, encoded.mask) if b])
    assert "Porto" not in text and "Return the person" not in text and "baker" not in text
    assert "Return the person as JSON." in tok.decode(encoded.input_ids)


@pytest.mark.parametrize("name", ["mistral_nemo", "mistral_v3"])
def test_mistral_folds_the_system_into_the_last_inst_as_it_does_at_inference(name):
    """Mistral's templates write the system message into the last [INST] of a conversation that ends on a user turn
    and drop it from one that ends on a reply: training folds it into the last user turn, the text the gate's prompt
    gets from the template itself, and every reply (with its space and </s>) trains, weight-0 turns excepted."""
    fam = FAMILIES[name]
    tok = family_tokenizer(fam, TEXTS)
    inst = "[INST] " if name == "mistral_v3" else "[INST]"
    cy = '{"name": "Cy", "age": 27}'
    msgs = conversation() + [{"role": "user", "content": "Cy is 27."}, {"role": "assistant", "content": cy}]
    msgs[2] = {**msgs[2], "weight": 0}
    encoder = MaskEncoder(tok)
    encoded = encoder.encode({"messages": msgs})
    assert encoder.located and encoder.renderer.system_fold == "last user turn"
    assert_replies_only(tok, encoded, [BO, cy], "</s>", fam.reply_lead)
    text = tok.decode(encoded.input_ids)
    assert (
        text.count("Return the person as JSON.") == 1
        and f"{inst}Return the person as JSON.\n\nCy is 27.[/INST]" in text
    )
    assert ANA in text  # the weight-0 reply stays in the context
    # a one-turn row: exactly the gate's prompt, then the reply
    one = encoder.encode({"messages": conversation()[:3]})
    prompt = render_prompt(tok, conversation()[:2])
    assert tok.decode(one.input_ids) == prompt + fam.reply_lead + ANA + "</s>" and prompt.endswith("[/INST]")
    assert_replies_only(tok, one, [ANA], "</s>", fam.reply_lead)


@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1", "llama3_2", "gemma3", "phi3_5"])
def test_one_render_gives_the_incremental_masks_on_templates_that_keep_earlier_turns(name):
    """Where the incremental render works it is kept; locating the replies in one render finds the very same
    tokens there (multi-turn, a weight-0 turn, padded replies), so the fallback masks as the incremental method does."""
    tok = family_tokenizer(FAMILIES[name], TEXTS)
    renderer = ChatRenderer(tok)
    padded = [{**m, "content": f"  {m['content']}  "} if m["role"] == "assistant" else m for m in conversation()]
    weighted = conversation() + [{"role": "user", "content": "Cy is 27."}, {"role": "assistant", "content": "27"}]
    weighted[2] = {**weighted[2], "weight": 0}
    for msgs in (conversation(), conversation(system=False), conversation()[:3], padded, weighted):
        encoder = MaskEncoder(tok)
        incremental = encoder.encode({"messages": msgs})
        assert not encoder.located
        full = renderer.render(msgs)
        located = encode_spans(tok, full, located_spans(renderer, msgs, None, full), False)
        assert located.input_ids == incremental.input_ids and located.mask == incremental.mask, msgs


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_inspect_counts_what_the_encoder_trains(name):
    tok = family_tokenizer(FAMILIES[name], TEXTS)
    rows = [
        {"messages": conversation()},
        {"messages": conversation()[:3]},
        {"prompt": "Ana is 31", "completion": "31"},
        {"text": "Bo is 42"},
    ]
    stats = compute_token_stats(rows, tok, max_seq_len=20)
    encoder = MaskEncoder(tok)
    expected = [(len(e.input_ids), e.trainable, sum(e.mask[:20])) for e in map(encoder.encode, rows)]
    assert list(zip(stats.lengths.tolist(), stats.trainable.tolist(), stats.trainable_kept.tolist())) == expected
    assert not stats.failed


def test_weight_zero_reply_stays_in_context_but_does_not_train(tmp_path):
    tok = family_tokenizer(FAMILIES["qwen2_5"], TEXTS)
    msgs = conversation()
    msgs[2] = {**msgs[2], "weight": 0}
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"messages": msgs}) + "\n")
    ds = load_dataset(path)
    assert not ds.problems and ds.rows[0]["messages"][2]["weight"] == 0
    encoded = MaskEncoder(tok).encode(ds.rows[0])
    assert_replies_only(tok, encoded, ['{"name": "Bo", "age": 42}'], "<|im_end|>")
    assert '"Ana"' in tok.decode(encoded.input_ids)  # still in the context


def test_conversational_prompt_completion_trains_the_completion_only(tmp_path):
    tok = family_tokenizer(FAMILIES["llama3_1"], TEXTS)
    prompt = conversation()[:4]  # a few-shot prompt that holds an assistant turn of its own
    completion = [{"role": "assistant", "content": '{"name": "Bo", "age": 42}'}]
    path = tmp_path / "pc.jsonl"
    path.write_text(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    ds = load_dataset(path)
    encoded = MaskEncoder(tok).encode(ds.rows[0])
    assert_replies_only(tok, encoded, ['{"name": "Bo", "age": 42}'], "<|eot_id|>")


def test_assistant_only_off_trains_every_token():
    tok = family_tokenizer(FAMILIES["qwen2_5"], TEXTS)
    encoded = MaskEncoder(tok, assistant_only=False).encode({"messages": conversation()})
    assert all(encoded.mask)


def test_a_template_without_a_system_role_gets_the_system_folded_into_the_first_user_turn():
    tok = build_tokenizer(
        TEXTS, CHATML_SPECIALS, eos="<|im_end|>", pad="<|pad|>", bos=None, template=NO_SYSTEM_TEMPLATE
    )
    encoder = MaskEncoder(tok)
    encoded = encoder.encode({"messages": conversation()})
    assert encoder.renderer.folds_system
    assert_replies_only(tok, encoded, ['{"name": "Ana", "age": 31}', '{"name": "Bo", "age": 42}'], "<|im_end|>")
    assert "<|im_start|>user\nReturn the person as JSON.\n\nAna is 31" in tok.decode(encoded.input_ids)
    stats = compute_token_stats([{"messages": conversation()}], tok, max_seq_len=512)
    assert any("no system role" in n for n in stats.notes) and not stats.failed
    # the gate and the playground render prompts the same way
    prompt = render_prompt(tok, conversation()[:2], system_prompt="Answer in JSON.")
    assert prompt.startswith("<|im_start|>user\nAnswer in JSON.\n\nAna is 31") and prompt.endswith(
        "<|im_start|>assistant\n"
    )


def reasoning_conversation() -> list[dict]:
    """Qwen3's template drops an earlier reply's reasoning once a later user turn follows: that reply is rewritten,
    and its text is no longer in the render, so it can be found neither incrementally nor in one render."""
    return [
        {"role": "user", "content": "Ana is 31 and lives in Porto."},
        {"role": "assistant", "content": "<think>\nAna, 31.\n</think>\n\n" + ANA},
        {"role": "user", "content": "Bo is 42, a baker in Oslo."},
        {"role": "assistant", "content": BO},
    ]


def test_replies_that_can_be_found_neither_way_are_reported_with_their_line_never_guessed():
    tok = family_tokenizer(QWEN3, TEXTS)
    with pytest.raises(MaskError, match="rewrites earlier turns.*nor located in one render"):
        MaskEncoder(tok).encode({"messages": reasoning_conversation()})
    rows = [{"messages": reasoning_conversation()[:2]}, {"messages": reasoning_conversation()}]  # one turn is fine
    stats = compute_token_stats(rows, tok, max_seq_len=512, lines=[7, 9])
    assert [f["line"] for f in stats.failed] == [9] and "rewrites earlier turns" in stats.failed[0]["message"]
    assert all(MaskEncoder(tok, assistant_only=False).encode(rows[1]).mask)  # off: no masks needed


def test_inspect_reports_mistral_replies_located_in_one_render(tmp_path):
    """`tunedeck inspect` on Mistral-Nemo data: the trainable tokens are exactly the replies and their </s>
    (counted here from the reply texts alone), and the report says how they were found and where the system went."""
    from tunedeck.engine.commands.inspect import build_parser, build_report

    tok = family_tokenizer(FAMILIES["mistral_nemo"], TEXTS)
    model = _save_tokenizer(tok, tmp_path / "m")
    rows = [{"messages": conversation()}, {"messages": conversation()[:3]}, {"messages": conversation(system=False)}]
    args = build_parser().parse_args(
        ["inspect", str(_write(tmp_path / "d.jsonl", rows)), "--model", str(model), "--json"]
    )
    tokens = build_report(args)["tokens"]  # the command's own report, in process
    reply = {r: len(tok(r + "</s>", add_special_tokens=False)["input_ids"]) for r in (ANA, BO)}
    assert tokens["trainable_tokens"] == 2 * (reply[ANA] + reply[BO]) + reply[ANA] and not tokens["failed"]
    assert tokens["assistant_only"] and "located in one render" in tokens["masking"]
    assert "last user turn" in tokens["masking"] and any("last user turn" in n for n in tokens["notes"])


@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1"])
def test_gate_prompts_end_with_the_generation_prompt_and_carry_the_rows_tools(name):
    tok = family_tokenizer(FAMILIES[name], TEXTS)
    msgs = [{"role": "user", "content": "What is the weather in Oslo?"}]
    text = render_prompt(tok, ChatPrompt(msgs, [WEATHER_TOOL]))
    generation = tok.apply_chat_template(msgs, tools=[WEATHER_TOOL], tokenize=False, add_generation_prompt=True)
    assert text == generation and "get_weather" in text
    assert text.endswith(
        "<|im_start|>assistant\n" if name == "qwen2_5" else "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert "get_weather" not in render_prompt(tok, msgs)


def test_tool_calls_without_content_render_and_only_the_assistant_side_trains():
    tok = family_tokenizer(FAMILIES["qwen2_5"], TEXTS)
    msgs = [
        {"role": "user", "content": "What is the weather in Oslo?"},
        {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
        },
        {"role": "tool", "content": "sunny, 21"},
        {"role": "assistant", "content": "It is sunny and 21 degrees."},
    ]
    encoded = MaskEncoder(tok).encode({"messages": msgs, "tools": [WEATHER_TOOL]})
    groups = trained_groups(tok, encoded)
    assert len(groups) == 2 and '"city": "Oslo"' in groups[0] and '\\"' not in groups[0]  # arguments as JSON, once
    assert groups[1].startswith("It is sunny and 21 degrees.<|im_end|>") and "sunny, 21" not in "".join(groups)


@pytest.mark.slow
def test_the_trainer_receives_exactly_the_masks_inspect_counts(tmp_path):
    """Labels of the dataset TRL builds for training equal inspect's trainable tokens, token for token."""
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.training.train import build_trainer

    fam = FAMILIES["qwen2_5"]
    model_dir = build_family_model(fam, tmp_path / "model", TEXTS)
    data = tmp_path / "chat.jsonl"
    rows = [{"messages": conversation()}, {"messages": conversation(system=False)[:2]}] * 6
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    profile = load_profile(
        "lora",
        [
            f"model.base={model_dir}",
            f"data.path={data}",
            "optim.max_steps=1",
            "optim.precision=fp32",
            "data.max_seq_len=512",
            "data.val_fraction=0",
        ],
    )

    class Guard:
        bad_step = None

    prepared = prepare_data(profile)
    trainer = build_trainer(tmp_path / "run", profile, prepared, [], Guard())
    labels = [[int(t != -100) for t in row] for row in trainer.train_dataset["labels"]]
    stats = compute_token_stats(prepared.train_rows, trainer.processing_class, max_seq_len=512)
    assert [sum(m) for m in labels] == stats.trainable_kept.tolist()
    encoder = MaskEncoder(trainer.processing_class)
    assert labels == [encoder.encode(r).mask for r in prepared.train_rows] and all(sum(m) for m in labels)
    assert trainer.train_dataset["input_ids"][0] == encoder.encode(prepared.train_rows[0]).input_ids


@pytest.mark.slow
def test_a_run_says_how_its_loss_was_masked(tmp_path, monkeypatch):
    """A real `tunedeck run` on a Gemma-3 model with its published template: the record, `show` and inspect agree."""
    import subprocess
    import sys

    model_dir = build_family_model(FAMILIES["gemma3"], tmp_path / "model", TEXTS)
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": conversation()}) + "\n" for _ in range(16)))
    ws = tmp_path / "ws"
    cmd = [
        sys.executable,
        "-m",
        "tunedeck.tui.cli",
        "run",
        "lora",
        "--workspace",
        str(ws),
        "--data",
        str(data),
        "--set",
        f"model.base={model_dir}",
        "--set",
        "optim.max_steps=2",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((ws / "runs").iterdir())
    assert 'loss_masking = "assistant replies and their end-of-turn tokens' in (run_dir / "run.toml").read_text()
    kinds = [json.loads(line)["kind"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert kinds.count("train_end") == 1  # one per training attempt (transformers 5 puts train_runtime in every log)
    show = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli", "show", run_dir.name, "--workspace", str(ws), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(show.stdout)["loss_masking"].startswith("assistant replies")
    off = subprocess.run(
        cmd + ["--set", "data.assistant_only_loss=off", "--name", "off"], capture_output=True, text=True, timeout=600
    )
    assert off.returncode == 0, off.stderr
    events = (
        ws / "runs" / next(p.name for p in (ws / "runs").iterdir() if "off" in p.name) / "events.jsonl"
    ).read_text()
    assert '"all_tokens_trained"' in events


def _save_tokenizer(tok, path: Path) -> Path:
    """A local "model" for pre-flight: the tokenizer and a tiny config (pre-flight reads no weights)."""
    from transformers import LlamaConfig

    tok.save_pretrained(path)
    LlamaConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    ).save_pretrained(path)
    return path


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_preflight_refuses_rows_the_template_cannot_render_naming_the_line(tmp_path):
    from tunedeck.engine.scheduling.preflight import PreflightError, run_preflight

    no_tools = NO_SYSTEM_TEMPLATE.replace(
        "{%- if m['role'] == 'system' -%}",
        "{%- if m.tool_calls is defined -%}{{ raise_exception('no tool calls') }}"
        "{%- endif -%}{%- if m['role'] == 'system' -%}",
    )
    tok = build_tokenizer(TEXTS, CHATML_SPECIALS, eos="<|im_end|>", pad="<|pad|>", bos=None, template=no_tools)
    model = _save_tokenizer(tok, tmp_path / "m")
    rows = [{"messages": conversation()} for _ in range(6)]
    pre = run_preflight("lora", str(_write(tmp_path / "d.jsonl", rows)), [f"model.base={model}", "data.val_fraction=0"])
    assert (
        pre.record_fields["loss_masking"].startswith("assistant replies")
        and "folded" in pre.record_fields["loss_masking"]
    )
    rows[3] = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]},
            {"role": "tool", "content": "1"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    bad = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(
        PreflightError,
        match=r"bad\.jsonl:4: the chat template cannot render this row \(TemplateError: "
        r"no tool calls\)",
    ):
        run_preflight("lora", str(bad), [f"model.base={model}", "data.val_fraction=0"])
    skipped = run_preflight("lora", str(bad), [f"model.base={model}", "data.val_fraction=0", "data.on_invalid=skip"])
    assert any(
        w.startswith("1 rows the chat template cannot render are skipped") and "bad.jsonl:4" in w
        for w in skipped.warnings
    )


def test_auto_trains_every_token_where_replies_cannot_be_found_and_says_so_while_on_refuses(tmp_path):
    from tunedeck.engine.scheduling.preflight import PreflightError, run_preflight

    model = _save_tokenizer(family_tokenizer(QWEN3, TEXTS), tmp_path / "m")
    data = _write(tmp_path / "d.jsonl", [{"messages": reasoning_conversation()} for _ in range(5)])
    pre = run_preflight("lora", str(data), [f"model.base={model}", "data.val_fraction=0"])
    assert pre.profile.data.assistant_only_loss == "off" and pre.record_fields["loss_masking"].startswith("all tokens")
    assert any("rewrites earlier turns" in w and "d.jsonl:1" in w for w in pre.warnings)
    with pytest.raises(PreflightError, match=r"d\.jsonl:1: the chat template rewrites earlier turns"):
        run_preflight("lora", str(data), [f"model.base={model}", "data.val_fraction=0", "data.assistant_only_loss=on"])
    # Mistral's templates rewrite earlier turns too, but their replies are located: auto keeps the masks
    model = _save_tokenizer(family_tokenizer(FAMILIES["mistral_nemo"], TEXTS), tmp_path / "mistral")
    data = _write(tmp_path / "m.jsonl", [{"messages": conversation()} for _ in range(5)])
    pre = run_preflight("lora", str(data), [f"model.base={model}", "data.val_fraction=0"])
    assert (
        pre.profile.data.assistant_only_loss == "auto" and "located in one render" in pre.record_fields["loss_masking"]
    )


def test_string_prompt_completion_rows_get_the_chat_template_unless_the_profile_says_not_to(tmp_path):
    from tunedeck.engine.scheduling.preflight import run_preflight

    tok = family_tokenizer(FAMILIES["qwen2_5"], TEXTS)
    model = _save_tokenizer(tok, tmp_path / "m")
    data = _write(tmp_path / "pc.jsonl", [{"prompt": "Ana is 31 and lives in Porto.", "completion": "31"}] * 4)
    pre = run_preflight("lora", str(data), [f"model.base={model}", "data.val_fraction=0"])
    assert (
        pre.profile.data.apply_chat_template == "on"
        and "rendered with the chat template" in pre.record_fields["loss_masking"]
    )
    raw = run_preflight(
        "lora", str(data), [f"model.base={model}", "data.val_fraction=0", "data.apply_chat_template=off"]
    )
    assert (
        raw.record_fields["loss_masking"].startswith("completion only")
        and "no chat template" in raw.record_fields["loss_masking"]
    )
    from tunedeck.engine.data.prepare import prepare_data

    rows = prepare_data(pre.profile).train_rows
    assert rows[0] == {
        "messages": [
            {"role": "user", "content": "Ana is 31 and lives in Porto."},
            {"role": "assistant", "content": "31"},
        ]
    }
    encoded = MaskEncoder(tok).encode(rows[0])
    assert_replies_only(tok, encoded, ["31"], "<|im_end|>")


def test_auto_attention_falls_back_to_eager_for_a_class_that_refuses_sdpa(tmp_path):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.models.model_loading import ModelLoadError, load_model

    Gemma2ForCausalLM(
        Gemma2Config(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            intermediate_size=32,
        )
    ).save_pretrained(tmp_path / "g2")
    profile = load_profile("lora", [f"model.base={tmp_path / 'g2'}"])
    model = load_model(profile, "fp32", attn_implementation="sdpa")  # what auto resolves to on CPU
    assert model.config._attn_implementation == "eager"
    profile.speed.attn_implementation = "sdpa"  # said explicitly: an error that names the key and the value to set
    with pytest.raises(
        ModelLoadError, match=r'speed\.attn_implementation = "sdpa".*set speed\.attn_implementation = "eager"'
    ):
        load_model(profile, "fp32", attn_implementation="sdpa")


def test_held_out_rows_and_eval_set_lines_carry_their_tools_to_the_gate_prompt(tmp_path):
    from tunedeck.engine.gate.eval_sets import held_out_set, load_eval_set

    tok = family_tokenizer(FAMILIES["qwen2_5"], TEXTS)
    msgs = [{"role": "user", "content": "What is the weather in Oslo?"}, {"role": "assistant", "content": "Sunny."}]
    example = held_out_set([{"messages": msgs, "tools": [WEATHER_TOOL]}]).examples[0]
    assert "get_weather" in render_prompt(tok, example.prompt) and example.spec()["tools"] == [WEATHER_TOOL]
    line = {"messages": msgs[:1], "reference": "Sunny.", "tools": [WEATHER_TOOL]}
    path = _write(tmp_path / "golden.jsonl", [line, {**line, "tools": {"name": "f"}}])
    from tunedeck.engine.gate.eval_sets import EvalSetError

    with pytest.raises(EvalSetError, match=r"golden\.jsonl:2: tools: must be a list of tool schemas"):
        load_eval_set(path, "golden")
    path.write_text(json.dumps(line) + "\n")
    assert "get_weather" in render_prompt(tok, load_eval_set(path, "golden").examples[0].prompt)


def test_axolotl_training_false_is_weight_zero_and_training_true_on_a_user_turn_is_refused(tmp_path):
    msgs = conversation()
    msgs[2] = {**msgs[2], "training": False}
    ok = load_dataset(_write(tmp_path / "ok.jsonl", [{"messages": msgs}]))
    assert not ok.problems and ok.rows[0]["messages"][2]["weight"] == 0 and "weight" not in ok.rows[0]["messages"][4]
    tok = family_tokenizer(FAMILIES["mistral_nemo"], TEXTS)  # honoured where replies are located in one render too
    assert_replies_only(tok, MaskEncoder(tok).encode(ok.rows[0]), [BO], "</s>")
    msgs[1] = {**msgs[1], "training": True}
    bad = load_dataset(_write(tmp_path / "bad.jsonl", [{"messages": msgs}]))
    assert [(p.line, p.field) for p in bad.problems] == [(1, "messages[1].training")] and not bad.rows


# ---- DPO rows: rendered and masked as SFT rows are (engine/data/preference_tokens.py) ----------------------------


def preference_row(system: bool = True) -> dict:
    prompt = conversation(system)[:-1]  # a two-turn prompt ending on the user's question
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": BO}],
        "rejected": [{"role": "assistant", "content": '{"name": "Bo", "years": 42}'}],
    }


@pytest.mark.parametrize("name", ["mistral_nemo", "mistral_v3", "gemma3", "qwen2_5"])
def test_dpo_prompts_are_the_text_sft_and_the_gate_use_and_only_the_answers_train(name):
    """The prompt ids are the gate's prompt for the same messages (Mistral: the system in the last [INST]) and the
    context SFT trains the last reply in; the chosen and rejected ids are each answer and its end of turn."""
    from tunedeck.engine.data.preference_tokens import dpo_ids

    fam = FAMILIES[name]
    tok = family_tokenizer(fam, TEXTS)
    row = preference_row()
    ids = dpo_ids(MaskEncoder(tok), row)
    assert tok.decode(ids["prompt_ids"]) == render_prompt(tok, row["prompt"])
    assert tok.decode(ids["chosen_ids"]) == fam.reply_lead + BO + fam.end_of_turn
    assert tok.decode(ids["rejected_ids"]) == fam.reply_lead + '{"name": "Bo", "years": 42}' + fam.end_of_turn
    context = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in row["prompt"]]
    sft = MaskEncoder(tok).encode({"messages": context + row["chosen"]})  # SFT on the chosen reply alone
    n, m = len(ids["prompt_ids"]), len(ids["chosen_ids"])
    assert sft.input_ids[: n + m] == ids["prompt_ids"] + ids["chosen_ids"] and sft.mask[: n + m] == [0] * n + [1] * m


def test_preflight_names_the_line_of_a_preference_row_the_template_cannot_render(tmp_path):
    from tunedeck.engine.scheduling.preflight import PreflightError, run_preflight

    model = _save_tokenizer(family_tokenizer(FAMILIES["mistral_nemo"], TEXTS), tmp_path / "m")
    rows = [preference_row() for _ in range(4)]
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    rows[2] = {
        **rows[2],
        "prompt": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    }
    with pytest.raises(
        PreflightError,
        match=r"pairs\.jsonl:3: the chat template cannot render this row \(TemplateError: "
        r"Tool call IDs should be alphanumeric strings with length 9",
    ):
        run_preflight(
            "dpo", str(_write(tmp_path / "pairs.jsonl", rows)), [f"model.base={model}", "data.val_fraction=0"]
        )
    pre = run_preflight(
        "dpo", str(_write(tmp_path / "ok.jsonl", rows[:2])), [f"model.base={model}", "data.val_fraction=0"]
    )
    assert pre.record_fields["loss_masking"].startswith("the chosen and rejected answers")
    assert "last user turn" in pre.record_fields["loss_masking"]


@pytest.mark.slow
def test_a_real_dpo_run_under_mistrals_template(tmp_path):
    """DPO on a tiny Mistral model with Mistral-Nemo's published template: TRL's trainer gets exactly the ids
    preference_tokens gives (the system in the last [INST]), and `tunedeck run dpo` trains a few steps end to end."""
    import math
    import subprocess
    import sys

    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.data.preference_tokens import dpo_ids
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.training.train import build_trainer

    model_dir = build_family_model(FAMILIES["mistral_nemo"], tmp_path / "model", TEXTS)
    data = _write(tmp_path / "pairs.jsonl", [preference_row(system=i % 2 == 0) for i in range(12)])
    profile = load_profile(
        "dpo",
        [
            f"model.base={model_dir}",
            f"data.path={data}",
            "optim.max_steps=1",
            "optim.precision=fp32",
            "data.val_fraction=0",
        ],
    )

    class Guard:
        bad_step = None

    prepared = prepare_data(profile)
    trainer = build_trainer(tmp_path / "run", profile, prepared, [], Guard())
    encoder = MaskEncoder(trainer.processing_class)
    expected = [dpo_ids(encoder, r) for r in prepared.train_rows]
    got = trainer.train_dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"]).to_list()
    assert got == expected
    assert "[INST]Return the person as JSON.\n\nBo is 42" in trainer.processing_class.decode(got[0]["prompt_ids"])
    del trainer
    ws = tmp_path / "ws"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunedeck.tui.cli",
            "run",
            "dpo",
            "--workspace",
            str(ws),
            "--data",
            str(data),
            "--set",
            f"model.base={model_dir}",
            "--set",
            "optim.max_steps=3",
            "--set",
            "optim.batch_size=4",
            "--set",
            "checkpoints.save_steps=3",
            "--set",
            "optim.precision=fp32",
            "--set",
            "optim.learning_rate=1e-3",
            "--set",
            "gate.when=never",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = next((ws / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["kind"] == "train" and "loss" in e]
    assert losses and all(math.isfinite(x) for x in losses)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert "last user turn" in (run_dir / "run.toml").read_text()


def test_dpo_rows_whose_answers_cannot_be_found_are_errors_with_their_line_even_under_auto(tmp_path):
    """auto's fallback to every token is SFT's: DPO scores the answers, so such a row is refused, never trained
    whole."""
    from tunedeck.engine.scheduling.preflight import PreflightError, run_preflight

    model = _save_tokenizer(family_tokenizer(QWEN3, TEXTS), tmp_path / "m")
    answer = reasoning_conversation()[1:]  # a reply with reasoning, a user turn, a reply: Qwen3 drops the reasoning
    rows = [preference_row(system=False) for _ in range(3)]
    rows[1] = {
        "prompt": reasoning_conversation()[:1],
        "chosen": answer,
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    data = str(_write(tmp_path / "pairs.jsonl", rows))
    with pytest.raises(PreflightError, match=r"pairs\.jsonl:2: the chat template rewrites earlier turns"):
        run_preflight("dpo", data, [f"model.base={model}", "data.val_fraction=0"])
    skipped = run_preflight("dpo", data, [f"model.base={model}", "data.val_fraction=0", "data.on_invalid=skip"])
    assert skipped.profile.data.assistant_only_loss == "auto" and not any(
        "every token" in w for w in skipped.warnings
    )  # nor advised
    assert any(w.startswith("1 rows the chat template cannot render are skipped") for w in skipped.warnings)
