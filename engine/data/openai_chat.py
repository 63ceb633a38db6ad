"""OpenAI chat rows ("messages", "tools") as canonical conversations.

The older function-calling spelling ("functions", "function_call", role "function") is read as tools and tool calls.
"""

from __future__ import annotations

from typing import Any

from tunedeck.engine.data.problems import RowProblems
from tunedeck.engine.data.validation import add_tools, check_conversation, check_order, other_format_hint


def sft_messages(r: RowProblems, obj: dict, method: str) -> dict | None:
    if "messages" not in obj:
        r.add("messages_missing", "messages", 'missing "messages"' + other_format_hint(obj))
        return None
    msgs = check_conversation(r, _legacy_function_calls(obj["messages"]), "messages")
    row: dict = {}
    add_tools(r, obj if "tools" in obj or "functions" not in obj else {"tools": obj["functions"]}, row)
    if msgs is None:
        return None
    check_order(r, msgs, "messages", method)
    row = {"messages": msgs, **row}
    return row


def _legacy_function_calls(msgs: Any) -> Any:
    """OpenAI's older function-calling rows ("functions", an assistant "function_call", "function" results)
    in today's spelling (tools, tool_calls, tool results), which the converters check."""
    if not isinstance(msgs, list) or not any(
        isinstance(m, dict) and ("function_call" in m or m.get("role") == "function") for m in msgs
    ):
        return msgs
    out = []
    for m in msgs:
        if isinstance(m, dict) and isinstance(m.get("function_call"), dict):
            m = {
                **{k: v for k, v in m.items() if k != "function_call" and not (k == "content" and v is None)},
                "tool_calls": [m["function_call"]],
            }
        elif isinstance(m, dict) and m.get("role") == "function":
            m = {**m, "role": "tool"}
        out.append(m)
    return out
