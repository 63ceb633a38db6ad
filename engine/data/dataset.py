"""Load a training dataset, detect its format, validate every row and convert it to canonical form.

Sources: JSONL (read byte by byte here, so every problem has its exact line), a JSON array, CSV,
Parquet, a `datasets` save_to_disk folder, or a hub dataset id when the machine has network.
Locations are 1-based file lines for text files (JSONL; the line a row's object opens on in a JSON
array, pretty-printed or not; the first line of a CSV record) and 1-based rows for Parquet,
save_to_disk folders and hub datasets (LoadedDataset.unit says which).
When not one row parses as a JSON object the format is reported as "unknown" and every row is a problem.
A .jsonl file that holds a JSON array, pretty-printed records or one object is one DatasetError saying so.

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

Canonical rows (what the trainer hands to TRL):
  SFT chat   {"messages": [...], "tools"?: [...]}   alpaca, sharegpt and conversational
             prompt/completion become this; tool_calls in OpenAI's shape with "arguments" a dict,
             "tools" OpenAI tool schemas {"type": "function", "function": {...}}
  SFT plain  {"prompt": str, "completion": str}  or  {"text": str}
  DPO        {"prompt": [messages], "chosen": [messages], "rejected": [messages], "tools"?: [...]}
  KTO        {"prompt": [messages], "completion": [messages], "label": bool, "tools"?: [...]}, or
             {"prompt": str, "completion": str, "label": bool} for plain text
Columns a format does not read are counted in LoadedDataset.ignored_columns; rows with images,
videos or audios are refused (text-only models).

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

import csv
import difflib
import gc
import json
import json.scanner
import os
import re
import socket
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

FORMATS = ("messages", "prompt_completion", "text", "alpaca", "sharegpt", "preference", "kto")
METHODS = ("sft", "dpo", "kto")
FORMAT_METHOD = {"preference": "dpo", "kto": "kto"}  # every other format is SFT data
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "training")  # training: axolotl's
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant", "bing": "assistant", "bard": "assistant",
                  "tool": "tool", "observation": "tool", "function_response": "tool",
                  "function_call": "assistant"}  # LLaMA-Factory: a function_call turn is the assistant's tool call
# Columns each format reads; any other column is listed as ignored (with "did you mean" for near misses).
_CHAT_EXTRAS = ("system", "tools")
KNOWN_COLUMNS = {
    "messages": ("messages", "tools", "functions"),
    "sharegpt": ("conversations", "system", "tools"),
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "text": ("text",),
    "prompt_completion": ("prompt", "completion", "tools"),
    "preference": ("prompt", "chosen", "rejected", "conversations", "messages", "instruction", "input", "history",
                   "preferred_output", "non_preferred_output") + _CHAT_EXTRAS,
    "kto": ("prompt", "completion", "messages", "conversations", "label", "kto_tag", "instruction", "input", "output",
            "history") + _CHAT_EXTRAS,
}
MEDIA_COLUMNS = ("images", "videos", "audios")
_MEDIA_TAG = re.compile(r"<(?:image|video|audio)>")
MAX_LINE_BYTES = 10 * 1024 * 1024
_DETECT_ROWS = 200       # rows looked at to detect the format
_PROGRESS_EVERY = 2000   # rows between progress callbacks
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_SHAPE_READ_BYTES = 256 * 1024 * 1024  # a misformatted JSONL file larger than this is judged by its start
_JSON_COLUMNS = ("messages", "conversations", "tools", "prompt", "completion", "chosen", "rejected", "history",
                 "preferred_output", "non_preferred_output")


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


@dataclass
class LoadedDataset:
    path: str
    format: str
    rows: list[dict]
    lines: list[int]
    problems: list[Problem]
    total_rows: int
    skipped: list[int] = field(default_factory=list)
    unit: str = "line"   # locations are file lines ("line") or 1-based rows of a table ("row")
    ignored_columns: dict[str, int] = field(default_factory=dict)   # column -> rows that have it

    @property
    def method(self) -> str:
        """The training method this data is for."""
        return FORMAT_METHOD.get(self.format, "sft")

    def warning_notes(self) -> list[str]:
        """One line per kind of warning-severity problem: count, first location and message."""
        notes = []
        for category, n in self.counts().items():
            first = next(p for p in self.problems if p.category == category)
            if first.severity == "warning":
                notes.append(f"{category} x{n} (first at {first.where(self.path, self.unit)}: {first.message})")
        return notes

    def ignored_column_notes(self) -> list[str]:
        """Ignored columns for a message: the name, with "did you mean" for a near miss of a column the format reads."""
        return [key + _suggest(key, KNOWN_COLUMNS.get(self.format, ())) for key in self.ignored_columns]

    def label_counts(self) -> dict[str, int] | None:
        """KTO: desirable and undesirable rows among the valid ones."""
        if self.format != "kto":
            return None
        good = sum(1 for r in self.rows if r.get("label") is True)
        return {"desirable": good, "undesirable": len(self.rows) - good}

    def error_count(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    def warning_count(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)

    def invalid_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems if p.severity == "error"})

    def counts(self) -> dict[str, int]:
        """Problems per category, most frequent first."""
        return dict(Counter(p.category for p in self.problems).most_common())

    def summary(self, max_locations: int = 3) -> str:
        name = self.path
        text = (f"{name}: {self.total_rows} rows read as {self.format}; {len(self.rows)} valid, "
                f"{self.total_rows - len(self.rows)} invalid")
        if self.skipped:
            text += f" ({len(self.skipped)} skipped)"
        if not self.problems:
            return text + "; no problems."
        parts = []
        for category, n in self.counts().items():
            ps = [p for p in self.problems if p.category == category]
            where = ", ".join(p.where(name, self.unit) for p in ps[:max_locations]) + (", ..." if n > max_locations else "")
            parts.append(f"{category} x{n} [{ps[0].severity}] ({where})")
        first = next((p for p in self.problems if p.severity == "error"), self.problems[0])
        return (text + f"; {self.error_count()} errors, {self.warning_count()} warnings: " + "; ".join(parts)
                + f". First: {first.where(name, self.unit)}: {first.message}")


class DatasetError(ValueError):
    """A mistake that prevents loading at all; str() is the whole message, naming the file."""


# ---- reading sources: each yields (line, object) or (line, Problem) ---------------------------------

Item = tuple[int, Any]


def _read_jsonl(path: Path, max_line_bytes: int, progress: Callable | None) -> Iterator[Item]:
    total = path.stat().st_size
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(max_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            if progress and lineno % _PROGRESS_EVERY == 0:
                progress(f.tell(), total)
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                # Skip the rest of the over-long line in chunks rather than holding it in memory.
                size = len(raw)
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(1 << 20)
                    size += len(raw.rstrip(b"\r\n"))
                yield lineno, Problem("line_too_long", lineno, f"line is {size:,} bytes, over the {max_line_bytes:,}-byte cap")
                continue
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark
            if not raw.strip():
                continue  # blank lines separate nothing and are not rows
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, Problem("undecodable", lineno, f"bytes at column {e.start + 1} are not valid UTF-8 ({raw[e.start:e.start + 4]!r})")
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as e:
                yield lineno, Problem("invalid_json", lineno, f"invalid JSON at column {e.colno}: {e.msg}")
            except RecursionError:
                yield lineno, Problem("invalid_json", lineno, "JSON nested too deeply")
    if progress:
        progress(total, total)


def _array_items(text: str, start: int) -> Iterator[tuple[int, Any]]:
    """(character offset, value) of each element of the JSON array that opens at text[start]."""
    scan = json.scanner.make_scanner(json.JSONDecoder())  # the C scanner json.loads uses, one element at a time
    ws = _JSON_SPACE.match
    i = ws(text, start + 1).end()
    if text.startswith("]", i):
        return
    while True:
        try:
            value, end = scan(text, i)
        except StopIteration as e:
            raise _JSONSyntax(e.value, "Expecting value") from None
        except json.JSONDecodeError as e:
            raise _JSONSyntax(e.pos, e.msg) from None
        yield i, value
        i = ws(text, end).end()
        sep = text[i:i + 1]
        if sep == ",":
            i = ws(text, i + 1).end()
        elif sep == "]":
            return
        else:
            raise _JSONSyntax(i, "Expecting ',' delimiter")


class _JSONSyntax(Exception):
    def __init__(self, pos: int, msg: str):
        self.pos, self.msg = pos, msg


def _read_json(path: Path, progress: Callable | None) -> Iterator[Item]:
    """A JSON array of rows (pretty-printed or not), {"data": [...]}, or one row; lines are file lines."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (bad bytes at offset {e.start})") from None
    start = _JSON_SPACE.match(text).end()

    def syntax_error(pos: int, msg: str) -> DatasetError:
        line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        return DatasetError(f"{path}:{line}: invalid JSON at column {col}: {msg}")

    array_at = start if text.startswith("[", start) else None
    if array_at is None and text.startswith("{", start):
        try:
            data, end = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError as e:
            raise syntax_error(e.pos, e.msg) from None
        except RecursionError:
            raise DatasetError(f"{path}: JSON nested too deeply to read") from None
        if _JSON_SPACE.match(text, end).end() < len(text):  # one object per line under a .json name
            yield from _read_jsonl(path, MAX_LINE_BYTES, progress)
            return
        wrapper = [k for k in ("data", "rows", "examples", "train") if isinstance(data.get(k), list)]
        if len(data) == 1 and wrapper:  # {"data": [...]}: the array opens after the only key
            array_at = text.index("[", re.compile('"' + wrapper[0] + '"\\s*:').search(text, start).end())
        else:
            yield 1 + text.count("\n", 0, start), data  # a single row
            return
    if array_at is None:
        found = "nothing" if start >= len(text) else f"{text[start:start + 12]!r}"
        raise DatasetError(f"{path}: expected a JSON array of rows, found {found}")
    total = len(text)
    if text.startswith("]", _JSON_SPACE.match(text, array_at + 1).end()):
        raise DatasetError(f"{path}: an empty JSON array: no rows")
    # Parsed whole, like json.loads, with the cyclic garbage collector paused: parsed rows hold no cycles,
    # and its passes over the growing list of rows doubled the time of this parse (bench_json_rows.py).
    rows: list[Item] = []
    line, counted = 1, 0  # newlines are counted as the rows go by, in C, never all held in a list
    collecting = gc.isenabled()
    gc.disable()
    try:
        for offset, obj in _array_items(text, array_at):
            line += text.count("\n", counted, offset)
            counted = offset
            rows.append((line, obj))
            if progress and len(rows) % _PROGRESS_EVERY == 0:
                progress(offset, total)
    except _JSONSyntax as e:
        raise syntax_error(e.pos, e.msg) from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to read") from None
    finally:
        if collecting:
            gc.enable()
    if progress:
        progress(total, total)
    yield from rows


