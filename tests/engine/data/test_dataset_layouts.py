"""Datasets as other tools document them (LLaMA-Factory data/README.md, OpenAI chat and preference fine-tuning,
axolotl's dataset formats), written as small fixtures in each layout: each trains as its authors meant, or is
refused with one message that names the file line and what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tunedeck

from tunedeck.engine.data.dataset import DatasetError, load_dataset

TOOLS = [
    {
        "name": "calculate_area",
        "description": "Calculate the area of a shape",
        "parameters": {"type": "object", "properties": {"shape": {"type": "string"}}, "required": ["shape"]},
    }
]
OPENAI_TOOLS = [{"type": "function", "function": TOOLS[0]}]


def pretty(path: Path, rows: list) -> Path:
    """A pretty-printed JSON array, as LLaMA-Factory ships its demo data."""
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    return path


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def opening_lines(path: Path) -> list[int]:
    """File lines where each top-level row object of a pretty-printed array opens (two-space indent)."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if line == "  {"]


# ---- LLaMA-Factory ------------------------------------------------------------------------------------


def glaive_row(call: str = '{"name": "calculate_area", "arguments": {"shape": "rectangle"}}') -> dict:
    return {
        "conversations": [
            {"from": "human", "value": "Area of a 5 by 3 rectangle?"},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": '{"area": 15}'},
            {"from": "gpt", "value": "It is 15 square units."},
        ],
        "system": "You can call tools.",
        "tools": json.dumps(TOOLS),
    }


def test_sharegpt_tool_calls_become_canonical_messages(tmp_path):
    path = pretty(
        tmp_path / "glaive_toolcall_demo.json",
        [
            glaive_row(),
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "tools": "[]"},
        ],
    )
    ds = load_dataset(path)
    assert ds.format == "sharegpt" and not ds.problems and ds.lines == opening_lines(path)
    assert ds.rows[0] == {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Area of a 5 by 3 rectangle?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"type": "function", "function": {"name": "calculate_area", "arguments": {"shape": "rectangle"}}}
                ],
            },
            {"role": "tool", "content": '{"area": 15}', "name": "calculate_area"},
            {"role": "assistant", "content": "It is 15 square units."},
        ],
        "tools": OPENAI_TOOLS,
    }  # bare function schemas from a JSON string, wrapped in OpenAI's shape
    assert ds.rows[1] == {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def test_parallel_function_calls_and_a_broken_call_with_its_file_line(tmp_path):
    two = json.dumps(
        [
            {"name": "calculate_area", "arguments": {"shape": "square"}},
            {"name": "calculate_area", "arguments": '{"shape": "circle"}'},
        ]
    )
    row = glaive_row(two)
    row["conversations"][2:2] = [{"from": "observation", "value": '{"area": 4}'}]
    path = pretty(tmp_path / "d.json", [row, glaive_row("calculate_area(shape=square)")])
    ds = load_dataset(path, on_invalid="skip")
    calls = ds.rows[0]["messages"][2]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [{"shape": "square"}, {"shape": "circle"}]
    assert [m.get("name") for m in ds.rows[0]["messages"][3:5]] == ["calculate_area", "calculate_area"]
    bad = [p for p in ds.problems if p.category == "invalid_tool_calls"]
    assert [p.line for p in bad] == [opening_lines(path)[1]] and "not valid JSON" in bad[0].message
    assert ds.skipped == [opening_lines(path)[1]]  # skip drops the broken row only, never the tool-calling rows


def test_sharegpt_preference_layout_becomes_dpo_pairs(tmp_path):
    path = pretty(
        tmp_path / "dpo_en_demo.json",
        [
            {
                "conversations": [
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Hello."},
                    {"from": "human", "value": "Capital of France?"},
                ],
                "chosen": {"from": "gpt", "value": "Paris."},
                "rejected": {"from": "gpt", "value": "Lyon."},
            }
        ],
    )
    ds = load_dataset(path, method="auto")
    assert ds.format == "preference" and ds.method == "dpo" and not ds.problems
    assert ds.rows == [
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "chosen": [{"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "assistant", "content": "Lyon."}],
        }
    ]


def test_alpaca_preference_and_history(tmp_path):
    ds = load_dataset(
        pretty(tmp_path / "p.json", [{"instruction": "Add", "input": "1 and 2", "chosen": "3", "rejected": "4"}]),
        method="dpo",
    )
    assert ds.rows == [
        {
            "prompt": [{"role": "user", "content": "Add\n\n1 and 2"}],
            "chosen": [{"role": "assistant", "content": "3"}],
            "rejected": [{"role": "assistant", "content": "4"}],
        }
    ]
    ds = load_dataset(
        pretty(
            tmp_path / "h.json",
            [{"instruction": "And 2+3?", "output": "5", "system": "Math.", "history": [["1+1?", "2"], ["2+2?", "4"]]}],
        )
    )
    assert ds.rows[0]["messages"] == [
        {"role": "system", "content": "Math."},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 2+3?"},
        {"role": "assistant", "content": "5"},
    ]
    ds = load_dataset(pretty(tmp_path / "bad.json", [{"instruction": "q", "output": "a", "history": [["only one"]]}]))
    assert [p.category for p in ds.problems] == ["invalid_history"] and ds.problems[0].line == 2


def test_csv_with_history_and_kto_tags(tmp_path):
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "output", "history", "kto_tag"])
        w.writerow(["q", "a", json.dumps([["h", "a0"]]), "TRUE"])
        w.writerow(["q2", "b", "", "false"])
    ds = load_dataset(tmp_path / "d.csv", method="auto")
    assert ds.format == "kto" and not ds.problems and ds.lines == [2, 3]
    assert ds.rows[0]["prompt"][:2] == [{"role": "user", "content": "h"}, {"role": "assistant", "content": "a0"}]
    assert [r["label"] for r in ds.rows] == [True, False]


