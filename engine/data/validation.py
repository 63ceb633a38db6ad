"""Checks every layout shares: messages and their keys, tool calls, the tools column, turn order, string fields."""

from __future__ import annotations

import json
from typing import Any

from tunedeck.engine.data.layouts import detect_format
from tunedeck.engine.data.problems import RowProblems, did_you_mean, type_name

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "training")  # training: axolotl's


def _check_message(
    r: RowProblems, m: Any, where: str, role_key: str, content_key: str, role_map: dict | None
) -> dict | None:
    if not isinstance(m, dict):
        r.add("message_not_object", where, f"a message must be an object, not {type_name(m)}")
        return None
    out: dict[str, Any] = {}
    role = m.get(role_key)
    if role is None:
        r.add("message_missing_role", f"{where}.{role_key}", "missing role")
    elif not isinstance(role, str) or (role_map.get(role) if role_map else role if role in ROLES else None) is None:
        known = role_map or ROLES
        r.add(
            "unknown_role",
            f"{where}.{role_key}",
            f'unknown role "{role}"{did_you_mean(role, known)}; expected one of {", ".join(known)}',
        )
    else:
        out["role"] = role_map[role] if role_map else role
    content = m.get(content_key)
    has_calls = "tool_calls" in m and m["tool_calls"] not in (None, [])
    if content is None and not (out.get("role") == "assistant" and has_calls):
        r.add("message_missing_content", f"{where}.{content_key}", "missing content")
    elif content is not None and not isinstance(content, str):
        hint = (
            " (a list of parts is not supported; join the text parts into one string)"
            if isinstance(content, list)
            else ""
        )
        r.add(
            "content_not_string", f"{where}.{content_key}", f"content must be a string, not {type_name(content)}{hint}"
        )
    elif isinstance(content, str):
        if not content.strip() and not has_calls:
            severe = out.get("role") == "assistant"
            r.add("content_empty", f"{where}.{content_key}", "empty content", "error" if severe else "warning")
        out["content"] = content
    for key, value in m.items():
        if key in (role_key, content_key) or value is None:
            continue
        if role_map is None and key not in MESSAGE_KEYS:
            r.add(
                "unknown_message_key",
                f"{where}.{key}",
                f'unknown message key "{key}"{did_you_mean(key, MESSAGE_KEYS)}; it is ignored',
                "warning",
            )
        elif key == "weight":
            if isinstance(value, bool) or value not in (0, 1):
                r.add("invalid_weight", f"{where}.weight", f"weight must be 0 or 1, not {value!r}")
            elif out.get("role") not in (None, "assistant"):
                r.add(
                    "invalid_weight", f"{where}.weight", f"weight is only allowed on assistant turns, not {out['role']}"
                )
            elif value == 0:
                out["weight"] = 0  # this reply stays in the context but does not train (OpenAI's per-message weight)
        elif key == "training":  # axolotl's per-message switch: false on a reply is OpenAI's weight 0
            if not isinstance(value, bool):
                r.add("invalid_weight", f"{where}.training", f"training must be true or false, not {value!r}")
            elif out.get("role") == "assistant" and not value:
                out["weight"] = 0
            elif out.get("role") != "assistant" and value:
                r.add(
                    "invalid_weight",
                    f"{where}.training",
                    f"only assistant replies train, not {out.get('role')} "
                    "turns; remove training: true or make the text an assistant reply",
                )
        elif key == "tool_calls":
            if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
                r.add(
                    "invalid_tool_calls",
                    f"{where}.tool_calls",
                    f"tool_calls must be a list of objects, not {type_name(value)}",
                )
            elif out.get("role") not in (None, "assistant"):
                r.add(
                    "invalid_tool_calls",
                    f"{where}.tool_calls",
                    f"only assistant turns make tool calls, not {out['role']}",
                )
            else:
                calls = _tool_calls(r, value, f"{where}.tool_calls")
                if calls or calls is None:  # a broken call (already an error) still counts as one for the turn order
                    out["tool_calls"] = calls or value
        elif key in ("name", "tool_call_id"):
            out[key] = value
    return out