def _cell(key: str, value: Any) -> Any:
    """CSV cells are strings; nested columns are JSON inside them."""
    if key in _JSON_COLUMNS and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _read_csv(path: Path, progress: Callable | None) -> Iterator[Item]:
    total = path.stat().st_size
    csv.field_size_limit(MAX_LINE_BYTES)  # the default 128 kB cap rejects long conversations
    try:
        f = open(path, newline="", encoding="utf-8-sig")
        reader = csv.DictReader(f)
        header = reader.fieldnames
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (bad bytes at offset {e.start})") from None
    if not header:
        raise DatasetError(f"{path}: empty CSV file (no header row)")
    with f:
        i = 0
        while True:
            i = reader.line_num + 1  # the file line the next record starts on (records may span lines)
            try:
                rec = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError as e:
                # The text stream cannot resynchronise after a decode error: say so rather than drop rows silently.
                yield i, Problem("undecodable", i, f"bytes are not valid UTF-8 ({e.reason}); the rest of the file was not read")
                break
            except csv.Error as e:
                yield i, Problem("invalid_json", i, f"malformed CSV: {e}")
                continue
            extra = rec.pop(None, None)
            if extra:
                yield i, Problem("not_object", i, f"row has {len(extra)} more cells than the header")
                continue
            yield i, {k: _cell(k, v) for k, v in rec.items() if v is not None}
            if progress and i % _PROGRESS_EVERY == 0:
                progress(min(f.buffer.tell(), total), total)
    if progress:
        progress(total, total)