def test_problems_in_a_pretty_printed_array_name_the_file_line(tmp_path):
    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(30)]
    rows[17]["output"] = ""
    path = pretty(tmp_path / "alpaca_en_demo.json", rows)
    ds = load_dataset(path)
    assert [p.line for p in ds.problems] == [opening_lines(path)[17]]  # 87, not 18
    assert f"{path}:{opening_lines(path)[17]}" in ds.summary()


def test_multimodal_rows_are_refused(tmp_path):
    ds = load_dataset(
        pretty(
            tmp_path / "mllm_demo.json",
            [
                {
                    "messages": [
                        {"role": "user", "content": "<image>Who is this?"},
                        {"role": "assistant", "content": "A cat."},
                    ],
                    "images": ["mllm_demo_data/1.jpg"],
                }
            ],
        )
    )
    assert [p.category for p in ds.problems] == ["multimodal"] and not ds.rows
    assert "text-only" in ds.problems[0].message and "images" in ds.problems[0].message


# ---- OpenAI -------------------------------------------------------------------------------------------


def test_openai_tool_calls_without_content_are_valid(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "parallel_tool_calls": False,
    }
    bad = json.loads(json.dumps(row))
    bad["messages"][1]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    ds = load_dataset(jsonl(tmp_path / "d.jsonl", [row, bad]))
    call = ds.rows[0]["messages"][1]
    assert "content" not in call  # left out, not "", as the canonical contract says
    assert call["tool_calls"] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "call_1"}
    ]
    assert [(p.category, p.line) for p in ds.problems if p.severity == "error"] == [("invalid_tool_calls", 2)]
    assert ds.ignored_columns == {"parallel_tool_calls": 2}


