"""The next run from this one: data.path as several files, the frozen parent profile, `run --from`, parent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tunedeck

from tunedeck.engine.config.next_run import changes_against_parent, write_next_profile
from tunedeck.engine.config.profile_loading import ProfileError, build_profile
from tunedeck.engine.config.profile_schema import Profile, data_paths
from tunedeck.engine.config.workspace import fixes_path
from tunedeck.engine.data.dataset import DatasetError
from tunedeck.engine.data.files import load_data_files
from tunedeck.engine.run.run_record import RunRecord, load_run_record, write_run_record


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_data_path_takes_one_file_or_a_list():
    assert build_profile({"data": {"path": "a.jsonl"}}).data.path == "a.jsonl"
    assert build_profile({"data": {"path": ["a.jsonl"]}}).data.path == "a.jsonl"
    p = build_profile({"data": {"path": ["a.jsonl", "b.jsonl"]}})
    assert data_paths(p.data) == ["a.jsonl", "b.jsonl"]
    assert data_paths(Profile().data) == []
    for bad in ([], ["a.jsonl", 3], ["a.jsonl", ""]):
        with pytest.raises(ProfileError, match="data.path' must be a string or a list of non-empty strings"):
            build_profile({"data": {"path": bad}})


def test_several_files_read_as_one_dataset_with_each_rows_own_file_line(tmp_path):
    alpaca = write_jsonl(
        tmp_path / "base.jsonl", [{"instruction": "q1", "output": "a1"}, "", {"instruction": "q2", "output": "a2"}]
    )
    fixes = write_jsonl(tmp_path / "fixes.jsonl", [chat("q3", "a3")])
    files = load_data_files([str(alpaca), str(fixes)])
    assert [r["messages"][-1]["content"] for r in files.rows] == ["a1", "a2", "a3"]
    assert files.where == [f"{alpaca}:1", f"{alpaca}:3", f"{fixes}:1"]
    assert files.format == "alpaca" and files.paths == [str(alpaca), str(fixes)]


def test_an_invalid_row_in_the_second_file_names_that_file_and_line(tmp_path):
    base = write_jsonl(tmp_path / "base.jsonl", [chat("q1", "a1")])
    fixes = write_jsonl(tmp_path / "fixes.jsonl", [chat("q2", "a2"), {"messages": [{"role": "user", "content": "q"}]}])
    with pytest.raises(DatasetError, match=r"fixes\.jsonl:2"):
        load_data_files([str(base), str(fixes)])
    skipped = load_data_files([str(base), str(fixes)], on_invalid="skip")
    assert skipped.skipped == [f"{fixes}:2"] and len(skipped.rows) == 2


def test_files_that_train_differently_are_refused_naming_both(tmp_path):
    base = write_jsonl(tmp_path / "base.jsonl", [chat("q1", "a1")])
    text = write_jsonl(tmp_path / "notes.jsonl", [{"text": "plain words"}])
    with pytest.raises(
        DatasetError,
        match=r"notes\.jsonl: its rows are plain text \(text\) but \S*base\.jsonl.s are chat conversations",
    ):
        load_data_files([str(base), str(text)])


def test_adding_a_file_keeps_every_row_on_its_side_of_the_split(tmp_path):
    from tunedeck.engine.data.prepare import prepare_data

    base = write_jsonl(tmp_path / "base.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(60)])
    fixes = write_jsonl(tmp_path / "fixes.jsonl", [chat(f"fixed {i}", f"better {i}") for i in range(20)])
    one = build_profile({"data": {"path": str(base), "val_fraction": 0.2, "apply_chat_template": "off"}})
    two = build_profile({"data": {"path": [str(base), str(fixes)], "val_fraction": 0.2, "apply_chat_template": "off"}})
    a, b = prepare_data(one), prepare_data(two)
    assert set(a.eval_where) <= set(b.eval_where) and set(a.train_where) <= set(b.train_where)
    assert len(b.train_rows) + len(b.eval_rows) == 80 and a.fingerprint != b.fingerprint
    assert any(w.startswith(f"{fixes}:") for w in b.train_where)


def fake_parent(ws: Path, data: Path, **profile_data) -> Path:
    run = ws / "runs" / "20250101-000000-parent-0001"
    run.mkdir(parents=True)
    profile = build_profile(
        {"extends": "lora", "data": {"path": str(data), **profile_data}, "optim": {"learning_rate": 1e-4}}
    )
    write_run_record(run, RunRecord(id=run.name, name="parent", profile=profile, dataset_path=str(data)))
    return run


def test_the_next_profile_extends_the_frozen_parent_and_adds_its_fixes(tmp_path):
    ws = tmp_path / "ws"
    base = write_jsonl(tmp_path / "base.jsonl", [chat("q1", "a1")])
    parent = fake_parent(ws, base)
    nxt = write_next_profile(ws, load_run_record(parent))
    assert nxt.fixes is None and nxt.data == [str(base)] and nxt.parent_name == "parent"
    assert changes_against_parent(nxt, workspace=ws) == []
    fixes = fixes_path(ws, parent.name)
    fixes.parent.mkdir(parents=True)
    write_jsonl(fixes, [chat("q1", "a better answer")])
    nxt = write_next_profile(ws, load_run_record(parent))
    assert nxt.fixes == fixes.resolve() and nxt.data == [str(base), str(fixes.resolve())]
    changes = changes_against_parent(nxt, ["optim.learning_rate=3e-4"], ws)
    assert changes == [
        f"data.path: {str(base)!r} -> {[str(base), str(fixes.resolve())]!r}",
        "optim.learning_rate: 0.0001 -> 0.0003",
    ]
    assert "no longer test the held-out split" in nxt.warnings[0]
    from tunedeck.engine.config.profile_loading import load_profile

    child = load_profile(nxt.profile_path, workspace=ws)
    assert child.optim.learning_rate == 1e-4 and child.extends == f"runs/{parent.name}.toml"
    # the parent's own `extends` is not followed again: its chain may have changed since
    assert 'extends = ""' in (ws / "profiles" / "runs" / f"{parent.name}.toml").read_text()


def test_run_from_refuses_a_profile_too_and_needs_one_or_the_other(tmp_path):
    ws = tmp_path / "ws"
    parent = fake_parent(ws, write_jsonl(tmp_path / "base.jsonl", [chat("q1", "a1")]))
    both = tunedeck("run", "lora", "--from", parent.name, "--workspace", str(ws))
    assert both.returncode == 2 and "not both" in both.stderr and "Traceback" not in both.stderr
    neither = tunedeck("run", "--workspace", str(ws))
    assert neither.returncode == 2 and "or --from RUN" in neither.stderr


@pytest.mark.slow
def test_run_from_trains_on_the_parents_data_plus_its_fixes_and_records_the_parent(workspace, tiny_model_dir, sft_data):
    fast = [
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "gate.when=never",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "checkpoints.eval_steps=2",
    ]
    first = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=2",
        *fast,
        check=True,
    )
    parent = first.stdout.strip().splitlines()[0]
    rows = [json.loads(line) for line in sft_data.read_text().splitlines()[:3]]
    for r in rows:
        r["messages"][-1]["content"] = '{"corrected": true}'
    fixes = fixes_path(workspace, parent)
    fixes.parent.mkdir(parents=True)
    write_jsonl(fixes, rows)
    second = tunedeck("run", "--from", parent, "--set", "optim.max_steps=1", check=True)
    child = second.stdout.strip().splitlines()[0]
    assert f"changed from {parent}: data.path" in second.stderr and "optim.max_steps: 2 -> 1" in second.stderr
    record = json.loads(tunedeck("show", child, "--json", check=True).stdout)
    assert record["parent"] == parent and record["state"] == "completed"
    assert record["dataset"]["rows"] == 243 and record["dataset"]["path"] == f"{sft_data} + {fixes.resolve()}"
    assert record["hyperparameters"]["data"]["path"] == [str(sft_data), str(fixes.resolve())]
    assert load_run_record(workspace / "runs" / child).parent == parent
    listed = {r["id"]: r for r in json.loads(tunedeck("ls", "--json", check=True).stdout)}
    assert listed[child]["parent"] == parent and listed[parent]["parent"] is None


def test_show_names_the_parent(tmp_path):
    from tunedeck.engine.run.status_writer import write_status

    ws = tmp_path / "ws"
    parent = fake_parent(ws, write_jsonl(tmp_path / "base.jsonl", [chat("q1", "a1")]))
    write_status(parent, state="completed")
    child = ws / "runs" / "20250102-000000-parent-0002"
    child.mkdir()
    write_run_record(
        child, RunRecord(id=child.name, name="parent", profile=load_run_record(parent).profile, parent=parent.name)
    )
    write_status(child, state="completed", parent=parent.name)
    shown = tunedeck("show", child.name, "--workspace", str(ws), check=True).stdout
    assert f"parent     {parent.name}" in shown
    assert (
        json.loads(tunedeck("show", child.name, "--workspace", str(ws), "--json", check=True).stdout)["parent"]
        == parent.name
    )
