"""Per-example gate results side by side: two sides' records paired by id, the bucket of each pair,
and the filters the per-example screen (tui/screens/examples.py) offers (bucket, tag, search words).

The left side is the base model by default, or another checkpoint, so the same pairing compares
checkpoint-400 with checkpoint-300. Buckets follow engine/gate/scores.py's buckets with "left" in place
of the base: fixed (left failed, right passes), regressed, still_failing, still_passing; a pair where a
side had every check skipped is "unscored", one present on a single side is "missing" (its side
is None). No Textual here: the examples and review screens and the tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.gate.example_records import BASE, label, read_records
from tunedeck.engine.gate.scores import buckets

FILTERS = ("regressed", "fixed", "still_failing", "all")  # what `f` cycles through, in this order
UNSCORED, MISSING = "unscored", "missing"
BUCKET_NAMES = {
    "regressed": "regressed",
    "fixed": "fixed",
    "still_failing": "still failing",
    "still_passing": "still passing",
    UNSCORED: "unscored",
    MISSING: "missing",
    "all": "all",
}


def prompt_text(prompt) -> str:
    """A record's prompt as text: chat messages as "role: content" lines, raw text as it is."""
    if isinstance(prompt, list):
        lines = []
        for m in prompt:
            if isinstance(m, dict):
                lines.append(f"{m.get('role', '?')}: {m.get('content', '')}")
            else:
                lines.append(str(m))
        return "\n".join(lines)
    return "" if prompt is None else str(prompt)


@dataclass(frozen=True)
class ExamplePair:
    id: str
    left: dict | None
    right: dict | None
    bucket: str

    @property
    def tags(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for rec in (self.right, self.left):
            for tag in (rec or {}).get("tags") or ():
                seen[str(tag)] = None
        return tuple(seen)

    @property
    def shown(self) -> dict:
        """The record that describes the example itself (prompt, reference): the right side's if present."""
        return self.right or self.left or {}

    def search_text(self) -> str:
        parts = [self.id, prompt_text(self.shown.get("prompt")), str(self.shown.get("reference") or "")]
        parts += [str((rec or {}).get("output") or "") for rec in (self.left, self.right)]
        return "\n".join(parts).casefold()

    def matches(self, query: str) -> bool:
        """Every whitespace-separated word of the query appears (case-insensitive)."""
        text = self.search_text()
        return all(word in text for word in query.casefold().split())


@dataclass
class ExampleComparison:
    left: int | str
    right: int | str
    pairs: list[ExamplePair]

    @property
    def left_label(self) -> str:
        return label(self.left)

    @property
    def right_label(self) -> str:
        return label(self.right)

    @property
    def unevaluated(self) -> str | None:
        """The label of a side with no records at all (not evaluated yet), else None."""
        if not any(p.right for p in self.pairs):
            return self.right_label
        if not any(p.left for p in self.pairs):
            return self.left_label
        return None

    def counts(self) -> dict[str, int]:
        """Pairs per bucket, every bucket present (0 when empty), plus "all"."""
        out = {name: 0 for name in BUCKET_NAMES}
        for p in self.pairs:
            out[p.bucket] += 1
        out["all"] = len(self.pairs)
        return out

    def tags(self) -> list[str]:
        return sorted({t for p in self.pairs for t in p.tags})

    def default_filter(self) -> str:
        """Regressions first (what the fine-tune broke), else what still fails, else everything."""
        counts = self.counts()
        return next((f for f in ("regressed", "still_failing") if counts[f]), "all")

    def select(self, bucket: str = "all", tag: str | None = None, query: str = "") -> list[ExamplePair]:
        if bucket not in BUCKET_NAMES:
            raise ValueError(f"unknown bucket {bucket!r}; expected one of {', '.join(BUCKET_NAMES)}")
        return [
            p
            for p in self.pairs
            if (bucket == "all" or p.bucket == bucket)
            and (tag is None or tag in p.tags)
            and (not query.strip() or p.matches(query))
        ]

    def get(self, example_id: str) -> ExamplePair | None:
        return next((p for p in self.pairs if p.id == example_id), None)


def pair_records(
    left_records: list[dict], right_records: list[dict], *, left: int | str = BASE, right: int | str
) -> ExampleComparison:
    """Pair by id, in the right side's order, then examples only the left side has."""
    bucket_of = {ex_id: name for name, ids in buckets(left_records, right_records).items() for ex_id in ids}
    lefts = {r["id"]: r for r in left_records}
    rights = {r["id"]: r for r in right_records}
    order = list(rights) + [ex_id for ex_id in lefts if ex_id not in rights]
    pairs = []
    for ex_id in order:
        lrec, rrec = lefts.get(ex_id), rights.get(ex_id)
        bucket = MISSING if lrec is None or rrec is None else bucket_of.get(ex_id, UNSCORED)
        pairs.append(ExamplePair(ex_id, lrec, rrec, bucket))
    return ExampleComparison(left, right, pairs)


def load_comparison(run_dir: Path, checkpoint: int, left: int | str = BASE) -> ExampleComparison:
    """checkpoint-N's records against the base's (or another checkpoint's), read from evals/."""
    return pair_records(read_records(run_dir, left), read_records(run_dir, checkpoint), left=left, right=checkpoint)
