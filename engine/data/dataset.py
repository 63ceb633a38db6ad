"""Load a training dataset: read its source, detect its layout, validate and convert every row to canonical form.

The parts: sources.py and text_sources.py read rows with their locations, layouts.py detects the format,
conversion.py (with one module per layout family, and validation.py) checks and converts each row,
problems.py defines what can be wrong. This module composes them and holds what they produce.
When not one row parses as a JSON object the format is reported as "unknown" and every row is a problem.
A .jsonl file that holds a JSON array, pretty-printed records or one object is one DatasetError saying so.
Columns a format does not read are counted in LoadedDataset.ignored_columns; rows with images,
videos or audios are refused (text-only models).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tunedeck.engine.data.conversion import convert_row
from tunedeck.engine.data.layouts import FORMAT_METHOD, FORMATS, KNOWN_COLUMNS, MEDIA_COLUMNS, check_method, vote_format
from tunedeck.engine.data.problems import DatasetError, Problem, did_you_mean
from tunedeck.engine.data.sources import location_unit, read_items
from tunedeck.engine.data.text_sources import MAX_LINE_BYTES, Item, jsonl_shape

# The public entry of the data room: what callers import to load a dataset and handle its errors.
__all__ = ["DatasetError", "LoadedDataset", "load_dataset"]

_DETECT_ROWS = 200  # rows looked at to detect the format


@dataclass
class LoadedDataset:
    path: str
    format: str
    rows: list[dict]
    lines: list[int]
    problems: list[Problem]
    total_rows: int
    skipped: list[int] = field(default_factory=list)
    unit: str = "line"  # locations are file lines ("line") or 1-based rows of a table ("row")
    ignored_columns: dict[str, int] = field(default_factory=dict)  # column -> rows that have it

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
        return [key + did_you_mean(key, KNOWN_COLUMNS.get(self.format, ())) for key in self.ignored_columns]

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
        text = (
            f"{name}: {self.total_rows} rows read as {self.format}; {len(self.rows)} valid, "
            f"{self.total_rows - len(self.rows)} invalid"
        )
        if self.skipped:
            text += f" ({len(self.skipped)} skipped)"
        if not self.problems:
            return text + "; no problems."
        parts = []
        for category, n in self.counts().items():
            ps = [p for p in self.problems if p.category == category]
            where = ", ".join(p.where(name, self.unit) for p in ps[:max_locations]) + (
                ", ..." if n > max_locations else ""
            )
            parts.append(f"{category} x{n} [{ps[0].severity}] ({where})")
        first = next((p for p in self.problems if p.severity == "error"), self.problems[0])
        return (
            text
            + f"; {self.error_count()} errors, {self.warning_count()} warnings: "
            + "; ".join(parts)
            + f". First: {first.where(name, self.unit)}: {first.message}"
        )


def _note_columns(out: LoadedDataset, obj: Any, fmt: str, line: int, first_seen: dict[str, int]) -> None:
    if isinstance(obj, dict) and fmt in KNOWN_COLUMNS:
        for key in obj:
            if key not in KNOWN_COLUMNS[fmt] and key not in MEDIA_COLUMNS:
                out.ignored_columns[key] = out.ignored_columns.get(key, 0) + 1
                first_seen.setdefault(key, line)


def _column_warnings(out: LoadedDataset, first_seen: dict[str, int]) -> None:
    """One warning per ignored column that is a near miss of a column the format reads."""
    for key, n in out.ignored_columns.items():
        hint = did_you_mean(key, KNOWN_COLUMNS[out.format])
        if hint:
            out.problems.append(
                Problem(
                    "unknown_column",
                    first_seen[key],
                    f'column "{key}" is not read by the '
                    f"{out.format} format{hint}; it is ignored in {n} row{'s' if n != 1 else ''}",
                    "warning",
                    key,
                )
            )


def load_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    method: str = "sft",
    on_invalid: str = "error",
    progress: Callable[[int, int], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> LoadedDataset:
    """Read, validate and convert a dataset. Invalid rows are listed in `problems` and left out of `rows`.

    method "auto" takes the method from the data (preference -> dpo, kto -> kto, else sft); the result's
    `method` says which. progress(done, total) is called now and then; units are bytes for JSONL/CSV and rows
    otherwise, so only the ratio is meaningful. Raises DatasetError when the source cannot be read at all.
    """
    name = str(path)
    if format != "auto" and format not in FORMATS:
        raise DatasetError(
            f"{name}: unknown format {format!r}{did_you_mean(format, FORMATS)}; "
            f"expected auto or one of {', '.join(FORMATS)}"
        )
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
        if (
            isinstance(head[0][1], Problem)
            and head[0][1].category == "invalid_json"
            and p.is_file()
            and p.suffix.lower() != ".csv"
        ):
            shape = jsonl_shape(p)
            if shape:
                raise DatasetError(shape)
        objects = [o for _, o in head if isinstance(o, dict)]
        if format != "auto":
            fmt = format
        elif objects:
            fmt = vote_format(objects, name)
        else:
            fmt = "unknown"  # not one row parsed as an object: report the rows' problems, detect nothing
        if method == "auto":
            method = FORMAT_METHOD.get(fmt, "sft")
        if fmt != "unknown":
            check_method(name, fmt, method)
        out = LoadedDataset(name, fmt, [], [], [], 0, unit=location_unit(path))
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
