"""Eval sets for the gate: JSONL files of prompts with checks, loaded and validated line by line.

One JSON object per line:

  {"id": "refund-3",                                   optional; default: the line number
   "messages": [{"role": "system", "content": "..."},  the prompt (system/user/assistant/tool turns),
                {"role": "user", "content": "..."}],   or "prompt": "raw text" (sent without a chat template)
   "reference": "{\"name\": \"Ana\"}",                 optional expected answer (a string)
   "checks": ["json_valid", "json_equal",              optional; names or objects, see engine/gate/checks.py
              {"type": "max_length", "words": 80}],
   "tags": ["task", "format"],                         optional; default from the set's role
   "meta": {...}}                                      optional, kept for the reader, never scored

- When "messages" ends with an assistant turn and there is no "reference", that turn is the
  reference (so a chat training file is an eval set as it is).
- No "checks": exact_match on the reference, plus json_valid when the reference is a JSON object
  or array. No checks and no reference is an error: nothing could be scored.
- Tags: task (counts toward task success), format (toward format validity), safety, general. Other
  tags are kept for slicing. Default tags by role: [gate] golden and `--eval-set` files: task; [gate]
  safety: safety; [gate] general: general.
- Example ids are "<set>:<id>" ("golden:refund-3", "golden:17"); give examples an "id" so review
  labels survive edits that move lines.
- Each set has a kind, from what named it: task ([gate] golden, `--eval-set` files, the held-out
  split), general or safety. Only task sets are asked the base's best prompt (engine/gate/base_prompts.py);
  general and safety sets are asked as written, to the base and every checkpoint, since they measure
  what the fine-tune cost.

With no set named in [gate] (golden, safety, general) and none on the command line, the run's own
held-out split is the eval set. A JSON reference is scored as above (exact match and JSON validity);
a free-text reference (alpaca answers, chat replies) by similarity: chrF >= FREE_TEXT_MIN, or by the
rubric judge (FREE_TEXT_RUBRIC) when [gate] judge_url is set, since exact match scores 0 on any
reworded answer. Every mistake is an EvalSetError naming the file, the line and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.gate.check_spec import Check, CheckSpecError
from tunedeck.engine.gate.checks import parse_check
from tunedeck.engine.run.gate_result import SET_GENERAL as GENERAL
from tunedeck.engine.run.gate_result import SET_SAFETY as SAFETY
from tunedeck.engine.run.gate_result import SET_TASK as TASK

KNOWN_TAGS = ("task", "format", "safety", "general")
ROLES = ("system", "user", "assistant", "tool")
EXAMPLE_KEYS = ("id", "messages", "prompt", "reference", "checks", "tags", "meta", "tools")
MAX_LINE_BYTES = 10 * 1024 * 1024


class EvalSetError(ValueError):
    """A mistake in an eval set; str() is the whole message: file:line: field: what is wrong."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = file, line, field
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")


@dataclass
class EvalExample:
    id: str  # "<set>:<id or line>", unique across the sets of one gate
    set: str
    messages: list | None  # chat prompt, or None for a raw-text prompt
    prompt_text: str | None
    reference: str | None
    checks: list[Check]
    tags: tuple[str, ...]
    line: int | None = None
    meta: dict = field(default_factory=dict)
    tools: list | None = None  # OpenAI tool schemas the chat template offers the model, as in training
    kind: str = TASK  # its set's kind: only task examples are asked the base's best prompt

    @property
    def asked_as_written(self) -> bool:
        """General and safety examples: the base gets exactly their own messages, never the task's prompt."""
        return self.kind != TASK

    @property
    def prompt(self) -> list | str:
        from tunedeck.engine.gate.generate import ChatPrompt

        if self.messages is None:
            return self.prompt_text  # type: ignore[return-value]
        return ChatPrompt(self.messages, self.tools) if self.tools else self.messages

    def has(self, tag: str) -> bool:
        return tag in self.tags

    @property
    def is_format(self) -> bool:
        return "format" in self.tags or any(c.is_format for c in self.checks)

    def spec(self) -> dict:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "reference": self.reference,
            "checks": [c.spec() for c in self.checks],
            "tags": list(self.tags),
            **({"tools": self.tools} if self.tools else {}),
        }


