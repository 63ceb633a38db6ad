"""One parsed row to its canonical form: the converter of its layout, plus the media checks every layout shares.

Canonical rows (what the trainer hands to TRL):
  SFT chat   {"messages": [...], "tools"?: [...]}   alpaca, sharegpt and conversational
             prompt/completion become this; tool_calls in OpenAI's shape with "arguments" a dict,
             "tools" OpenAI tool schemas {"type": "function", "function": {...}}
  SFT plain  {"prompt": str, "completion": str}  or  {"text": str}
  DPO        {"prompt": [messages], "chosen": [messages], "rejected": [messages], "tools"?: [...]}
  KTO        {"prompt": [messages], "completion": [messages], "label": bool, "tools"?: [...]}, or
             {"prompt": str, "completion": str, "label": bool} for plain text
  GRPO       {"prompt": [messages] | str, "completion"?: [one assistant message] | str}: the prompt the
             model answers, and the reference answer when the row has one (engine/data/grpo_prompts.py)
Rows with images, videos or audios are refused (text-only models).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from tunedeck.engine.data.alpaca import sft_alpaca
from tunedeck.engine.data.grpo_prompts import GRPO_CONVERTERS
from tunedeck.engine.data.kto import kto_unpaired
from tunedeck.engine.data.layouts import MEDIA_COLUMNS
from tunedeck.engine.data.openai_chat import sft_messages
from tunedeck.engine.data.preference import dpo_preference
from tunedeck.engine.data.problems import Problem, RowProblems, type_name
from tunedeck.engine.data.prompt_completion import sft_prompt_completion, sft_text
from tunedeck.engine.data.sharegpt import sft_sharegpt

_MEDIA_TAG = re.compile(r"<(?:image|video|audio)>")


CONVERTERS = {
    "messages": sft_messages,
    "sharegpt": sft_sharegpt,
    "alpaca": sft_alpaca,
    "text": sft_text,
    "prompt_completion": sft_prompt_completion,
    "preference": dpo_preference,
    "kto": kto_unpaired,
}


def convert_row(obj: Any, line: int, format: str, method: str = "sft") -> tuple[dict | None, list[Problem]]:
    """Validate one parsed row; return its canonical form (None when invalid) and its problems."""
    r = RowProblems(line)
    if not isinstance(obj, dict):
        r.add("not_object", None, f"a row must be a JSON object, not {type_name(obj)}")
        return None, r.problems
    media = [k for k in MEDIA_COLUMNS if obj.get(k) not in (None, [], "")]
    if media:
        r.add(
            "multimodal",
            media[0],
            f"this row has {' and '.join(media)} (multimodal data); tunedeck trains text-only "
            f"models: remove the {media[0]} column (and any <image>/<video>/<audio> tags) or train elsewhere",
        )
        return None, r.problems
    row = (GRPO_CONVERTERS if method == "grpo" else CONVERTERS)[format](r, obj, method)
    if row is not None:
        tag = next((m.group(0) for text in _texts(row) for m in [_MEDIA_TAG.search(text)] if m), None)
        if tag:
            r.add(
                "media_tag",
                None,
                f"{tag} is LLaMA-Factory's placeholder for {tag[1:-1]} input, but the row has no "
                f"{tag[1:-1]}s column: it will be trained as the literal text {tag}",
                "warning",
            )
    return (row if r.ok else None), r.problems


def _texts(row: dict) -> Iterator[str]:
    """The strings a canonical row trains on."""
    for key in ("messages", "prompt", "completion", "chosen", "rejected", "text"):
        value = row.get(key)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (m["content"] for m in value if isinstance(m.get("content"), str))
