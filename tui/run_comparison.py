"""Two runs side by side: what differs in their profiles, what data they ran on, how their best
checkpoints fared in the eval gate, and their loss curves.

Pure (no Textual): the compare screen builds a RunComparison in a worker thread and only shows it.
A run whose run.toml is missing or broken is still compared as far as it can be; the reason is
kept as a message instead of raising, since the user picked the run from a list and deserves to
know why half the screen is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.config.profile_diff import ProfileDifference, profile_differences
from tunedeck.engine.config.profile_loading import ProfileError
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary, read_gate_summary
from tunedeck.engine.run.run_record import RunRecord, load_run_record

from .chunked_event_reader import ChunkedEventReader
from .metric_series import MetricSeries
from .overfitting import BestEval
from .run_follower import RunUpdate
from .run_history import RunHistory

SAME_DATA, DIFFERENT_DATA = "same data", "different data"


@dataclass
class BestGate:
    """A run's gate summary, from evals/gate.json. `checkpoint` is None when no checkpoint passed."""

    verdict: str | None
    checkpoint: int | None
    sentence: str | None
    task: float | None = None
    format: float | None = None
    safety: float | None = None
    latency_p95_ms: float | None = None
    checkpoint_verdict: str | None = None  # the best checkpoint's own row verdict
    chosen: int | None = None  # the checkpoint the user picked to ship, if any


@dataclass
class RunSide:
    run_dir: Path
    label: str  # "name·suffix", as the runs table shows it
    record: RunRecord | None
    problem: str | None  # why run.toml could not be read
    gate: BestGate | None
    train_loss: MetricSeries = field(default_factory=MetricSeries)
    eval_loss: MetricSeries = field(default_factory=MetricSeries)
    best_eval: BestEval | None = None


@dataclass
class RunComparison:
    a: RunSide
    b: RunSide
    differences: list[ProfileDifference]
    data_match: str  # SAME_DATA, DIFFERENT_DATA, or why it cannot be told
    data_changes: list[str] = field(default_factory=list)  # rows added/removed A -> B (engine/data/versions.py)

    @property
    def profile_problem(self) -> str | None:
        """Why the profiles could not be compared, or None when both were read."""
        problems = [f"{side.label}: {side.problem}" for side in (self.a, self.b) if side.problem]
        if not problems:
            return None
        return "Profiles not compared — " + "; ".join(problems)


def compare_runs(run_a: Path, run_b: Path, keep_going: Callable[[], bool] = lambda: True) -> RunComparison:
    """Read both runs. `keep_going` is polled between chunks of a long event log, so a caller that
    no longer wants the answer (the screen was closed) stops the read early."""
    a, b = read_side(Path(run_a), keep_going), read_side(Path(run_b), keep_going)
    differences = profile_differences(a.record.profile, b.record.profile) if a.record and b.record else []
    return RunComparison(
        a=a,
        b=b,
        differences=differences,
        data_match=data_match(a.record, b.record),
        data_changes=data_changes(Path(run_a), Path(run_b)),
    )


def data_changes(run_a: Path, run_b: Path) -> list[str]:
    """Rows added and removed from A's data and eval sets to B's; empty when a run recorded no rows."""
    from tunedeck.engine.data.versions import diff_data
    from tunedeck.engine.run.data_rows import read_data_rows

    a, b = read_data_rows(run_a), read_data_rows(run_b)
    return diff_data(a, b).lines() if a is not None and b is not None else []


def read_side(run_dir: Path, keep_going: Callable[[], bool] = lambda: True) -> RunSide:
    record, problem = None, None
    try:
        record = load_run_record(run_dir)
    except ProfileError as e:
        problem = _record_problem(run_dir, e)
    except OSError as e:
        problem = f"run.toml could not be read ({e.strerror or e})"
    history = read_loss_history(run_dir, keep_going)
    return RunSide(
        run_dir=run_dir,
        label=run_label(run_dir, record),
        record=record,
        problem=problem,
        gate=best_gate(read_gate_summary(run_dir)),
        train_loss=history.train_loss,
        eval_loss=history.eval_loss,
        best_eval=history.best_eval(),
    )


def _record_problem(run_dir: Path, error: ProfileError) -> str:
    if not (run_dir / C.RUN_TOML).exists():
        return "run.toml is missing, so its profile and dataset are unknown"
    text = str(error)
    prefix = f"{error.file}: " if error.file else ""
    return "run.toml is unreadable: " + (text[len(prefix) :] if prefix and text.startswith(prefix) else text)


def run_label(run_dir: Path, record: RunRecord | None) -> str:
    rid = record.id if record else run_dir.name
    name = record.name if record else ""
    suffix = rid.rsplit("-", 1)[-1] if "-" in rid else ""
    return f"{name}·{suffix}" if name and name != rid and suffix else rid


def read_loss_history(run_dir: Path, keep_going: Callable[[], bool] = lambda: True) -> RunHistory:
    """The run's events applied as the monitor applies them (resumes cut the superseded steps),
    read a chunk at a time so that a huge log never sits in memory whole."""
    history = RunHistory(run_dir)
    reader = ChunkedEventReader(Path(run_dir) / C.EVENTS_JSONL)
    while keep_going():
        events = reader.read_chunk()
        if events:
            history.apply(RunUpdate(events=events))
        if reader.caught_up:
            break
    return history


# ---- profiles ---------------------------------------------------------------------------------


def display_value(value: Any) -> str:
    """A profile value as it reads in TOML (true, "", [a, b]), so the table matches run.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(display_value(v) for v in value) + "]"
    return str(value)


# ---- dataset ----------------------------------------------------------------------------------


def data_match(a: RunRecord | None, b: RunRecord | None) -> str:
    if a is None or b is None:
        return "unknown: a run record could not be read"
    if not a.dataset_fingerprint or not b.dataset_fingerprint:
        return "unknown: a run recorded no dataset fingerprint"
    return SAME_DATA if a.dataset_fingerprint == b.dataset_fingerprint else DIFFERENT_DATA


# ---- gate -------------------------------------------------------------------------------------


def best_gate(summary: GateSummary | None) -> BestGate | None:
    """The best checkpoint's gate row and the summary sentence; None when the run has no gate file."""
    if summary is None:
        return None
    row = summary.row(summary.best) if summary.best is not None else None
    return BestGate(
        verdict=summary.verdict,
        checkpoint=summary.best,
        sentence=summary.sentence or None,
        task=row.task if row else None,
        format=row.format if row else None,
        safety=row.safety if row else None,
        latency_p95_ms=row.latency_p95_ms if row else None,
        checkpoint_verdict=row.verdict if row else None,
        chosen=summary.chosen.checkpoint if summary.chosen is not None else None,
    )
