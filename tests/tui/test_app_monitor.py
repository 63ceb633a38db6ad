"""The run monitor, driven through the real app with Pilot over recorded run directories."""

from __future__ import annotations

import json
import time

from fixtures.app_harness import (
    COMPLETED,
    CRASHED,
    GPU,
    OVERFIT,
    RUNNING,
    append_events,
    copy_workspace,
    make_app,
    run,
    utc,
    wait_for_text,
    wait_until,
)

from tunedeck.engine.run.status_writer import write_status
from tunedeck.tui.screens.checkpoints import CheckpointsScreen
from tunedeck.tui.screens.monitor import RunMonitorScreen
from tunedeck.tui.widgets.event_tail import EventTail
from tunedeck.tui.widgets.loss_plot import LossPlot

_ = utc


def monitor(app) -> RunMonitorScreen:
    assert isinstance(app.screen, RunMonitorScreen)
    return app.screen


async def open_monitor(pilot, run_id: str) -> RunMonitorScreen:
    await wait_until(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, RunMonitorScreen)
            and pilot.app.screen.history.caught_up
            and pilot.app.screen.history.row
        ),
        what=f"monitor of {run_id}",
    )
    return pilot.app.screen


def test_completed_run_shows_progress_gate_checkpoints_and_events(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws, open_run=COMPLETED)
        async with app.run_test(size=(150, 34)) as pilot:
            screen = await open_monitor(pilot, COMPLETED)
            text = await wait_for_text(pilot, "Checkpoints 100 ✓", "GPU   not available", "no NVIDIA driver found", "┤")
            assert "extract·c0a1  ✓ completed  sft/lora on Qwen2.5-0.5B-Instruct  gate: pass (checkpoint 400)" in text
            assert "400/400 100%  elapsed 3m34s  done" in text
            assert "★ best 1.0395 @ 400" in text  # the loss plot's legend
            assert "100 ✓ 1.604 │ 200 ✓ 1.243 fail │ 300 ✓ 1.098 pass │ 400 ✓ 1.040 ★ pass" in text
            tail = screen.query_one(EventTail).shown
            assert any("gate checkpoint-200: fail" in t and "below the required +2" in t for t in tail)
            assert any("gate: checkpoint-400: task 84.0% (+6.0 vs base)" in t for t in tail)
            assert tail[-1].endswith("run completed: training finished")
            # live-only keys are not offered for a finished run
            assert "Save now" not in text and "Stop" not in text
            assert not screen.query_one("#overfit-warning").display
            plot = screen.query_one(LossPlot)
            assert plot.failed is None and "┤" in text  # the plot is drawn, with a y axis

    run(scenario())


def test_overfitting_is_warned_and_marked(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(OVERFIT,))

    async def scenario():
        app = make_app(ws, open_run=OVERFIT)
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await open_monitor(pilot, OVERFIT)
            text = await wait_for_text(pilot, "Overfitting")
            assert screen.query_one("#overfit-warning").display
            assert "eval loss rose for 4 evals (1.0500 → 1.2700, steps 500–900) while train loss fell" in text
            assert "Lowest eval loss 1.0500 at step 500" in text
            assert "★ best 1.0500 @ 500" in text
            assert "500 ✓ 1.050 ★" in text
            assert "★" in screen.query_one(LossPlot).render().plain  # the best step is marked on the plot
            assert any("early" in t for t in screen.query_one(EventTail).shown)

    run(scenario())


def test_crashed_run_shows_crashed_and_the_partial_checkpoint(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(CRASHED,))

    async def scenario():
        app = make_app(ws, open_run=CRASHED)
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await open_monitor(pilot, CRASHED)
            text = await wait_for_text(pilot, "✗ crashed", "600 ✗ partial", "r Resume")
            assert "620/800 78%" in text and "Save now" not in text
            assert any("disk is slow" in t for t in screen.query_one(EventTail).shown)
            await pilot.press("o")  # the checkpoint list
            await wait_until(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="checkpoint list")
            text = await wait_for_text(pilot, "incomplete save: never used")
            assert "1.6432" in text and "not evaluated: press e" in text  # eval loss of checkpoint-200; no gate yet
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="back to the monitor")

    run(scenario())


def test_gpu_run_recorded_elsewhere_shows_its_gpus(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(GPU,))

    async def scenario():
        app = make_app(ws, open_run=GPU)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_monitor(pilot, GPU)
            text = await wait_for_text(pilot, "GPU 0 NVIDIA A100", "GPU 1 NVIDIA A100")
            assert "(recorded 12:11:21)" in text
            assert "/80.0G" in text and "/400W" in text and "°C" in text
            assert "58.5G on this GPU" in text
            assert "CPU" in text and "RSS" in text  # the engine process is always shown
            assert "not available" not in text
            assert any("out of GPU memory" in t for t in screen.query_one(EventTail).shown)
            assert "✗ failed" in text

    run(scenario())


