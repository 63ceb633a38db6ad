"""Deterministic train/eval split and dataset fingerprint.

Each row goes to eval when blake2b(seed, canonical JSON of the row), read as a number in [0, 1), is
below val_fraction. The decision depends only on the row itself and the seed, so appending rows
never moves existing rows between train and eval, and identical rows always land on the same side
(exact duplicates cannot leak across the split).
"""

from __future__ import annotations

import hashlib
import json

_VERSION = b"tunedeck-split-v1"


def canonical_json(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_unit(row: dict, seed: int) -> float:
    """The row's stable position in [0, 1) for this seed."""
    h = hashlib.blake2b(
        canonical_json(row).encode("utf-8"),
        digest_size=8,
        key=_VERSION,
        salt=(int(seed) % 2**128).to_bytes(16, "little"),
    )
    return int.from_bytes(h.digest(), "big") / 2.0**64


def split_indices(rows: list[dict], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train_idx, eval_idx), both ascending. With val_fraction > 0 and 2+ rows both sides are non-empty."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    n = len(rows)
    if val_fraction == 0 or n < 2:
        return list(range(n)), []
    units = [row_unit(r, seed) for r in rows]
    eval_set = {i for i, u in enumerate(units) if u < val_fraction}
    order = sorted(range(n), key=lambda i: (units[i], i))
    if not eval_set:
        eval_set.add(order[0])  # the lowest-hash row: the one that would join first as rows are added
    if len(eval_set) == n:
        eval_set.discard(order[-1])
    train = [i for i in range(n) if i not in eval_set]
    return train, sorted(eval_set)


def fingerprint(rows: list[dict], *, val_fraction: float, seed: int, eval_rows: list[dict] | None = None) -> str:
    """'sha256:<16 hex>' over the canonical rows (in order) and the split settings."""
    h = hashlib.sha256(_VERSION)
    h.update(
        json.dumps(
            {"val_fraction": val_fraction, "seed": seed, "n": len(rows), "eval_file": eval_rows is not None}
        ).encode()
    )
    for part, rs in (("train", rows), ("eval", eval_rows or [])):
        h.update(f"\n#{part}\n".encode())
        for r in rs:
            h.update(canonical_json(r).encode("utf-8"))
            h.update(b"\n")  # canonical JSON escapes newlines, so this separator is unambiguous
    return "sha256:" + h.hexdigest()[:16]
