"""Unit tests for the app's pure parts: downsampling, series, overfitting, event tailing, gate
results, formatting, telemetry degradation. No terminal involved."""

from __future__ import annotations

import json
import math
import random

import pytest
from fixtures.app_harness import COMPLETED, GPU, OVERFIT, RUNNING, RUNS

from tunedeck.engine.run.event_line import INFO
from tunedeck.engine.run.formatting import fmt_bytes, fmt_duration
from tunedeck.engine.run.gate_result import BASE, BASELINE, FAIL, NEEDS_REVIEW, PASS, Chosen, GateRow, GateSummary
from tunedeck.tui.chunked_event_reader import ChunkedEventReader
from tunedeck.tui.downsample import minmax_buckets
from tunedeck.tui.event_lines import log_tail_line
from tunedeck.tui.formatting import sparkline, text_bar
from tunedeck.tui.gate_view import FAILING, PASSING, GateResults, verdict_style
from tunedeck.tui.metric_series import MetricSeries
from tunedeck.tui.overfitting import best_eval, detect_overfitting
from tunedeck.tui.plot_ticks import nice_ticks, step_label
from tunedeck.tui.run_follower import RunFollower
from tunedeck.tui.run_history import RunHistory
from tunedeck.tui.smoothing import ema
from tunedeck.tui.telemetry_history import TelemetryHistory
from tunedeck.tui.telemetry_source import NoTelemetry, TelemetryReading, reading_from_sample
from tunedeck.tui.widgets.gpu_pane import gpu_pane_lines

# ---- downsampling -------------------------------------------------------------------------


def test_minmax_buckets_keeps_extremes_and_ends():
    xs = list(range(10_000))
    ys = [math.sin(x / 300) for x in xs]
    ys[1234], ys[7777] = 50.0, -50.0  # a spike and a dip
    dx, dy = minmax_buckets(xs, ys, 200)
    assert len(dx) <= 202
    assert dx[0] == 0 and dx[-1] == 9999
    assert 50.0 in dy and -50.0 in dy
    assert dx == sorted(dx)


def test_minmax_buckets_passes_short_series_through():
    assert minmax_buckets([1, 2, 3], [3, 2, 1], 100) == ([1, 2, 3], [3, 2, 1])


def test_metric_series_summary_is_bounded_and_keeps_spikes():
    s = MetricSeries()
    rng = random.Random(0)
    for i in range(1, 200_001):
        s.append(i, 2.0 + rng.random() + (40.0 if i == 123_457 else 0.0))
    xs, ys = s.points(300)
    assert len(xs) <= 302
    assert xs[0] == 1 and xs[-1] == 200_000
    assert max(ys) > 40  # the spike survives
    assert xs == sorted(xs)
    assert len(s._lo_x) < 2 * 1024  # bounded summary


def test_metric_series_rejects_non_finite_and_replaces_relogged_steps():
    s = MetricSeries()
    assert s.append(1, 1.0) and s.append(2, 2.0) and s.append(3, 3.0)
    assert not s.append(4, float("nan")) and not s.append(4, "inf")  # type: ignore[arg-type]
    s.append(2, 9.0)  # logged again from step 2 (a resume without its event)
    assert list(s.xs) == [1, 2] and list(s.ys) == [1.0, 9.0]
    s.truncate_after(1)
    assert list(s.xs) == [1]


def test_metric_series_truncate_keeps_summary_consistent():
    s = MetricSeries()
    for i in range(5000):
        s.append(i, float(i % 97))
    s.truncate_after(2500)
    for i in range(2501, 3000):
        s.append(i, 1.0)
    xs, ys = s.points(100)
    assert xs[-1] == 2999 and max(xs) == 2999 and len(s) == 3000


def test_ema_is_debiased_and_smooths():
    assert ema([5.0])[0] == pytest.approx(5.0)
    noisy = [1.0 if i % 2 else 3.0 for i in range(200)]
    smooth = ema(noisy, 0.9)
    assert 1.8 < smooth[-1] < 2.2


