"""Hostile input never ends in a traceback or a hang: property-based tests of every reader."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunedeck.engine.config.profile_loading import ProfileError, load_profile
from tunedeck.engine.run.event_log import EventReader

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

toml_keys = st.sampled_from(
    [
        "model",
        "data",
        "optim",
        "lora",
        "gate",
        "method",
        "extends",
        "description",
        "r",
        "learning_rate",
        "epochs",
        "base",
        "[",
        "]",
        "=",
        '"',
        "\n",
        "#",
        ".",
        "x",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@FAST
@given(data=st.binary(max_size=2000))
def test_profile_loader_on_arbitrary_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_bytes(data)
    try:
        load_profile(str(path))
    except ProfileError as e:
        assert str(path) in str(e)


@FAST
@given(parts=st.lists(toml_keys, max_size=60))
def test_profile_loader_on_toml_like_text(tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text(" ".join(parts))
    try:
        load_profile(str(path))
    except ProfileError as e:
        assert str(path) in str(e) or "profile" in str(e)


@FAST
@given(
    section=st.sampled_from(["model", "data", "method", "lora", "optim", "checkpoints", "gate", "speed", "resources"]),
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20),
    value=json_values,
)
def test_profile_loader_on_wrong_types(tmp_path_factory, section, key, value):
    import tomlkit

    path = tmp_path_factory.mktemp("p") / "p.toml"
    try:
        text = tomlkit.dumps({section: {key: value}})
    except Exception:
        return  # not representable in TOML (None, nan keys...): nothing to test
    path.write_text(text)
    try:
        load_profile(str(path))
    except ProfileError as e:
        assert f"{path}:" in str(e) and e.key


def test_profile_deep_nesting_and_huge_line(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    huge = tmp_path / "huge.toml"
    huge.write_text('description = "' + "a" * 5_000_000 + '"\n[optim]\nepochs = "many"\n')
    for path in (deep, huge):
        try:
            load_profile(str(path))
        except ProfileError as e:
            assert str(path) in str(e)


@FAST
@given(
    chunks=st.lists(
        st.binary(max_size=300)
        | st.builds(lambda v: json.dumps({"kind": "train", "v": v}).encode() + b"\n", json_values),
        max_size=30,
    )
)
def test_event_reader_on_arbitrary_bytes(tmp_path_factory, chunks):
    path = tmp_path_factory.mktemp("e") / "events.jsonl"
    path.write_bytes(b"".join(chunks))
    reader = EventReader(path)
    events = reader.read_new()
    assert all(isinstance(e, dict) and isinstance(e["kind"], str) for e in events)
    assert reader.offset <= path.stat().st_size


def test_event_reader_huge_and_deep_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"kind":"a","x":' + b"[" * 100000 + b"]" * 100000 + b"}\n" + b'{"kind":"ok"}\n' + b"z" * 20_000_000
    )
    reader = EventReader(path)
    assert [e["kind"] for e in reader.read_new()] == ["ok"]
    assert reader.read_new() == []  # the runaway unterminated tail is skipped, not re-read forever
    assert reader.offset == path.stat().st_size


# ---- the dataset reader and the eval-set reader ---------------------------------------------------

from tunedeck.engine.data.dataset import DatasetError, load_dataset  # noqa: E402
from tunedeck.engine.gate.eval_sets import EvalSetError, load_eval_set  # noqa: E402

row_like = st.fixed_dictionaries(
    {},
    optional={
        "messages": json_values
        | st.lists(
            st.fixed_dictionaries({}, optional={"role": json_values, "content": json_values, "weight": json_values}),
            max_size=4,
        ),
        "prompt": json_values,
        "completion": json_values,
        "chosen": json_values,
        "rejected": json_values,
        "text": json_values,
        "instruction": json_values,
        "output": json_values,
        "conversations": json_values,
        "reference": json_values,
        "checks": json_values,
        "tags": json_values,
    },
)


def _lines(parts) -> bytes:
    return b"".join(p if isinstance(p, bytes) else (json.dumps(p).encode() + b"\n") for p in parts)


@FAST
@given(
    parts=st.lists(st.binary(max_size=200) | row_like, max_size=25),
    method=st.sampled_from(["sft", "dpo"]),
    policy=st.sampled_from(["error", "skip"]),
)
def test_dataset_reader_never_crashes(tmp_path_factory, parts, method, policy):
    path = tmp_path_factory.mktemp("d") / "data.jsonl"
    path.write_bytes(_lines(parts))
    try:
        ds = load_dataset(path, method=method, on_invalid=policy)
    except DatasetError as e:
        assert "data.jsonl" in str(e)
        return
    # nothing dropped silently: every source row is either a kept row or has an error at its line
    error_lines = {p.line for p in ds.problems if p.severity == "error"}
    assert len(ds.rows) + len(error_lines) >= ds.total_rows or not ds.total_rows
    assert all(p.line >= 1 for p in ds.problems)


@FAST
@given(parts=st.lists(st.binary(max_size=200) | row_like, max_size=20))
def test_eval_set_reader_never_crashes(tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("s") / "golden.jsonl"
    path.write_bytes(_lines(parts))
    try:
        load_eval_set(path, "golden")
    except EvalSetError as e:
        assert "golden.jsonl" in str(e)


def test_readers_on_huge_deep_and_truncated_files(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    cases = {
        "huge.jsonl": (good + "\n").encode() + b'{"text": "' + b"a" * 12_000_000 + b'"}\n',
        "deep.jsonl": (good + "\n").encode() + b'{"messages": ' + b"[" * 50000 + b"]" * 50000 + b"}\n",
        "truncated.jsonl": (good + "\n").encode() + good[: len(good) // 2].encode(),
        "binary.jsonl": bytes(range(256)) * 40,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            ds = load_dataset(path)
            assert ds.error_count() >= 1, name
            assert all(f"{name}" in p.where(str(path)) for p in ds.problems)
        except DatasetError as e:
            assert name in str(e)
        try:
            load_eval_set(path, "golden")
        except EvalSetError as e:
            assert name in str(e)
