"""The check registry for eval examples: each takes a model output and returns pass or fail with a short reason.

A check is written in an eval set either as a bare name ("json_valid") or as an object with a
"type" and its options ({"type": "regex", "pattern": "^\\d+$"}). Options are validated when the set
is loaded (parse_check), so a typo is reported with its file and line before any model loads.

  exact_match   output equals `value` (default: the example's reference). Options: strip (true),
                ignore_case, collapse_whitespace, ignore_punctuation (all false by default)
  contains      every string in `value` (a string or a list) occurs; `any: true` for at least one;
                ignore_case
  not_contains  no string in `value` occurs; ignore_case
  regex         `pattern` is found (re.search); `fullmatch: true` for the whole output; `flags`
                any of "i" (ignore case), "m" (multi-line), "s" (dot matches newline)
  json_valid    the output is one JSON value; `allow_fence: true` accepts a ```json fence around it
  json_schema   the output is JSON matching `schema` (inline) or `schema_file` (relative to the set);
                supported keywords: SCHEMA_KEYWORDS in engine/gate/json_schema.py, others are refused at load time
  json_equal    the output is JSON equal to `value` (default: the reference), ignoring key order
  refusal       the output refuses (harmful prompts must be refused); see is_refusal in engine/gate/refusal.py
  not_refusal   the output does not refuse (benign prompts must be answered)
  max_length    at most `chars` characters, `words` words and/or `tokens` generated tokens
  python        `scorer: "module:function"` called as function(output, example) -> bool, (bool, reason),
                {"pass": bool, "reason": str, "score"?: 0-1}, or a score (a number, 0-1) that passes at
                `min` (default 0.5); the module is looked up next to the eval set first.
                `example` has id, messages, reference, tags, new_tokens and options (the check's
                `options` object)
  rubric        model-graded: `rubric` text sent with the prompt and output to the OpenAI-compatible
                chat endpoint in [gate] judge_url (engine/gate/judge_client.py). With no endpoint the
                check is skipped (never passed) and the gate shows a notice. The result keeps the
                judge's prompt, model and raw answer (`judge`)
  chrf, bleu, rouge_l, token_f1
                similarity to `value` (default: the reference), see engine/gate/similarity.py; passes
                when the score reaches `min` (chrf and bleu 0-100, rouge_l and token_f1 0-1). The
                result keeps its `score`

Format checks (json_valid, json_schema) feed the format score; see engine/gate/rules.py.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.gate.check_spec import Check, CheckResult, CheckSpecError, Context, ScorerOutputError, short_quote
from tunedeck.engine.gate.json_schema import schema_errors, validate_schema_keywords
from tunedeck.engine.gate.refusal import is_refusal
from tunedeck.engine.gate.scorer_loader import load_scorer

# ---- option handling --------------------------------------------------------------------------


class _Opt:
    def __init__(self, kind: str, default: Any = None, required: bool = False):
        self.kind, self.default, self.required = kind, default, required


def _check_kind(name: str, kind: str, value: Any) -> Any:
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "num": isinstance(value, (int, float)) and not isinstance(value, bool),
        "strs": isinstance(value, str)
        or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)),
        "dict": isinstance(value, dict),
        "any": True,
    }[kind]
    if not ok:
        what = {
            "str": "a string",
            "bool": "true or false",
            "int": "a whole number >= 0",
            "num": "a number",
            "strs": "a string or a list of strings",
            "dict": "an object",
            "any": "a value",
        }[kind]
        raise CheckSpecError(f"option '{name}' must be {what}, not {json.dumps(value)[:60]}", name)
    return [value] if kind == "strs" and isinstance(value, str) else value


def _options(ctype: str, raw: dict, schema: dict[str, _Opt]) -> dict:
    out = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key not in schema:
            hint = difflib.get_close_matches(key, list(schema), n=1)
            known = ", ".join(schema) or "none"
            extra = f" (did you mean {hint[0]!r}?)" if hint else f"; options: {known}"
            raise CheckSpecError(f"unknown option '{key}' for a {ctype} check{extra}", key)
        out[key] = _check_kind(key, schema[key].kind, value)
    for key, opt in schema.items():
        if key not in out:
            if opt.required:
                raise CheckSpecError(f"a {ctype} check needs '{key}'", key)
            out[key] = opt.default
    return out


# ---- the checks -------------------------------------------------------------------------------

_PUNCT = str.maketrans("", "", string.punctuation)


def _normalise(text: str, o: dict) -> str:
    if o["strip"]:
        text = text.strip()
    if o["collapse_whitespace"]:
        text = " ".join(text.split())
    if o["ignore_case"]:
        text = text.casefold()
    if o["ignore_punctuation"]:
        text = text.translate(_PUNCT)
    return text


def _exact_match(c: Check, out: str, ctx: Context) -> CheckResult:
    want = c.options["value"] if c.options["value"] is not None else ctx.reference
    if want is None:
        return CheckResult(c.type, False, "no reference to compare with")
    if _normalise(out, c.options) == _normalise(want, c.options):
        return CheckResult(c.type, True, "matches the reference")
    return CheckResult(c.type, False, f"got {short_quote(out)}, expected {short_quote(want)}")


def _fold(s: str, ignore_case: bool) -> str:
    return s.casefold() if ignore_case else s


def _contains(c: Check, out: str, ctx: Context) -> CheckResult:
    hay = _fold(out, c.options["ignore_case"])
    found = [v for v in c.options["value"] if _fold(v, c.options["ignore_case"]) in hay]
    missing = [v for v in c.options["value"] if v not in found]
    if c.options["any"]:
        ok = bool(found)
        return CheckResult(
            c.type,
            ok,
            f"contains {short_quote(found[0])}" if ok else f"contains none of {short_quote(', '.join(missing))}",
        )
    return CheckResult(
        c.type, not missing, "contains every string" if not missing else f"missing {short_quote(missing[0])}"
    )


def _not_contains(c: Check, out: str, ctx: Context) -> CheckResult:
    hay = _fold(out, c.options["ignore_case"])
    found = [v for v in c.options["value"] if _fold(v, c.options["ignore_case"]) in hay]
    return CheckResult(
        c.type,
        not found,
        f"contains forbidden {short_quote(found[0])}" if found else "contains none of the forbidden strings",
    )


def _regex(c: Check, out: str, ctx: Context) -> CheckResult:
    rx = c.options["_compiled"]
    m = rx.fullmatch(out.strip()) if c.options["fullmatch"] else rx.search(out)
    if m:
        return CheckResult(c.type, True, f"matches /{c.options['pattern'][:40]}/")
    return CheckResult(c.type, False, f"no match for /{c.options['pattern'][:40]}/")


_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.S)


def parse_json_output(out: str, allow_fence: bool = False) -> tuple[bool, Any, str]:
    """(ok, value, reason) for an output that should be exactly one JSON value."""
    text = out.strip()
    if allow_fence:
        m = _FENCE.match(text)
        if m:
            text = m.group(1).strip()
    if not text:
        return False, None, "empty output, not JSON"
    try:
        return True, json.loads(text), "valid JSON"
    except json.JSONDecodeError as e:
        return False, None, f"invalid JSON: {e.msg} at char {e.pos}"


def _json_valid(c: Check, out: str, ctx: Context) -> CheckResult:
    ok, _, reason = parse_json_output(out, c.options["allow_fence"])
    return CheckResult(c.type, ok, reason)


def _json_equal(c: Check, out: str, ctx: Context) -> CheckResult:
    want = c.options["_value"] if "_value" in c.options else _reference_json(ctx.reference)
    ok, got, reason = parse_json_output(out, c.options["allow_fence"])
    if not ok:
        return CheckResult(c.type, False, reason)
    if got == want and _same_types(got, want):
        return CheckResult(c.type, True, "equal to the reference")
    return CheckResult(c.type, False, _json_diff(got, want))


def _same_types(a: Any, b: Any) -> bool:
    # json 1 == 1.0 == True in Python; a schema-minded comparison keeps booleans apart from numbers
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b)
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b))
    return True


def _json_diff(got: Any, want: Any, path: str = "$") -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        missing = [k for k in want if k not in got]
        if missing:
            return f"{path}: missing key {missing[0]!r}"
        extra = [k for k in got if k not in want]
        if extra:
            return f"{path}: unexpected key {extra[0]!r}"
        for k in want:
            if got[k] != want[k] or not _same_types(got[k], want[k]):
                return _json_diff(got[k], want[k], f"{path}.{k}")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w or not _same_types(g, w):
                return _json_diff(g, w, f"{path}[{i}]")
    return (
        f"{path}: got {_clip(json.dumps(got, ensure_ascii=False))}, "
        f"expected {_clip(json.dumps(want, ensure_ascii=False))}"
    )


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _reference_json(reference: str | None) -> Any:
    if reference is None:
        raise CheckSpecError("a json_equal check needs a reference or a 'value'", "reference")
    try:
        return json.loads(reference)
    except json.JSONDecodeError as e:
        raise CheckSpecError(f"json_equal: the reference is not valid JSON ({e.msg})", "reference") from None


def _refusal(c: Check, out: str, ctx: Context) -> CheckResult:
    refused, why = is_refusal(out)
    return CheckResult(c.type, refused, why if refused else f"answered instead of refusing: {short_quote(out, 50)}")


def _not_refusal(c: Check, out: str, ctx: Context) -> CheckResult:
    refused, why = is_refusal(out)
    if not out.strip():
        return CheckResult(c.type, False, "empty output")
    return CheckResult(c.type, not refused, "answered" if not refused else f"refused a benign prompt: {why}")


def _max_length(c: Check, out: str, ctx: Context) -> CheckResult:
    o = c.options
    for name, size in (("chars", len(out)), ("words", len(out.split())), ("tokens", ctx.new_tokens)):
        if o[name] is not None and size > o[name]:
            return CheckResult(c.type, False, f"{size} {name}, over the limit of {o[name]}")
    return CheckResult(c.type, True, "within the length limit")


def _python(c: Check, out: str, ctx: Context) -> CheckResult:
    fn = c.options["_fn"]
    result = fn(out, {**ctx.example, "options": c.options["options"]})
    score = None
    if isinstance(result, dict):
        passed, reason, score = result.get("pass"), str(result.get("reason", "")), result.get("score")
    elif isinstance(result, tuple) and len(result) == 2:
        passed, reason = result
    elif isinstance(result, (int, float)) and not isinstance(result, bool):
        score, passed, reason = result, None, ""
    else:
        passed, reason = result, ""
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise ScorerOutputError(
                f"scorer {c.options['scorer']} returned the score {score!r}; a score is a number from 0 to 1"
            )
        score = float(score)
        if passed is None:
            passed = score >= c.options.get("min", PYTHON_SCORE_MIN) - 1e-9
    if not isinstance(passed, bool):
        raise ScorerOutputError(f"scorer {c.options['scorer']} returned {type(passed).__name__}, not a bool")
    return CheckResult(c.type, passed, str(reason) or ("scorer passed" if passed else "scorer failed"), score=score)


def _similarity(c: Check, out: str, ctx: Context) -> CheckResult:
    from tunedeck.engine.gate.similarity import NAMES, fmt_score, similarity

    want = c.options["value"] if c.options["value"] is not None else ctx.reference
    if want is None:
        return CheckResult(c.type, False, "no reference to compare with")
    score = round(similarity(c.type, out, want), 4)
    ok = score >= c.options["min"] - 1e-9
    return CheckResult(
        c.type,
        ok,
        f"{NAMES[c.type]} {fmt_score(c.type, score)} {'>=' if ok else '<'} {fmt_score(c.type, c.options['min'])}",
        score=score,
    )


def _rubric(c: Check, out: str, ctx: Context) -> CheckResult:
    if ctx.judge is None:
        return CheckResult(c.type, None, "skipped: no judge endpoint ([gate] judge_url)")
    passed, reason, trace = ctx.judge.grade_with_trace(
        c.options["rubric"], ctx.example.get("messages") or [], out, ctx.reference
    )
    return CheckResult(c.type, passed, reason, judge=trace)


def _json_schema(c: Check, out: str, ctx: Context) -> CheckResult:
    ok, value, reason = parse_json_output(out, c.options["allow_fence"])
    if not ok:
        return CheckResult(c.type, False, reason)
    errs = schema_errors(value, c.options["_schema"])
    return CheckResult(c.type, not errs, "matches the schema" if not errs else errs[0])


# ---- parsing ----------------------------------------------------------------------------------

_CASE = {
    "strip": _Opt("bool", True),
    "ignore_case": _Opt("bool", False),
    "collapse_whitespace": _Opt("bool", False),
    "ignore_punctuation": _Opt("bool", False),
}
CHECK_TYPES: dict[str, tuple[dict[str, _Opt], Callable]] = {
    "exact_match": ({"value": _Opt("str"), **_CASE}, _exact_match),
    "contains": (
        {"value": _Opt("strs", required=True), "any": _Opt("bool", False), "ignore_case": _Opt("bool", False)},
        _contains,
    ),
    "not_contains": ({"value": _Opt("strs", required=True), "ignore_case": _Opt("bool", False)}, _not_contains),
    "regex": (
        {"pattern": _Opt("str", required=True), "flags": _Opt("str", ""), "fullmatch": _Opt("bool", False)},
        _regex,
    ),
    "json_valid": ({"allow_fence": _Opt("bool", False)}, _json_valid),
    "json_schema": (
        {"schema": _Opt("dict"), "schema_file": _Opt("str"), "allow_fence": _Opt("bool", False)},
        _json_schema,
    ),
    "json_equal": ({"value": _Opt("any"), "allow_fence": _Opt("bool", False)}, _json_equal),
    "refusal": ({}, _refusal),
    "not_refusal": ({}, _not_refusal),
    "max_length": ({"chars": _Opt("int"), "words": _Opt("int"), "tokens": _Opt("int")}, _max_length),
    "python": ({"scorer": _Opt("str", required=True), "options": _Opt("dict", None), "min": _Opt("num")}, _python),
    "rubric": ({"rubric": _Opt("str", required=True)}, _rubric),
    **{
        name: ({"value": _Opt("str"), "min": _Opt("num")}, _similarity)
        for name in ("chrf", "bleu", "rouge_l", "token_f1")
    },
}
SIMILARITY_CHECKS = frozenset({"chrf", "bleu", "rouge_l", "token_f1"})
PYTHON_SCORE_MIN = 0.5  # a python scorer's bare score passes from here unless the check sets `min`


def parse_check(
    spec: Any, *, reference: str | None = None, base_dir: Path | None = None, scorers: dict | None = None
) -> Check:
    """A Check from its eval-set form; CheckSpecError says what is wrong and which option.

    `scorers` memoises imported python scorers across the examples of a set.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise CheckSpecError(f"a check must be a name or an object with a 'type', not {json.dumps(spec)[:60]}")
    ctype = spec.get("type")
    if not isinstance(ctype, str):
        raise CheckSpecError("a check object needs a 'type' (a string)", "type")
    if ctype not in CHECK_TYPES:
        hint = difflib.get_close_matches(ctype, list(CHECK_TYPES), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else f"; known: {', '.join(CHECK_TYPES)}"
        raise CheckSpecError(f"unknown check type {ctype!r}{extra}", "type")
    schema, run = CHECK_TYPES[ctype]
    o = _options(ctype, spec, schema)
    if ctype == "exact_match" and o["value"] is None and reference is None:
        raise CheckSpecError("an exact_match check needs a reference or a 'value'", "reference")
    elif ctype == "regex":
        bad = set(o["flags"]) - set("ims")
        if bad:
            raise CheckSpecError(f"regex flags may be i, m and s, not {''.join(sorted(bad))!r}", "flags")
        flags = (
            (re.I if "i" in o["flags"] else 0) | (re.M if "m" in o["flags"] else 0) | (re.S if "s" in o["flags"] else 0)
        )
        try:
            o["_compiled"] = re.compile(o["pattern"], flags)
        except re.error as e:
            raise CheckSpecError(f"invalid regular expression {o['pattern']!r}: {e}", "pattern") from None
    elif ctype == "json_equal":
        o["_value"] = o["value"] if "value" in spec else _reference_json(reference)
    elif ctype == "json_schema":
        if (o["schema"] is None) == (o["schema_file"] is None):
            raise CheckSpecError("a json_schema check needs exactly one of 'schema' or 'schema_file'", "schema")
        schema_value = o["schema"]
        if o["schema_file"] is not None:
            path = Path(o["schema_file"]).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                schema_value = json.loads(path.read_text(encoding="utf-8"))
            except OSError as e:
                raise CheckSpecError(f"cannot read schema_file {str(path)!r}: {e.strerror}", "schema_file") from None
            except ValueError as e:
                raise CheckSpecError(f"schema_file {str(path)!r} is not valid JSON: {e}", "schema_file") from None
            o["schema_file"] = str(path)
        validate_schema_keywords(schema_value)
        o["_schema"] = schema_value
        o["schema"] = schema_value  # the spec (and so the set's hash) holds the schema itself
    elif ctype in SIMILARITY_CHECKS:
        from tunedeck.engine.gate.similarity import DEFAULT_MIN, SCALES

        if o["value"] is None and reference is None:
            raise CheckSpecError(f"a {ctype} check needs a reference or a 'value'", "reference")
        if o["min"] is None:
            o["min"] = DEFAULT_MIN[ctype]
        scale = SCALES[ctype]
        if not 0 <= o["min"] <= scale:
            hint = (
                f" ({o['min']:g} looks like a percentage: write {o['min'] / 100:g})"
                if scale == 1 and o["min"] <= 100
                else ""
            )
            raise CheckSpecError(f"'min' for {ctype} is on a 0-{scale:g} scale, not {o['min']:g}{hint}", "min")
        o["min"] = float(o["min"])
    elif ctype == "max_length":
        if o["chars"] is None and o["words"] is None and o["tokens"] is None:
            raise CheckSpecError("a max_length check needs 'chars', 'words' and/or 'tokens'", "chars")
    elif ctype == "python":
        cache = scorers if scorers is not None else {}
        if o["scorer"] not in cache:
            cache[o["scorer"]] = load_scorer(o["scorer"], base_dir)
        o["_fn"] = cache[o["scorer"]]
        o["options"] = o["options"] or {}
        if o["min"] is None:
            del o["min"]  # unset: the set's content hash stays what it was before scores existed
        elif not 0 <= o["min"] <= 1:
            raise CheckSpecError(f"'min' for a python scorer's score is on a 0-1 scale, not {o['min']:g}", "min")
    return Check(ctype, o, run)


def run_checks(checks: list[Check], output: str, ctx: Context) -> list[CheckResult]:
    return [check(output, ctx) for check in checks]
