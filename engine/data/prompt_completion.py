"""Prompt/completion rows (two strings, or two message lists) and plain text rows."""

from __future__ import annotations

from tunedeck.engine.data.problems import RowProblems
from tunedeck.engine.data.validation import add_tools, as_turns, check_order, other_format_hint, string_field


def sft_text(r: RowProblems, obj: dict, method: str) -> dict | None:
    text = string_field(r, obj, "text")
    return None if text is None else {"text": text}


def sft_prompt_completion(r: RowProblems, obj: dict, method: str) -> dict | None:
    missing = [k for k in ("prompt", "completion") if obj.get(k) is None]
    for k in missing:
        hint = (
            "; prompts without answers are GRPO data (method grpo)"
            if k == "completion" and obj.get("prompt") is not None
            else other_format_hint(obj)
        )
        r.add("missing_field", k, f'missing field "{k}"' + hint)
    if missing:
        return None
    prompt, completion = obj["prompt"], obj["completion"]
    if isinstance(prompt, str) and isinstance(completion, str):
        if not completion.strip():
            r.add("content_empty", "completion", "empty")
        return {"prompt": prompt, "completion": completion}
    p = as_turns(r, prompt, "prompt", "user")
    c = as_turns(r, completion, "completion", "assistant")
    row: dict = {}
    add_tools(r, obj, row)
    if p is None or c is None:
        return None
    if any(m.get("role") not in ("assistant", "tool", None) for m in c):
        r.add("role_order", "completion", "a completion may only hold assistant (and tool) turns")
    check_order(r, p + c, "prompt+completion", method, completion_start=len(p))
    # the completion trains, the prompt does not: assistant turns inside the prompt (few-shot) get weight 0
    msgs = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in p] + c
    return {"messages": msgs, **row}
