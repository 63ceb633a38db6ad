"""The dataset layouts (formats): their names, the columns and training method of each, detection from a row's keys.

Formats (detected from the keys of the first rows, or forced):
  messages           {"messages": [{"role", "content", ...}], "tools"?: [...]}   (OpenAI chat; its older
                     "functions" / "function_call" / role "function" rows become tools and tool calls)
  prompt_completion  {"prompt", "completion"}: two strings, or two message lists
  text               {"text": str}
  alpaca             {"instruction", "input"?, "output", "system"?, "history"?: [[instruction, response]]}
  sharegpt           {"conversations": [{"from", "value"}], "system"?, "tools"?}; LLaMA-Factory's
                     function_call turns become assistant tool_calls, observation turns tool results
  preference         {"prompt"?, "chosen", "rejected"}: strings or message lists; no prompt: implicit
                     prompt, the shared prefix of the chosen and rejected conversations. Also
                     LLaMA-Factory's conversations (or messages) + one chosen and one rejected message,
                     its alpaca instruction/input + chosen/rejected, and OpenAI's
                     {"input": {"messages", "tools"}, "preferred_output", "non_preferred_output"}
  kto                {"prompt", "completion", "label"} (TRL), or messages, conversations or alpaca's
                     instruction/output with "label" or "kto_tag" (LLaMA-Factory): one answer judged
                     desirable (true) or undesirable (false)
"""

from __future__ import annotations

from collections import Counter

from tunedeck.engine.data.problems import DatasetError

FORMATS = ("messages", "prompt_completion", "text", "alpaca", "sharegpt", "preference", "kto")
METHODS = ("sft", "dpo", "kto", "grpo")
GRPO_FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion")  # prompt rows, each with an optional reference
FORMAT_METHOD = {"preference": "dpo", "kto": "kto"}  # every other format is SFT data
# Columns each format reads; any other column is listed as ignored (with "did you mean" for near misses).
_CHAT_EXTRAS = ("system", "tools")
KNOWN_COLUMNS = {
    "messages": ("messages", "tools", "functions"),
    "sharegpt": ("conversations", "system", "tools"),
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "text": ("text",),
    "prompt_completion": ("prompt", "completion", "tools"),
    "preference": (
        "prompt",
        "chosen",
        "rejected",
        "conversations",
        "messages",
        "instruction",
        "input",
        "history",
        "preferred_output",
        "non_preferred_output",
    )
    + _CHAT_EXTRAS,
    "kto": (
        "prompt",
        "completion",
        "messages",
        "conversations",
        "label",
        "kto_tag",
        "instruction",
        "input",
        "output",
        "history",
    )
    + _CHAT_EXTRAS,
}
MEDIA_COLUMNS = ("images", "videos", "audios")


def detect_format(obj: dict) -> str | None:
    keys = obj.keys()
    if ("chosen" in keys and "rejected" in keys) or ("preferred_output" in keys and "non_preferred_output" in keys):
        return "preference"
    if ("label" in keys or "kto_tag" in keys) and (
        "messages" in keys
        or "conversations" in keys
        or "completion" in keys
        or ("instruction" in keys and "output" in keys)
    ):
        return "kto"  # unpaired preference: never SFT, or the undesirable answers would be taught as good ones
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    if "prompt" in keys:
        return "prompt_completion"  # a prompt without its answer: GRPO's data (SFT says the completion is missing)
    if "instruction" in keys:
        return "alpaca"
    return None


def vote_format(objects: list[dict], path: str) -> str:
    votes = Counter(f for f in map(detect_format, objects) if f)
    if not votes:
        keys = sorted({k for o in objects for k in o})[:12]
        if "segments" in keys:
            raise DatasetError(
                f'{path}: rows with "segments" are axolotl\'s template-free input_output layout, which '
                "tunedeck does not read: write each row as prompt/completion (the segments with label "
                "false joined as the prompt, those with label true as the completion), or as messages"
            )
        if "input_ids" in keys:
            raise DatasetError(
                f"{path}: rows are already tokenised (input_ids); tunedeck tokenises text itself with "
                "the model's chat template: give it the text (messages, prompt/completion or text)"
            )
        seen = f"columns seen: {', '.join(keys)}" if keys else "no valid JSON object rows"
        raise DatasetError(
            f"{path}: cannot tell the dataset format ({seen}). Expected one of: messages; "
            "prompt+completion; text; instruction+output (alpaca); conversations (sharegpt); "
            "chosen+rejected or preferred_output+non_preferred_output (preference); messages, "
            "conversations or prompt+completion with a label (kto). Force one with --format."
        )
    return votes.most_common(1)[0][0]


def check_method(path: str, fmt: str, method: str) -> None:
    if method not in METHODS:
        raise DatasetError(f"{path}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "dpo" and fmt != "preference":
        hint = (
            " This file is KTO data (one answer per row with a true/false label): use method kto."
            if fmt == "kto"
            else " Use method sft, or a file with chosen and rejected answers."
        )
        raise DatasetError(
            f"{path}: DPO needs preference data (prompt/chosen/rejected), but this file is {fmt} data.{hint}"
        )
    if method == "kto" and fmt != "kto":
        hint = " This file has chosen/rejected pairs: use method dpo." if fmt == "preference" else ""
        raise DatasetError(
            f"{path}: KTO needs rows with one answer and a true/false label (prompt/completion/label, "
            f"or messages/conversations with label or kto_tag), but this file is {fmt} data.{hint}"
        )
    if method == "grpo" and fmt not in GRPO_FORMATS:
        what = {
            "text": "plain text has no prompt to answer",
            "preference": "this is preference data (chosen/rejected): train it with method dpo",
            "kto": "this is KTO data (labelled answers): train it with method kto",
        }[fmt]
        raise DatasetError(
            f"{path}: GRPO needs prompts (messages, prompt with an optional completion, or alpaca "
            f"instruction with an optional output); {what}"
        )
    if method == "sft" and fmt == "preference":
        raise DatasetError(
            f"{path}: this is preference data (chosen/rejected); train it with method dpo, "
            "or give SFT a file of demonstrations."
        )
    if method == "sft" and fmt == "kto":
        raise DatasetError(
            f"{path}: this is KTO data (answers labelled true/false); train it with method kto. "
            "As SFT data its undesirable answers would be taught as good ones."
        )