def _read_table_rows(batches: Iterator[list[dict]], total: int, progress: Callable | None) -> Iterator[Item]:
    i = 0
    for batch in batches:
        for obj in batch:
            i += 1
            yield i, {k: _cell(k, v) for k, v in obj.items()}
        if progress:
            progress(i, total)


def _read_parquet(path: Path, progress: Callable | None) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DatasetError(f"{path}: not a readable Parquet file ({e})") from None
    def batches() -> Iterator[list[dict]]:
        try:
            for b in pf.iter_batches(batch_size=4096):
                yield b.to_pylist()
        except Exception as e:  # a corrupt page shows up only when read
            raise DatasetError(f"{path}: damaged Parquet data ({e})") from None

    yield from _read_table_rows(batches(), pf.metadata.num_rows, progress)


def _hf_rows(ds, progress: Callable | None) -> Iterator[Item]:
    n = len(ds)
    batches = (ds[i:i + 4096] for i in range(0, n, 4096))
    dict_batches = ([dict(zip(b, vals)) for vals in zip(*b.values())] for b in batches)
    yield from _read_table_rows(dict_batches, n, progress)


def _pick_split(ds, where: str):
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        if "train" in ds:
            return ds["train"]
        if len(ds) == 1:
            return next(iter(ds.values()))
        raise DatasetError(f"{where}: has splits {', '.join(ds)}; none is called 'train'")
    return ds


def _read_arrow(path: Path, progress: Callable | None) -> Iterator[Item]:
    """One Arrow file as `datasets` writes them (save_to_disk shards, its cache)."""
    from datasets import Dataset

    try:
        ds = Dataset.from_file(str(path))
    except Exception as e:  # pyarrow raises several types for a file that is something else
        raise DatasetError(f"{path}: not a readable Arrow file ({e})") from None
    yield from _hf_rows(ds, progress)


def _read_saved(path: Path, progress: Callable | None) -> Iterator[Item]:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # FileNotFoundError or a datasets error for a folder that is something else
        raise DatasetError(f"{path}: a folder, but not a dataset saved with save_to_disk ({e})") from None
    yield from _hf_rows(_pick_split(ds, str(path)), progress)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all; offline, its client retries for most of a minute before failing."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _read_hub(ref: str, progress: Callable | None) -> Iterator[Item]:
    import datasets

    if not hub_reachable():
        raise DatasetError(f"{ref}: no such file or folder, and the Hugging Face hub cannot be reached to load it "
                           "as a hub dataset")
    try:
        ds = datasets.load_dataset(ref)
    except Exception as e:  # offline, unknown id, gated: all user-facing
        raise DatasetError(f"{ref}: no such file, and loading it as a hub dataset failed: {e}") from None
    yield from _hf_rows(_pick_split(ds, ref), progress)


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return (len(parts) == 2 and all(parts) and not ref.startswith((".", "~"))
            and not Path(ref).suffix.lower() in (".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt"))