def test_openai_legacy_function_calling_rows(tmp_path):
    ds = load_dataset(
        jsonl(
            tmp_path / "d.jsonl",
            [
                {
                    "messages": [
                        {"role": "user", "content": "Weather in Paris?"},
                        {
                            "role": "assistant",
                            "content": None,
                            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {"role": "function", "name": "get_weather", "content": "sunny"},
                        {"role": "assistant", "content": "Sunny."},
                    ],
                    "functions": [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
                }
            ],
        )
    )
    assert not ds.problems and not ds.ignored_columns
    assert ds.rows[0]["messages"][1:3] == [
        {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "name": "get_weather"},
    ]
    assert ds.rows[0]["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
    ]


def test_openai_preference_layout(tmp_path):
    ds = load_dataset(
        jsonl(
            tmp_path / "d.jsonl",
            [
                {
                    "input": {
                        "messages": [{"role": "user", "content": "How cold is it?"}],
                        "tools": [],
                        "parallel_tool_calls": True,
                    },
                    "preferred_output": [{"role": "assistant", "content": "About 12 degrees."}],
                    "non_preferred_output": [{"role": "assistant", "content": "Cold."}],
                }
            ],
        ),
        method="auto",
    )
    assert ds.method == "dpo" and not ds.problems
    assert ds.rows == [
        {
            "prompt": [{"role": "user", "content": "How cold is it?"}],
            "chosen": [{"role": "assistant", "content": "About 12 degrees."}],
            "rejected": [{"role": "assistant", "content": "Cold."}],
        }
    ]


# ---- axolotl ------------------------------------------------------------------------------------------


def test_axolotl_layouts(tmp_path):
    sharegpt = jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "Be brief."},
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Hello."},
                ]
            }
        ],
    )
    assert load_dataset(sharegpt).rows[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    chat = jsonl(
        tmp_path / "c.jsonl",
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}],
    )
    assert load_dataset(chat).format == "messages"
    assert load_dataset(jsonl(tmp_path / "t.jsonl", [{"text": "a document"}])).rows == [{"text": "a document"}]
    segments = jsonl(
        tmp_path / "io.jsonl", [{"segments": [{"label": False, "text": "Q: hi"}, {"label": True, "text": "A: yo"}]}]
    )
    with pytest.raises(DatasetError, match="axolotl's template-free input_output layout"):
        load_dataset(segments)


# ---- columns, misformatted JSONL, inspect -------------------------------------------------------------


def test_unknown_and_misspelt_columns_are_listed(tmp_path):
    ds = load_dataset(
        jsonl(
            tmp_path / "d.jsonl",
            [
                {"instruction": "q", "output": "a", "sytem": "Be kind.", "id": 1},
                {"instruction": "q2", "output": "b", "id": 2},
            ],
        )
    )
    assert ds.ignored_columns == {"sytem": 1, "id": 2}
    warn = [p for p in ds.problems if p.category == "unknown_column"]
    assert len(warn) == 1 and warn[0].line == 1 and 'did you mean "system"' in warn[0].message
    assert warn[0].severity == "warning" and len(ds.rows) == 2
    assert ds.ignored_column_notes() == ['sytem (did you mean "system"?)', "id"]  # what `tunedeck run` warns with


@pytest.mark.parametrize(
    "content,expected",
    [
        ("array", "holds one JSON array (2 rows over"),
        ("pretty", "holds 2 JSON objects, each written over several lines"),
        ("object", "holds a single JSON object spread over"),
    ],
)
def test_misformatted_jsonl_gives_one_message(tmp_path, content, expected):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}] * 2
    text = {
        "array": json.dumps(rows, indent=2),
        "pretty": "\n".join(json.dumps(r, indent=2) for r in rows),
        "object": json.dumps(rows[0], indent=2),
    }[content]
    (tmp_path / "d.jsonl").write_text(text)
    with pytest.raises(DatasetError) as e:
        load_dataset(tmp_path / "d.jsonl")
    assert expected in str(e.value) and "jq -c" in str(e.value)


