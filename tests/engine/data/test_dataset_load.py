"""engine/data/dataset.py: every problem category with its exact lines, every format, every source type."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tunedeck.engine.data import problems as D
from tunedeck.engine.data.dataset import DatasetError, load_dataset

U = {"role": "user", "content": "What is the capital of France?"}
A = {"role": "assistant", "content": "Paris."}
S = {"role": "system", "content": "Be brief."}
GOOD = {"messages": [U, A]}
CALL = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "capital", "arguments": "{}"}}]}
TOOL = {"role": "tool", "content": "Paris"}


def write(path: Path, lines: list) -> Path:
    """One JSONL line per item: bytes as they are, anything else as JSON."""
    path.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return path


def lines_of(ds, category: str) -> list[int]:
    return [p.line for p in ds.problems if p.category == category]


# (category, rows, method, format, lines with that category). Line 1 is always a good row so
# detection works and the line numbers prove they are counted, not guessed.
CASES = [
    ("invalid_json", [GOOD, b'{"messages": [', GOOD, b"{'single': 'quotes'}"], "sft", "auto", [2, 4]),
    ("undecodable", [GOOD, b'{"messages": "\xff\xfe"}', GOOD], "sft", "auto", [2]),
    ("not_object", [GOOD, [1, 2], "a string", 3], "sft", "auto", [2, 3, 4]),
    ("messages_missing", [GOOD, {"msgs": [U, A]}], "sft", "auto", [2]),
    ("messages_not_list", [GOOD, GOOD, {"messages": "hi"}], "sft", "auto", [3]),
    ("messages_empty", [GOOD, {"messages": []}], "sft", "auto", [2]),
    ("message_not_object", [GOOD, {"messages": ["hi", A]}], "sft", "auto", [2]),
    ("message_missing_role", [GOOD, {"messages": [{"content": "hi"}, A]}], "sft", "auto", [2]),
    (
        "message_missing_content",
        [GOOD, {"messages": [{"role": "user"}, A]}, {"messages": [U, {"role": "assistant"}]}],
        "sft",
        "auto",
        [2, 3],
    ),
    ("unknown_message_key", [GOOD, {"messages": [{**U, "lang": "en"}, A]}], "sft", "auto", [2]),
    (
        "unknown_role",
        [
            GOOD,
            {"messages": [U, {"role": "assistent", "content": "x"}]},
            {"messages": [{"role": 3, "content": "x"}, A]},
        ],
        "sft",
        "auto",
        [2, 3],
    ),
    (
        "content_not_string",
        [
            GOOD,
            {"messages": [U, {"role": "assistant", "content": ["Paris"]}]},
            {"messages": [{"role": "user", "content": 5}, A]},
        ],
        "sft",
        "auto",
        [2, 3],
    ),
    ("content_empty", [GOOD, {"messages": [U, {"role": "assistant", "content": "  "}]}], "sft", "auto", [2]),
    ("no_assistant", [GOOD, {"messages": [S, U]}], "sft", "auto", [2]),
    ("last_not_assistant", [GOOD, {"messages": [U, A, U]}], "sft", "auto", [2]),
    (
        "role_order",
        [GOOD, {"messages": [U, S, A]}, {"messages": [U, U, A]}, {"messages": [U, TOOL, A]}, GOOD],
        "sft",
        "auto",
        [2, 3, 4],
    ),
    (
        "invalid_weight",
        [
            GOOD,
            {"messages": [U, {**A, "weight": 2}]},
            {"messages": [{**U, "weight": 1}, A]},
            {"messages": [U, {**A, "weight": True}]},
        ],
        "sft",
        "auto",
        [2, 3, 4],
    ),
    (
        "invalid_tool_calls",
        [
            GOOD,
            {"messages": [U, {"role": "assistant", "content": "x", "tool_calls": "f()"}]},
            {"messages": [{**U, "tool_calls": [{}]}, A]},
        ],
        "sft",
        "auto",
        [2, 3],
    ),
    ("invalid_tools", [GOOD, {"messages": [U, A], "tools": {"name": "f"}}], "sft", "auto", [2]),
    (
        "missing_field",
        [{"instruction": "Add", "output": "2"}, {"instruction": "Sub"}, {"output": "3", "instruction": None}],
        "sft",
        "auto",
        [2, 3],
    ),
    (
        "chosen_equals_rejected",
        [
            {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"},
            {"prompt": "Hi", "chosen": "Yo", "rejected": "Yo"},
        ],
        "dpo",
        "auto",
        [2],
    ),
    (
        "no_response",
        [
            {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"},
            {"chosen": [U, A], "rejected": [U, A, U, {**A, "content": "More"}]},
        ],
        "dpo",
        "auto",
        [2],
    ),
    (
        "invalid_history",
        [
            {"instruction": "Add", "output": "2"},
            {"instruction": "Add", "output": "2", "history": "1+1=2"},
            {"instruction": "Add", "output": "2", "history": [["1+1", 2]]},
        ],
        "sft",
        "auto",
        [2, 3],
    ),
    (
        "invalid_label",
        [{**GOOD, "label": True}, {**GOOD, "label": "yes"}, {**GOOD, "label": None}],
        "kto",
        "auto",
        [2, 3],
    ),
    (
        "multimodal",
        [GOOD, {**GOOD, "images": ["cat.jpg"]}, {**GOOD, "videos": ["a.mp4"]}, {**GOOD, "images": []}],
        "sft",
        "auto",
        [2, 3],
    ),
    (
        "media_tag",
        [GOOD, {"messages": [{**U, "content": "<image>Who is this?"}, A]}, {"text": "plain"}],
        "sft",
        "auto",
        [2],
    ),
    ("unknown_column", [GOOD, {**GOOD, "tols": []}, {**GOOD, "tols": []}, {**GOOD, "id": 4}], "sft", "auto", [2]),
]


@pytest.mark.parametrize("category,rows,method,fmt,expected", CASES, ids=[c[0] for c in CASES])
def test_each_category_with_exact_lines(tmp_path, category, rows, method, fmt, expected):
    ds = load_dataset(write(tmp_path / "d.jsonl", rows), method=method, format=fmt)
    assert lines_of(ds, category) == expected
    assert ds.total_rows == len(rows)
    errors = {p.line for p in ds.problems if p.severity == "error"}
    assert sorted(errors | set(ds.lines)) == list(range(1, len(rows) + 1))  # every row is either valid or an error
    assert not errors & set(ds.lines)
    for p in ds.problems:
        assert p.to_dict()["line"] == p.line and p.message


def test_line_too_long_is_a_problem_and_reading_goes_on(tmp_path):
    huge = json.dumps({"messages": [U, {"role": "assistant", "content": "x" * 3000}]}).encode()
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, huge, GOOD, huge]), max_line_bytes=1000)
    assert lines_of(ds, "line_too_long") == [2, 4]
    assert ds.lines == [1, 3]
    assert ds.problems[0].message == f"line is {len(huge):,} bytes, over the 1,000-byte cap"


def test_default_cap_is_10_mb(tmp_path):
    big = json.dumps({"messages": [U, {"role": "assistant", "content": "y" * (10 * 1024 * 1024 + 10)}]}).encode()
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, big, GOOD]))
    assert lines_of(ds, "line_too_long") == [2] and ds.lines == [1, 3]


def test_line_exactly_at_the_cap_is_read(tmp_path):
    row = json.dumps({"messages": [U, A]}).encode()
    ds = load_dataset(write(tmp_path / "d.jsonl", [row, row]), max_line_bytes=len(row))
    assert ds.lines == [1, 2] and not ds.problems


def test_binary_garbage_gives_problems_not_a_crash(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(os.urandom(4096).replace(b"\n", b"\x00") + b"\n" + bytes(range(11, 256)) + b"\n\x00\x01\x02")
    ds = load_dataset(path)
    assert ds.format == "unknown" and ds.rows == [] and ds.total_rows == 3
    assert [p.line for p in ds.problems] == [1, 2, 3]
    assert {p.category for p in ds.problems} <= {"undecodable", "invalid_json"}


def test_garbage_among_good_rows(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, os.urandom(300).replace(b"\n", b"!"), GOOD]))
    assert ds.lines == [1, 3] and [p.line for p in ds.problems] == [2]


def test_blank_lines_bom_and_crlf_keep_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    row = json.dumps(GOOD).encode()
    path.write_bytes(b"\xef\xbb\xbf" + row + b"\r\n\r\n" + row + b"\r\n  \n" + b"[1]\r\n")
    ds = load_dataset(path)
    assert ds.lines == [1, 3] and lines_of(ds, "not_object") == [5] and ds.total_rows == 3


def test_messages_keep_tools_tool_calls_and_names(tmp_path):
    tools = [{"type": "function", "function": {"name": "capital", "parameters": {}}}]
    row = {
        "messages": [S, {**U, "name": "ann"}, {**CALL, "content": None}, {**TOOL, "tool_call_id": "1"}, A],
        "tools": tools,
        "source": "web",
    }
    ds = load_dataset(write(tmp_path / "d.jsonl", [row]))
    assert not ds.problems
    # arguments given as a JSON string become a dict: chat templates expect one
    call = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "capital", "arguments": {}}}]}
    assert ds.rows == [{"messages": [S, {**U, "name": "ann"}, call, {**TOOL, "tool_call_id": "1"}, A], "tools": tools}]


def test_tools_given_as_a_json_string_are_parsed(tmp_path):
    tools = [{"type": "function", "function": {"name": "f"}}]
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"messages": [U, A], "tools": json.dumps(tools)}]))
    assert ds.rows[0]["tools"] == tools


def test_unknown_message_key_is_dropped_with_a_suggestion(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"messages": [U, {**A, "wieght": 1}]}]))
    assert ds.rows == [{"messages": [U, A]}]
    (p,) = ds.problems
    assert p.severity == "warning" and p.field == "messages[1].wieght" and 'did you mean "weight"' in p.message


def test_unknown_role_message_names_field_and_suggestion(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, {"messages": [U, S, {"role": "assistent", "content": "x"}]}]))
    (p,) = ds.problems  # no follow-on no_assistant / role_order noise
    assert p.message.startswith('messages[2].role: unknown role "assistent" (did you mean "assistant"?)')


def test_weight_one_is_silent_and_dropped(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"messages": [U, {**A, "weight": 1}]}]))
    assert not ds.problems and ds.rows == [GOOD]


def test_two_assistant_turns_in_a_row_is_a_warning(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"messages": [U, A, A]}]))
    assert [(p.category, p.severity) for p in ds.problems] == [("role_order", "warning")]
    assert ds.lines == [1]


# ---- formats ------------------------------------------------------------------------------------------


def test_prompt_completion_plain_stays_plain(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"prompt": "2+2=", "completion": "4", "id": 1}]))
    assert ds.format == "prompt_completion" and ds.rows == [{"prompt": "2+2=", "completion": "4"}]


def test_prompt_completion_conversational_becomes_messages(tmp_path):
    ds = load_dataset(
        write(tmp_path / "d.jsonl", [{"prompt": [S, U], "completion": [A]}, {"prompt": "Hi", "completion": [A]}])
    )
    assert ds.rows == [{"messages": [S, U, A]}, {"messages": [{"role": "user", "content": "Hi"}, A]}]


def test_text(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"text": "Once upon a time."}, {"text": ""}]))
    assert ds.format == "text" and ds.rows == [{"text": "Once upon a time."}] and lines_of(ds, "content_empty") == [2]


def test_alpaca(tmp_path):
    rows = [
        {"instruction": "Translate", "input": "chat", "output": "cat"},
        {"instruction": "Say hi", "input": "", "output": "hi", "system": "Be nice."},
    ]
    ds = load_dataset(write(tmp_path / "d.jsonl", rows))
    assert ds.format == "alpaca"
    assert ds.rows == [
        {"messages": [{"role": "user", "content": "Translate\n\nchat"}, {"role": "assistant", "content": "cat"}]},
        {
            "messages": [
                {"role": "system", "content": "Be nice."},
                {"role": "user", "content": "Say hi"},
                {"role": "assistant", "content": "hi"},
            ]
        },
    ]


def test_sharegpt(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}], "system": "Be brief."},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "Hello"}]},
    ]
    ds = load_dataset(write(tmp_path / "d.jsonl", rows))
    assert ds.format == "sharegpt"
    assert ds.rows == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        }
    ]
    (p,) = ds.problems
    assert p.category == "unknown_role" and p.field == "conversations[1].from" and p.line == 2


def test_preference_explicit_plain_strings_become_conversational(tmp_path):
    ds = load_dataset(
        write(tmp_path / "d.jsonl", [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]), method="dpo"
    )
    assert ds.format == "preference"
    assert ds.rows == [
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        }
    ]


def test_preference_implicit_prompt_is_the_shared_prefix(tmp_path):
    bad = {"role": "assistant", "content": "No idea."}
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"chosen": [S, U, A], "rejected": [S, U, bad]}]), method="dpo")
    assert ds.rows == [{"prompt": [S, U], "chosen": [A], "rejected": [bad]}]


def test_preference_missing_field(tmp_path):
    rows = [
        {"prompt": "Hi", "chosen": "a", "rejected": "b"},
        {"prompt": "Hi", "chosen": "a"},
        {"chosen": "a", "rejected": "b"},
    ]
    ds = load_dataset(write(tmp_path / "d.jsonl", rows), method="dpo")
    assert lines_of(ds, "missing_field") == [2, 3]
    assert [p.field for p in ds.problems] == ["rejected", "prompt"]


def test_forced_format_reports_rows_of_another_shape(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, {"text": "hi"}]), format="text")
    assert ds.format == "text" and lines_of(ds, "missing_field") == [1]
    assert "looks like messages data" in ds.problems[0].message and ds.lines == [2]


def test_detection_follows_the_majority(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [{"text": "a"}, GOOD, GOOD, GOOD]))
    assert ds.format == "messages" and lines_of(ds, "messages_missing") == [1]


# ---- sources ------------------------------------------------------------------------------------------


def test_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in [GOOD, [1], GOOD]) + "\n]")
    ds = load_dataset(path)
    assert ds.lines == [2, 4] and lines_of(ds, "not_object") == [3]  # file lines, not array indices


def test_json_wrapper_and_jsonl_under_a_json_name(tmp_path):
    (tmp_path / "w.json").write_text('{"data": [\n' + json.dumps(GOOD) + ",\n" + json.dumps(GOOD) + "]}")
    assert load_dataset(tmp_path / "w.json").lines == [2, 3]
    write(tmp_path / "l.json", [GOOD, GOOD, b"{oops"])
    ds = load_dataset(tmp_path / "l.json")
    assert ds.lines == [1, 2] and lines_of(ds, "invalid_json") == [3]


def test_invalid_json_file_names_file_and_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n{"messages": []},\n{oops}\n]')
    with pytest.raises(DatasetError, match=r"d\.json:3: invalid JSON"):
        load_dataset(path)


def test_csv_with_json_cells_and_row_numbers(tmp_path):
    import csv

    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "input", "output"])
        w.writerow(["Add", "1 and 2", "3"])
        w.writerow(["Multi\nline", "", ""])
        w.writerow(["Sub", "3 and 1", "2"])
    ds = load_dataset(path)
    # file lines: the header is line 1 and the quoted newline makes the second record two lines long
    assert ds.format == "alpaca" and ds.lines == [2, 5] and lines_of(ds, "content_empty") == [3]
    path2 = tmp_path / "m.csv"
    with open(path2, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["messages"])
        w.writerow([json.dumps([U, A])])
    assert load_dataset(path2).rows == [GOOD]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, {"messages": [U]}, GOOD]), path)
    ds = load_dataset(path)
    assert ds.rows == [GOOD, GOOD] and ds.lines == [1, 3] and lines_of(ds, "no_assistant") == [2]
    assert ds.unit == "row" and f"{path} row 2" in ds.summary()  # a table has rows, not file lines


def test_arrow_file_reports_rows(tmp_path):
    from datasets import Dataset

    Dataset.from_list([GOOD, {"messages": [U]}, GOOD]).save_to_disk(tmp_path / "saved")
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    ds = load_dataset(arrow)
    assert ds.unit == "row" and ds.lines == [1, 3] and lines_of(ds, "no_assistant") == [2]
    assert f"{arrow} row 2" in ds.summary()
    (tmp_path / "bad.arrow").write_text("not arrow")
    with pytest.raises(DatasetError, match="not a readable Arrow file"):
        load_dataset(tmp_path / "bad.arrow")


def test_save_to_disk_folder(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict(
        {"train": Dataset.from_list([{"text": "a"}, {"text": "b"}]), "test": Dataset.from_list([{"text": "c"}])}
    ).save_to_disk(tmp_path / "dd")
    ds = load_dataset(tmp_path / "dd")
    assert ds.format == "text" and ds.rows == [{"text": "a"}, {"text": "b"}]


def test_progress_reaches_the_end(tmp_path):
    seen = []
    load_dataset(write(tmp_path / "d.jsonl", [GOOD] * 5000), progress=lambda d, t: seen.append((d, t)))
    assert len(seen) >= 2 and seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


# ---- policies and mistakes -----------------------------------------------------------------------------


def test_skip_policy_lists_the_skipped_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", [GOOD, b"{", GOOD, {"messages": []}])
    assert load_dataset(path).skipped == []
    ds = load_dataset(path, on_invalid="skip")
    assert ds.skipped == [2, 4] and ds.lines == [1, 3] and ds.error_count() == 2


def test_summary_names_file_lines_and_counts(tmp_path):
    ds = load_dataset(write(tmp_path / "d.jsonl", [GOOD, b"{", {"messages": []}, b"{"]))
    text = ds.summary()
    assert "4 rows" in text and "invalid_json x2" in text and f"{tmp_path / 'd.jsonl'}:2" in text
    assert ds.counts() == {"invalid_json": 2, "messages_empty": 1}


@pytest.mark.parametrize(
    "setup,kwargs,pattern",
    [
        (None, {}, r"nope\.jsonl: no such file"),
        ("x.txt", {}, r"x\.txt: unknown file type"),
        ("d.jsonl", {"format": "chatml"}, r"unknown format 'chatml'"),
        ("d.jsonl", {"method": "dpo"}, r"DPO needs preference data"),
        ("p.jsonl", {"method": "sft"}, r"preference data"),
        ("k.jsonl", {}, r"cannot tell the dataset format \(columns seen: a, b\)"),
        ("e.jsonl", {}, r"e\.jsonl: no rows"),
    ],
)
def test_dataset_errors_name_the_file(tmp_path, setup, kwargs, pattern):
    files = {
        "x.txt": [b"hello"],
        "d.jsonl": [GOOD],
        "p.jsonl": [{"prompt": "a", "chosen": "b", "rejected": "c"}],
        "k.jsonl": [{"a": 1, "b": 2}],
        "e.jsonl": [b""],
    }
    path = write(tmp_path / setup, files[setup]) if setup else tmp_path / "nope.jsonl"
    with pytest.raises(DatasetError, match=pattern) as info:
        load_dataset(path, **kwargs)
    assert str(path.name) in str(info.value)


def test_every_documented_category_is_tested():
    documented = set(re.findall(r"^  ([a-z_]+)\s+\[", D.__doc__, re.M))
    tested = {c[0] for c in CASES} | {"line_too_long"}
    assert documented == tested
