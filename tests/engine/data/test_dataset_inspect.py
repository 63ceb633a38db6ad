"""engine/commands/inspect.py: the `tunedeck inspect` command, its JSON shape and its exit codes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunedeck.engine.commands.inspect import build_parser, main

U = {"role": "user", "content": "Maria is a nurse in Lisbon."}


def chat(i: int) -> dict:
    rng = random.Random(i)
    words = " ".join(rng.choice(["Maria", "Lopez", "nurse", "Lisbon", "teacher", "Osaka", "pilot"]) for _ in range(12))
    return {
        "messages": [
            {"role": "user", "content": f"Example {i}: {words}"},
            {"role": "assistant", "content": json.dumps({"id": i, "words": words})},
        ]
    }


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    args = build_parser().parse_args(["inspect", *argv])
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    from tunedeck.engine.models.tiny_model import build_tiny_tokenizer

    texts = [m["content"] for i in range(100) for m in chat(i)["messages"]]
    out = tmp_path_factory.mktemp("tok")
    build_tiny_tokenizer(texts + ["system user assistant"]).save_pretrained(out)
    return out


def test_json_shape_and_exit_1_on_errors(tmp_path, capsys):
    rows = [chat(i) for i in range(40)] + ["{broken", {"messages": [U]}, chat(3)]
    code, out, err = run([str(write(tmp_path / "d.jsonl", rows)), "--json"], capsys)
    assert code == 1 and err == ""
    report = json.loads(out)
    for key in (
        "format",
        "rows",
        "problems",
        "tokens",
        "duplicates",
        "near_duplicates",
        "leakage",
        "split",
        "fingerprint",
    ):
        assert key in report
    assert report["format"] == "messages" and report["rows"] == 43 and report["valid_rows"] == 41
    assert [(p["category"], p["line"], p["severity"]) for p in report["problems"]] == [
        ("invalid_json", 41, "error"),
        ("no_assistant", 42, "error"),
    ]
    assert all(set(p) >= {"category", "line", "message", "severity"} for p in report["problems"])
    assert report["duplicates"] == [[4, 43]]
    assert report["tokens"] is None and "no model" in report["tokenizer"]["note"]
    assert report["split"]["train"] + report["split"]["eval"] == 41 and report["fingerprint"].startswith("sha256:")


def test_tokens_with_a_local_model_and_exit_0(tmp_path, capsys, tok_dir):
    path = write(tmp_path / "d.jsonl", [chat(i) for i in range(30)])
    code, out, _ = run([str(path), "--model", str(tok_dir), "--max-seq-len", "40", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    tokens = report["tokens"]
    assert tokens["examples"] == 30 and tokens["max_seq_len"] == 40 and tokens["assistant_only"]
    assert tokens["truncated_examples"] > 0 and 0 < tokens["trainable_tokens"] < tokens["total_tokens"]
    assert report["plan"]["examples"] == report["split"]["train"]


def test_eval_file_leakage(tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", [chat(i) for i in range(30)])
    held = write(tmp_path / "held.jsonl", [chat(100), chat(7), chat(101)])
    code, out, _ = run([str(train), "--eval", str(held), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["leakage"] == [{"eval_line": 2, "train_lines": [8], "kind": "exact", "similarity": 1.0}]
    assert report["split"] == {"train": 30, "eval": 3, "source": str(held), "seed": 42}
    assert report["eval"]["rows"] == 3


def test_eval_file_errors_count(tmp_path, capsys):
    train = write(tmp_path / "train.jsonl", [chat(i) for i in range(5)])
    held = write(tmp_path / "held.jsonl", [chat(100), "nope"])
    code, out, _ = run([str(train), "--eval", str(held), "--json"], capsys)
    assert code == 1 and json.loads(out)["eval"]["problems"][0]["line"] == 2


def test_profile_settings(tmp_path, capsys, tok_dir):
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[model]\nbase = "{tok_dir}"\n[data]\nmax_seq_len = 32\nval_fraction = 0.25\n[optim]\nseed = 7\n'
        "batch_size = 2\ngrad_accum = 2\nepochs = 1.0\n"
    )
    path = write(tmp_path / "d.jsonl", [chat(i) for i in range(40)])
    code, out, _ = run([str(path), "--profile", str(profile), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["tokens"]["max_seq_len"] == 32
    assert report["split"]["seed"] == 7 and report["split"]["val_fraction"] == 0.25
    plan = report["plan"]
    assert plan["batch_size"] == 2 and plan["steps_per_epoch"] == -(-(-(-plan["examples"] // 2)) // 2)


def test_human_report(tmp_path, capsys, tok_dir):
    rows = [chat(i) for i in range(20)] + [{"messages": [U, {"role": "assistent", "content": "x"}]}, chat(2)]
    code, out, _ = run([str(write(tmp_path / "d.jsonl", rows)), "--model", str(tok_dir)], capsys)
    assert code == 1
    for text in (
        "format messages",
        "unknown_role",
        "d.jsonl:21",
        'did you mean "assistant"',
        "tokens per example",
        "p50 / p90 / p99 / max",
        "exact: d.jsonl:3, 22",
        "fingerprint sha256:",
        "1 error:",
    ):
        assert text in out, text


def test_unloadable_model_is_reported_not_fatal(tmp_path, capsys):
    path = write(tmp_path / "d.jsonl", [chat(1), chat(2)])
    code, out, _ = run([str(path), "--model", str(tmp_path / "no-such-model"), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["tokens"] is None
    assert (
        report["tokenizer"]["note"] == f"{tmp_path / 'no-such-model'}: no such model folder; token statistics skipped"
    )
    (tmp_path / "empty-model").mkdir()
    code, out, _ = run([str(path), "--model", str(tmp_path / "empty-model"), "--json"], capsys)
    assert code == 0 and "cannot load a tokenizer" in json.loads(out)["tokenizer"]["note"]


@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["missing.jsonl"], "missing.jsonl: no such file"),
        (["{data}", "--profile", "no-such-profile"], "no-such-profile"),
        (["{data}", "--method", "dpo"], "DPO needs preference data"),
        (["{data}", "--max-seq-len", "0"], "--max-seq-len"),
    ],
)
def test_usage_errors_exit_2_with_one_message(tmp_path, capsys, argv, pattern):
    data = write(tmp_path / "d.jsonl", [chat(1)])
    code, out, err = run([a.replace("{data}", str(data)) for a in argv], capsys)
    assert code == 2 and out == "" and pattern in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_argparse_rejects_unknown_format(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["inspect", "x.jsonl", "--format", "chatml"])
    assert info.value.code == 2


def test_register_adds_inspect_to_any_parser():
    import argparse

    from tunedeck.engine.commands.inspect import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inspect", "data.jsonl", "--json", "--eval", "held.jsonl", "--format", "alpaca"])
    assert (
        args.func is main and args.path == "data.jsonl" and args.eval_path == "held.jsonl" and args.format == "alpaca"
    )
