"""From failures to data: fix rows in the training data's layout, the fixes file, `a` and `F` in the app."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fixtures.app_harness import copy_workspace, make_app, run, wait_for_text, wait_until
from fixtures.make_gated_run import GATED

from tunedeck.engine.config.workspace import fixes_path
from tunedeck.engine.data.files import load_data_files
from tunedeck.engine.data.fixes import FixError, add_fix, data_kind, fix_row, prefill
from tunedeck.tui.screens.examples import ExamplesScreen
from tunedeck.tui.widgets.list_table import ListTable

CHAT_RECORD = {
    "id": "golden:t03",
    "prompt": [{"role": "system", "content": "Route it."}, {"role": "user", "content": "The app crashes"}],
    "reference": '{"team": "technical"}',
    "output": '{"team": "billing"}',
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "method, fmt, data_row",
    [
        ("sft", "messages", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
        ("sft", "alpaca", {"instruction": "q", "output": "a"}),
        (
            "dpo",
            "preference",
            {
                "prompt": [{"role": "user", "content": "q"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            },
        ),
        (
            "kto",
            "kto",
            {
                "prompt": [{"role": "user", "content": "q"}],
                "completion": [{"role": "assistant", "content": "a"}],
                "label": False,
            },
        ),
    ],
)
def test_a_fix_trains_with_the_runs_own_data(tmp_path, method, fmt, data_row):
    data = write_jsonl(tmp_path / "data.jsonl", [data_row, data_row])
    row = fix_row(
        CHAT_RECORD, '{"team": "technical", "priority": "high"}', data_kind(method, fmt, CHAT_RECORD["prompt"])
    )
    fixes = write_jsonl(tmp_path / "fixes.jsonl", [row])
    both = load_data_files([str(data), str(fixes)], method=method)
    assert len(both.rows) == 3 and both.where[-1] == f"{fixes}:1"


def test_string_prompt_completion_data_gets_string_fixes(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [{"prompt": "q", "completion": "a"}])
    record = {"prompt": "Summarise: the cat sat", "output": "dog"}
    row = fix_row(record, "A cat sat.", data_kind("sft", "prompt_completion", record["prompt"]))
    assert row == {"prompt": "Summarise: the cat sat", "completion": "A cat sat."}
    load_data_files([str(data), str(write_jsonl(tmp_path / "f.jsonl", [row]))])


def test_fix_rows_refuse_what_teaches_nothing():
    with pytest.raises(FixError, match="empty"):
        fix_row(CHAT_RECORD, "  \n", "messages")
    with pytest.raises(FixError, match="rejected"):
        fix_row(CHAT_RECORD, CHAT_RECORD["output"], "preference")
    assert prefill(CHAT_RECORD) == CHAT_RECORD["reference"]
    assert prefill({**CHAT_RECORD, "reference": None}) == CHAT_RECORD["output"]


def test_fixing_an_example_again_replaces_its_row(tmp_path):
    first = fix_row(CHAT_RECORD, "one", "messages")
    other = fix_row({**CHAT_RECORD, "prompt": "another prompt"}, "two", "messages")
    path, replaced, n = add_fix(tmp_path, "run-1", first)
    assert path == fixes_path(tmp_path, "run-1") and not replaced and n == 1
    assert add_fix(tmp_path, "run-1", other)[1:] == (False, 2)
    assert add_fix(tmp_path, "run-1", fix_row(CHAT_RECORD, "three", "messages"))[1:] == (True, 2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == ["three", "two"]


def editor_script(tmp_path: Path, body: str) -> str:
    """An $EDITOR that records what it was given and writes `body` into the file."""
    script = tmp_path / "editor.py"
    script.write_text(
        f"import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        f"pathlib.Path({str(tmp_path / 'given.txt')!r}).write_text(p.read_text())\n"
        f"p.write_text({body!r})\n"
    )
    return f"{sys.executable} {script}"


def test_a_on_the_examples_screen_adds_the_corrected_example_and_f_exports_the_filter(tmp_path, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(GATED,))
    run_dir = ws / "runs" / GATED
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor_script(tmp_path, '{"team": "technical", "priority": "high"}\n'))

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(140, 45)) as pilot:
            app.push_screen(ExamplesScreen(run_dir, 100, "base"))
            await wait_for_text(pilot, "showing 1: regressed")
            table = app.screen.query_one(ListTable)
            await wait_until(pilot, lambda: table.display and table.row_count == 1, what="the regressed example")
            await pilot.press("a")
            fixes = fixes_path(ws, GATED)
            await wait_until(pilot, fixes.is_file, what="the fixes file")
            row = json.loads(fixes.read_text())
            assert row["messages"][-1] == {"role": "assistant", "content": '{"team": "technical", "priority": "high"}'}
            assert "The app crashes when I open invoice 1003" in row["messages"][-2]["content"]
            assert (tmp_path / "given.txt").read_text() == '{"team": "technical", "priority": "low"}'  # the reference
            await pilot.press("3")
            await wait_for_text(pilot, "showing 17: still failing")
            await pilot.press("F")
            await wait_until(pilot, lambda: app.screen.query("#ask-name"), what="the path question")
            await pilot.press("enter")
            out = ws / "failures" / f"{GATED}-checkpoint-100-still_failing.jsonl"
            await wait_until(pilot, out.is_file, what="the export")
            examples = [json.loads(line) for line in out.read_text().splitlines()]
            assert len(examples) == 17 and {e["bucket"] for e in examples} == {"still_failing"}
            assert (
                examples[0]["left"]["checkpoint"] == "base" and examples[0]["right"]["checkpoint"] == "checkpoint-100"
            )
            assert (
                examples[0]["right"]["pass"] is False and "prompt" in examples[0] and "output" in examples[0]["right"]
            )

    run(go())


def test_an_editor_that_fails_adds_nothing(tmp_path, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(GATED,))
    run_dir = ws / "runs" / GATED
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c 'import sys; sys.exit(3)'")

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(140, 45)) as pilot:
            app.push_screen(ExamplesScreen(run_dir, 100, "base"))
            await wait_for_text(pilot, "showing 1: regressed")
            await pilot.press("a")
            await wait_until(
                pilot,
                lambda: any("exited with status 3" in n.message for n in app._notifications),
                what="the editor's failure told",
            )
            assert not fixes_path(ws, GATED).exists()

    run(go())


def test_shift_a_on_the_review_screen_adds_the_example_under_review(tmp_path, monkeypatch):
    from tunedeck.tui.screens.review import ReviewScreen

    ws = copy_workspace(tmp_path / "ws", runs=(GATED,))
    run_dir = ws / "runs" / GATED
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor_script(tmp_path, "the corrected answer"))

    async def go():
        app = make_app(ws)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = ReviewScreen(run_dir, 100)
            app.push_screen(screen)
            await wait_until(pilot, lambda: screen.loaded and screen.current, what="the review sample")
            current = screen.current
            await pilot.press("A")
            fixes = fixes_path(ws, GATED)
            await wait_until(pilot, fixes.is_file, what="the fixes file")
            row = json.loads(fixes.read_text())
            assert row["messages"][-1]["content"] == "the corrected answer"
            record = screen.comparison.get(current).right
            assert row["messages"][:-1] == [{"role": m["role"], "content": m["content"]} for m in record["prompt"]]
            assert screen.labels.get(current) is None  # adding a fix is not a review label

    run(go())