def read_items(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES, progress: Callable | None = None) -> Iterator[Item]:
    """Yield (line, object-or-Problem) for every row of the source."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _read_saved(p, progress)
    if not p.exists():
        if _looks_like_hub_id(str(path)):
            return _read_hub(str(path), progress)
        raise DatasetError(f"{path}: no such file or folder")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(p, max_line_bytes, progress)
    if suffix == ".json":
        return _read_json(p, progress)
    if suffix == ".csv":
        return _read_csv(p, progress)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(p, progress)
    if suffix == ".arrow":
        return _read_arrow(p, progress)
    with open(p, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return _read_parquet(p, progress)
    if head.lstrip()[:1] in (b"{", b"["):
        return _read_jsonl(p, max_line_bytes, progress) if head.lstrip()[:1] == b"{" else _read_json(p, progress)
    raise DatasetError(f"{path}: unknown file type {suffix or '(no extension)'}; use .jsonl, .json, .csv, .parquet, "
                       ".arrow or a save_to_disk folder")


# ---- format detection -------------------------------------------------------------------------------

def detect_format(obj: dict) -> str | None:
    keys = obj.keys()
    if ("chosen" in keys and "rejected" in keys) or ("preferred_output" in keys and "non_preferred_output" in keys):
        return "preference"
    if ("label" in keys or "kto_tag" in keys) and ("messages" in keys or "conversations" in keys or "completion" in keys
                                                   or ("instruction" in keys and "output" in keys)):
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
    return None


def _vote(objects: list[dict], path: str) -> str:
    votes = Counter(f for f in map(detect_format, objects) if f)
    if not votes:
        keys = sorted({k for o in objects for k in o})[:12]
        if "segments" in keys:
            raise DatasetError(f"{path}: rows with \"segments\" are axolotl's template-free input_output layout, which "
                               "tunedeck does not read: write each row as prompt/completion (the segments with label "
                               "false joined as the prompt, those with label true as the completion), or as messages")
        if "input_ids" in keys:
            raise DatasetError(f"{path}: rows are already tokenised (input_ids); tunedeck tokenises text itself with "
                               "the model's chat template: give it the text (messages, prompt/completion or text)")
        seen = f"columns seen: {', '.join(keys)}" if keys else "no valid JSON object rows"
        raise DatasetError(f"{path}: cannot tell the dataset format ({seen}). Expected one of: messages; "
                           "prompt+completion; text; instruction+output (alpaca); conversations (sharegpt); "
                           "chosen+rejected or preferred_output+non_preferred_output (preference); messages, "
                           "conversations or prompt+completion with a label (kto). Force one with --format.")
    return votes.most_common(1)[0][0]


# ---- validation and conversion ------------------------------------------------------------------------

class _Row:
    """Collects the problems of one row."""

    def __init__(self, line: int):
        self.line, self.problems = line, []

    def add(self, category: str, field: str | None, message: str, severity: str = "error") -> None:
        where = f"{field}: " if field else ""
        self.problems.append(Problem(category, self.line, where + message, severity, field))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def _suggest(word: str, options) -> str:
    m = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f' (did you mean "{m[0]}"?)' if m else ""


def _type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _check_message(r: _Row, m: Any, where: str, role_key: str, content_key: str, role_map: dict | None) -> dict | None:
    if not isinstance(m, dict):
        r.add("message_not_object", where, f"a message must be an object, not {_type(m)}")
        return None
    out: dict[str, Any] = {}
    role = m.get(role_key)
    if role is None:
        r.add("message_missing_role", f"{where}.{role_key}", "missing role")
    elif not isinstance(role, str) or (role_map.get(role) if role_map else role if role in ROLES else None) is None:
        known = role_map or ROLES
        r.add("unknown_role", f"{where}.{role_key}", f'unknown role "{role}"{_suggest(role, known)}; '
              f"expected one of {', '.join(known)}")
    else:
        out["role"] = role_map[role] if role_map else role
    content = m.get(content_key)
    has_calls = "tool_calls" in m and m["tool_calls"] not in (None, [])
    if content is None and not (out.get("role") == "assistant" and has_calls):
        r.add("message_missing_content", f"{where}.{content_key}", "missing content")
    elif content is not None and not isinstance(content, str):
        hint = " (a list of parts is not supported; join the text parts into one string)" if isinstance(content, list) else ""
        r.add("content_not_string", f"{where}.{content_key}", f"content must be a string, not {_type(content)}{hint}")
    elif isinstance(content, str):
        if not content.strip() and not has_calls:
            severe = out.get("role") == "assistant"
            r.add("content_empty", f"{where}.{content_key}", "empty content", "error" if severe else "warning")
        out["content"] = content
    for key, value in m.items():
        if key in (role_key, content_key) or value is None:
            continue
        if role_map is None and key not in MESSAGE_KEYS:
            r.add("unknown_message_key", f"{where}.{key}", f'unknown message key "{key}"{_suggest(key, MESSAGE_KEYS)}; '
                  "it is ignored", "warning")
        elif key == "weight":
            if isinstance(value, bool) or value not in (0, 1):
                r.add("invalid_weight", f"{where}.weight", f"weight must be 0 or 1, not {value!r}")
            elif out.get("role") not in (None, "assistant"):
                r.add("invalid_weight", f"{where}.weight", f"weight is only allowed on assistant turns, not {out['role']}")
            elif value == 0:
                out["weight"] = 0  # this reply stays in the context but does not train (OpenAI's per-message weight)
        elif key == "training":  # axolotl's per-message switch: false on a reply is OpenAI's weight 0
            if not isinstance(value, bool):
                r.add("invalid_weight", f"{where}.training", f"training must be true or false, not {value!r}")
            elif out.get("role") == "assistant" and not value:
                out["weight"] = 0
            elif out.get("role") != "assistant" and value:
                r.add("invalid_weight", f"{where}.training", f"only assistant replies train, not {out.get('role')} "
                      "turns; remove training: true or make the text an assistant reply")
        elif key == "tool_calls":
            if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
                r.add("invalid_tool_calls", f"{where}.tool_calls", f"tool_calls must be a list of objects, not {_type(value)}")
            elif out.get("role") not in (None, "assistant"):
                r.add("invalid_tool_calls", f"{where}.tool_calls", f"only assistant turns make tool calls, not {out['role']}")
            else:
                calls = _tool_calls(r, value, f"{where}.tool_calls")
                if calls or calls is None:  # a broken call (already an error) still counts as one for the turn order
                    out["tool_calls"] = calls or value
        elif key in ("name", "tool_call_id"):
            out[key] = value
    return out


def _tool_calls(r: _Row, calls: list, where: str) -> list | None:
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
            r.add("invalid_tool_calls", f"{where}[{i}].arguments", f"arguments must be a JSON object, not {_type(args)}")
            return None
        canonical = {"type": "function", "function": {"name": name, "arguments": args}}
        if isinstance(call.get("id"), str):
            canonical["id"] = call["id"]
        out.append(canonical)
    return out


def _check_order(r: _Row, msgs: list[dict], prefix: str, method: str, completion_start: int | None = None) -> None:
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
        elif role == "assistant" and prev == "assistant" and not msgs[i - 1].get("tool_calls") and i != completion_start:
            r.add("role_order", where, "two assistant turns in a row", "warning")
    if "assistant" not in roles:
        r.add("no_assistant", prefix, "no assistant message: nothing to train on")
    elif method == "sft" and roles and roles[-1] != "assistant":
        r.add("last_not_assistant", f"{prefix}[{len(roles) - 1}].role",
              f'the last message is from "{roles[-1]}"; a training conversation must end with the assistant')


def _conversation(r: _Row, msgs: Any, prefix: str, *, role_key="role", content_key="content", role_map=None) -> list | None:
    if not isinstance(msgs, list):
        r.add("messages_not_list", prefix, f"must be a list of messages, not {_type(msgs)}")
        return None
    if not msgs:
        r.add("messages_empty", prefix, "empty conversation")
        return None
    out = [_check_message(r, m, f"{prefix}[{i}]", role_key, content_key, role_map) for i, m in enumerate(msgs)]
    # A message without a usable role makes order checks meaningless: report it alone.
    return None if any(m is None or "role" not in m for m in out) else out


def _tools(r: _Row, obj: dict, row: dict) -> None:
    tools = obj.get("tools")
    if tools is None:
        return
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            pass
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        r.add("invalid_tools", "tools", f"tools must be a list of objects (JSON schemas), not {_type(tools)}")
        return
    wrapped = []
    for i, t in enumerate(tools):
        if isinstance(t.get("function"), dict):
            wrapped.append({"type": t.get("type", "function"), **t})
        elif isinstance(t.get("name"), str):  # a bare function schema (LLaMA-Factory): wrap it in OpenAI's shape
            wrapped.append({"type": "function", "function": t})
        else:
            r.add("invalid_tools", f"tools[{i}]", 'a tool must be a function schema with a "name", '
                  'or {"type": "function", "function": {...}}')
            return
    if wrapped:
        row["tools"] = wrapped


def _string(r: _Row, obj: dict, key: str, *, required=True, empty="error") -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            r.add("missing_field", key, f'missing field "{key}"' + _other_format_hint(obj))
        return None
    v = obj[key]
    if not isinstance(v, str):
        r.add("content_not_string", key, f"must be a string, not {_type(v)}")
        return None
    if not v.strip() and empty:
        r.add("content_empty", key, "empty", empty)
    return v


def _other_format_hint(obj: dict) -> str:
    other = detect_format(obj)
    return f"; this row looks like {other} data" if other else ""


def _sft_messages(r: _Row, obj: dict, method: str) -> dict | None:
    if "messages" not in obj:
        r.add("messages_missing", "messages", 'missing "messages"' + _other_format_hint(obj))
        return None
    msgs = _conversation(r, _legacy_function_calls(obj["messages"]), "messages")
    row: dict = {}
    _tools(r, obj if "tools" in obj or "functions" not in obj else {"tools": obj["functions"]}, row)
    if msgs is None:
        return None
    _check_order(r, msgs, "messages", method)
    row = {"messages": msgs, **row}
    return row


def _legacy_function_calls(msgs: Any) -> Any:
    """OpenAI's older function-calling rows ("functions", an assistant "function_call", "function" results)
    in today's spelling (tools, tool_calls, tool results), which the converters check."""
    if not isinstance(msgs, list) or not any(isinstance(m, dict) and ("function_call" in m or m.get("role") == "function")
                                             for m in msgs):
        return msgs
    out = []
    for m in msgs:
        if isinstance(m, dict) and isinstance(m.get("function_call"), dict):
            m = {**{k: v for k, v in m.items() if k != "function_call" and not (k == "content" and v is None)},
                 "tool_calls": [m["function_call"]]}
        elif isinstance(m, dict) and m.get("role") == "function":
            m = {**m, "role": "tool"}
        out.append(m)
    return out


