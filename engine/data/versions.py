"""Data versions: which rows a run trained and was judged on, so two runs can say what changed.

At launch the engine records `<run>/data_rows.json` (engine/run/data_rows.py): every data file's size and SHA-256, a
short hash of every canonical train and held-out row (in order), and of every example of the gate's eval
sets. Comparing two runs then counts rows added and removed between their datasets and eval sets
(multisets: a duplicated row counts twice), not only "same data or not". Row hashes are 8 bytes of
BLAKE2b over the canonical JSON, about 17 characters per row on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.data.split import canonical_json


def row_hash(row: dict) -> str:
    return hashlib.blake2b(canonical_json(row).encode("utf-8"), digest_size=8).hexdigest()


def file_digest(path: str) -> dict:
    """Size and SHA-256 of a data file; a folder or hub id is named without a digest."""
    p = Path(path).expanduser()
    if not p.is_file():
        return {"path": path, "sha256": None, "bytes": None}
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": path, "sha256": h.hexdigest(), "bytes": p.stat().st_size}


def data_rows_record(paths: list[str], train_rows: list[dict], eval_rows: list[dict], eval_sets=()) -> dict:
    return {
        "files": [file_digest(p) for p in paths],
        "train": [row_hash(r) for r in train_rows],
        "eval": [row_hash(r) for r in eval_rows],
        "eval_sets": [
            {
                "name": s.name,
                "source": s.source,
                "examples": [
                    hashlib.blake2b(
                        json.dumps(e.spec(), sort_keys=True, default=str).encode(), digest_size=8
                    ).hexdigest()
                    for e in s.examples
                ],
            }
            for s in eval_sets
        ],
    }


@dataclass
class Change:
    added: int
    removed: int
    kept: int

    def words(self) -> str:
        if not self.added and not self.removed:
            return f"same {self.kept} rows"
        return f"+{self.added} −{self.removed} ({self.kept} kept)"


def _change(a: list, b: list) -> Change:
    ca, cb = Counter(a), Counter(b)
    return Change(added=sum((cb - ca).values()), removed=sum((ca - cb).values()), kept=sum((ca & cb).values()))


@dataclass
class DataDiff:
    train: Change
    eval: Change
    sets: dict[str, Change] = field(default_factory=dict)  # eval set name -> change (sets in both runs)
    sets_only: dict[str, str] = field(default_factory=dict)  # set name -> "A" or "B": in one run only

    def lines(self) -> list[str]:
        out = [f"train rows {self.train.words()}", f"held-out rows {self.eval.words()}"]
        out += [f"eval set {name}: {c.words()}" for name, c in self.sets.items()]
        out += [f"eval set {name}: only in {side}" for name, side in self.sets_only.items()]
        return out


def diff_data(a: dict, b: dict) -> DataDiff:
    """From run A's recorded rows to run B's."""
    sets_a = {s["name"]: s.get("examples", []) for s in a.get("eval_sets", [])}
    sets_b = {s["name"]: s.get("examples", []) for s in b.get("eval_sets", [])}
    return DataDiff(
        train=_change(a.get("train", []), b.get("train", [])),
        eval=_change(a.get("eval", []), b.get("eval", [])),
        sets={n: _change(sets_a[n], sets_b[n]) for n in sets_a if n in sets_b},
        sets_only={**{n: "A" for n in sets_a if n not in sets_b}, **{n: "B" for n in sets_b if n not in sets_a}},
    )
