"""Training data from one file or several (data.path as a list), read as one dataset.

Each file is read, detected and validated on its own (a fixes file in the canonical chat layout may
join an alpaca file), so every problem names its own file and line. The files' rows must train the
same way (chat, plain text, prompt/completion strings, preference pairs or KTO answers); a mix is
an error naming both files. Rows keep the order of the files, then of their lines, so the split
(a hash of each row) and the fingerprint stay what they were for the rows already there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunedeck.engine.data.dataset import DatasetError, load_dataset


@dataclass
class DataFiles:
    paths: list[str]
    format: str  # the first file's format
    rows: list[dict]
    where: list[str]  # "file:line" of every row (the row number for tables)
    skipped: list  # one file: its skipped lines; several: "file:line" strings
    ignored_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " + ".join(self.paths)


def row_kind(row: dict) -> str:
    """How a canonical row trains; rows of different kinds cannot share a trainer."""
    if "chosen" in row:
        return "preference pairs"
    if "label" in row:
        return "KTO answers"
    if "messages" in row:
        return "chat conversations"
    if "text" in row:
        return "plain text"
    if isinstance(row.get("completion"), str):
        return "prompt/completion strings"
    return "prompt/completion conversations"


def load_data_files(
    paths: list[str], *, format: str = "auto", method: str = "sft", on_invalid: str = "error"
) -> DataFiles:
    if not paths:
        raise DatasetError("no training data: set data.path")
    out: DataFiles | None = None
    first_kind = ""
    several = len(paths) > 1
    for path in paths:
        loaded = load_dataset(path, format=format, method=method, on_invalid=on_invalid)
        if loaded.error_count() and on_invalid == "error":
            raise DatasetError(loaded.summary())
        where = [f"{path}:{n}" for n in loaded.lines]
        skipped = [f"{path}:{n}" for n in loaded.skipped] if several else list(loaded.skipped)
        kind = row_kind(loaded.rows[0]) if loaded.rows else ""
        if out is None:
            out = DataFiles(
                [path],
                loaded.format,
                list(loaded.rows),
                where,
                skipped,
                loaded.ignored_column_notes(),
                loaded.warning_notes(),
            )
            first_kind = kind
            continue
        if kind and first_kind and kind != first_kind:
            raise DatasetError(
                f"{path}: its rows are {kind} ({loaded.format}) but {out.paths[0]}'s are {first_kind} "
                f"({out.format}); the files of data.path must train the same way"
            )
        first_kind = first_kind or kind
        out.paths.append(path)
        out.rows += loaded.rows
        out.where += where
        out.skipped += skipped
        out.ignored_columns += [c for c in loaded.ignored_column_notes() if c not in out.ignored_columns]
        out.warnings += loaded.warning_notes()
    assert out is not None
    return out
