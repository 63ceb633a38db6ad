"""Withdrawing a review label: x on the review screen makes the example unlabelled again, and the verdict follows."""

from __future__ import annotations

import json

from fixtures.app_harness import copy_workspace, make_app, run, wait_for_text
from fixtures.make_gated_run import GATED

from tunedeck.engine.gate.reviews import WITHDRAWN, add_review, load_reviews
from tunedeck.tui.screens.review import ReviewScreen


def test_a_withdrawn_label_no_longer_counts_and_a_later_label_does(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED
    add_review(run_dir, 300, "golden:t34", "weird")
    add_review(run_dir, 300, "golden:t34", WITHDRAWN)
    assert (300, "golden:t34") not in load_reviews(run_dir)
    add_review(run_dir, 300, "golden:t34", "understandable")
    assert load_reviews(run_dir)[(300, "golden:t34")]["label"] == "understandable"


def test_x_withdraws_the_label_of_the_example_shown(tmp_path):
    run_dir = copy_workspace(tmp_path, runs=(GATED,)) / "runs" / GATED

    async def go():
        app = make_app(tmp_path)
        async with app.run_test(size=(140, 45)) as pilot:
            app.push_screen(ReviewScreen(run_dir, 300))
            await wait_for_text(pilot, "0/4 labelled")
            await pilot.press("w", "u", "u", "u")
            await wait_for_text(pilot, "4/4 labelled · 1 weird", "verdict: pass")
            await pilot.press("k", "k", "k")  # back to the first example, labelled weird
            await wait_for_text(pilot, "example 1 of 4")
            await pilot.press("x")
            await wait_for_text(pilot, "golden:t34: label withdrawn", "3/4 labelled · 0 weird", "verdict: needs review")
            await pilot.press("x")
            await wait_for_text(pilot, "This example has no label to withdraw.")

    run(go())
    lines = [json.loads(line) for line in (run_dir / "reviews.jsonl").read_text().splitlines()]
    assert [e["label"] for e in lines] == ["weird", "understandable", "understandable", "understandable", WITHDRAWN]