# ---- overfitting --------------------------------------------------------------------------


def _series(points):
    s = MetricSeries()
    for x, y in points:
        s.append(x, y)
    return s


def test_overfitting_needs_rising_eval_and_falling_train():
    train = _series((step, 2.0 - step / 1000) for step in range(10, 1001, 10))
    evals = _series([(100, 1.5), (200, 1.2), (300, 1.1), (400, 1.15), (500, 1.2), (600, 1.3)])
    w = detect_overfitting(train, evals, rising=3)
    assert w is not None
    assert (w.best.step, w.rising_evals, w.from_step, w.to_step) == (300, 3, 300, 600)
    assert w.train_to < w.train_from
    assert "rose for 3 evals" in w.sentence() and "step 300" in w.sentence()
    assert detect_overfitting(train, evals, rising=4) is None  # only 3 rises


def test_no_overfitting_when_train_rises_too():
    train = _series((step, 1.0 + step / 1000) for step in range(10, 1001, 10))  # diverging, not overfitting
    evals = _series([(100, 1.5), (200, 1.2), (300, 1.1), (400, 1.15), (500, 1.2), (600, 1.3)])
    assert detect_overfitting(train, evals) is None


def test_best_eval_prefers_earliest_on_tie():
    assert best_eval(_series([(1, 2.0), (2, 1.0), (3, 1.0)])).step == 2
    assert best_eval(MetricSeries()) is None


# ---- reading run directories --------------------------------------------------------------


def test_chunked_reader_holds_back_a_torn_line_and_reads_in_chunks(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({"t": i, "kind": "train", "step": i, "loss": 1.0}) for i in range(1, 301)]
    path.write_text("\n".join(lines) + "\n" + "not json\n" + '{"t": 1, "kind": "tra')
    reader = ChunkedEventReader(path, chunk_bytes=2048)
    got, reads = [], 0
    while True:
        got += reader.read_chunk()
        reads += 1
        if reader.caught_up:
            break
    assert reads > 5
    assert [e["step"] for e in got] == list(range(1, 301))
    assert reader.skipped == 1
    with open(path, "a") as f:
        f.write('in","step":301,"loss":0.5}\n')  # the torn line completes
    assert reader.read_chunk()[0]["step"] == 301


def test_follower_and_history_on_the_completed_fixture():
    run_dir = RUNS / COMPLETED
    h = RunHistory(run_dir)
    follower = RunFollower(run_dir)
    h.apply(follower.read())
    assert len(h.train_loss) == 80 and len(h.eval_loss) == 8
    assert h.state == "completed" and h.step == 400 and h.total_steps == 400
    assert h.best_eval().step == 400
    assert [c.step for c in h.checkpoints] == [100, 200, 300, 400] and all(c.complete for c in h.checkpoints)
    assert h.gate.verdict == "pass" and h.gate.best == 400
    assert h.gate.verdict_for(200) == "fail" and h.gate.verdict_for(400) == "pass"
    assert h.overfitting() is None
    texts = [line.text for line in h.lines]
    assert any(t.startswith("gate: checkpoint-400: task 84.0% (+6.0 vs base)") for t in texts)
    assert texts[-1] == "run completed: training finished"


def test_history_flags_the_overfitting_fixture():
    h = RunHistory(RUNS / OVERFIT)
    h.apply(RunFollower(h.run_dir).read())
    w = h.overfitting()
    assert w is not None and w.best.step == 500 and w.rising_evals == 4 and w.to_step == 900


def test_history_applies_a_resume():
    h = RunHistory(RUNS / RUNNING)
    h.apply(RunFollower(h.run_dir).read())
    from tunedeck.tui.run_follower import RunUpdate

    h.apply(
        RunUpdate(
            events=[
                {"t": 1.0, "kind": "resumed", "from_step": 200},
                {"t": 2.0, "kind": "train", "step": 210, "loss": 0.5},
            ]
        )
    )
    assert list(h.train_loss.xs)[-2:] == [200, 210]
    assert h.eval_loss.last[0] == 200


