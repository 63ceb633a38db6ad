"""The details screen's pairing and filters, on the recorded triage run (known buckets per checkpoint)."""

from __future__ import annotations

import pytest
from fixtures.app_harness import RUNS
from fixtures.make_gated_run import GATED

from tunedeck.tui.example_filters import MISSING, UNSCORED, load_comparison, pair_records, prompt_text

RUN = RUNS / GATED


def ids(pairs) -> list[str]:
    return [p.id for p in pairs]


def test_checkpoint_100_buckets_against_the_base():
    comp = load_comparison(RUN, 100)
    counts = comp.counts()
    assert (counts["regressed"], counts["fixed"], counts["still_failing"], counts["still_passing"], counts["all"]) == (
        1,
        3,
        17,
        29,
        50,
    )
    assert comp.default_filter() == "regressed"
    assert ids(comp.select("regressed")) == ["golden:t03"]
    assert ids(comp.select("fixed")) == ["golden:t20", "golden:t21", "golden:t22"]
    assert (comp.left_label, comp.right_label) == ("base", "checkpoint-100")
    t03 = comp.get("golden:t03")
    assert (t03.left["pass"], t03.right["pass"]) == (True, False)
    assert t03.left["output"] != t03.right["output"]


def test_default_filter_falls_back_to_still_failing_then_all():
    comp = load_comparison(RUN, 300)
    assert comp.counts()["regressed"] == 0 and comp.counts()["fixed"] == 14
    assert comp.default_filter() == "still_failing"
    assert ids(comp.select("still_failing")) == [f"golden:t{i}" for i in range(34, 40)]
    nothing_fails = pair_records([{"id": "a", "pass": True}], [{"id": "a", "pass": True}], right=1)
    assert nothing_fails.default_filter() == "all"


def test_tag_filter_finds_the_safety_regression_of_checkpoint_200():
    comp = load_comparison(RUN, 200)
    assert comp.tags() == ["format", "safety", "task"]
    assert ids(comp.select("regressed", tag="safety")) == ["safety:2"]
    assert ids(comp.select("regressed", tag="task")) == []
    assert len(comp.select("all", tag="safety")) == 10
    assert len(comp.select("all", tag="format")) == 40


def test_search_is_case_insensitive_over_id_prompt_reference_and_both_outputs():
    comp = load_comparison(RUN, 200)
    assert ids(comp.select("all", query="PARCEL 1001")) == ["golden:t01"]  # prompt, every word
    assert ids(comp.select("all", query="sure, here is how")) == ["safety:2"]  # the checkpoint's output
    assert ids(comp.select("all", query="t03")) == ["golden:t03"]  # id
    prose = load_comparison(RUN, 300).select("all", query="should go to the")  # only the base answered in prose
    assert ids(prose) == ["golden:t38", "golden:t39"]
    assert comp.select("regressed", query="parcel") == []
    assert len(comp.select("all", query="   ")) == 50
    capitals = pair_records(
        [{"id": "x", "output": "London"}, {"id": "y", "output": "Oslo"}],
        [{"id": "x", "reference": "Paris", "output": "Rome"}, {"id": "y", "reference": "Oslo", "output": "Oslo"}],
        right=1,
    )
    assert [ids(capitals.select("all", query=q)) for q in ("paris", "london", "rome", "oslo")] == [
        ["x"],
        ["x"],
        ["x"],
        ["y"],
    ]


def test_two_checkpoints_compared_with_each_other():
    comp = load_comparison(RUN, 400, left=300)
    assert (comp.left_label, comp.right_label) == ("checkpoint-300", "checkpoint-400")
    assert ids(comp.select("regressed")) == ["golden:t33"]
    assert comp.counts()["fixed"] == 0 and comp.counts()["still_failing"] == 6


def test_an_example_on_one_side_only_still_shows_marked_missing():
    left = [{"id": "a", "pass": True, "tags": ["task"]}, {"id": "b", "pass": False, "tags": ["task"]}]
    right = [
        {"id": "b", "pass": True, "tags": ["task"]},
        {"id": "c", "pass": False, "tags": ["safety"]},
        {"id": "d", "pass": None, "tags": []},
    ]
    comp = pair_records(left, right + [], right=7)
    assert ids(comp.pairs) == ["b", "c", "d", "a"]
    by_id = {p.id: p for p in comp.pairs}
    assert by_id["b"].bucket == "fixed"
    assert by_id["c"].bucket == MISSING and by_id["c"].left is None
    assert by_id["a"].bucket == MISSING and by_id["a"].right is None
    assert by_id["d"].bucket == MISSING
    counts = comp.counts()
    assert (counts[MISSING], counts["fixed"], counts[UNSCORED], counts["all"]) == (3, 1, 0, 4)
    assert comp.tags() == ["safety", "task"]


def test_an_example_with_every_check_skipped_is_unscored():
    comp = pair_records([{"id": "a", "pass": True}], [{"id": "a", "pass": None}], right=5)
    assert comp.pairs[0].bucket == UNSCORED
    assert comp.select("all") == comp.pairs and comp.select("regressed") == []


def test_a_side_without_records_is_named_unevaluated():
    assert load_comparison(RUN, 900).unevaluated == "checkpoint-900"
    assert load_comparison(RUN, 300, left=900).unevaluated == "checkpoint-900"
    assert load_comparison(RUN, 300).unevaluated is None


def test_unknown_bucket_is_refused():
    with pytest.raises(ValueError, match="unknown bucket"):
        load_comparison(RUN, 100).select("broken")


def test_prompt_text_renders_messages_and_raw_text():
    assert (
        prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        == "system: Be brief.\nuser: Hi"
    )
    assert prompt_text("raw prompt") == "raw prompt"
    assert prompt_text(None) == ""
