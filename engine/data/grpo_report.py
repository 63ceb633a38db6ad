"""What GRPO will see of a dataset, for `tunedeck inspect` and the app's dataset pane.

GRPO trains on completions the model samples, so there are no loss masks to show: instead, how many
prompts there are, how many carry a reference (which reference-comparing reward checks need, and the
gate's held-out split scores), how many references are JSON, and how long the prompts are once rendered
the way GRPO renders them (chat prompts through the template with the generation prompt; string prompts
as a user turn, or raw with data.apply_chat_template = "off").
"""

from __future__ import annotations

import json
from typing import Any

from tunedeck.engine.data.grpo_prompts import reference_of

LINES_SHOWN = 20


def _is_json_doc(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def _prompt_tokens(prompt: Any, tokenizer, template: bool) -> int:
    if isinstance(prompt, str) and not template:
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return len(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
    )


def grpo_summary(
    rows: list[dict], lines: list[int], tokenizer=None, apply_chat_template: str = "auto", max_seq_len: int = 1024
) -> dict:
    refs = [reference_of(r) for r in rows]
    out: dict[str, Any] = {
        "prompts": len(rows),
        "with_reference": sum(r is not None for r in refs),
        "json_references": sum(1 for r in refs if r is not None and _is_json_doc(r)),
        "chat_prompts": sum(isinstance(r["prompt"], list) for r in rows),
        "no_reference_lines": [ln for ln, r in zip(lines, refs) if r is None][:LINES_SHOWN],
        "max_seq_len": max_seq_len,
        "prompt_tokens": None,
        "note": None,
    }
    if tokenizer is None or not rows:
        return out
    from tunedeck.engine.data.loss_masks import resolve_apply_chat_template

    template = resolve_apply_chat_template(apply_chat_template, tokenizer) == "on" and bool(tokenizer.chat_template)
    try:
        counts = sorted(_prompt_tokens(r["prompt"], tokenizer, template) for r in rows)
    except Exception as e:  # noqa: BLE001 - a template that cannot render a prompt is reported, not raised
        out["note"] = f"the prompts cannot be rendered: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        return out
    pick = lambda q: counts[min(len(counts) - 1, int(q * len(counts)))]  # noqa: E731
    out["prompt_tokens"] = {
        "p50": pick(0.5),
        "p90": pick(0.9),
        "max": counts[-1],
        "rendered": "with the chat template" if template or out["chat_prompts"] else "raw",
    }
    return out


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def grpo_lines(g: dict) -> list[str]:
    """The summary as plain lines."""
    lines = [
        f"GRPO: {_n(g['prompts'], 'prompt')}; {g['with_reference']:,} with a reference answer "
        f"({g['json_references']:,} JSON), {g['chat_prompts']:,} as chat messages",
        "GRPO trains on the completions the model samples for these prompts, rewarded by [rewards] checks; "
        "no loss masks apply",
    ]
    missing = g["prompts"] - g["with_reference"]
    if missing:
        shown = ", ".join(map(str, g["no_reference_lines"][:8]))
        lines.append(
            f"{_n(missing, 'prompt')} without a reference (lines {shown}{', ...' if missing > 8 else ''}): reward "
            "checks that compare with one (json_equal, exact_match, chrf...) cannot score them, and the "
            "gate's held-out split skips them"
        )
    t = g.get("prompt_tokens")
    if t:
        lines.append(
            f"prompt tokens ({t['rendered']}): p50 {t['p50']:,}, p90 {t['p90']:,}, max {t['max']:,}; the "
            f"completion must fit in the rest of max_seq_len {g['max_seq_len']:,}"
        )
    if g.get("note"):
        lines.append(f"note: {g['note']}")
    return lines