def test_gate_results_from_file_and_events():
    # the real shapes: the events the engine wrote for the completed fixture's gate, then its evals/gate.json
    events = [json.loads(line) for line in (RUNS / COMPLETED / "events.jsonl").read_text().splitlines()]
    gate_events = [ev for ev in events if ev["kind"] == "gate"]
    assert [ev["phase"] for ev in gate_events] == ["start", "row", "row", "row", "summary"]
    g = GateResults()
    assert not g
    g.add_event(gate_events[0])  # "start" says nothing about verdicts
    assert not g and g.rows == {}
    for ev in gate_events[1:]:
        g.add_event(ev)
    assert g.verdict == PASS and g.best == 400 and g.chosen is None and g.shipped == 400
    assert g.sentence.startswith("checkpoint-400: task 84.0% (+6.0 vs base)")
    assert {step: g.verdict_for(step) for step in (200, 300, 400, 500)} == {200: FAIL, 300: PASS, 400: PASS, 500: None}
    assert isinstance(g.row(200), GateRow) and g.row(200).reasons == [
        "task 71.0% is -7.0 points vs the base's 78.0%, below the required +2"
    ]

    # the file, as a rebuild after the gate rewrote it (no event): a person chose 300, a review failed 400
    data = json.loads((RUNS / COMPLETED / "evals" / "gate.json").read_text())
    rebuilt = GateSummary.from_dict(data)
    rebuilt.row(400).verdict, rebuilt.row(400).reasons = FAIL, ["weird in review: 2/4 sampled answers"]
    rebuilt.best, rebuilt.chosen, rebuilt.updated = 300, Chosen(300, "smaller latency"), gate_events[-1]["t"] + 60
    g.merge_file(rebuilt.to_dict())
    assert g.verdict == PASS and g.best == 300 and g.chosen == 300 and g.shipped == 300
    assert list(g.rows) == [BASE, 200, 300, 400] and g.row(BASE).verdict == BASELINE
    assert g.verdict_for(400) == FAIL and g.row(400).reasons == ["weird in review: 2/4 sampled answers"]
    # a later gate's row event is newer than the file
    g.add_event(
        {
            "t": rebuilt.updated + 1,
            "kind": "gate",
            "phase": "row",
            "checkpoint": 500,
            "verdict": "needs_review",
            "task": 85.0,
            "reasons": ["awaiting human review: 0/4 sampled failures labelled"],
        }
    )
    assert g.verdict_for(500) == NEEDS_REVIEW and g.verdict_for(400) == FAIL

    for garbage in ("garbage", None, [1, 2], 7):  # not a gate result: what was known stays
        g.merge_file(garbage)  # type: ignore[arg-type]
    assert g.best == 300 and g.verdict_for(400) == FAIL

    # keys the engine never writes are not read: no "checkpoints"/"results" rows, no "base" best, no phase-less rows
    guessed = GateResults()
    guessed.merge_file(
        {
            "best": {"checkpoint": "base"},
            "summary": "looks fine",
            "checkpoints": {"100": {"verdict": "fail", "reasons": "format regressed"}},
            "results": [{"checkpoint": 200, "verdict": "passed"}],
        }
    )
    guessed.add_event({"kind": "gate", "checkpoint": 300, "verdict": "pass", "task": 0.9})
    assert guessed.best is None and guessed.rows == {} and guessed.sentence is None and not guessed

    # verdict words and colours are the engine's names
    assert PASSING == {PASS} and FAILING == {FAIL}
    assert [verdict_style(v) for v in (PASS, FAIL, NEEDS_REVIEW, BASELINE, None)] == [
        "green",
        "red",
        "yellow",
        "dim",
        "",
    ]
    assert verdict_style("passed") != "green" and verdict_style("rejected") != "red"
    assert (
        log_tail_line({"t": 1.0, "kind": "gate", "phase": "row", "checkpoint": "base", "verdict": BASELINE}).severity
        == INFO
    )


# ---- formatting ---------------------------------------------------------------------------