def _sft_sharegpt(r: _Row, obj: dict, method: str) -> dict | None:
    if "conversations" not in obj:
        r.add("messages_missing", "conversations", 'missing "conversations"' + _other_format_hint(obj))
        return None
    msgs = _sharegpt_turns(r, obj["conversations"], "conversations", obj)
    if msgs is None:
        return None
    _check_order(r, msgs, "conversations", method)
    row = {"messages": msgs}
    _tools(r, obj, row)
    return row


def _sharegpt_keys(turns: Any) -> tuple[str, str]:
    # Some ShareGPT exports use role/content inside conversations; accept both spellings.
    first = turns[0] if isinstance(turns, list) and turns else turns
    return ("role", "content") if isinstance(first, dict) and "from" not in first else ("from", "value")


def _sharegpt_turns(r: _Row, turns: Any, prefix: str, obj: dict) -> list | None:
    """ShareGPT turns as canonical messages: function_call turns become assistant tool calls, observation
    turns tool results (named after their call), and the system column a leading system message."""
    role_key, content_key = _sharegpt_keys(turns)
    if isinstance(turns, list):
        turns = [_function_call_turn(r, t, f"{prefix}[{i}]", role_key, content_key) for i, t in enumerate(turns)]
        if any(t is _BAD_CALL for t in turns):  # its problem is already recorded
            return None
    msgs = _conversation(r, turns, prefix, role_key=role_key, content_key=content_key, role_map=SHAREGPT_ROLES)
    if msgs is None:
        return None
    _name_tool_results(msgs)
    system = _string(r, obj, "system", required=False, empty=None)
    if system and not (msgs and msgs[0]["role"] == "system"):
        msgs = [{"role": "system", "content": system}] + msgs
    return msgs


_BAD_CALL = object()  # a function_call turn that could not be read (a problem was added); None is a turn like any