@dataclass
class EvalSet:
    name: str
    source: str  # the file, or "held-out split"
    examples: list[EvalExample]
    kind: str = TASK  # task, general or safety (engine/run/gate_result.py SET_KINDS)

    @property
    def sha256(self) -> str:
        return content_hash([e.spec() for e in self.examples])


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _is_json_doc(text: str | None) -> bool:
    if not text:
        return False
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def default_checks(reference: str | None) -> list[str]:
    return ["exact_match", "json_valid"] if _is_json_doc(reference) else ["exact_match"]


def _check_messages(msgs: Any, err) -> list[dict]:
    if not isinstance(msgs, list) or not msgs:
        raise err('must be a non-empty list of {"role", "content"} objects', "messages")
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise err("must be an object with 'role' and 'content'", where)
        if m.get("role") not in ROLES:
            raise err(f"role must be one of {', '.join(ROLES)}, not {json.dumps(m.get('role'))}", f"{where}.role")
        if not isinstance(m.get("content"), str):
            raise err("content must be a string", f"{where}.content")
    return msgs


def _check_tags(tags: Any, err) -> tuple[str, ...]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise err('must be a list of strings, e.g. ["task", "format"]', "tags")
    for t in tags:
        if t not in KNOWN_TAGS:
            hint = difflib.get_close_matches(t, KNOWN_TAGS, n=1, cutoff=0.7)
            if hint:  # a free-form tag is fine; a misspelt known one would silently drop out of a score
                raise err(f"unknown tag {t!r} (did you mean {hint[0]!r}?)", "tags")
    return tuple(dict.fromkeys(tags))


def parse_example(
    obj: Any,
    *,
    set_name: str,
    line: int,
    default_tags: tuple[str, ...],
    err,
    base_dir: Path | None = None,
    scorers: dict | None = None,
    kind: str = TASK,
) -> EvalExample:
    """One eval example from its JSON object; `err(message, field)` builds the error to raise."""
    if not isinstance(obj, dict):
        raise err(f"an example must be a JSON object, not {type(obj).__name__}", None)
    for key in obj:
        if key not in EXAMPLE_KEYS:
            hint = difflib.get_close_matches(key, EXAMPLE_KEYS, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else f"; keys: {', '.join(EXAMPLE_KEYS)}"
            raise err(f"unknown key{extra}", key)
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        if isinstance(reference, (dict, list)):
            raise err('must be a string; write a JSON answer as a string, e.g. "{\\"a\\": 1}"', "reference")
        raise err("must be a string", "reference")
    messages, prompt_text = None, None
    if "messages" in obj and "prompt" in obj:
        raise err("give either 'messages' or 'prompt', not both", "prompt")
    if "messages" in obj:
        messages = _check_messages(obj["messages"], err)
        if messages[-1]["role"] == "assistant":
            if reference is not None:
                raise err("ends with an assistant turn and also has a 'reference'; keep one", "messages")
            reference, messages = messages[-1]["content"], messages[:-1]
            if not messages:
                raise err("holds only an assistant turn; the prompt is missing", "messages")
    elif "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"]:
            raise err("must be a non-empty string (or use 'messages' for a chat prompt)", "prompt")
        prompt_text = obj["prompt"]
    else:
        raise err("missing: every example needs 'messages' (a chat prompt) or 'prompt' (raw text)", "messages")
    raw_checks = obj.get("checks")
    if raw_checks is None:
        if reference is None:
            raise err("no 'checks' and no 'reference': nothing to score this example on", "checks")
        raw_checks = default_checks(reference)
    if not isinstance(raw_checks, list) or not raw_checks:
        raise err("must be a non-empty list of check names or objects", "checks")
    checks = []
    for i, spec in enumerate(raw_checks):
        try:
            checks.append(parse_check(spec, reference=reference, base_dir=base_dir, scorers=scorers))
        except CheckSpecError as e:
            raise err(
                str(e), f"checks[{i}]" + (f".{e.field}" if e.field not in ("checks", "reference") else "")
            ) from None
    tags = _check_tags(obj["tags"], err) if "tags" in obj else default_tags
    local_id = obj.get("id", line)
    if isinstance(local_id, bool) or not isinstance(local_id, (str, int)) or local_id == "":
        raise err("must be a non-empty string or a number", "id")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise err("must be an object", "meta")
    tools = obj.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise err("must be a list of tool schemas (objects), as in OpenAI's `tools`", "tools")
    if tools and messages is None:
        raise err("tools need a chat prompt ('messages'); a raw-text 'prompt' gets no chat template", "tools")
    return EvalExample(
        id=f"{set_name}:{local_id}",
        set=set_name,
        messages=messages,
        prompt_text=prompt_text,
        reference=reference,
        checks=checks,
        tags=tags,
        line=line,
        meta=meta,
        tools=tools or None,
        kind=kind,
    )


