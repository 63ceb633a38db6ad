"""Review mode on the recorded triage run: checkpoint-300 passes every rule but review ([gate] review_sample = 4,
max_weird_share = 0.25), so labels decide its verdict. Labels go to reviews.jsonl at once."""

from __future__ import annotations

import json

from fixtures.app_harness import copy_workspace, make_app, make_live, run, wait_for_text
from fixtures.make_gated_run import GATED

from tunedeck.engine.gate.example_records import read_records, write_records
from tunedeck.engine.gate.reviews import sample_for_review
from tunedeck.engine.run.gate_result import GateRow, read_gate_summary
from tunedeck.tui.screens.review import ReviewScreen

SIZE = (140, 45)
SAMPLE_300 = ["golden:t34", "golden:t36", "golden:t35", "golden:t39"]  # regressions first, then a stable hash order


def reviews(run_dir) -> list[dict]:
    path = run_dir / "reviews.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def gate_row(run_dir, step) -> GateRow:
    return next(r for r in read_gate_summary(run_dir).rows if r.checkpoint == step)


async def open_review(pilot, run_dir, step, ready):
    pilot.app.push_screen(ReviewScreen(run_dir, step))
    return await wait_for_text(pilot, ready)


def workspace(tmp_path):
    return copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED


def test_the_fixture_sample_is_the_one_the_tests_expect(tmp_path):
    assert sample_for_review(workspace(tmp_path), 300) == SAMPLE_300


def test_labelling_the_whole_sample_understandable_makes_300_pass_and_best(tmp_path):
    run_dir = workspace(tmp_path)

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "checkpoint-300 · example 1 of 4 · 0/4 labelled · 0 weird")
            await wait_for_text(
                pilot,
                "verdict: needs review",
                "awaiting human review: 0/4 sampled failures labelled",
                "golden:t34  still failing  label: not labelled yet",
            )
            await pilot.press("u")
            await wait_for_text(
                pilot,
                "example 2 of 4 · 1/4 labelled",
                "golden:t34: understandable mistake — saved",
                "awaiting human review: 1/4 sampled failures labelled",
            )
            assert [e["example"] for e in reviews(run_dir)] == ["golden:t34"]  # durable before the next key
            await pilot.press("u", "u", "u")
            await wait_for_text(
                pilot, "4/4 labelled · 0 weird · sample complete", "verdict: pass", "best checkpoint: checkpoint-300"
            )

    run(go())
    lines = reviews(run_dir)
    assert [(e["checkpoint"], e["example"], e["label"]) for e in lines] == [
        (300, ex, "understandable") for ex in SAMPLE_300
    ]
    row = gate_row(run_dir, 300)
    assert row.verdict == "pass" and row.review == {"sampled": 4, "reviewed": 4, "weird": 0}
    assert read_gate_summary(run_dir).best == 300
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["gate_verdict"], status["gate_best"]) == ("pass", 300)


def test_two_weird_of_four_fail_300_with_the_review_reason(tmp_path):
    run_dir = workspace(tmp_path)

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "0/4 labelled")
            await pilot.press("w", "u", "w", "u")
            await wait_for_text(
                pilot,
                "4/4 labelled · 2 weird · sample complete",
                "verdict: fail",
                "review labelled 2 of 4 sampled failures 'new weird behaviour' (50%; allowed 25%)",
            )
            assert "best checkpoint" not in app.screen.query_one("#review-verdict").render().plain

    run(go())
    assert [e["label"] for e in reviews(run_dir)] == ["weird", "understandable", "weird", "understandable"]
    row = gate_row(run_dir, 300)
    assert row.verdict == "fail" and row.failed == ["review"]
    assert read_gate_summary(run_dir).best is None


def test_closing_midway_keeps_the_labels_and_reopening_resumes_at_the_third(tmp_path):
    run_dir = workspace(tmp_path)

    async def first_session():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "0/4 labelled")
            await pilot.press("u", "w")
            await wait_for_text(pilot, "golden:t36: new weird behaviour — saved")
            await app.action_quit()

    async def second_session():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "checkpoint-300 · example 3 of 4 · 2/4 labelled · 1 weird")
            await wait_for_text(
                pilot,
                "golden:t35  still failing  label: not labelled yet",
                "awaiting human review: 2/4 sampled failures labelled",
            )
            await pilot.press("k")
            await wait_for_text(pilot, "example 2 of 4", "golden:t36  still failing  label: new weird behaviour")
            await pilot.press("left")
            await wait_for_text(pilot, "example 1 of 4", "golden:t34  still failing  label: understandable mistake")

    run(first_session())
    assert [(e["example"], e["label"]) for e in reviews(run_dir)] == [
        ("golden:t34", "understandable"),
        ("golden:t36", "weird"),
    ]
    run(second_session())