def _function_call_turn(r: _Row, turn: Any, where: str, role_key: str, content_key: str) -> Any:
    """{"from": "function_call", "value": '{"name": ..., "arguments": ...}'} -> an assistant turn with tool_calls."""
    if not isinstance(turn, dict) or turn.get(role_key) != "function_call":
        return turn
    value = turn.get(content_key)
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as e:
        r.add("invalid_tool_calls", f"{where}.{content_key}", f"a function_call turn must hold the call as JSON "
              f'({{"name": ..., "arguments": {{...}}}}); this is not valid JSON ({e.msg})')
        return _BAD_CALL
    calls = [calls] if isinstance(calls, dict) else calls
    if not isinstance(calls, list) or not calls or not all(isinstance(c, dict) for c in calls):
        r.add("invalid_tool_calls", f"{where}.{content_key}", 'a function_call turn must hold {"name": ..., '
              f'"arguments": {{...}}}} or a list of them, not {_type(calls)}')
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


def _alpaca_prompt(r: _Row, obj: dict) -> list | None:
    """system, history (earlier [instruction, response] pairs) and instruction + input as messages."""
    instruction = _string(r, obj, "instruction")
    extra = _string(r, obj, "input", required=False, empty=None)
    system = _string(r, obj, "system", required=False, empty=None)
    history = obj.get("history")
    earlier: list = []
    if history not in (None, [], ""):  # an empty CSV cell is no history
        if not isinstance(history, list):
            r.add("invalid_history", "history", f"history must be a list of [instruction, response] pairs, not {_type(history)}")
            return None
        for i, pair in enumerate(history):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                r.add("invalid_history", f"history[{i}]", "each history entry must be a pair of strings "
                      "[instruction, response]")
                return None
            earlier += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    if instruction is None:
        return None
    user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
    return ([{"role": "system", "content": system}] if system else []) + earlier + [{"role": "user", "content": user}]


def _sft_alpaca(r: _Row, obj: dict, method: str) -> dict | None:
    prompt = _alpaca_prompt(r, obj)
    output = _string(r, obj, "output")
    if prompt is None or output is None:
        return None
    return {"messages": prompt + [{"role": "assistant", "content": output}]}


def _sft_text(r: _Row, obj: dict, method: str) -> dict | None:
    text = _string(r, obj, "text")
    return None if text is None else {"text": text}


def _as_turns(r: _Row, value: Any, key: str, role: str) -> list | None:
    """A prompt/answer given as a string becomes one message; a list is checked as messages."""
    if isinstance(value, str):
        if not value.strip():
            r.add("content_empty", key, "empty", "error" if role == "assistant" else "warning")
        return [{"role": role, "content": value}]
    return _conversation(r, value, key)


def _sft_prompt_completion(r: _Row, obj: dict, method: str) -> dict | None:
    missing = [k for k in ("prompt", "completion") if obj.get(k) is None]
    for k in missing:
        r.add("missing_field", k, f'missing field "{k}"' + _other_format_hint(obj))
    if missing:
        return None
    prompt, completion = obj["prompt"], obj["completion"]
    if isinstance(prompt, str) and isinstance(completion, str):
        if not completion.strip():
            r.add("content_empty", "completion", "empty")
        return {"prompt": prompt, "completion": completion}
    p = _as_turns(r, prompt, "prompt", "user")
    c = _as_turns(r, completion, "completion", "assistant")
    row: dict = {}
    _tools(r, obj, row)
    if p is None or c is None:
        return None
    if any(m.get("role") not in ("assistant", "tool", None) for m in c):
        r.add("role_order", "completion", "a completion may only hold assistant (and tool) turns")
    _check_order(r, p + c, "prompt+completion", method, completion_start=len(p))
    # the completion trains, the prompt does not: assistant turns inside the prompt (few-shot) get weight 0
    msgs = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in p] + c
    return {"messages": msgs, **row}


def _answer_turns(r: _Row, value: Any, key: str) -> list | None:
    """A preference answer: a string, a message list, or one message object (LLaMA-Factory's
    {"from": "gpt", "value": ...} or {"role": "assistant", "content": ...})."""
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and value and isinstance(value[0], dict) and "from" in value[0]:
        return _sharegpt_turns(r, value, key, {})
    return _as_turns(r, value, key, "assistant")


def _preference_prompt(r: _Row, obj: dict) -> tuple[list | None, bool]:
    """(prompt messages, whether the row named a prompt at all): `prompt` (TRL), `conversations` or `messages`
    (LLaMA-Factory ShareGPT/OpenAI), `instruction` (+ input, history; LLaMA-Factory alpaca), with `system`."""
    if obj.get("prompt") is not None:
        prompt = _as_turns(r, obj["prompt"], "prompt", "user")
    elif obj.get("conversations") is not None:
        prompt = _sharegpt_turns(r, obj["conversations"], "conversations", obj)
    elif obj.get("messages") is not None:
        prompt = _conversation(r, obj["messages"], "messages")
    elif obj.get("instruction") is not None:
        return _alpaca_prompt(r, obj), True
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


def _dpo_preference(r: _Row, obj: dict, method: str) -> dict | None:
    if "preferred_output" in obj:
        if not isinstance(obj.get("input"), dict) or obj["input"].get("messages") is None:
            r.add("missing_field", "input.messages", 'missing "input": {"messages": [...]} (the prompt)')
            return None
        obj = _openai_preference(obj)
    missing = [k for k in ("chosen", "rejected") if obj.get(k) is None]
    for k in missing:
        r.add("missing_field", k, f'missing field "{k}"' + _other_format_hint(obj))
    if missing:
        return None
    chosen = _answer_turns(r, obj["chosen"], "chosen")
    rejected = _answer_turns(r, obj["rejected"], "rejected")
    row: dict = {}
    _tools(r, obj, row)
    if chosen is None or rejected is None:
        return None
    prompt, named = _preference_prompt(r, obj)
    if named:
        if prompt is None:
            return None
    else:
        if isinstance(obj["chosen"], (str, dict)):
            r.add("missing_field", "prompt", 'missing field "prompt" (a single answer needs an explicit prompt: '
                  '"prompt", "conversations", "messages" or "instruction")')
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
            _check_order(r, prompt + answer, f"prompt+{key}", method, completion_start=len(prompt))
    if not r.ok:
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **row}


