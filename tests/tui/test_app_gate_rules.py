"""The checkpoints screen edits the gate's rules and re-judges from recorded results (issue 15), no model."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.app_harness import copy_workspace, make_app, run, wait_for_text, wait_until
from fixtures.make_gated_run import GATED
from textual.widgets import Input

from tunedeck.tui.screens.checkpoints import CheckpointsScreen
from tunedeck.tui.screens.gate_rules import GateRulesScreen, changed_overrides


def gate_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "evals" / "gate.json").read_text())


def test_only_changed_rules_become_overrides():
    rules = {"min_task_gain": 2.0, "task_metric": "pass_rate", "significance": 0.05}
    typed = {"min_task_gain": "2.0", "task_metric": "chrf", "significance": " 0.01 ", "max_format_drop": ""}
    assert changed_overrides(rules, typed) == ["gate.task_metric=chrf", "gate.significance=0.01"]


async def open_rules(pilot, run_dir: Path) -> GateRulesScreen:
    screen = CheckpointsScreen(run_dir, refresh_every_s=0.2)
    pilot.app.push_screen(screen)
    await wait_until(pilot, lambda: screen.table is not None and len(screen.table.rows) == 6, what="the table")
    await pilot.press("R")
    return await wait_until(
        pilot, lambda: isinstance(pilot.app.screen, GateRulesScreen) and pilot.app.screen, what="the rules dialog"
    )


def test_rules_edited_in_the_app_rejudge_every_checkpoint_and_are_recorded(tmp_path):
    run_dir = copy_workspace(tmp_path / "ws", runs=(GATED,)) / "runs" / GATED
    assert [r["verdict"] for r in gate_json(run_dir)["rows"]][1:] == [
        "fail",
        "fail",
        "needs_review",
        "needs_review",
        "fail",
    ]

    async def scenario():
        app = make_app(run_dir.parent.parent)
        async with app.run_test(size=(140, 40)) as pilot:
            dialog = await open_rules(pilot, run_dir)
            field = dialog.query_one("#rule-min_task_gain", Input)
            assert field.value == "2.0"
            field.value = "60"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: gate_json(run_dir).get("overrides"), what="the re-judged gate.json")
            summary = gate_json(run_dir)
            assert summary["overrides"] == [{"key": "gate.min_task_gain", "value": 60.0, "was": 2.0}]
            assert all("task_gain" in r["failed"] for r in summary["rows"][1:])
            assert summary["verdict"] == "fail"
            await wait_for_text(pilot, "no checkpoint passed the gate")
            # a bad value is refused with the engine's message, and nothing changes
            dialog = await open_rules(pilot, run_dir)
            dialog.query_one("#rule-significance", Input).value = "2"
            await pilot.press("ctrl+s")
            await wait_until(
                pilot,
                lambda: any("'gate.significance' must be at most 1" in str(n.message) for n in app._notifications),
                what="the error",
            )
            assert gate_json(run_dir)["overrides"] == summary["overrides"]

    run(scenario())
