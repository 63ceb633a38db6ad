"""GRPO's data: prompts for the model to answer, each with an optional reference answer.

GRPO trains on completions the model samples itself, so a row needs only its prompt. A reference, where
the row has one, is what reward checks such as json_equal, exact_match or chrf compare with, and what
the gate's held-out split scores. The layouts tunedeck reads, as prompts:

  messages, sharegpt   a conversation; a last assistant turn is the reference, the turns before it the
                       prompt (which must end with a user turn or a tool result)
  prompt_completion    "prompt" (a string or messages) with an optional "completion" (the reference)
  alpaca               instruction (+ input, system, history) with an optional "output"

Canonical GRPO row: {"prompt": [messages] | str, "completion"?: [{"role": "assistant", "content"}] | str}.
String prompts go through the model's chat template as a user turn (data.apply_chat_template), as in SFT.
"""

from __future__ import annotations

from typing import Any

from tunedeck.engine.data.alpaca import alpaca_prompt
from tunedeck.engine.data.problems import RowProblems, type_name
from tunedeck.engine.data.sharegpt import sharegpt_turns
from tunedeck.engine.data.validation import as_turns, check_conversation, check_order, other_format_hint, string_field


def _no_tools(r: RowProblems, obj: dict) -> bool:
    if obj.get("tools") in (None, [], ""):
        return True
    r.add(
        "tools_unsupported",
        "tools",
        "GRPO does not offer tool schemas to the model yet: remove the tools column, or train tool use with method sft",
    )
    return False


def _split(r: RowProblems, msgs: list[dict], prefix: str) -> dict | None:
    """A checked conversation as prompt and reference: a last assistant turn is the reference."""
    check_order(r, msgs, prefix, "grpo")
    last = msgs[-1]
    reference = None
    if last.get("role") == "assistant":
        if last.get("tool_calls") or not isinstance(last.get("content"), str) or not last["content"].strip():
            r.add(
                "invalid_reference",
                f"{prefix}[{len(msgs) - 1}]",
                "the last assistant turn is the reference "
                "answer and must be text (a prompt without an answer is fine: leave the turn out)",
            )
            return None
        msgs, reference = msgs[:-1], last["content"]
    if not msgs or msgs[-1].get("role") not in ("user", "tool"):
        r.add("prompt_end", prefix, "the prompt must end with a user turn (or a tool result) for the model to answer")
        return None
    prompt = [{k: v for k, v in m.items() if k not in ("weight", "training")} for m in msgs]
    row: dict[str, Any] = {"prompt": prompt}
    if reference is not None:
        row["completion"] = [{"role": "assistant", "content": reference}]
    return row


def grpo_messages(r: RowProblems, obj: dict, method: str) -> dict | None:
    if "messages" not in obj:
        r.add("messages_missing", "messages", 'missing "messages"' + other_format_hint(obj))
        return None
    msgs = check_conversation(r, obj["messages"], "messages")
    ok = _no_tools(r, obj)
    return _split(r, msgs, "messages") if msgs is not None and ok else None


def grpo_sharegpt(r: RowProblems, obj: dict, method: str) -> dict | None:
    if "conversations" not in obj:
        r.add("messages_missing", "conversations", 'missing "conversations"' + other_format_hint(obj))
        return None
    msgs = sharegpt_turns(r, obj["conversations"], "conversations", obj)
    ok = _no_tools(r, obj)
    return _split(r, msgs, "conversations") if msgs is not None and ok else None


def grpo_alpaca(r: RowProblems, obj: dict, method: str) -> dict | None:
    prompt = alpaca_prompt(r, obj)
    output = string_field(r, obj, "output", required=False, empty=None)
    if prompt is None:
        return None
    return {"prompt": prompt, **({"completion": [{"role": "assistant", "content": output}]} if output else {})}


def grpo_prompt_completion(r: RowProblems, obj: dict, method: str) -> dict | None:
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if prompt is None:
        r.add("missing_field", "prompt", 'missing field "prompt"' + other_format_hint(obj))
        return None
    if not _no_tools(r, obj):
        return None
    if isinstance(prompt, str) and (completion is None or isinstance(completion, str)):
        if not prompt.strip():
            r.add("content_empty", "prompt", "empty prompt")
            return None
        if completion is not None and not completion.strip():
            r.add("content_empty", "completion", "empty reference (leave the completion out for none)")
            return None
        return {"prompt": prompt, **({"completion": completion} if completion is not None else {})}
    if not isinstance(prompt, (str, list)):
        r.add("invalid_prompt", "prompt", f"the prompt must be a string or a list of messages, not {type_name(prompt)}")
        return None
    p = as_turns(r, prompt, "prompt", "user")
    c = as_turns(r, completion, "completion", "assistant") if completion is not None else []
    if p is None or c is None:
        return None
    if len(c) > 1 or any(m.get("role") != "assistant" for m in c):
        r.add("invalid_reference", "completion", "the completion is the reference answer: one assistant message")
        return None
    return _split(r, p + c, "prompt+completion")


GRPO_CONVERTERS = {
    "messages": grpo_messages,
    "sharegpt": grpo_sharegpt,
    "alpaca": grpo_alpaca,
    "prompt_completion": grpo_prompt_completion,
}


def reference_of(row: dict) -> str | None:
    """A canonical GRPO row's reference answer (also an SFT chat row's last reply, after strings_as_chat)."""
    completion = row.get("completion")
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        return completion[-1].get("content")
    return None


def prompts_as_chat(rows: list[dict]) -> list[dict]:
    """String prompts (and references) as a user turn (and an assistant reply), for data.apply_chat_template = on."""
    out = []
    for row in rows:
        if isinstance(row.get("prompt"), str):
            ref = reference_of(row)
            row = {
                "prompt": [{"role": "user", "content": row["prompt"]}],
                **({"completion": [{"role": "assistant", "content": ref}]} if ref is not None else {}),
            }
        out.append(row)
    return out