def _kto_label(r: _Row, obj: dict) -> bool | None:
    key = "label" if "label" in obj else "kto_tag"
    value = obj.get(key)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # CSV cells, and LLaMA-Factory writes "[true/false]" as text at times
    if isinstance(value, bool):
        return value
    r.add("invalid_label", key, f"{key} must be true (a desirable answer) or false (an undesirable one), not {value!r}")
    return None


def _kto_unpaired(r: _Row, obj: dict, method: str) -> dict | None:
    """KTO rows: TRL's unpaired preference format, {"prompt", "completion", "label"}; from conversations the
    last assistant turn is the completion the label judges, the turns before it the prompt."""
    label = _kto_label(r, obj)
    if "completion" in obj:
        if obj.get("prompt") is None:
            r.add("missing_field", "prompt", 'missing field "prompt"')
            return None
        prompt, completion = obj["prompt"], obj["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            if not completion.strip():
                r.add("content_empty", "completion", "empty")
            return {"prompt": prompt, "completion": completion, "label": label} if r.ok else None
        p = _as_turns(r, prompt, "prompt", "user")
        c = _as_turns(r, completion, "completion", "assistant")
        row: dict = {}
        _tools(r, obj, row)
        if p is None or c is None:
            return None
        _check_order(r, p + c, "prompt+completion", "sft", completion_start=len(p))
    else:
        convert = (_sft_sharegpt if "conversations" in obj else _sft_alpaca if "instruction" in obj and "output" in obj
                   else _sft_messages)
        conv = convert(r, obj, "sft")
        if conv is None:
            return None
        msgs = conv.pop("messages")
        p, c, row = msgs[:-1], msgs[-1:], conv
        if not any(m.get("role") == "user" for m in p):
            r.add("missing_field", "messages", "no user turn before the answer: KTO needs a prompt")
    if label is None or not r.ok:
        return None
    return {"prompt": p, "completion": c, "label": label, **row}


CONVERTERS = {"messages": _sft_messages, "sharegpt": _sft_sharegpt, "alpaca": _sft_alpaca, "text": _sft_text,
              "prompt_completion": _sft_prompt_completion, "preference": _dpo_preference, "kto": _kto_unpaired}


def convert_row(obj: Any, line: int, format: str, method: str = "sft") -> tuple[dict | None, list[Problem]]:
    """Validate one parsed row; return its canonical form (None when invalid) and its problems."""
    r = _Row(line)
    if not isinstance(obj, dict):
        r.add("not_object", None, f"a row must be a JSON object, not {_type(obj)}")
        return None, r.problems
    media = [k for k in MEDIA_COLUMNS if obj.get(k) not in (None, [], "")]
    if media:
        r.add("multimodal", media[0], f"this row has {' and '.join(media)} (multimodal data); tunedeck trains text-only "
              f"models: remove the {media[0]} column (and any <image>/<video>/<audio> tags) or train elsewhere")
        return None, r.problems
    row = CONVERTERS[format](r, obj, method)
    if row is not None:
        tag = next((m.group(0) for text in _texts(row) for m in [_MEDIA_TAG.search(text)] if m), None)
        if tag:
            r.add("media_tag", None, f"{tag} is LLaMA-Factory's placeholder for {tag[1:-1]} input, but the row has no "
                  f"{tag[1:-1]}s column: it will be trained as the literal text {tag}", "warning")
    return (row if r.ok else None), r.problems


def _texts(row: dict) -> Iterator[str]:
    """The strings a canonical row trains on."""
    for key in ("messages", "prompt", "completion", "chosen", "rejected", "text"):
        value = row.get(key)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (m["content"] for m in value if isinstance(m.get("content"), str))


# ---- the entry point ---------------------------------------------------------------------------------

def _check_method(path: str, fmt: str, method: str) -> None:
    if method not in METHODS:
        raise DatasetError(f"{path}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "dpo" and fmt != "preference":
        hint = (" This file is KTO data (one answer per row with a true/false label): use method kto."
                if fmt == "kto" else " Use method sft, or a file with chosen and rejected answers.")
        raise DatasetError(f"{path}: DPO needs preference data (prompt/chosen/rejected), but this file is {fmt} data.{hint}")
    if method == "kto" and fmt != "kto":
        hint = " This file has chosen/rejected pairs: use method dpo." if fmt == "preference" else ""
        raise DatasetError(f"{path}: KTO needs rows with one answer and a true/false label (prompt/completion/label, "
                           f"or messages/conversations with label or kto_tag), but this file is {fmt} data.{hint}")
    if method == "sft" and fmt == "preference":
        raise DatasetError(f"{path}: this is preference data (chosen/rejected); train it with method dpo, "
                           "or give SFT a file of demonstrations.")
    if method == "sft" and fmt == "kto":
        raise DatasetError(f"{path}: this is KTO data (answers labelled true/false); train it with method kto. "
                           "As SFT data its undesirable answers would be taught as good ones.")


def _location_unit(path: str | Path) -> str:
    """Text files report file lines; Parquet, save_to_disk folders and hub datasets report rows."""
    p = Path(path).expanduser()
    if not p.is_file():
        return "row"
    if p.suffix.lower() in (".parquet", ".pq", ".arrow"):
        return "row"
    with open(p, "rb") as f:
        return "row" if f.read(4) == b"PAR1" else "line"


def _jsonl_shape(path: Path) -> str | None:
    """When a JSON Lines file's first line does not parse: is the file a JSON array, pretty-printed records
    or one object? One message saying so, instead of one invalid_json per line."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            text = f.read(_SHAPE_READ_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    whole = size <= _SHAPE_READ_BYTES
    decoder, values, i = json.JSONDecoder(), [], _JSON_SPACE.match(text).end()
    try:
        while i < len(text):
            value, end = decoder.raw_decode(text, i)
            values.append(value)
            i = _JSON_SPACE.match(text, end).end()
    except (json.JSONDecodeError, RecursionError):
        if whole:
            return None  # really broken lines: report them one by one
        # a very large file read in part: judged by the values its start holds
    name = path.name
    fix_array = (f"Rename it to .json, which tunedeck reads as an array, or write one row per line: "
                 f"jq -c '.[]' {name} > rows.jsonl")
    fix_records = f"JSON Lines needs each object on one line: jq -c . {name} > rows.jsonl"
    if not whole:
        if not values and text[i:i + 1] == "[":
            return f"{path}: this file starts a JSON array, not JSON Lines (one object per line). {fix_array}"
        if values and all(isinstance(v, dict) for v in values):
            return f"{path}: this file holds JSON objects written over several lines each (pretty-printed); {fix_records}"
        return None
    lines = text.count("\n") + 1
    if len(values) == 1 and isinstance(values[0], list):
        return (f"{path}: this file holds one JSON array ({len(values[0])} rows over {lines} lines), not JSON Lines "
                f"(one object per line). {fix_array}")
    if len(values) == 1 and isinstance(values[0], dict):
        return (f"{path}: this file holds a single JSON object spread over {lines} lines, not JSON Lines. Write "
                f"each row as one object on its own line (jq -c . {name} > rows.jsonl for a single row; "
                f"jq -c '.data[]' for rows wrapped in a \"data\" list)")
    if len(values) > 1 and all(isinstance(v, dict) for v in values):
        return f"{path}: this file holds {len(values)} JSON objects, each written over several lines (pretty-printed); {fix_records}"
    return None


def _note_columns(out: LoadedDataset, obj: Any, fmt: str, line: int, first_seen: dict[str, int]) -> None:
    if isinstance(obj, dict) and fmt in KNOWN_COLUMNS:
        for key in obj:
            if key not in KNOWN_COLUMNS[fmt] and key not in MEDIA_COLUMNS:
                out.ignored_columns[key] = out.ignored_columns.get(key, 0) + 1
                first_seen.setdefault(key, line)


def _column_warnings(out: LoadedDataset, first_seen: dict[str, int]) -> None:
    """One warning per ignored column that is a near miss of a column the format reads."""
    for key, n in out.ignored_columns.items():
        hint = _suggest(key, KNOWN_COLUMNS[out.format])
        if hint:
            out.problems.append(Problem("unknown_column", first_seen[key], f'column "{key}" is not read by the '
                                        f"{out.format} format{hint}; it is ignored in {n} row{'s' if n != 1 else ''}",
                                        "warning", key))


def load_dataset(path: str | Path, *, format: str = "auto", method: str = "sft", on_invalid: str = "error",
                 progress: Callable[[int, int], None] | None = None, max_line_bytes: int = MAX_LINE_BYTES) -> LoadedDataset:
    """Read, validate and convert a dataset. Invalid rows are listed in `problems` and left out of `rows`.

    method "auto" takes the method from the data (preference -> dpo, kto -> kto, else sft); the result's
    `method` says which. progress(done, total) is called now and then; units are bytes for JSONL/CSV and rows
    otherwise, so only the ratio is meaningful. Raises DatasetError when the source cannot be read at all.
    """
    name = str(path)
    if format != "auto" and format not in FORMATS:
        raise DatasetError(f"{name}: unknown format {format!r}{_suggest(format, FORMATS)}; "
                           f"expected auto or one of {', '.join(FORMATS)}")
    if on_invalid not in ("error", "skip"):
        raise DatasetError(f"{name}: on_invalid must be 'error' or 'skip', not {on_invalid!r}")
    try:
        items = read_items(path, max_line_bytes, progress)
        head: list[Item] = []
        for item in items:
            head.append(item)
            if sum(isinstance(o, dict) for _, o in head) >= _DETECT_ROWS:
                break
        if not head:
            raise DatasetError(f"{name}: no rows (the file is empty)")
        p = Path(path).expanduser()
        if (isinstance(head[0][1], Problem) and head[0][1].category == "invalid_json" and p.is_file()
                and p.suffix.lower() != ".csv"):
            shape = _jsonl_shape(p)
            if shape:
                raise DatasetError(shape)
        objects = [o for _, o in head if isinstance(o, dict)]
        if format != "auto":
            fmt = format
        elif objects:
            fmt = _vote(objects, name)
        else:
            fmt = "unknown"  # not one row parsed as an object: report the rows' problems, detect nothing
        if method == "auto":
            method = FORMAT_METHOD.get(fmt, "sft")
        if fmt != "unknown":
            _check_method(name, fmt, method)
        out = LoadedDataset(name, fmt, [], [], [], 0, unit=_location_unit(path))
        first_seen: dict[str, int] = {}
        for line, obj in _chain(head, items):
            out.total_rows += 1
            _note_columns(out, obj, fmt, line, first_seen)
            if isinstance(obj, Problem):
                out.problems.append(obj)
                row = None
            else:
                row, problems = convert_row(obj, line, fmt, method)
                out.problems.extend(problems)
            if row is None:
                if on_invalid == "skip":
                    out.skipped.append(line)
            else:
                out.rows.append(row)
                out.lines.append(line)
        _column_warnings(out, first_seen)
    except OSError as e:
        raise DatasetError(f"{name}: cannot read: {e.strerror or e}") from None
    return out


def _chain(head: list[Item], rest: Iterator[Item]) -> Iterator[Item]:
    yield from head
    yield from rest