def load_eval_set(
    path: str | Path, name: str, default_tags: tuple[str, ...] = ("task",), key: str | None = None, kind: str = TASK
) -> EvalSet:
    """Load and validate a JSONL eval set; `key` names the profile key that pointed at it, for messages;
    `kind` is the set's role (task, general, safety), which decides how the base is asked it."""
    p = Path(path).expanduser()
    shown = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise EvalSetError("no such file", shown, field=key) from None
    except IsADirectoryError:
        raise EvalSetError("is a directory; an eval set is one JSONL file", shown, field=key) from None
    except OSError as e:
        raise EvalSetError(f"cannot read: {e.strerror}", shown, field=key) from None
    base_dir = p.resolve().parent
    scorers: dict = {}
    examples: list[EvalExample] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue

        def err(message, fld, _line=lineno):
            return EvalSetError(message, shown, _line, fld)

        if len(line) > MAX_LINE_BYTES:
            raise err(f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MB", None)
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise err("not valid UTF-8", None) from None
        except json.JSONDecodeError as e:
            raise err(f"invalid JSON: {e.msg} (column {e.colno})", None) from None
        except RecursionError:
            raise err("JSON nested too deeply", None) from None
        ex = parse_example(
            obj,
            set_name=name,
            line=lineno,
            default_tags=default_tags,
            err=err,
            base_dir=base_dir,
            scorers=scorers,
            kind=kind,
        )
        if ex.id in seen:
            raise err(f"duplicate id {ex.id.split(':', 1)[1]!r} (first on line {seen[ex.id]})", "id")
        seen[ex.id] = lineno
        examples.append(ex)
    if not examples:
        raise EvalSetError("no examples (the file is empty)", shown, field=key)
    return EvalSet(name, str(p), examples, kind)


def prompt_and_reference(row: dict) -> tuple[list | None, str | None, str] | None:
    """(chat prompt, raw-text prompt, reference answer) of a canonical training row; None for rows
    without a prompt/answer split (plain {"text"})."""
    messages, text, reference = None, None, None
    if row.get("label") is False:
        return None  # KTO: an answer labelled undesirable is no reference to score against
    if isinstance(row.get("messages"), list) and row["messages"] and row["messages"][-1].get("role") == "assistant":
        messages, reference = row["messages"][:-1], row["messages"][-1].get("content")
    elif isinstance(row.get("chosen"), list) and row.get("chosen"):  # DPO: the prompt and its chosen answer
        messages, reference = list(row.get("prompt") or []), row["chosen"][-1].get("content")
    elif isinstance(row.get("prompt"), list) and isinstance(row.get("completion"), list) and row["completion"]:
        messages, reference = row["prompt"], row["completion"][-1].get("content")
    elif isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        text, reference = row["prompt"], row["completion"]
    if (messages is None and text is None) or messages == [] or not isinstance(reference, str):
        return None
    return messages, text, reference


FREE_TEXT_METRIC = "chrf"
FREE_TEXT_MIN = (
    50.0  # chrF 50: most of the reference's character n-grams in the answer; rewordings pass, other answers fail
)
FREE_TEXT_RUBRIC = (
    "The answer does what the user asked and agrees in substance with the reference answer; "
    "wording, length and order may differ. Fail answers that are wrong, off-topic, unfinished or repetitive."
)


def free_text_checks(reference: str, judge: bool) -> list[dict]:
    """The held-out split's checks for a reference that is not JSON."""
    if judge:
        return [{"type": "rubric", "rubric": FREE_TEXT_RUBRIC}]
    return [{"type": FREE_TEXT_METRIC, "min": FREE_TEXT_MIN}]


def held_out_set(rows: list[dict], name: str = "heldout", judge: bool = False) -> EvalSet:
    """The run's held-out split (canonical training rows) as an eval set: exact match and JSON validity for
    JSON references, similarity (or the rubric judge, with `judge`) for free text."""
    examples = []
    for i, row in enumerate(rows, 1):
        split = prompt_and_reference(row)
        if split is None:
            continue  # plain {"text"} rows have no prompt/answer split to score
        messages, text, reference = split
        specs = default_checks(reference) if _is_json_doc(reference) else free_text_checks(reference, judge)
        checks = [parse_check(c, reference=reference) for c in specs]
        examples.append(
            EvalExample(
                id=f"{name}:{i}",
                set=name,
                messages=messages,
                prompt_text=text,
                reference=reference,
                checks=checks,
                tags=("task",),
                tools=row.get("tools") or None,
            )
        )
    return EvalSet(name, "held-out split", examples)


# Profile keys that name sets, the set name and the tags their examples get by default; the key is also
# the set's kind (golden: task).
GATE_SET_KEYS = (("golden", ("task",)), ("safety", ("safety",)), ("general", ("general",)))
KIND_OF_KEY = {"golden": TASK, "safety": SAFETY, "general": GENERAL}


def verdict_basis(sets: list[EvalSet]) -> str | None:
    """What a verdict on the held-out split rests on, with a hint; None when named eval sets decide."""
    held = [ex for s in sets if s.source == "held-out split" for ex in s.examples]
    if not held:
        return None
    types = {c.type for ex in held for c in ex.checks}
    hint = "name a golden set with checks ([gate] golden) to judge what the task needs"
    if "rubric" in types:
        return f"a rubric judge's grading against held-out references; {hint}"
    if FREE_TEXT_METRIC in types:
        what = f"similarity to held-out references (chrF >= {FREE_TEXT_MIN:g})"
        return what + (" and exact match for JSON ones" if "exact_match" in types else "") + f"; {hint}"
    return f"exact match with held-out references; {hint}"


def profile_sets(gate_cfg, extra: list | tuple = ()) -> list[EvalSet]:
    """The sets [gate] names plus `extra` files (tagged task by default); empty when none is named.

    An `extra` item is a path, or (path, the option that named it) for messages."""
    sets = []
    for key, tags in GATE_SET_KEYS:
        path = getattr(gate_cfg, key, "")
        if path:
            sets.append(load_eval_set(path, key, tags, key=f"gate.{key}", kind=KIND_OF_KEY[key]))
    names = {s.name for s in sets}
    for item in extra:
        path, flag = item if isinstance(item, tuple) else (item, "--eval-set")
        stem = Path(path).stem or "extra"
        name, n = stem, 2
        while name in names:
            name, n = f"{stem}{n}", n + 1
        names.add(name)
        sets.append(load_eval_set(path, name, ("task",), key=flag))
    return sets
