"""The terminal bell while the app is open: a run ended (completed, stopped, failed, crashed) or got
a gate verdict since the last look.

The app reads every run's status.json now and then (all screens: the runs list stops scanning when
another screen is on top) and feeds the states here; the first look only sets the baseline, so
opening the app on finished runs rings nothing. No Textual here: the tests drive it directly.
"""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.run import contract as C

Outcome = tuple[str, str | None]  # (state, gate verdict)


def read_outcomes(workspace: Path) -> dict[str, Outcome]:
    from tunedeck.engine.run.store import list_runs, read_effective_status

    out = {}
    for run_dir in list_runs(workspace):
        try:
            status = read_effective_status(run_dir)
        except (OSError, ValueError):
            continue
        out[run_dir.name] = (status.state or "", status.gate_verdict)
    return out


class RunBell:
    def __init__(self) -> None:
        self.seen: dict[str, Outcome] | None = None

    def update(self, outcomes: dict[str, Outcome]) -> list[str]:
        """What happened since the last look, one line each; empty on the first look."""
        if self.seen is None:
            self.seen = dict(outcomes)
            return []
        news = []
        for rid, (state, verdict) in outcomes.items():
            before = self.seen.get(rid)
            if before is None:
                continue  # a run that appeared: its start is not news, its end will be
            ended = state in C.FINAL_STATES and before[0] not in C.FINAL_STATES
            judged = bool(verdict) and verdict != before[1]
            if ended:
                news.append(f"{rid} {state}" + (f", gate: {verdict}" if verdict else ""))
            elif judged:
                news.append(f"{rid}: gate verdict {verdict}")
        self.seen = dict(outcomes)
        return news
