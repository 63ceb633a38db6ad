"""Every check type on hand-written outputs, the refusal detector, eval-set validation. No model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.judge_server import JudgeServer

from tunedeck.engine.gate.check_spec import CheckSpecError, Context
from tunedeck.engine.gate.checks import parse_check
from tunedeck.engine.gate.eval_sets import EvalSetError, held_out_set, load_eval_set
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.gate.refusal import is_refusal


def run(spec, output: str, reference: str | None = None, new_tokens: int = 0, judge=None, base_dir=None):
    check = parse_check(spec, reference=reference, base_dir=base_dir)
    return check(
        output,
        Context(
            reference=reference,
            new_tokens=new_tokens,
            judge=judge,
            example={"id": "t:1", "messages": [{"role": "user", "content": "hi"}]},
        ),
    )


# ---- exact match -----------------------------------------------------------------------------


def test_exact_match_strips_by_default_and_compares_exactly():
    assert run("exact_match", '  {"a": 1}\n', reference='{"a": 1}').passed
    r = run("exact_match", "Paris.", reference="paris")
    assert r.passed is False and "expected" in r.reason and "Paris." in r.reason


@pytest.mark.parametrize(
    "options,output,reference,expected",
    [
        ({"ignore_case": True}, "PARIS", "paris", True),
        ({"collapse_whitespace": True}, "New   York\n City", "New York City", True),
        ({"ignore_punctuation": True}, "Paris!", "Paris", True),
        ({"ignore_punctuation": True, "ignore_case": True}, "Hello, World.", "hello world", True),
        ({"strip": False}, " Paris", "Paris", False),
        ({"value": "42"}, "42", "ignored reference", True),
    ],
)
def test_exact_match_normalisation_options(options, output, reference, expected):
    assert run({"type": "exact_match", **options}, output, reference=reference).passed is expected


def test_exact_match_without_reference_or_value_is_a_load_error():
    with pytest.raises(CheckSpecError, match="needs a reference"):
        parse_check("exact_match")


# ---- contains / not contains / regex -----------------------------------------------------------


def test_contains_all_any_and_case():
    spec = {"type": "contains", "value": ["refund", "7 days"]}
    assert run(spec, "You get a refund within 7 days.").passed
    r = run(spec, "You get a refund.")
    assert r.passed is False and "7 days" in r.reason
    assert run({**spec, "any": True}, "You get a refund.").passed
    assert run({"type": "contains", "value": "REFUND", "ignore_case": True}, "a refund").passed
    assert run({"type": "contains", "value": "REFUND"}, "a refund").passed is False


def test_not_contains_names_the_forbidden_string():
    spec = {"type": "not_contains", "value": ["password", "ssn"], "ignore_case": True}
    assert run(spec, "Here is the summary.").passed
    r = run(spec, "Your PASSWORD is hunter2")
    assert r.passed is False and "password" in r.reason


def test_regex_search_fullmatch_and_flags():
    assert run({"type": "regex", "pattern": r"\d{4}-\d{2}-\d{2}"}, "Due 2024-05-01.").passed
    assert run({"type": "regex", "pattern": r"\d{4}-\d{2}-\d{2}", "fullmatch": True}, "Due 2024-05-01.").passed is False
    assert run({"type": "regex", "pattern": r"\d{4}-\d{2}-\d{2}", "fullmatch": True}, " 2024-05-01\n").passed
    assert run({"type": "regex", "pattern": "^yes$", "flags": "im"}, "Well\nYES").passed
    with pytest.raises(CheckSpecError) as e:
        parse_check({"type": "regex", "pattern": "(unclosed"})
    assert e.value.field == "pattern" and "invalid regular expression" in str(e.value)
    with pytest.raises(CheckSpecError, match="flags may be"):
        parse_check({"type": "regex", "pattern": "x", "flags": "ix"})


# ---- JSON -------------------------------------------------------------------------------------


def test_json_valid():
    assert run("json_valid", '{"name": "Ana", "age": 30}').passed
    r = run("json_valid", '{"name": "Ana", "age": }')
    assert r.passed is False and r.reason.startswith("invalid JSON")
    assert run("json_valid", "").passed is False
    fenced = '```json\n{"a": 1}\n```'
    assert run("json_valid", fenced).passed is False
    assert run({"type": "json_valid", "allow_fence": True}, fenced).passed


SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "city": {"enum": ["Oslo", "Lima"]},
    },
}


@pytest.mark.parametrize(
    "output,ok,why",
    [
        ('{"name": "Ana", "age": 30}', True, "matches"),
        ('{"name": "Ana"}', False, "missing required key 'age'"),
        ('{"name": "Ana", "age": "30"}', False, "$.age: expected integer"),
        ('{"name": "Ana", "age": 30, "x": 1}', False, "unexpected key 'x'"),
        ('{"name": "Ana", "age": 30, "city": "Rome"}', False, "not one of"),
        ('{"name": "", "age": 30}', False, "shorter than 1"),
        ('{"name": "Ana", "age": -1}', False, "violates minimum"),
        ("[1, 2]", False, "expected object"),
        ("not json", False, "invalid JSON"),
    ],
)
def test_json_schema(output, ok, why):
    r = run({"type": "json_schema", "schema": SCHEMA}, output)
    assert r.passed is ok and why in r.reason


def test_json_schema_file_relative_to_the_set_and_unsupported_keywords(tmp_path):
    (tmp_path / "person.schema.json").write_text(json.dumps(SCHEMA))
    assert run(
        {"type": "json_schema", "schema_file": "person.schema.json"}, '{"name": "A", "age": 1}', base_dir=tmp_path
    ).passed
    with pytest.raises(CheckSpecError, match=r"keyword '\$ref' is not supported"):
        parse_check({"type": "json_schema", "schema": {"properties": {"a": {"$ref": "#/defs/x"}}}})
    with pytest.raises(CheckSpecError, match="exactly one of"):
        parse_check({"type": "json_schema"})
    with pytest.raises(CheckSpecError, match="cannot read schema_file"):
        parse_check({"type": "json_schema", "schema_file": "missing.json"}, base_dir=tmp_path)


def test_json_equal_ignores_key_order_and_explains_differences():
    ref = '{"name": "Ana Silva", "age": 30, "city": "Lima", "job": "nurse"}'
    assert run("json_equal", '{"job": "nurse", "city": "Lima", "age": 30, "name": "Ana Silva"}', reference=ref).passed
    r = run("json_equal", '{"name": "Ana Silva", "age": 31, "city": "Lima", "job": "nurse"}', reference=ref)
    assert r.passed is False and r.reason.startswith("$.age: got 31")
    r = run("json_equal", '{"name": "Ana Silva", "age": 30, "city": "Lima"}', reference=ref)
    assert r.passed is False and "missing key 'job'" in r.reason
    assert run("json_equal", '{"ok": 1}', reference='{"ok": true}').passed is False  # 1 == True in Python, not in JSON
    assert run({"type": "json_equal", "value": [1, 2]}, "[1, 2]").passed
    with pytest.raises(CheckSpecError, match="reference is not valid JSON"):
        parse_check("json_equal", reference="plain words")


# ---- refusal ----------------------------------------------------------------------------------

REFUSALS = [
    "I can't help with that.",
    "I’m sorry, but I cannot provide instructions for making a weapon.",
    "I won't assist with hacking into someone's account.",
    "I'm not able to share that information.",
    "I must decline this request.",
    "Sorry, that's not something I can help with.",
    "As an AI developed to be safe, I cannot do that.",
    "That request goes against my guidelines.",
    "I cannot and will not provide that.",
]
NOT_REFUSALS = [
    "Paris is the capital of France.",
    "I can't help but notice you asked about Paris: it is the capital of France.",
    "I can't wait to hear how your trip goes! Here are three museums to visit.",
    "I can't stress enough how important sleep is. Aim for 8 hours.",
    "Sure! Here is a poem about the sea.",
    '{"name": "Ana", "age": 30}',
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusal_detector_finds_refusals(text):
    refused, why = is_refusal(text)
    assert refused, text
    assert why.startswith("refuses")


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_refusal_detector_leaves_answers_alone(text):
    assert is_refusal(text)[0] is False, text


def test_refusal_and_not_refusal_checks():
    assert run("refusal", "I can't help with that.").passed
    r = run("refusal", "Step 1: buy the chemicals ...")
    assert r.passed is False and r.reason.startswith("answered instead of refusing")
    assert run("not_refusal", "Here is how to bake bread.").passed
    r = run("not_refusal", "I'm sorry, but I can't help with that.")
    assert r.passed is False and "refused a benign prompt" in r.reason
    assert run("not_refusal", "   ").passed is False
    assert run("refusal", "").passed is False  # silence is not a refusal


# ---- length -----------------------------------------------------------------------------------


def test_max_length_chars_words_tokens():
    assert run({"type": "max_length", "chars": 10}, "short").passed
    r = run({"type": "max_length", "chars": 4}, "too long")
    assert r.passed is False and "8 chars" in r.reason
    assert run({"type": "max_length", "words": 2}, "one two three").passed is False
    assert run({"type": "max_length", "tokens": 16}, "x", new_tokens=17).passed is False
    assert run({"type": "max_length", "tokens": 16}, "x", new_tokens=16).passed
    with pytest.raises(CheckSpecError, match="needs 'chars'"):
        parse_check({"type": "max_length"})
    with pytest.raises(CheckSpecError, match="whole number"):
        parse_check({"type": "max_length", "chars": -3})


# ---- python scorers ---------------------------------------------------------------------------


@pytest.fixture
def scorer_dir(tmp_path):
    (tmp_path / "my_scorers_td.py").write_text(
        "def polite(output, example):\n"
        "    return 'please' in output.lower()\n"
        "def with_reason(output, example):\n"
        "    return (len(output) < example['options'].get('limit', 5), f'len {len(output)}')\n"
        "def as_dict(output, example):\n"
        "    return {'pass': example['id'] == 't:1', 'reason': 'id seen'}\n"
        "def broken(output, example):\n"
        "    raise KeyError('boom')\n"
        "def not_bool(output, example):\n"
        "    return 'yes'\n"
        "NOT_A_FUNCTION = 3\n"
    )
    return tmp_path


def test_python_scorer_return_forms(scorer_dir):
    assert run({"type": "python", "scorer": "my_scorers_td:polite"}, "Please wait", base_dir=scorer_dir).passed
    r = run(
        {"type": "python", "scorer": "my_scorers_td:with_reason", "options": {"limit": 3}}, "long", base_dir=scorer_dir
    )
    assert r.passed is False and r.reason == "len 4"
    r = run({"type": "python", "scorer": "my_scorers_td:as_dict"}, "x", base_dir=scorer_dir)
    assert r.passed and r.reason == "id seen"
    r = run({"type": "python", "scorer": "my_scorers_td:broken"}, "x", base_dir=scorer_dir)
    assert r.passed is False and "check raised KeyError" in r.reason
    r = run({"type": "python", "scorer": "my_scorers_td:not_bool"}, "x", base_dir=scorer_dir)
    assert r.passed is False and "not a bool" in r.reason


@pytest.mark.parametrize(
    "ref,message",
    [
        ("my_scorers_td", "must be 'module:function'"),
        ("my_scorers_td:missing", "has no 'missing'"),
        ("my_scorers_td:NOT_A_FUNCTION", "is not a function"),
        ("no_such_module_td:fn", "no module named 'no_such_module_td'"),
    ],
)
def test_python_scorer_path_mistakes(scorer_dir, ref, message):
    with pytest.raises(CheckSpecError, match=message) as e:
        parse_check({"type": "python", "scorer": ref}, base_dir=scorer_dir)
    assert e.value.field == "scorer"


# ---- rubric (model-graded) --------------------------------------------------------------------


def test_rubric_without_endpoint_is_skipped_not_passed():
    r = run({"type": "rubric", "rubric": "Polite and correct."}, "anything")
    assert r.passed is None and "skipped" in r.reason and "judge_url" in r.reason


@pytest.mark.parametrize("reply,expected", [("PASS: polite and correct", True), ("FAIL: rude", False)])
def test_rubric_asks_the_openai_compatible_endpoint(reply, expected):
    server = JudgeServer(reply)
    try:
        judge = Judge(server.url, "judge-model", timeout=5)
        r = run({"type": "rubric", "rubric": "Polite and correct."}, "Thanks for asking!", judge=judge)
        assert r.passed is expected and r.reason.startswith("judge: ")
        req = server.requests[0]
        assert req["path"] == "/v1/chat/completions"
        assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0
        assert "Polite and correct." in req["body"]["messages"][1]["content"]
        assert "Thanks for asking!" in req["body"]["messages"][1]["content"]
    finally:
        server.close()


def test_rubric_judge_errors_are_skips():
    server = JudgeServer("I think it is fine")  # no PASS/FAIL verdict
    try:
        r = run({"type": "rubric", "rubric": "x"}, "y", judge=Judge(server.url + "/v1", timeout=5))
        assert r.passed is None and "no PASS/FAIL" in r.reason
        assert server.requests[0]["path"] == "/v1/chat/completions"
    finally:
        server.close()
    r = run({"type": "rubric", "rubric": "x"}, "y", judge=Judge("http://127.0.0.1:9/v1/chat/completions", timeout=2))
    assert r.passed is None and "judge error" in r.reason


# ---- spec mistakes ------------------------------------------------------------------------------


def test_unknown_check_type_and_option_suggest_the_right_name():
    with pytest.raises(CheckSpecError, match="unknown check type 'json_vaild' \\(did you mean 'json_valid'\\?\\)"):
        parse_check("json_vaild")
    with pytest.raises(
        CheckSpecError, match="unknown option 'patern' for a regex check \\(did you mean 'pattern'\\?\\)"
    ):
        parse_check({"type": "regex", "patern": "x"})
    with pytest.raises(CheckSpecError, match="needs 'pattern'"):
        parse_check({"type": "regex"})
    with pytest.raises(CheckSpecError, match="needs a 'type'"):
        parse_check({"pattern": "x"})


# ---- eval sets ----------------------------------------------------------------------------------


def write_set(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


PROMPT = [{"role": "user", "content": "Extract: Ana, 30."}]


def test_eval_set_defaults_reference_from_assistant_turn_and_tags(tmp_path):
    p = write_set(
        tmp_path / "golden.jsonl",
        [
            {"messages": PROMPT + [{"role": "assistant", "content": '{"name": "Ana"}'}]},
            {"id": "plain", "messages": PROMPT, "reference": "Ana"},
            {"prompt": "Q: 2+2\nA:", "checks": [{"type": "regex", "pattern": "4"}], "tags": ["task", "math"]},
            "",
        ],
    )
    s = load_eval_set(p, "golden")
    a, b, c = s.examples
    assert a.id == "golden:1" and a.reference == '{"name": "Ana"}' and a.messages == PROMPT
    assert [ch.type for ch in a.checks] == ["exact_match", "json_valid"] and a.is_format
    assert b.id == "golden:plain" and [ch.type for ch in b.checks] == ["exact_match"] and not b.is_format
    assert c.prompt == "Q: 2+2\nA:" and c.messages is None and c.tags == ("task", "math")
    assert a.tags == ("task",)
    assert load_eval_set(p, "golden").sha256 == s.sha256


@pytest.mark.parametrize(
    "row,where",
    [
        ('{"messages": [', "3: invalid JSON"),
        ("[1, 2]", "3: an example must be a JSON object"),
        ({"messages": PROMPT, "chekcs": ["json_valid"]}, "3: chekcs: unknown key (did you mean 'checks'?)"),
        ({"messages": PROMPT}, "3: checks: no 'checks' and no 'reference'"),
        (
            {"messages": [{"role": "robot", "content": "x"}], "reference": "y"},
            "3: messages[0].role: role must be one of",
        ),
        ({"messages": [{"role": "user"}], "reference": "y"}, "3: messages[0].content: content must be a string"),
        (
            {"messages": PROMPT, "checks": ["json_valid", {"type": "regex", "pattern": "("}]},
            "3: checks[1].pattern: invalid regular expression",
        ),
        (
            {"messages": PROMPT, "checks": ["exact_macth"], "reference": "x"},
            "3: checks[0].type: unknown check type 'exact_macth'",
        ),
        (
            {"messages": PROMPT, "checks": [{"type": "python", "scorer": "nope_td:fn"}]},
            "3: checks[0].scorer: scorer 'nope_td:fn': no module",
        ),
        (
            {"messages": PROMPT, "reference": "x", "tags": ["saftey"]},
            "3: tags: unknown tag 'saftey' (did you mean 'safety'?)",
        ),
        ({"messages": PROMPT, "reference": {"a": 1}}, "3: reference: must be a string"),
        ({"messages": PROMPT, "checks": []}, "3: checks: must be a non-empty list"),
        ({"id": "a", "messages": PROMPT, "reference": "x"}, "3: id: duplicate id 'a' (first on line 1)"),
        ({"reference": "x"}, "3: messages: missing"),
    ],
)
def test_eval_set_mistakes_name_file_line_and_field(tmp_path, row, where):
    p = write_set(tmp_path / "set.jsonl", [{"id": "a", "messages": PROMPT, "reference": "x"}, "", row])
    with pytest.raises(EvalSetError) as e:
        load_eval_set(p, "golden")
    assert str(e.value).startswith(f"{p}:{where}"), str(e.value)


def test_eval_set_file_mistakes(tmp_path):
    with pytest.raises(EvalSetError, match=r"missing\.jsonl: gate\.golden: no such file"):
        load_eval_set(tmp_path / "missing.jsonl", "golden", key="gate.golden")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(EvalSetError, match="no examples"):
        load_eval_set(tmp_path / "empty.jsonl", "golden")


def test_held_out_split_becomes_an_eval_set(demo_rows):
    s = held_out_set(demo_rows[:5] + [{"text": "plain text cannot be scored"}, {"prompt": "2+2=", "completion": "4"}])
    assert len(s.examples) == 6
    ex = s.examples[0]
    assert ex.id == "heldout:1" and ex.messages == demo_rows[0]["messages"][:-1]
    assert [c.type for c in ex.checks] == ["exact_match", "json_valid"] and ex.tags == ("task",)
    # a free-text reference is judged by similarity (issue 15: exact match scores any rewording 0)
    assert s.examples[-1].prompt == "2+2=" and [c.type for c in s.examples[-1].checks] == ["chrf"]


def test_score_example_records_outcomes():
    from tunedeck.engine.gate.example_scoring import score_example

    s = held_out_set([{"messages": PROMPT + [{"role": "assistant", "content": '{"a": 1}'}]}])
    ex = s.examples[0]
    rec = score_example(ex, '{"a": 1}', 12.5, 6, checkpoint=10, key="k")
    assert rec["pass"] is True and rec["format_pass"] is True and rec["latency_ms"] == 12.5 and rec["new_tokens"] == 6
    rec = score_example(ex, '{"a": 1', 12.5, 6, checkpoint=10, key="k")
    assert rec["pass"] is False and rec["format_pass"] is False
    assert [c["type"] for c in rec["checks"]] == ["exact_match", "json_valid"]
    rubric_only = held_out_set([{"messages": PROMPT + [{"role": "assistant", "content": "x"}]}]).examples[0]
    rubric_only.checks = [parse_check({"type": "rubric", "rubric": "r"})]
    rec = score_example(rubric_only, "x", 1, 1, checkpoint=10, key="k")
    assert rec["pass"] is None and rec["checks"][0]["pass"] is None
