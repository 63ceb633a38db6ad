"""What can be wrong with a dataset: the problems of a row, and DatasetError for a source that cannot be read.

Problem categories (severity in brackets; "error" rows are left out of `rows`):
  invalid_json            [error]   the line is not valid JSON
  undecodable             [error]   the line is not valid UTF-8
  line_too_long           [error]   the line is longer than the cap (max_line_bytes, default 10 MB)
  not_object              [error]   the row is not a JSON object
  messages_missing        [error]   no "messages" / "conversations" column
  messages_not_list       [error]   the conversation is not a list
  messages_empty          [error]   the conversation is an empty list
  message_not_object      [error]   a message is not an object
  message_missing_role    [error]   a message has no role ("from" in ShareGPT)
  message_missing_content [error]   a message has no content (assistant turns with tool_calls may omit it)
  unknown_message_key     [warning] a message key the chat format does not define; it is dropped
  unknown_role            [error]   a role other than system, user, assistant, tool
  content_not_string      [error]   content (or a prompt/completion/text field) is not a string
  content_empty           [error for assistant turns and completions, warning elsewhere]
  no_assistant            [error]   no assistant message at all
  last_not_assistant      [error]   SFT: the conversation does not end with an assistant turn
  role_order              [error]   system not first, two user turns in a row, a tool turn not after
                                    a tool call; [warning] two assistant turns in a row
  invalid_weight          [error]   "weight" not 0 or 1, or on a turn that is not the assistant's
  invalid_tool_calls      [error]   tool_calls not a list of objects, or on a non-assistant turn
  invalid_tools           [error]   the "tools" column is not a list of objects
  missing_field           [error]   a required field of the format is absent
  chosen_equals_rejected  [error]   a preference pair whose two answers are the same
  no_response             [error]   a preference answer that is empty after the shared prefix
  invalid_history         [error]   alpaca "history" is not a list of [instruction, response] string pairs
  invalid_label           [error]   KTO "label"/"kto_tag" is not true or false
  multimodal              [error]   the row has images, videos or audios
  media_tag               [warning] an <image>, <video> or <audio> placeholder without its media column
  unknown_column          [warning] a column the format does not read that is a near miss of one it
                                    does ("sytem"); it is ignored
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Problem:
    category: str
    line: int
    message: str
    severity: str = "error"
    field: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def where(self, path: str, unit: str = "line") -> str:
        return f"{path}:{self.line}" if unit == "line" else f"{path} row {self.line}"


class DatasetError(ValueError):
    """A mistake that prevents loading at all; str() is the whole message, naming the file."""


class RowProblems:
    """Collects the problems of one row."""

    def __init__(self, line: int):
        self.line, self.problems = line, []

    def add(self, category: str, field: str | None, message: str, severity: str = "error") -> None:
        where = f"{field}: " if field else ""
        self.problems.append(Problem(category, self.line, where + message, severity, field))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def did_you_mean(word: str, options) -> str:
    m = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f' (did you mean "{m[0]}"?)' if m else ""


def type_name(v: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(v), type(v).__name__)
