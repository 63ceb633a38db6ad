"""Sweeps in the runs list: a sweep's runs fold into one group row, expanded in place with enter.

Pure (no Textual). The group sits where its newest run would be; expanded, its runs follow it in
the sweep's order. While a filter is typed, groups holding a match open so the match is seen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tunedeck.engine.run import contract as C

GROUP_PREFIX = "sweep:"


@dataclass
class SweepGroup:
    name: str
    runs: list[dict] = field(default_factory=list)
    expanded: bool = False

    @property
    def key(self) -> str:
        return GROUP_PREFIX + self.name

    @property
    def states(self) -> Counter:
        return Counter(r.get("state") or "unknown" for r in self.runs)

    @property
    def live(self) -> bool:
        return any(r.get("state") in C.LIVE_STATES for r in self.runs)

    @property
    def finished(self) -> int:
        return sum(1 for r in self.runs if r.get("state") not in C.LIVE_STATES)

    @property
    def passing(self) -> int:
        return sum(1 for r in self.runs if r.get("gate_verdict") == "pass")

    def state_summary(self) -> str:
        """ "1 running · 2 queued", live states first, in a fixed order."""
        order = (C.RUNNING, C.STOPPING, C.QUEUED, C.COMPLETED, C.STOPPED, C.FAILED, C.CRASHED)
        counts = self.states
        names = [s for s in order if counts.get(s)] + sorted(s for s in counts if s not in order)
        return " · ".join(f"{counts[s]} {s}" for s in names)

    def main_state(self) -> str:
        """The state the group's mark and colour show: running while any runs, else queued while any
        waits, else completed when any completed, else how the runs ended."""
        counts = self.states
        for s in (C.RUNNING, C.STOPPING, C.QUEUED, C.COMPLETED):
            if counts.get(s):
                return s
        return counts.most_common(1)[0][0] if counts else C.COMPLETED


def group_rows(rows: list[dict], expanded: set[str], matches=None) -> list[dict | SweepGroup]:
    """Runs (dicts) and sweep groups in display order. `rows` are newest first; `matches(row)` filters."""
    groups: dict[str, SweepGroup] = {}
    for row in rows:
        if row.get("sweep"):
            groups.setdefault(row["sweep"], SweepGroup(row["sweep"])).runs.append(row)
    items: list[dict | SweepGroup] = []
    placed: set[str] = set()
    for row in rows:
        name = row.get("sweep")
        if not name:
            if matches is None or matches(row):
                items.append(row)
            continue
        if name in placed:
            continue
        placed.add(name)
        group = groups[name]
        members = sorted(group.runs, key=lambda r: r.get("name") or r["id"])  # the sweep's order: NAME-01, NAME-02, ...
        shown = [r for r in members if matches is None or matches(r) or name_matches(name, matches)]
        if not shown:
            continue
        group.runs = members
        group.expanded = name in expanded or (matches is not None and not name_matches(name, matches))
        items.append(group)
        if group.expanded:
            items.extend(shown)
    return items


def name_matches(name: str, matches) -> bool:
    return bool(matches({"id": name, "name": name}))
