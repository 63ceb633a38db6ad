"""Eval gate verdicts as the app shows them, from "gate" events and evals/gate.json.

Both sources hold the engine's one typed result (engine/run/gate_result.py): gate.json parses with
GateSummary.from_dict, and the engine's "gate" events (engine/gate/runner.py) are phase "start" (the
checkpoints about to be evaluated), "progress", "row" (one GateRow, the base model's first) and
"summary" (verdict, best, sentence). The gate is optional: a run without one simply has no verdicts.
Both are read defensively, since they come from another process and possibly another version of it.

Which source wins: the newer one, by the event's "t" against the file's "updated". The engine writes
gate.json just before its summary event, so after a gate the two agree; while a gate runs, its row
events are newer than the previous file; and a rebuild (a review label, a person's choice, changed
rules) rewrites the file without any event, so the file must not be hidden by the older events that
the monitor read first. An event without a time or a file without "updated" (an older engine) keeps
the old order: events first, the file fills in what they did not say. A person's choice is only in the file.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import (
    BASE,
    BASELINE,
    FAIL,
    NEEDS_REVIEW,
    PASS,
    SCORE_CATEGORIES,
    VERDICT_WORDS,
    GateRow,
    GateSummary,
    awaited_or_closest,
    change_text,
    row_scores,
    vs_base_parts,
)

PASSING = frozenset({PASS})
FAILING = frozenset({FAIL})
VERDICT_STYLES = {PASS: "green", FAIL: "red", NEEDS_REVIEW: "yellow", BASELINE: "dim"}


def _time(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _event_is_newer(t: float | None, updated: float | None) -> bool:
    """An event against the file: newer unless both times are known and the file's is as late or later."""
    return t is None or updated is None or t > updated


class GateResults:
    """The gate as the monitor knows it so far: typed rows, the verdict, the best and chosen checkpoints."""

    def __init__(self) -> None:
        self._row_events: dict[int | str, tuple[float | None, GateRow]] = {}
        self._summary_event: tuple[float | None, str | None, int | None, str | None] | None = None
        self._file: GateSummary | None = None
        self._rows: dict[int | str, GateRow] | None = None  # the merged rows, until the next event or file

    # ---- what was read --------------------------------------------------------------------

    def add_event(self, ev: dict) -> None:
        """One "gate" event: phase "row" holds a GateRow, phase "summary" the verdict, best and sentence;
        "start" and "progress" say nothing about verdicts."""
        if not isinstance(ev, dict) or ev.get("kind", C.EV_GATE) != C.EV_GATE:
            return
        t = _time(ev.get("t"))
        if ev.get("phase") == "summary":
            best = ev.get("best")
            self._summary_event = (
                t,
                str(ev["verdict"]) if ev.get("verdict") else None,
                best if isinstance(best, int) and not isinstance(best, bool) else None,
                str(ev["sentence"]) if ev.get("sentence") else None,
            )
        elif ev.get("phase") == "row":
            row = GateRow.from_dict(ev)
            if row is not None:
                self._row_events[row.checkpoint] = (t, row)
                self._rows = None

    def merge_file(self, data: GateSummary | Any) -> None:
        """evals/gate.json as read (typed, or its dict); anything that is not a gate result is ignored."""
        summary = data if isinstance(data, GateSummary) else GateSummary.from_dict(data)
        if summary is not None:
            self._file, self._rows = summary, None

    # ---- what is shown --------------------------------------------------------------------

    @property
    def _updated(self) -> float | None:
        return self._file.updated if self._file is not None else None

    def _summary(self) -> tuple[str | None, int | None, str | None]:
        f, ev = self._file, self._summary_event
        if ev is not None and (f is None or _event_is_newer(ev[0], f.updated)):
            return ev[1:]
        return (f.verdict, f.best, f.sentence or None) if f is not None else (None, None, None)

    @property
    def verdict(self) -> str | None:
        return self._summary()[0]

    @property
    def best(self) -> int | None:
        """The gate's best passing checkpoint; None when none passed (or no gate yet)."""
        return self._summary()[1]

    @property
    def sentence(self) -> str | None:
        return self._summary()[2]

    @property
    def chosen(self) -> int | None:
        """The checkpoint a person chose to ship (gate.json only)."""
        return self._file.chosen.checkpoint if self._file is not None and self._file.chosen is not None else None

    @property
    def shipped(self) -> int | None:
        """The checkpoint the run ships: the chosen one, else the best."""
        return self.chosen if self.chosen is not None else self.best

    @property
    def rows(self) -> dict[int | str, GateRow]:
        """Every row by checkpoint ("base" first, then by step): the file's, and each event row newer than it
        (a newer file is the whole result at its time, so older row events say nothing it does not)."""
        if self._rows is None:
            out = {r.checkpoint: r for r in self._file.rows} if self._file is not None else {}
            out.update({key: row for key, (t, row) in self._row_events.items() if _event_is_newer(t, self._updated)})
            self._rows = dict(sorted(out.items(), key=lambda kv: (kv[0] != BASE, kv[0] if kv[0] != BASE else 0)))
        return self._rows

    def row(self, checkpoint: int | str) -> GateRow | None:
        return self.rows.get(checkpoint)

    @property
    def featured(self) -> GateRow | None:
        """The checkpoint a summary of the run shows: the one it ships, else the one awaiting review or closest to
        passing (the row the gate's sentence describes)."""
        shipped = self.row(self.shipped) if self.shipped is not None else None
        return shipped or awaited_or_closest(list(self.rows.values()))

    def verdict_for(self, step: int) -> str | None:
        row = self.row(step)
        return row.verdict if row is not None else None

    def __bool__(self) -> bool:
        return bool(self.verdict or self.sentence or self.rows)