def test_broken_jsonl_lines_are_still_reported_one_by_one(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a"\n{"text": "b"}\n{oops\n')
    ds = load_dataset(tmp_path / "d.jsonl")
    assert [p.line for p in ds.problems if p.category == "invalid_json"] == [1, 3] and ds.lines == [2]


def test_inspect_plans_the_method_from_the_data_and_lists_ignored_columns(tmp_path):
    path = jsonl(tmp_path / "pairs.jsonl", [{"prompt": "2+2=", "chosen": "4", "rejected": "5", "source": "web"}])
    report = json.loads(tunedeck("inspect", str(path), "--json").stdout)
    assert report["method"] == "dpo" and report["format"] == "preference" and report["ignored_columns"] == {"source": 1}
    text = tunedeck("inspect", str(path)).stdout
    assert "method dpo" in text and "ignored columns" in text and "source (1 row)" in text


def test_inspect_json_prints_a_fatal_error_as_an_object(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps([{"text": "a"}], indent=2))
    proc = tunedeck("inspect", str(tmp_path / "d.jsonl"), "--json")
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert out["path"] == str(tmp_path / "d.jsonl") and "JSON array" in out["error"]


def test_a_large_misformatted_jsonl_is_judged_by_its_start(tmp_path, monkeypatch):
    from tunedeck.engine.data import text_sources as D

    monkeypatch.setattr(D, "_SHAPE_READ_BYTES", 500)  # as a file far larger than what is read to diagnose it
    rows = [{"text": "a" * 50}] * 40
    (tmp_path / "a.jsonl").write_text(json.dumps(rows, indent=2))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r, indent=2) for r in rows))
    with pytest.raises(DatasetError, match="starts a JSON array"):
        load_dataset(tmp_path / "a.jsonl")
    with pytest.raises(DatasetError, match="written over several lines each"):
        load_dataset(tmp_path / "p.jsonl")


def test_run_preflight_says_what_it_ignores(tmp_path):
    """`tunedeck run` prints these before a run exists: nothing is dropped or reinterpreted without a word."""
    from tunedeck.engine.scheduling.preflight import run_preflight

    rows = [
        {"instruction": f"Describe picture {i}", "output": "A cat.", "sytem": "Be brief.", "source": "web"}
        for i in range(20)
    ]
    rows[3]["instruction"] = "<image>" + rows[3]["instruction"]
    pre = run_preflight(
        "lora", str(jsonl(tmp_path / "d.jsonl", rows)), [], workspace=tmp_path / "ws", check_model=False
    )
    assert 'columns not used for training (ignored): sytem (did you mean "system"?), source' in pre.warnings
    assert any(w.startswith("unknown_column x1 (first at ") for w in pre.warnings)
    assert any(w.startswith(f"media_tag x1 (first at {tmp_path / 'd.jsonl'}:4: <image>") for w in pre.warnings)


# ---- trained for real ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_llama_factory_tool_calls_and_preference_pairs_train(workspace, tmp_path, tiny_model_dir):
    """glaive_toolcall-style SFT and dpo_en_demo-style DPO, as LLaMA-Factory ships them, through real runs."""
    from conftest import read_events

    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status

    sft = pretty(
        tmp_path / "glaive_toolcall_demo.json",
        [
            glaive_row(json.dumps({"name": "calculate_area", "arguments": {"shape": s}}))
            for s in ["rectangle", "square", "circle", "triangle"] * 6
        ],
    )
    dpo = pretty(
        tmp_path / "dpo_demo.json",
        [
            {
                "conversations": [{"from": "human", "value": f"What is {i} plus {i}?"}],
                "chosen": {"from": "gpt", "value": f"{2 * i}"},
                "rejected": {"from": "gpt", "value": f"{2 * i + 1}"},
            }
            for i in range(24)
        ],
    )
    common = [
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "optim.max_steps=3",
        "--set",
        "checkpoints.save_steps=3",
        "--set",
        "checkpoints.eval_steps=3",
        "--set",
        'gate.when="never"',
    ]
    for profile, data in (("lora", sft), ("dpo", dpo)):
        proc = tunedeck("run", profile, "--data", str(data), *common)
        assert proc.returncode == 0, proc.stderr
        run = find_run(workspace, proc.stdout.strip().splitlines()[0])
        assert read_effective_status(run).state == C.COMPLETED
        assert [c.step for c in list_checkpoints(run) if c.complete] == [3]
        assert not [e for e in read_events(run) if e["kind"] == C.EV_ERROR]
