"""ShareGPT rows as LLaMA-Factory writes them ("conversations" of from/value turns, "system", "tools").

Its function_call and observation turns are read as assistant tool calls and tool results.
"""

from __future__ import annotations

import json
from typing import Any

from tunedeck.engine.data.problems import RowProblems, type_name
from tunedeck.engine.data.validation import add_tools, check_conversation, check_order, other_format_hint, string_field

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function_response": "tool",
    "function_call": "assistant",
}  # LLaMA-Factory: a function_call turn is the assistant's tool call


def sft_sharegpt(r: RowProblems, obj: dict, method: str) -> dict | None:
    if "conversations" not in obj:
        r.add("messages_missing", "conversations", 'missing "conversations"' + other_format_hint(obj))
        return None
    msgs = sharegpt_turns(r, obj["conversations"], "conversations", obj)
    if msgs is None:
        return None
    check_order(r, msgs, "conversations", method)
    row = {"messages": msgs}
    add_tools(r, obj, row)
    return row


def _sharegpt_keys(turns: Any) -> tuple[str, str]:
    # Some ShareGPT exports use role/content inside conversations; accept both spellings.
    first = turns[0] if isinstance(turns, list) and turns else turns
    return ("role", "content") if isinstance(first, dict) and "from" not in first else ("from", "value")


def sharegpt_turns(r: RowProblems, turns: Any, prefix: str, obj: dict) -> list | None:
    """ShareGPT turns as canonical messages: function_call turns become assistant tool calls, observation
    turns tool results (named after their call), and the system column a leading system message."""
    role_key, content_key = _sharegpt_keys(turns)
    if isinstance(turns, list):
        turns = [_function_call_turn(r, t, f"{prefix}[{i}]", role_key, content_key) for i, t in enumerate(turns)]
        if any(t is _BAD_CALL for t in turns):  # its problem is already recorded
            return None
    msgs = check_conversation(r, turns, prefix, role_key=role_key, content_key=content_key, role_map=SHAREGPT_ROLES)
    if msgs is None:
        return None
    _name_tool_results(msgs)
    system = string_field(r, obj, "system", required=False, empty=None)
    if system and not (msgs and msgs[0]["role"] == "system"):
        msgs = [{"role": "system", "content": system}] + msgs
    return msgs


_BAD_CALL = object()  # a function_call turn that could not be read (a problem was added); None is a turn like any


def _function_call_turn(r: RowProblems, turn: Any, where: str, role_key: str, content_key: str) -> Any:
    """{"from": "function_call", "value": '{"name": ..., "arguments": ...}'} -> an assistant turn with tool_calls."""
    if not isinstance(turn, dict) or turn.get(role_key) != "function_call":
        return turn
    value = turn.get(content_key)
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as e:
        r.add(
            "invalid_tool_calls",
            f"{where}.{content_key}",
            f"a function_call turn must hold the call as JSON "
            f'({{"name": ..., "arguments": {{...}}}}); this is not valid JSON ({e.msg})',
        )
        return _BAD_CALL
    calls = [calls] if isinstance(calls, dict) else calls
    if not isinstance(calls, list) or not calls or not all(isinstance(c, dict) for c in calls):
        r.add(
            "invalid_tool_calls",
            f"{where}.{content_key}",
            'a function_call turn must hold {"name": ..., '
            f'"arguments": {{...}}}} or a list of them, not {type_name(calls)}',
        )
        return _BAD_CALL
    return {role_key: "gpt", "tool_calls": calls}


def _name_tool_results(msgs: list[dict]) -> None:
    """Give each tool result the name of the call it answers (in order), as templates that print names expect."""
    calls: list = []
    for m in msgs:
        if m.get("role") == "assistant":
            calls = [c["function"]["name"] for c in m.get("tool_calls", [])]
        elif m.get("role") == "tool":
            if calls and "name" not in m:
                m["name"] = calls[0]
            calls = calls[1:]
