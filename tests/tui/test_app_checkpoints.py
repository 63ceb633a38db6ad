"""The checkpoints screen over recorded gate results, and an evaluation started from it on a real tiny run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import read_events, tunedeck
from fixtures.app_harness import (
    COMPLETED,
    copy_workspace,
    make_app,
    make_live,
    run,
    screen_text,
    wait_for_text,
    wait_until,
)
from fixtures.make_gated_run import GATED

from tunedeck.tui.screens.checkpoints import CheckpointsScreen
from tunedeck.tui.screens.confirm import ConfirmScreen


def gated_run(tmp_path: Path) -> Path:
    return copy_workspace(tmp_path / "ws", runs=(GATED,)) / "runs" / GATED


def gate_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "evals" / "gate.json").read_text())


async def open_checkpoints(pilot, run_dir: Path) -> CheckpointsScreen:
    screen = CheckpointsScreen(run_dir, refresh_every_s=0.2)
    pilot.app.push_screen(screen)
    await wait_until(pilot, lambda: screen.table is not None and len(screen.table.rows) == 6, what="the table")
    return screen


async def select(pilot, screen: CheckpointsScreen, key: str) -> None:
    from tunedeck.tui.widgets.list_table import ListTable

    table = screen.query_one(ListTable)
    table.move_cursor(row=[rk.value for rk in table.rows].index(key))
    await wait_until(pilot, lambda: screen.selected is not None and screen.selected.key == key, what=f"row {key}")


def line_of(text: str, step: str) -> str:
    """The table row of a step ("base", "100"): its Step cell follows the two-cell mark column."""
    return next(line for line in text.splitlines() if re.match(rf"^ [^ ]{{0,2}} +{step}  ", line))


def test_the_table_shows_the_base_and_every_checkpoint_with_the_gate_values(tmp_path):
    run_dir = gated_run(tmp_path)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(160, 30)) as pilot:
            await open_checkpoints(pilot, run_dir)
            text = screen_text(app)
            assert "Gate: needs review — no checkpoint passed yet: checkpoint-300: task 85.0% (+35.0 vs base)" in text
            base = line_of(text, "base")
            assert "50.0 " in base and "95.0 " in base and "217" in base and "baseline" in base
            assert "Task %" in text and "General %" in text  # the percent sign is in the header
            c100 = line_of(text, "100")
            assert "0.40" in c100 and "1.4200" in c100 and "55.0 +5.0" in c100 and "95.0 =" in c100 and "fail" in c100
            assert "gain within noise" in c100
            c200 = line_of(text, "200")
            assert "90.0 -10.0" in c200 and "safety regressed" in c200
            c300 = line_of(text, "300")
            assert "85.0 +35.0" in c300 and "100.0 +5.0" in c300 and "needs review" in c300 and "review 0/4" in c300
            c500 = line_of(text, "500")
            assert "85.0 -10.0" in c500 and "417" in c500 and "format dropped, over latency budget" in c500
            # the selected row's reasons in full, below the table
            await select(pilot, app.screen, "100")
            text = await wait_for_text(pilot, "McNemar p=0.62 on 40 paired examples")

    run(scenario())


def test_at_80_columns_every_score_the_verdict_uses_shows_with_its_change(tmp_path):
    """A general set that checkpoint-400 forgot: task, format, safety, general (each against the base) and p95
    all fit at 80x24; the base row says how each set was asked."""
    from fixtures.make_gated_run import add_general_set

    run_dir = gated_run(tmp_path)
    add_general_set(run_dir)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_checkpoints(pilot, run_dir)
            text = screen_text(app)
            header = next(line for line in text.splitlines() if "Step" in line)
            for label in ("Verdict", "Task %", "Format %", "Safety %", "General %", "p95 ms"):
                assert label in header, label
            assert "75.0" in line_of(text, "base")
            c400 = line_of(text, "400")
            assert c400.split()[1:8] == ["fail", "82.5", "+32.5", "100.0", "+5.0", "100.0", "="]
            assert "25.0 -50.0" in c400 and "239" in c400
            await select(pilot, screen, "400")
            await wait_for_text(pilot, "general 25.0% dropped 50.0 points from the base's 75.0% (allowed 5)")
            await select(pilot, screen, "base")
            text = await wait_for_text(pilot, "asked: golden (task) 'Route the support ticket.")
            assert "safety (safety) as written, general (general) as written" in " ".join(text.split())

    run(scenario())


def test_choose_marks_the_checkpoint_and_delete_refuses_it(tmp_path):
    run_dir = gated_run(tmp_path)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(160, 30)) as pilot:
            screen = await open_checkpoints(pilot, run_dir)
            await select(pilot, screen, "400")
            await pilot.press("b")
            await wait_for_text(pilot, "Chosen to ship: checkpoint-400")
            assert gate_json(run_dir)["chosen"]["checkpoint"] == 400
            assert "✓" in line_of(screen_text(app), "400")
            await pilot.press("d")
            await wait_until(
                pilot,
                lambda: any("checkpoint-400 is kept: it is the chosen checkpoint" in n for n in app.notices),
                what="the refusal",
            )
            assert not isinstance(app.screen, ConfirmScreen)
            assert (run_dir / "checkpoints" / "checkpoint-400" / "tunedeck-complete.json").exists()
            await pilot.press("b")  # again: unmark
            await wait_until(pilot, lambda: gate_json(run_dir)["chosen"] is None, what="the choice cleared")
            await wait_until(pilot, lambda: "Chosen to ship" not in screen_text(app), what="the line gone")

    run(scenario())


def test_delete_asks_then_removes_the_folder_and_keeps_the_gate_row(tmp_path):
    run_dir = gated_run(tmp_path)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(160, 30)) as pilot:
            screen = await open_checkpoints(pilot, run_dir)
            await select(pilot, screen, "100")
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("n")  # no: nothing happens
            await wait_until(pilot, lambda: app.screen is screen, what="back")
            assert (run_dir / "checkpoints" / "checkpoint-100").is_dir()
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: not (run_dir / "checkpoints" / "checkpoint-100").exists(), what="deleted")
            text = await wait_for_text(pilot, "deleted (its gate results are kept)")
            assert "55.0 +5.0" in line_of(text, "100")  # the scores it had
            row = next(r for r in gate_json(run_dir)["rows"] if r["checkpoint"] == 100)
            assert row["pruned"] is True
            assert any(e["kind"] == "checkpoint_pruned" and e["step"] == 100 for e in read_events(run_dir))
            await pilot.press("d")  # a deleted row cannot be deleted again
            await wait_until(pilot, lambda: any("already deleted" in n for n in app.notices), what="the notice")

    run(scenario())


def test_evaluate_refuses_while_training_runs(tmp_path):
    run_dir = gated_run(tmp_path)
    make_live(run_dir)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(160, 30)) as pilot:
            screen = await open_checkpoints(pilot, run_dir)
            await select(pilot, screen, "300")
            await pilot.press("e")
            await wait_until(
                pilot, lambda: any("evaluate once training has ended" in n for n in app.notices), what="the refusal"
            )
            assert screen.eval_pid is None

    run(scenario())


# ---- the engine rule behind `d` ---------------------------------------------------------------


def test_delete_checkpoint_refuses_the_best_a_locked_run_and_a_live_one(tmp_path):
    from tunedeck.engine.gate.checkpoint_removal import CheckpointProtected, delete_checkpoint
    from tunedeck.engine.run.store import EngineLock

    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))
    run_dir = ws / "runs" / COMPLETED
    with pytest.raises(CheckpointProtected, match="gate's best"):
        delete_checkpoint(run_dir, 400)
    with pytest.raises(CheckpointProtected, match="does not exist"):
        delete_checkpoint(run_dir, 123)
    with EngineLock(run_dir):
        with pytest.raises(CheckpointProtected, match="an engine is working"):
            delete_checkpoint(run_dir, 200)
    assert (run_dir / "checkpoints" / "checkpoint-200" / "tunedeck-complete.json").exists()
    delete_checkpoint(run_dir, 200)
    assert not (run_dir / "checkpoints" / "checkpoint-200").exists()
    make_live(run_dir)
    with pytest.raises(CheckpointProtected, match="is running"):
        delete_checkpoint(run_dir, 300)


def test_eval_progress_reads_the_gate_events():
    from tunedeck.tui.eval_progress import EvalProgress

    p = EvalProgress()
    assert p.describe().startswith("evaluation starting")
    p.add({"kind": "gate", "phase": "start", "checkpoints": [10, 20], "examples": 12})
    p.add({"kind": "gate", "phase": "progress", "stage": "base", "done": 4, "total": 12})
    assert p.describe() == "evaluating base (1 of 3 models, 12 examples each): 4/12 generated"
    p.add({"kind": "gate", "phase": "row", "checkpoint": "base", "verdict": "baseline"})
    p.add({"kind": "gate", "phase": "progress", "stage": "checkpoint-10", "done": 0, "total": 12})
    assert p.describe() == "evaluating checkpoint-10 (2 of 3 models, 12 examples each): 0/12 generated"
    p.add({"kind": "gate", "phase": "summary", "summary": True, "sentence": "checkpoint-10: task 5.0%"})
    assert p.finished and p.describe() == "evaluation finished: checkpoint-10: task 5.0%"
    late = EvalProgress()  # a screen opened mid-way sees progress without the start
    late.add({"kind": "gate", "phase": "progress", "stage": "checkpoint-20", "done": 3, "total": 12})
    assert late.describe() == "evaluating checkpoint-20: 3/12 generated"


# ---- a real evaluation, started with `e` ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, sft_data):
    """A 10-step run with one checkpoint and a small golden set; the gate is not run by training."""
    from tunedeck.engine.data.demo_data import make_eval_set

    root = tmp_path_factory.mktemp("ckpt-eval")
    ws = root / "ws"
    golden = make_eval_set(root / "golden.jsonl", 8, seed=1)
    proc = tunedeck(
        "run",
        "demo-cpu",
        "--data",
        str(sft_data),
        "--name",
        "evalme",
        "--set",
        f"model.base={json.dumps(str(tiny_model_dir))}",
        "--set",
        "optim.max_steps=10",
        "--set",
        "checkpoints.save_steps=10",
        "--set",
        "checkpoints.eval_steps=10",
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        'gate.when="never"',
        "--set",
        "gate.max_new_tokens=16",
        env={"TUNEDECK_WORKSPACE": str(ws)},
    )
    assert proc.returncode == 0, proc.stderr
    return ws, ws / "runs" / proc.stdout.strip().splitlines()[0], golden


@pytest.mark.slow
def test_e_evaluates_in_a_detached_engine_and_the_table_fills_in(trained):
    ws, run_dir, _ = trained

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(160, 30)) as pilot:
            screen = CheckpointsScreen(run_dir, refresh_every_s=0.2)
            app.push_screen(screen)
            await wait_for_text(pilot, "not evaluated: press e")
            await select(pilot, screen, "10")
            await pilot.press("e")
            await wait_until(pilot, lambda: screen.eval_pid is not None, what="the engine started")
            seen: set[str] = set()

            def finished():
                seen.add(screen.query_one("#eval-progress").render().plain if screen.evaluating else "")
                return not screen.evaluating and any(
                    "Evaluation finished" in n or "evaluation finished" in n for n in app.notices
                )

            await wait_until(pilot, finished, timeout=240, what="the evaluation to finish")
            assert any(s.startswith("evaluat") for s in seen), seen  # progress was shown while it ran
            text = await wait_for_text(pilot, "Gate: ")
            row = line_of(text, "10")
            assert any(v in row for v in ("pass", "fail", "needs review"))
            assert (run_dir / "evals" / "checkpoint-10.jsonl").exists()
            assert [r["checkpoint"] for r in gate_json(run_dir)["rows"]] == ["base", 10]

    run(scenario())


@pytest.mark.slow
def test_a_failed_evaluation_says_why(trained, tmp_path):
    ws, run_dir, golden = trained
    moved = tmp_path / "golden.jsonl"
    golden.rename(moved)  # the eval set named in the run's profile is gone

    async def scenario():
        app = make_app(ws)
        async with app.run_test(size=(160, 30)) as pilot:
            screen = CheckpointsScreen(run_dir, refresh_every_s=0.2)
            app.push_screen(screen)
            await wait_until(pilot, lambda: screen.table is not None and len(screen.table.rows) == 2, what="the table")
            await pilot.press("E")
            await wait_until(
                pilot, lambda: any("evaluation failed" in n for n in app.notices), timeout=120, what="the failure"
            )
            message = next(n for n in app.notices if "evaluation failed" in n)
            assert "golden.jsonl" in message and "no such file" in message

    try:
        run(scenario())
    finally:
        moved.rename(golden)


def test_enter_compare_and_review_open_from_the_table_and_the_verdict_follows_the_labels(tmp_path):
    from tunedeck.tui.screens.examples import ExamplesScreen
    from tunedeck.tui.screens.review import ReviewScreen

    run_dir = gated_run(tmp_path)

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(160, 40)) as pilot:
            screen = await open_checkpoints(pilot, run_dir)
            await select(pilot, screen, "100")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ExamplesScreen), what="the details")
            assert (app.screen.checkpoint, app.screen.against) == (100, "base")
            await wait_for_text(pilot, "golden:t03", "regressed 1")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="back")
            # c on 300, then c on 400: 400 example by example against 300
            await select(pilot, screen, "300")
            await pilot.press("c")
            await wait_until(pilot, lambda: "A" in line_of(screen_text(app), "300"), what="the A mark")
            await select(pilot, screen, "400")
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ExamplesScreen), what="the comparison")
            assert (app.screen.checkpoint, app.screen.against) == (400, 300)
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="back")
            # review: four "understandable" labels make checkpoint-300 pass, and it becomes the best
            await select(pilot, screen, "300")
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="review")
            await wait_for_text(pilot, "0/4 labelled")
            for _ in range(4):
                await pilot.press("u")
            await wait_for_text(pilot, "4/4 labelled")
            await wait_until(pilot, lambda: gate_json(run_dir)["verdict"] == "pass", what="the gate rebuilt")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="back")
            text = await wait_for_text(pilot, "Gate: pass — checkpoint-300")
            row = line_of(text, "300")
            assert "★" in row and "pass" in row
            assert len((run_dir / "reviews.jsonl").read_text().splitlines()) == 4

    run(scenario())