def _tool_calls(r: RowProblems, calls: list, where: str) -> list | None:
    """Tool calls in OpenAI's shape with `arguments` as a dict (chat templates expect a dict; OpenAI files hold a
    JSON string). Accepts bare {"name", "arguments"} calls as LLaMA-Factory and some exports write them."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        name, args = fn.get("name"), fn.get("arguments", fn.get("parameters"))
        if not isinstance(name, str) or not name.strip():
            r.add("invalid_tool_calls", f"{where}[{i}]", 'a tool call needs a "name" (the function to call)')
            return None
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                r.add("invalid_tool_calls", f"{where}[{i}].arguments", f"arguments are not valid JSON ({e.msg})")
                return None
        if args is None:
            args = {}
        if not isinstance(args, dict):
            r.add(
                "invalid_tool_calls",
                f"{where}[{i}].arguments",
                f"arguments must be a JSON object, not {type_name(args)}",
            )
            return None
        canonical = {"type": "function", "function": {"name": name, "arguments": args}}
        if isinstance(call.get("id"), str):
            canonical["id"] = call["id"]
        out.append(canonical)
    return out


def check_order(
    r: RowProblems, msgs: list[dict], prefix: str, method: str, completion_start: int | None = None
) -> None:
    roles = [m.get("role") for m in msgs]
    for i, role in enumerate(roles):
        prev = roles[i - 1] if i else None
        where = f"{prefix}[{i}].role"
        if role == "system" and i > 0:
            r.add("role_order", where, "a system message must come first")
        elif role == "user" and prev == "user":
            r.add("role_order", where, "two user turns in a row; merge them or add the assistant's reply between")
        elif role == "tool" and not (prev == "tool" or (prev == "assistant" and msgs[i - 1].get("tool_calls"))):
            r.add("role_order", where, "a tool result must follow an assistant turn with tool_calls")
        elif (
            role == "assistant" and prev == "assistant" and not msgs[i - 1].get("tool_calls") and i != completion_start
        ):
            r.add("role_order", where, "two assistant turns in a row", "warning")
    if "assistant" not in roles and method != "grpo":  # GRPO's prompts need no answer: the model writes its own
        r.add("no_assistant", prefix, "no assistant message: nothing to train on")
    elif method == "sft" and roles and roles[-1] != "assistant":
        r.add(
            "last_not_assistant",
            f"{prefix}[{len(roles) - 1}].role",
            f'the last message is from "{roles[-1]}"; a training conversation must end with the assistant',
        )


def check_conversation(
    r: RowProblems, msgs: Any, prefix: str, *, role_key="role", content_key="content", role_map=None
) -> list | None:
    if not isinstance(msgs, list):
        r.add("messages_not_list", prefix, f"must be a list of messages, not {type_name(msgs)}")
        return None
    if not msgs:
        r.add("messages_empty", prefix, "empty conversation")
        return None
    out = [_check_message(r, m, f"{prefix}[{i}]", role_key, content_key, role_map) for i, m in enumerate(msgs)]
    # A message without a usable role makes order checks meaningless: report it alone.
    return None if any(m is None or "role" not in m for m in out) else out


def add_tools(r: RowProblems, obj: dict, row: dict) -> None:
    tools = obj.get("tools")
    if tools is None:
        return
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            pass
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        r.add("invalid_tools", "tools", f"tools must be a list of objects (JSON schemas), not {type_name(tools)}")
        return
    wrapped = []
    for i, t in enumerate(tools):
        if isinstance(t.get("function"), dict):
            wrapped.append({"type": t.get("type", "function"), **t})
        elif isinstance(t.get("name"), str):  # a bare function schema (LLaMA-Factory): wrap it in OpenAI's shape
            wrapped.append({"type": "function", "function": t})
        else:
            r.add(
                "invalid_tools",
                f"tools[{i}]",
                'a tool must be a function schema with a "name", or {"type": "function", "function": {...}}',
            )
            return
    if wrapped:
        row["tools"] = wrapped


def string_field(r: RowProblems, obj: dict, key: str, *, required=True, empty="error") -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            r.add("missing_field", key, f'missing field "{key}"' + other_format_hint(obj))
        return None
    v = obj[key]
    if not isinstance(v, str):
        r.add("content_not_string", key, f"must be a string, not {type_name(v)}")
        return None
    if not v.strip() and empty:
        r.add("content_empty", key, "empty", empty)
    return v


def other_format_hint(obj: dict) -> str:
    other = detect_format(obj)
    return f"; this row looks like {other} data" if other else ""


def as_turns(r: RowProblems, value: Any, key: str, role: str) -> list | None:
    """A prompt/answer given as a string becomes one message; a list is checked as messages."""
    if isinstance(value, str):
        if not value.strip():
            r.add("content_empty", key, "empty", "error" if role == "assistant" else "warning")
        return [{"role": role, "content": value}]
    return check_conversation(r, value, key)