def test_formatting():
    assert fmt_duration(59) == "59s" and fmt_duration(61) == "1m01s" and fmt_duration(3700) == "1h01m"
    assert fmt_duration(None) == "-" and fmt_duration(float("nan")) == "-"
    assert fmt_bytes(61.2 * 1024**3) == "61.2G" and fmt_bytes(None) == "-"
    assert text_bar(0.5, 10) == "█████░░░░░" and text_bar(None, 4) == "░░░░"
    assert sparkline([0, 1, 2, 3], 4) == "▁▃▆█" and sparkline([None, 1.0], 2) == " ▅"
    assert len(sparkline(list(range(1000)), 20)) == 20
    assert nice_ticks(0, 400, 5) == [0, 100, 200, 300, 400]
    assert len(nice_ticks(1.05, 1.85, 3)) >= 3
    assert step_label(1_000_000) == "1M" and step_label(1500) == "1.5k"


# ---- telemetry: never raises, says why ----------------------------------------------------


def test_gpu_pane_without_a_gpu_says_so_and_shows_cpu_and_ram():
    live = TelemetryHistory()
    live.add(
        TelemetryReading(
            t=0,
            gpus=None,
            gpu_reason="no NVIDIA driver found (NVML library missing)",
            system={"sys_cpu_percent": 12.0, "sys_mem_used": 4 * 1024**3, "sys_mem_total": 16 * 1024**3},
            process={"cpu_percent": 99.0, "rss_bytes": 2 * 1024**3},
        )
    )
    text = "\n".join(t.plain for t in gpu_pane_lines(live, TelemetryHistory(), 40))
    assert "GPU   not available" in text and "no NVIDIA driver found" in text
    assert "CPU" in text and "4.0G/16.0G" in text and "RSS" in text and "2.0G" in text


def test_gpu_pane_shows_recorded_gpus_when_nvml_is_unavailable():
    recorded = TelemetryHistory()
    for line in (RUNS / GPU / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["kind"] == "sample":
            recorded.add(reading_from_sample(ev))
    live = TelemetryHistory()
    live.add(NoTelemetry("NVML unavailable").read(None))
    text = "\n".join(t.plain for t in gpu_pane_lines(live, recorded, 40))
    assert "GPU 0 NVIDIA A100-SXM4-80GB" in text and "GPU 1" in text
    assert "/80.0G" in text and "/400W" in text and "°C" in text and "58.5G on this GPU" in text


def test_gpu_pane_marks_critical_readings_without_colour():
    live = TelemetryHistory()
    gpu = {
        "index": 0,
        "name": "X",
        "util_percent": 99.0,
        "mem_used": 79 * 1024**3,
        "mem_total": 80 * 1024**3,
        "temperature_c": 91.0,
        "power_w": 100.0,
        "power_limit_w": 400.0,
        "own_mem": None,
    }
    live.add(TelemetryReading(t=0, gpus=[gpu]))
    lines = {t.plain.split()[0]: t.plain for t in gpu_pane_lines(live, TelemetryHistory(), 40)}
    assert "!" in lines["memory"] and "!" in lines["temp"] and "!" not in lines["util"]


def test_live_telemetry_never_raises_here():
    import os

    from tunedeck.tui.telemetry_source import LiveTelemetry

    reading = LiveTelemetry().read(os.getpid())
    assert reading.process is not None and reading.process["rss_bytes"] > 0
    if reading.gpus is None:
        assert reading.gpu_reason  # plain words, not a traceback


def test_checkpoint_table_says_why_a_row_failed_also_from_a_file_without_rule_codes():
    from tunedeck.tui.checkpoint_table import load_checkpoint_table
    from tunedeck.tui.checkpoint_text import table_cells

    table = load_checkpoint_table(RUNS / COMPLETED)  # its gate.json predates rule codes: reasons only
    why = {row.step: str(table_cells(row, None)["why"]) for row in table.rows}
    assert why[200] == "task 71.0% is -7.0 points vs the base's 78.0%, below the required +2"
    assert why[100] == "not evaluated: press e" and why[300] == why[400] == ""
