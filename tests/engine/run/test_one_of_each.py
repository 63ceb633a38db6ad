"""Written once, shown alike: an event's line in the terminal and in the app, the small number formatters,
and the difference between two profiles."""

from __future__ import annotations

from tunedeck.engine.commands.follow import terminal_line
from tunedeck.engine.config.profile_diff import ABSENT, difference_lines, profile_differences
from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.run.event_line import ERROR, GOOD, INFO, WARNING, event_line
from tunedeck.engine.run.formatting import (
    fmt_change,
    fmt_duration,
    fmt_duration_hm,
    fmt_gib,
    fmt_loss,
    fmt_number,
    fmt_percent,
    fmt_score_percent,
)
from tunedeck.tui.event_lines import log_tail_line


def test_an_event_reads_the_same_in_the_terminal_and_the_app():
    events = [
        (
            {"t": 1.0, "kind": "checkpoint", "step": 100, "eval_loss": 1.23456},
            "checkpoint-100 saved (eval loss 1.2346)",
            GOOD,
        ),
        ({"t": 1.0, "kind": "warning", "message": "slow dataloader"}, "warning: slow dataloader", WARNING),
        (
            {"t": 1.0, "kind": "error", "code": "nan", "step": 5, "message": "step 5: the loss is nan"},
            "error: step 5: the loss is nan",
            ERROR,
        ),
        (
            {"t": 1.0, "kind": "run_started", "total_steps": 8, "resumed_from": 4},
            "training: 8 steps (resumed from step 4)",
            INFO,
        ),
        (
            {"t": 1.0, "kind": "gate", "phase": "summary", "verdict": "pass", "sentence": "checkpoint-8 ships"},
            "gate: checkpoint-8 ships",
            GOOD,
        ),
        (
            {"t": 1.0, "kind": "done", "state": "completed", "message": "training finished"},
            "run completed: training finished",
            GOOD,
        ),
        ({"t": 1.0, "kind": "done", "state": "failed", "message": ""}, "run failed", ERROR),
    ]
    for ev, text, severity in events:
        line = log_tail_line(ev)
        assert (line.text, line.severity, line.t) == (text, severity, 1.0)
        assert terminal_line(ev) == text


def test_each_side_shows_its_own_kinds():
    train = {"kind": "train", "step": 20, "loss": 0.5, "learning_rate": 2e-4, "grad_norm": 1.5, "tokens_per_s": 1234.4}
    assert terminal_line(train, 20) == "step 20/20  loss 0.5000  lr 2.00e-04  grad 1.500  1234 tok/s"
    assert terminal_line({"kind": "eval", "step": 20, "eval_loss": "nan"}) == "step 20  eval loss -"
    assert log_tail_line(train) is None and log_tail_line({"kind": "eval", "step": 20, "eval_loss": 0.4}) is None
    row = {"kind": "gate", "phase": "row", "checkpoint": 8, "verdict": "needs_review", "task": 80.0, "reasons": ["x"]}
    assert (
        log_tail_line(row).text == "gate checkpoint-8: needs review (task 80.0%) — x"
        and log_tail_line(row).severity == WARNING
    )
    assert terminal_line(row) is None  # the terminal prints the gate's sentence; `tunedeck gate` has the table
    state = {"kind": "state", "state": "running", "message": "starting"}
    assert log_tail_line(state).text == "engine running: starting" and terminal_line(state) is None
    assert event_line({"kind": "sample"}) is None and event_line({"kind": "gate", "phase": "progress"}) is None


def test_the_small_formatters():
    assert [fmt_score_percent(x) for x in (82.0, 99.995, 100.0, None, "n/a")] == ["82.0%", "100%", "100%", "-", "-"]
    assert [fmt_change(d) for d in (6.0, -0.04, None)] == [" (+6.0)", " (=)", ""]
    assert fmt_change(6.0, vs_base=True) == " (+6.0 vs base)"
    assert [fmt_duration_hm(s) for s in (5, 3700, 90000, None)] == ["0m05s", "1h01m", "25h00m", "-"]
    assert [fmt_duration(s) for s in (5, 3700, 90000)] == ["5s", "1h01m", "1d01h"]
    assert fmt_number(82, ".1f", "%") == "82.0%" and fmt_number(True) == "-" and fmt_number(float("nan")) == "-"
    assert fmt_loss(1.234567) == "1.2346" and fmt_loss(1.234567, 3) == "1.235" and fmt_percent(41.6) == "42%"
    assert fmt_gib(1.5 * 1024**3) == "1.5 GiB"


def test_one_profile_difference_for_every_place_that_shows_one():
    a, b = Profile(), Profile()
    b.lora.r, b.optim.learning_rate, b.description, b.data.packing = 32, 1.23456789e-4, "mine", True
    assert [d.key for d in profile_differences(a, b)] == [
        "description",
        "data.packing",
        "lora.r",
        "optim.learning_rate",
    ]
    assert difference_lines(a, b) == [
        "data.packing: false -> true",  # as the profile's TOML writes it
        f"lora.r: {a.lora.r} -> 32",
        f"optim.learning_rate: {a.optim.learning_rate!r} -> 0.000123456789",
    ]  # exact
    assert difference_lines({"gate": {"when": "end"}}, {"gate": {"when": "never"}}) == ["gate.when: 'end' -> 'never'"]
    assert difference_lines({"data": {"packing": True}}, {}) == ["data.packing: true -> false"]  # missing: the default
    assert [(d.a, d.b) for d in profile_differences({"x": 1}, {})] == [(1, ABSENT)] and str(ABSENT) == "—"
