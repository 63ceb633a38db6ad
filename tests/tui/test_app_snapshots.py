"""Snapshot tests at fixed terminal sizes: the screen's text is compared with a stored snapshot.

pytest-textual-snapshot pins syrupy 4.8, which needs pytest < 9, so instead the compositor's
output is exported as plain text (stable across Textual's SVG markup changes) and compared with
tests/fixtures/snapshots/<name>.txt; an SVG screenshot of each is written next to the test's tmp
dir for a human to look at. Recorded runs only (no live run), times in UTC, live telemetry off.
Regenerate after a deliberate change with: TUNEDECK_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_app_snapshots.py
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from fixtures.app_harness import (
    COMPLETED,
    CRASHED,
    GPU,
    OVERFIT,
    SNAPSHOTS,
    copy_workspace,
    make_app,
    run,
    screen_text,
    utc,
    wait_until,
)
from fixtures.make_gated_run import GATED, add_general_set

from tunedeck.tui.screens.checkpoints import CheckpointsScreen
from tunedeck.tui.screens.help import HelpScreen
from tunedeck.tui.screens.monitor import RunMonitorScreen

_ = utc
RECORDED = (COMPLETED, CRASHED, OVERFIT, GPU)


def ready_runs(app) -> bool:
    return bool(getattr(app.screen, "scanned", False))


def ready_monitor(app) -> bool:
    s = app.screen
    return (
        isinstance(s, RunMonitorScreen)
        and s.history.caught_up
        and bool(s.history.row)
        and bool(s.history.checkpoints)
        and s.query_one("#event-tail").lines
        and s.query_one("#loss-plot").render() is not None
        and len(s.query_one("#gpu-pane").lines()) == s.query_one("#gpu-pane").size.height
    )


CASES = {
    "runs_100x30": dict(size=(100, 30), open_run=None, keys=(), ready=ready_runs),
    "runs_80x24_filtered": dict(size=(80, 24), open_run=None, keys=("slash", *"lora"), ready=ready_runs),
    "monitor_completed_100x30": dict(size=(100, 30), open_run=COMPLETED, keys=(), ready=ready_monitor),
    "monitor_overfit_80x24": dict(size=(80, 24), open_run=OVERFIT, keys=(), ready=ready_monitor),
    "monitor_overfit_smoothed_log_100x30": dict(size=(100, 30), open_run=OVERFIT, keys=("m", "l"), ready=ready_monitor),
    "monitor_gpu_120x40": dict(size=(120, 40), open_run=GPU, keys=(), ready=ready_monitor),
    "checkpoints_crashed_100x24": dict(
        size=(100, 24),
        open_run=CRASHED,
        keys=("o",),
        ready=lambda app: (
            isinstance(app.screen, CheckpointsScreen) and app.screen.query_one("#checkpoints-table").row_count == 4
        ),
    ),
    "checkpoints_gated_120x30": dict(
        size=(120, 30),
        open_run=GATED,
        keys=("o", "j", "j", "j"),
        runs=(GATED,),
        ready=lambda app: (
            isinstance(app.screen, CheckpointsScreen)
            and app.screen.query_one("#checkpoints-table").row_count == 6
            and "review: 0 of 4" in screen_text(app)
        ),
    ),
    # the gated run with a general set that checkpoint-400 forgot: every score the verdict uses, at 80 columns
    # (the monitor's gate line at 80x24 is tested in test_gate_summaries.py: its loss plot's tick labels at
    # that size depend on what plotext drew before in the same process)
    "checkpoints_general_80x24": dict(
        size=(80, 24),
        open_run=GATED,
        keys=("o", "j", "j", "j", "j"),
        runs=(GATED,),
        prepare=add_general_set,
        ready=lambda app: (
            isinstance(app.screen, CheckpointsScreen)
            and app.screen.query_one("#checkpoints-table").row_count == 6
            and "general 25.0% dropped 50.0 points" in screen_text(app)
        ),
    ),
    "help_80x24": dict(
        size=(80, 24), open_run=None, keys=("question_mark",), ready=lambda app: isinstance(app.screen, HelpScreen)
    ),
}


async def _screen(name: str, case: dict, ws: Path, svg_dir: Path) -> str:
    app = make_app(ws, open_run=case["open_run"], telemetry_interval=0.5)
    async with app.run_test(size=case["size"]) as pilot:
        if case["open_run"]:
            await wait_until(pilot, lambda: ready_monitor(app), what="monitor loaded")
        else:
            await wait_until(pilot, lambda: ready_runs(app), what="runs scanned")
        for key in case["keys"]:
            await pilot.press(key)
        await wait_until(pilot, lambda: case["ready"](app), what=f"{name} ready")
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()
        app.save_screenshot(filename=f"{name}.svg", path=str(svg_dir))
        return screen_text(app)


@pytest.mark.parametrize("name", sorted(CASES))
def test_snapshot(name, tmp_path, utc):
    case = CASES[name]
    # The runs screen centres a title holding the workspace path, so the path must have the same length on
    # every machine and every run; pytest's tmp_path (pytest-of-<user>/pytest-N/<test name>) does not.
    fixed = Path(tempfile.mkdtemp(prefix="tunedeck-snapshot-", dir="/tmp"))  # /tmp/tunedeck-snapshot-XXXXXXXX
    try:
        ws = copy_workspace(fixed / "ws", runs=case.get("runs", RECORDED))
        for run_id in case.get("runs", ()) if "prepare" in case else ():
            case["prepare"](ws / "runs" / run_id)
        got = run(_screen(name, case, ws, tmp_path))
    finally:
        shutil.rmtree(fixed, ignore_errors=True)
    got = re.sub(r"Runs — \S+", "Runs — <workspace>", got)  # same length every time, so layout is unchanged
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("TUNEDECK_UPDATE_SNAPSHOTS") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got + "\n")
        if not os.environ.get("TUNEDECK_UPDATE_SNAPSHOTS"):
            pytest.fail(f"new snapshot written to {path}; check it and run again")
    want = path.read_text().rstrip("\n")
    if got != want:
        diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "snapshot", "now", lineterm=""))
        pytest.fail(f"{name} differs from {path} (SVG: {tmp_path / (name + '.svg')}):\n{diff}")
