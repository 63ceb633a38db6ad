"""Alpaca rows (instruction, input, output, system, history) as a conversation."""

from __future__ import annotations

from tunedeck.engine.data.problems import RowProblems, type_name
from tunedeck.engine.data.validation import string_field


def alpaca_prompt(r: RowProblems, obj: dict) -> list | None:
    """system, history (earlier [instruction, response] pairs) and instruction + input as messages."""
    instruction = string_field(r, obj, "instruction")
    extra = string_field(r, obj, "input", required=False, empty=None)
    system = string_field(r, obj, "system", required=False, empty=None)
    history = obj.get("history")
    earlier: list = []
    if history not in (None, [], ""):  # an empty CSV cell is no history
        if not isinstance(history, list):
            r.add(
                "invalid_history",
                "history",
                f"history must be a list of [instruction, response] pairs, not {type_name(history)}",
            )
            return None
        for i, pair in enumerate(history):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                r.add(
                    "invalid_history",
                    f"history[{i}]",
                    "each history entry must be a pair of strings [instruction, response]",
                )
                return None
            earlier += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    if instruction is None:
        return None
    user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
    return ([{"role": "system", "content": system}] if system else []) + earlier + [{"role": "user", "content": user}]


def sft_alpaca(r: RowProblems, obj: dict, method: str) -> dict | None:
    prompt = alpaca_prompt(r, obj)
    output = string_field(r, obj, "output")
    if prompt is None or output is None:
        return None
    return {"messages": prompt + [{"role": "assistant", "content": output}]}