def test_skip_writes_nothing_and_moves_on(tmp_path):
    run_dir = workspace(tmp_path)

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "example 1 of 4 · 0/4 labelled")
            await pilot.press("s")
            await wait_for_text(pilot, "example 2 of 4 · 0/4 labelled", "golden:t34 skipped (no label).")
            await pilot.press("s", "s", "s")
            await wait_for_text(pilot, "example 1 of 4 · 0/4 labelled")  # wraps round to the unlabelled ones

    run(go())
    assert not (run_dir / "reviews.jsonl").exists()


def test_a_note_is_saved_with_the_next_label_and_can_be_changed_later(tmp_path):
    run_dir = workspace(tmp_path)

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "0/4 labelled")
            await pilot.press("n", *"wrong team", "enter")
            await wait_for_text(pilot, "note ready: “wrong team” (u or w saves it with the label)")
            assert reviews(run_dir) == []
            await pilot.press("u")
            await wait_for_text(
                pilot, "golden:t34: understandable mistake (note: wrong team) — saved", "example 2 of 4"
            )
            await pilot.press(
                "k", "n", "ctrl+u", *"neighbour team", "enter"
            )  # a new note on a labelled example: saved at once
            await wait_for_text(pilot, "label: understandable mistake  note: neighbour team", "1/4 labelled")
            await pilot.press("j", "n", *"dropped", "escape")  # esc drops an unsaved note
            await wait_for_text(pilot, "golden:t36  still failing  label: not labelled yet")
            assert "note ready" not in app.screen.query_one("#review-current").render().plain

    run(go())
    assert [(e["example"], e["label"], e["note"]) for e in reviews(run_dir)] == [
        ("golden:t34", "understandable", "wrong team"),
        ("golden:t34", "understandable", "neighbour team"),
    ]


def test_while_an_engine_owns_the_run_labels_are_saved_but_gate_json_is_left_to_it(tmp_path):
    run_dir = workspace(tmp_path)
    make_live(run_dir)
    gate_before = (run_dir / "evals" / "gate.json").read_bytes()

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "0/4 labelled")
            await wait_for_text(pilot, "the verdict updates when it finishes")
            await pilot.press("u", "u", "u", "u")
            await wait_for_text(
                pilot,
                "4/4 labelled · 0 weird · sample complete",
                "verdict: needs review",
                "the verdict updates when it finishes",
            )

    run(go())
    assert len(reviews(run_dir)) == 4
    assert (run_dir / "evals" / "gate.json").read_bytes() == gate_before


def test_labels_saved_after_the_last_rebuild_count_when_the_screen_opens(tmp_path):
    """The app closed between a label and the verdict's rebuild: opening review mode catches up."""
    from tunedeck.engine.gate.reviews import add_review

    run_dir = workspace(tmp_path)
    for ex in SAMPLE_300:
        add_review(run_dir, 300, ex, "understandable")

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(pilot, run_dir, 300, "4/4 labelled · 0 weird · sample complete")
            await wait_for_text(pilot, "verdict: pass", "Every sampled failure is labelled")

    run(go())
    assert gate_row(run_dir, 300).verdict == "pass"


def test_a_checkpoint_without_failures_has_nothing_to_review(tmp_path):
    run_dir = workspace(tmp_path)
    write_records(run_dir, 300, [{**r, "pass": True} for r in read_records(run_dir, 300)])

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(
                pilot, run_dir, 300, "checkpoint-300: no failures in its eval results, so there is nothing to review."
            )
            await pilot.press("u", "w", "s")
            await pilot.pause(0.2)

    run(go())
    assert not (run_dir / "reviews.jsonl").exists()


def test_an_unevaluated_checkpoint_says_so_instead_of_nothing_to_review(tmp_path):
    run_dir = workspace(tmp_path)

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_review(
                pilot, run_dir, 900, "checkpoint-900: no eval results for checkpoint-900 yet, so nothing to review"
            )

    run(go())