def test_live_run_follows_new_events_and_control_keys_write_requests(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,), live=(RUNNING,))
    run_dir = ws / "runs" / RUNNING

    async def scenario():
        app = make_app(ws, open_run=RUNNING)
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await open_monitor(pilot, RUNNING)
            await wait_for_text(pilot, "▶ running", "300/1000 30%", "ETA")  # ETA may come a refresh later
            now = time.time()
            append_events(
                run_dir,
                *(
                    {
                        "kind": "train",
                        "step": s,
                        "loss": 0.9,
                        "learning_rate": 1e-4,
                        "grad_norm": 0.5,
                        "tokens_per_s": 12000.0,
                        "t": now - (400 - s) * 0.1,
                    }
                    for s in range(310, 401, 10)
                ),
            )
            append_events(
                run_dir,
                {"kind": "eval", "step": 400, "eval_loss": 1.05},
                {"kind": "warning", "code": "slow", "message": "dataloader is the bottleneck"},
            )
            text = await wait_for_text(pilot, "400/1000 40%")
            assert len(screen.history.train_loss) == 40 and screen.history.eval_loss.last == (400, 1.05)
            assert "★ best 1.0500 @ 400" in text
            await wait_until(
                pilot,
                lambda: "warning: dataloader is the bottleneck" in screen.query_one(EventTail).shown[-1],
                what="the new warning in the event tail",
            )
            assert "ETA" in text and "steps/s" in text

            control = run_dir / "control"
            await pilot.press("c")
            await wait_until(pilot, lambda: list(control.glob("checkpoint-*.json")), what="checkpoint request")
            await pilot.press("e")
            await wait_until(pilot, lambda: list(control.glob("eval-*.json")), what="eval request")
            await pilot.press("s")
            await wait_for_text(pilot, f"Stop run {RUNNING}?")
            await pilot.press("y")
            files = await wait_until(pilot, lambda: list(control.glob("stop-*.json")), what="stop request")
            assert json.loads(files[0].read_text())["kind"] == "stop"
            # the engine answers: the run ends, the keys change
            append_events(
                run_dir, {"kind": "done", "state": "stopped", "message": "stopped on request with a final checkpoint"}
            )
            write_status(run_dir, state="stopped", finished=time.time())
            text = await wait_for_text(pilot, "■ stopped", "r Resume")
            assert "Save now" not in text

    run(scenario())


def test_toggles_zoom_and_graph_unavailable(tmp_path, utc, monkeypatch):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws, open_run=COMPLETED)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_monitor(pilot, COMPLETED)
            plot = screen.query_one(LossPlot)
            before = plot.render().plain
            await pilot.press("m")
            assert plot.smoothing and "train EMA" in str(plot.border_title)
            await pilot.press("l")
            assert plot.log_scale and str(plot.border_title).endswith("log")
            after = plot.render().plain
            assert after != before and plot.failed is None
            await pilot.press("z")
            assert screen.maximized is plot
            await pilot.press("escape")  # esc first restores the zoomed pane
            assert screen.maximized is None and isinstance(app.screen, RunMonitorScreen)

            def broken(self):
                raise ValueError("plotext broke")

            monkeypatch.setattr(LossPlot, "draw", broken)
            plot.refresh()
            await wait_for_text(pilot, "graph unavailable (ValueError)")
            assert plot.failed == "ValueError: plotext broke"
            assert app.is_running

    run(scenario())


def test_open_unknown_run_says_so(tmp_path, utc):
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))

    async def scenario():
        app = make_app(ws, open_run="no-such-run")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: any("no run matches" in n for n in app.notices), what="a notice")
            await wait_for_text(pilot, "extract·c0a1")  # the runs screen instead

    run(scenario())


def test_a_long_history_loads_without_blocking_keys(tmp_path, utc):
    """Chunked reading with back-pressure: keys are handled while a long history loads."""
    ws = copy_workspace(tmp_path / "ws", runs=(COMPLETED,))
    run_dir = ws / "runs" / COMPLETED
    lines = "".join(f'{{"t":{i},"kind":"train","step":{i},"loss":{2 + (i % 7) / 10}}}\n' for i in range(401, 120_401))
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(lines)

    async def scenario():
        app = make_app(ws, open_run=COMPLETED)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
            screen = app.screen
            await pilot.press("m")  # answered before the history finished loading
            assert screen.query_one(LossPlot).smoothing
            await wait_until(pilot, lambda: screen.history.caught_up, timeout=30, what="history loaded")
            assert len(screen.history.train_loss) == 80 + 120_000
            assert screen.query_one(LossPlot).failed is None

    run(scenario())
