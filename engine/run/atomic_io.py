"""Files written so that a reader never sees a half-written one (temp file, fsync, rename), and read so
that a missing or torn one is no error: another process may be writing it, or may have died writing it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def write_bytes_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path, text: str, mode: int = PRIVATE_FILE) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_json_atomic(path: Path, obj: Any, mode: int = PRIVATE_FILE) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode)


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`, or None when the file is missing, unreadable, torn or holds no object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Each line of a JSONL file that holds a JSON object, in order; a missing file holds none, and a torn
    line (a writer killed mid-line) or anything else is skipped."""
    try:
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in raw.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def make_private_dir(path: Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)
    return path