def verdict_word(verdict: str | None) -> str:
    """A verdict as the app writes it ("needs review", not the file's "needs_review"); unknown words as they are."""
    return VERDICT_WORDS.get(verdict or "", verdict or "")


def verdict_style(verdict: str | None) -> str:
    """The colour of a verdict: pass green, fail red, needs review yellow, the base's baseline dim; any
    other word (from a newer engine) yellow, since it is not a pass."""
    v = (verdict or "").lower()
    return VERDICT_STYLES.get(v, "yellow" if v else "")


# ---- a checkpoint's scores against the base, in a line ------------------------------------------------

WORDS = {cat: cat for cat in SCORE_CATEGORIES}
SHORT = {"task": "task", "format": "fmt", "safety": "safe", "general": "gen"}


def _delta_style(d) -> str:
    if not isinstance(d, (int, float)) or isinstance(d, bool) or abs(d) < 0.05:
        return "dim"
    return "green" if d > 0 else "red"


def vs_base_cell(scores: dict | None) -> Text:
    """The runs list's cell: each category's change against the base by its letter, "T+35 F+5 S= G-40"
    (status.json's gate_scores); a category the gate did not measure (no general set, say) is "G-"."""
    parts = vs_base_parts(scores)
    if not parts:
        return Text("-", style="dim")
    return Text(" ").join(Text(part, style=_delta_style(d)) for part, d in parts)


def scores_line(row: GateRow | None, width: int, base: GateRow | None = None) -> Text:
    """The monitor's gate line: the featured checkpoint's task, format, safety and general scores, each with its
    change against the base, in words, or abbreviated where the width is short (80 columns hold all four)."""
    scores = row_scores(row, base)
    if scores is None:
        return Text()
    step = scores["checkpoint"]
    text = Text()
    for head, words in (
        (f"checkpoint-{step} vs base: ", WORDS),
        (f"checkpoint-{step} vs base: ", SHORT),
        (f"{step} vs base: ", SHORT),
    ):
        text = Text(head, style="bold")
        for i, cat in enumerate(SCORE_CATEGORIES):
            value, d = scores.get(cat), scores["vs_base"].get(cat)
            text.append(" · " if i else "", style="dim")
            text.append(f"{words[cat]} ")
            if value is None:
                text.append("-", style="dim")
                continue
            unit = "%" if cat != "task" or scores.get("task_metric") in (None, "pass_rate") else ""
            text.append(f"{value:.1f}{unit}")
            if isinstance(d, (int, float)):  # a row from an older engine's event may not say
                text.append(f" {change_text(d)}", style=_delta_style(d))
        if text.cell_len <= width:
            break
    text.truncate(width, overflow="ellipsis")
    return text
