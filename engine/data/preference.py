"""Preference pairs for DPO: a prompt with a chosen and a rejected answer.

TRL's prompt/chosen/rejected (explicit or implicit prompt), LLaMA-Factory's conversations, messages or alpaca
prompts with a chosen and a rejected answer, and OpenAI's input/preferred_output/non_preferred_output.
"""

from __future__ import annotations

from typing import Any

from tunedeck.engine.data.alpaca import alpaca_prompt
from tunedeck.engine.data.problems import RowProblems
from tunedeck.engine.data.sharegpt import sharegpt_turns
from tunedeck.engine.data.validation import add_tools, as_turns, check_conversation, check_order, other_format_hint


def _answer_turns(r: RowProblems, value: Any, key: str) -> list | None:
    """A preference answer: a string, a message list, or one message object (LLaMA-Factory's
    {"from": "gpt", "value": ...} or {"role": "assistant", "content": ...})."""
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and value and isinstance(value[0], dict) and "from" in value[0]:
        return sharegpt_turns(r, value, key, {})
    return as_turns(r, value, key, "assistant")


def _preference_prompt(r: RowProblems, obj: dict) -> tuple[list | None, bool]:
    """(prompt messages, whether the row named a prompt at all): `prompt` (TRL), `conversations` or `messages`
    (LLaMA-Factory ShareGPT/OpenAI), `instruction` (+ input, history; LLaMA-Factory alpaca), with `system`."""
    if obj.get("prompt") is not None:
        prompt = as_turns(r, obj["prompt"], "prompt", "user")
    elif obj.get("conversations") is not None:
        prompt = sharegpt_turns(r, obj["conversations"], "conversations", obj)
    elif obj.get("messages") is not None:
        prompt = check_conversation(r, obj["messages"], "messages")
    elif obj.get("instruction") is not None:
        return alpaca_prompt(r, obj), True
    else:
        return None, False
    system = obj.get("system")
    if prompt and isinstance(system, str) and system.strip() and prompt[0].get("role") != "system":
        prompt = [{"role": "system", "content": system}] + prompt
    return prompt, True


def _openai_preference(obj: dict) -> dict:
    """OpenAI's preference fine-tuning rows ({"input": {"messages", "tools"}, "preferred_output",
    "non_preferred_output"}) in the TRL spelling, so one converter checks both."""
    source = obj.get("input") if isinstance(obj.get("input"), dict) else {}
    out = {"chosen": obj.get("preferred_output"), "rejected": obj.get("non_preferred_output")}
    if source.get("messages") is not None:
        out["messages"] = source["messages"]
    if source.get("tools") is not None:
        out["tools"] = source["tools"]
    return out


def dpo_preference(r: RowProblems, obj: dict, method: str) -> dict | None:
    if "preferred_output" in obj:
        if not isinstance(obj.get("input"), dict) or obj["input"].get("messages") is None:
            r.add("missing_field", "input.messages", 'missing "input": {"messages": [...]} (the prompt)')
            return None
        obj = _openai_preference(obj)
    missing = [k for k in ("chosen", "rejected") if obj.get(k) is None]
    for k in missing:
        r.add("missing_field", k, f'missing field "{k}"' + other_format_hint(obj))
    if missing:
        return None
    chosen = _answer_turns(r, obj["chosen"], "chosen")
    rejected = _answer_turns(r, obj["rejected"], "rejected")
    row: dict = {}
    add_tools(r, obj, row)
    if chosen is None or rejected is None:
        return None
    prompt, named = _preference_prompt(r, obj)
    if named:
        if prompt is None:
            return None
    else:
        if isinstance(obj["chosen"], (str, dict)):
            r.add(
                "missing_field",
                "prompt",
                'missing field "prompt" (a single answer needs an explicit prompt: '
                '"prompt", "conversations", "messages" or "instruction")',
            )
            return None
        # Implicit prompt: the messages both conversations share.
        n = 0
        while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
            n += 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        if not prompt:
            r.add("missing_field", "prompt", "no prompt: chosen and rejected share no leading messages")
            return None
    if chosen == rejected:
        r.add("chosen_equals_rejected", "chosen", "chosen and rejected are the same answer: the pair teaches nothing")
        return None
    for key, answer in (("chosen", chosen), ("rejected", rejected)):
        if not answer:
            r.add("no_response", key, f"{key} has no answer after the shared prompt")
        elif answer[0].get("role") != "assistant":
            r.add("role_order", f"{key}[0].role", f"{key} must start with an assistant turn")
        else:
            check_order(r, prompt + answer, f"prompt+{key}", method, completion_start=len(prompt))
    if not r.ok:
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **row}
