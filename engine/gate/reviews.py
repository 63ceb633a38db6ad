"""Human review of sampled failures: which ones to show, and the labels people give them.

Labels live in <run>/reviews.jsonl, append-only, one JSON object per line:
  {"t": 1730000000.0, "checkpoint": 800, "example": "golden:17", "label": "weird", "note": "...", "key": "..."}
The latest line per (checkpoint, example) wins, so relabelling is appending. "key" is the key of the
results the label judged (eval_records); after a re-evaluation on other sets or settings the old
labels no longer count. Each label is
appended and fsynced before add_review returns: a label the app showed as saved survives a crash.

Labels: "understandable" (an understandable mistake: wrong, but the kind of wrong a person would
make or the data explains) and "weird" (new weird behaviour the base did not show: gibberish,
loops, leaking the prompt, a different language), or "acceptable" (not a failure at all: the check,
often a rubric judge, was wrong; the gate measures the judge's agreement with people from these).
When [gate] require_review is on, a checkpoint
passes only once every sampled failure is labelled and the share of "weird" is at most
[gate] max_weird_share.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.gate.example_records import BASE, parse_checkpoint, read_records, records_path
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import PRIVATE_FILE, iter_jsonl

LABELS = {
    "understandable": "understandable mistake",
    "weird": "new weird behaviour",
    "acceptable": "acceptable answer (the check was wrong)",
}
WITHDRAWN = "withdrawn"  # a line with this label takes back the example's earlier label: unlabelled again
DEFAULT_SAMPLE = 20


def _sample_size(run_dir: Path) -> int:
    try:
        from tunedeck.engine.run.run_record import load_run_record

        return load_run_record(run_dir).profile.gate.review_sample
    except Exception:  # a run record that cannot be read still lets people review
        return DEFAULT_SAMPLE


def _step(checkpoint) -> int:
    try:
        ck = parse_checkpoint(checkpoint)
    except ValueError as e:
        raise ValueError(str(e)) from None
    if ck == BASE:
        raise ValueError("the base model is the baseline; review applies to checkpoints")
    return ck  # type: ignore[return-value]


def sample_for_review(
    run_dir: Path,
    checkpoint,
    size: int | None = None,
    *,
    base_records: list[dict] | None = None,
    records: list[dict] | None = None,
) -> list[str]:
    """Example ids of failures to review, deterministic for a given checkpoint and set of results.

    Regressions (the base passed, this checkpoint fails) come first, since they are what the fine-tune
    broke; then other failures. Within each group the order is a stable hash of (checkpoint, id),
    so the sample does not favour the start of the file.
    """
    step = _step(checkpoint)
    size = _sample_size(run_dir) if size is None else size
    # records already in memory (the gate rebuilding every row) spare reading the files again
    base_records = read_records(run_dir, BASE) if base_records is None else base_records
    records = read_records(run_dir, step) if records is None else records
    base_pass = {r["id"]: r.get("pass") for r in base_records}
    failures = [r["id"] for r in records if r.get("pass") is False]

    def key(ex_id: str):
        regressed = base_pass.get(ex_id) is True
        return (not regressed, hashlib.sha256(f"{step}:{ex_id}".encode()).hexdigest())

    return sorted(failures, key=key)[:size]


def add_review(run_dir: Path, checkpoint, example_id: str, label: str, note: str = "") -> dict:
    """Append one label, durable on return (write + fsync). ValueError for an unknown label."""
    step = _step(checkpoint)
    if label not in LABELS and label != WITHDRAWN:
        raise ValueError(f"unknown review label {label!r}; expected one of {', '.join(LABELS)} (or {WITHDRAWN})")
    if not isinstance(example_id, str) or not example_id:
        raise ValueError("example_id must be a non-empty string")
    entry = {
        "t": round(time.time(), 3),
        "checkpoint": step,
        "example": example_id,
        "label": label,
        "note": str(note or ""),
        "key": records_key(run_dir, step),
    }
    path = Path(run_dir) / C.REVIEWS_JSONL
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
    try:
        # a torn last line (killed mid-write) would swallow this entry; start on a fresh line
        prefix = b"\n" if not created and _ends_torn(path) else b""
        os.write(fd, prefix + (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the new file's name is durable too
        finally:
            os.close(dfd)
    return entry


def _ends_torn(path: Path) -> bool:
    size = path.stat().st_size
    if not size:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def records_key(run_dir: Path, step: int) -> str | None:
    """The key (eval sets and generation settings) of a checkpoint's current results: a label judged those outputs."""
    try:
        with open(records_path(run_dir, step), encoding="utf-8", errors="replace") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return first.get("key") if isinstance(first, dict) else None


def load_reviews(run_dir: Path, current_only: bool = True) -> dict[tuple[int, str], dict]:
    """{(checkpoint step, example id): latest label entry}; unreadable lines are skipped.

    current_only: drop labels given to outputs that are no longer the checkpoint's results (it was
    evaluated again on other eval sets or settings since), so they never count toward a new verdict.
    """
    out = _all_reviews(run_dir)
    if not current_only:
        return out
    keys: dict[int, str | None] = {}
    for step, _ in out:
        if step not in keys:
            keys[step] = records_key(run_dir, step)
    return {k: e for k, e in out.items() if e.get("key") is None or e.get("key") == keys[k[0]]}


def _all_reviews(run_dir: Path) -> dict[tuple[int, str], dict]:
    out: dict[tuple[int, str], dict] = {}
    for e in iter_jsonl(Path(run_dir) / C.REVIEWS_JSONL):
        if not (isinstance(e.get("checkpoint"), int) and isinstance(e.get("example"), str)):
            continue
        if e.get("label") in LABELS:
            out[(e["checkpoint"], e["example"])] = e
        elif e.get("label") == WITHDRAWN:
            out.pop((e["checkpoint"], e["example"]), None)
    return out


@dataclass
class ReviewState:
    sample: list[str]
    reviewed: int
    weird: int

    @property
    def complete(self) -> bool:
        return self.reviewed >= len(self.sample)

    @property
    def weird_share(self) -> float:
        return self.weird / self.reviewed if self.reviewed else 0.0

    def to_dict(self) -> dict:
        return {"sampled": len(self.sample), "reviewed": self.reviewed, "weird": self.weird}


def review_state(
    run_dir: Path,
    checkpoint,
    reviews: dict | None = None,
    size: int | None = None,
    *,
    base_records: list[dict] | None = None,
    records: list[dict] | None = None,
) -> ReviewState:
    step = _step(checkpoint)
    reviews = load_reviews(run_dir) if reviews is None else reviews
    sample = sample_for_review(run_dir, step, size, base_records=base_records, records=records)
    labels = [reviews[(step, ex)]["label"] for ex in sample if (step, ex) in reviews]
    return ReviewState(sample, len(labels), labels.count("weird"))
