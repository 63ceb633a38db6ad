"""KTO rows: one answer judged desirable or undesirable.

TRL's prompt/completion/label, or LLaMA-Factory's messages, conversations or alpaca rows with label or kto_tag.
"""

from __future__ import annotations

from tunedeck.engine.data.alpaca import sft_alpaca
from tunedeck.engine.data.openai_chat import sft_messages
from tunedeck.engine.data.problems import RowProblems
from tunedeck.engine.data.sharegpt import sft_sharegpt
from tunedeck.engine.data.validation import add_tools, as_turns, check_order


def _kto_label(r: RowProblems, obj: dict) -> bool | None:
    key = "label" if "label" in obj else "kto_tag"
    value = obj.get(key)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # CSV cells, and LLaMA-Factory writes "[true/false]" as text at times
    if isinstance(value, bool):
        return value
    r.add("invalid_label", key, f"{key} must be true (a desirable answer) or false (an undesirable one), not {value!r}")
    return None


def kto_unpaired(r: RowProblems, obj: dict, method: str) -> dict | None:
    """KTO rows: TRL's unpaired preference format, {"prompt", "completion", "label"}; from conversations the
    last assistant turn is the completion the label judges, the turns before it the prompt."""
    label = _kto_label(r, obj)
    if "completion" in obj:
        if obj.get("prompt") is None:
            r.add("missing_field", "prompt", 'missing field "prompt"')
            return None
        prompt, completion = obj["prompt"], obj["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            if not completion.strip():
                r.add("content_empty", "completion", "empty")
            return {"prompt": prompt, "completion": completion, "label": label} if r.ok else None
        p = as_turns(r, prompt, "prompt", "user")
        c = as_turns(r, completion, "completion", "assistant")
        row: dict = {}
        add_tools(r, obj, row)
        if p is None or c is None:
            return None
        check_order(r, p + c, "prompt+completion", "sft", completion_start=len(p))
    else:
        convert = (
            sft_sharegpt
            if "conversations" in obj
            else sft_alpaca
            if "instruction" in obj and "output" in obj
            else sft_messages
        )
        conv = convert(r, obj, "sft")
        if conv is None:
            return None
        msgs = conv.pop("messages")
        p, c, row = msgs[:-1], msgs[-1:], conv
        if not any(m.get("role") == "user" for m in p):
            r.add("missing_field", "messages", "no user turn before the answer: KTO needs a prompt")
    if label is None or not r.ok:
        return None
    return {"prompt": p, "completion": c, "label": label, **row}


def kto_balance_warning(rows: list[dict]) -> str | None:
    """KTO learns from both sides; with under 10% on one side it has almost nothing to contrast."""
    good = sum(1 for r in rows if r.get("label") is True)
    bad = len(rows) - good
    if not rows or min(good, bad) >= 0.1 * len(rows):
        return None
    few = "desirable" if good < bad else "undesirable"
    return (
        f"KTO data is unbalanced: {good} desirable and {bad} undesirable rows ({min(good, bad) / len(rows):.0%} "
        f"{few}); raise method.kto_{few}_weight so that weight x rows is about equal on both sides, or add {few} rows"
    )
