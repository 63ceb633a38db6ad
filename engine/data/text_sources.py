"""Reading text files (JSON Lines, JSON arrays, CSV) row by row, each row with the file line it starts on.

Each reader yields (line, object) or (line, Problem). JSONL is read byte by byte, so every problem has its
exact line; a JSON array row's line is the one its object opens on, pretty-printed or not; a CSV row's
line is the first line of its record. A .jsonl file that is not JSON Lines is said to be what it is.
"""

from __future__ import annotations

import csv
import gc
import json
import json.scanner
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from tunedeck.engine.data.problems import DatasetError, Problem

MAX_LINE_BYTES = 10 * 1024 * 1024
_PROGRESS_EVERY = 2000  # rows between progress callbacks
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_SHAPE_READ_BYTES = 256 * 1024 * 1024  # a misformatted JSONL file larger than this is judged by its start
_JSON_COLUMNS = (
    "messages",
    "conversations",
    "tools",
    "prompt",
    "completion",
    "chosen",
    "rejected",
    "history",
    "preferred_output",
    "non_preferred_output",
)


Item = tuple[int, Any]


def read_jsonl(path: Path, max_line_bytes: int, progress: Callable | None) -> Iterator[Item]:
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
                yield (
                    lineno,
                    Problem("line_too_long", lineno, f"line is {size:,} bytes, over the {max_line_bytes:,}-byte cap"),
                )
                continue
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark
            if not raw.strip():
                continue  # blank lines separate nothing and are not rows
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield (
                    lineno,
                    Problem(
                        "undecodable",
                        lineno,
                        f"bytes at column {e.start + 1} are not valid UTF-8 ({raw[e.start : e.start + 4]!r})",
                    ),
                )
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
        sep = text[i : i + 1]
        if sep == ",":
            i = ws(text, i + 1).end()
        elif sep == "]":
            return
        else:
            raise _JSONSyntax(i, "Expecting ',' delimiter")


class _JSONSyntax(Exception):
    def __init__(self, pos: int, msg: str):
        self.pos, self.msg = pos, msg


def read_json(path: Path, progress: Callable | None) -> Iterator[Item]:
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
            yield from read_jsonl(path, MAX_LINE_BYTES, progress)
            return
        wrapper = [k for k in ("data", "rows", "examples", "train") if isinstance(data.get(k), list)]
        if len(data) == 1 and wrapper:  # {"data": [...]}: the array opens after the only key
            array_at = text.index("[", re.compile('"' + wrapper[0] + '"\\s*:').search(text, start).end())
        else:
            yield 1 + text.count("\n", 0, start), data  # a single row
            return
    if array_at is None:
        found = "nothing" if start >= len(text) else f"{text[start : start + 12]!r}"
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


def decode_cell(key: str, value: Any) -> Any:
    """CSV cells are strings; nested columns are JSON inside them."""
    if key in _JSON_COLUMNS and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_csv(path: Path, progress: Callable | None) -> Iterator[Item]:
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
                yield (
                    i,
                    Problem(
                        "undecodable", i, f"bytes are not valid UTF-8 ({e.reason}); the rest of the file was not read"
                    ),
                )
                break
            except csv.Error as e:
                yield i, Problem("invalid_json", i, f"malformed CSV: {e}")
                continue
            extra = rec.pop(None, None)
            if extra:
                yield i, Problem("not_object", i, f"row has {len(extra)} more cells than the header")
                continue
            yield i, {k: decode_cell(k, v) for k, v in rec.items() if v is not None}
            if progress and i % _PROGRESS_EVERY == 0:
                progress(min(f.buffer.tell(), total), total)
    if progress:
        progress(total, total)


def jsonl_shape(path: Path) -> str | None:
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
    fix_array = (
        f"Rename it to .json, which tunedeck reads as an array, or write one row per line: "
        f"jq -c '.[]' {name} > rows.jsonl"
    )
    fix_records = f"JSON Lines needs each object on one line: jq -c . {name} > rows.jsonl"
    if not whole:
        if not values and text[i : i + 1] == "[":
            return f"{path}: this file starts a JSON array, not JSON Lines (one object per line). {fix_array}"
        if values and all(isinstance(v, dict) for v in values):
            return (
                f"{path}: this file holds JSON objects written over several lines each (pretty-printed); {fix_records}"
            )
        return None
    lines = text.count("\n") + 1
    if len(values) == 1 and isinstance(values[0], list):
        return (
            f"{path}: this file holds one JSON array ({len(values[0])} rows over {lines} lines), not JSON Lines "
            f"(one object per line). {fix_array}"
        )
    if len(values) == 1 and isinstance(values[0], dict):
        return (
            f"{path}: this file holds a single JSON object spread over {lines} lines, not JSON Lines. Write "
            f"each row as one object on its own line (jq -c . {name} > rows.jsonl for a single row; "
            f"jq -c '.data[]' for rows wrapped in a \"data\" list)"
        )
    if len(values) > 1 and all(isinstance(v, dict) for v in values):
        return (
            f"{path}: this file holds {len(values)} JSON objects, each written over several lines (pretty-printed); "
            f"{fix_records}"
        )
    return None
