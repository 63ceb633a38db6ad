"""The runs table: one row per run directory, updated in place so the cursor stays put."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.binding import Binding

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_clock, fmt_duration, fmt_loss, is_number

from ..formatting import text_bar, truncate
from ..gate_view import verdict_style, verdict_word, vs_base_cell
from ..run_states import state_label, state_style
from ..sweep_groups import SweepGroup
from .list_table import ListTable

# "mark" shows a run's compare slot (A or B); its label is a space so the column keeps one width
# whether or not a run is marked. The gate's verdict and its scores against the base (task, format, safety,
# general: "T+35 F= S= G-40") come before the eval loss, so at 80 columns they stay on screen.
COLUMNS = (
    ("run", "Run"),
    ("mark", " "),
    ("state", "State"),
    ("progress", "Progress"),
    ("gate", "Gate"),
    ("vs", "Vs base"),
    ("best", "Best eval"),
    ("model", "Base model"),
    ("method", "Method"),
    ("started", "Started"),
    ("duration", "Duration"),
)
BAR_WIDTH = 8


def run_label(row: dict) -> str:
    rid, name = row.get("id") or "", row.get("name") or ""
    suffix = rid.rsplit("-", 1)[-1] if "-" in rid else ""
    if name and name != rid and suffix:
        return truncate(f"{name}·{suffix}", 24)
    return truncate(rid, 24)


def progress_cell(row: dict) -> Text:
    step, total = row.get("step") or 0, row.get("total_steps")
    if is_number(total) and total:
        return Text(f"{text_bar(step / total, BAR_WIDTH)} {step}/{total}")
    return Text(f"{' ' * BAR_WIDTH} {step}/?")


def gate_cell(row: dict) -> Text:
    verdict = row.get("gate_verdict")
    if not verdict:
        return Text("-", style="dim")
    best = row.get("gate_best")
    word = verdict_word(str(verdict))
    label = f"{word}@{best}" if best not in (None, "") else word
    return Text(truncate(label, 12), style=verdict_style(str(verdict)))


def state_cell(row: dict) -> Text:
    label = state_label(row.get("state"))
    if row.get("state") == C.QUEUED and row.get("queue_position"):
        label += f" #{row['queue_position']}"  # its place in the queue
    if row.get("at_start"):
        label += " at start"  # it never trained: the line under the table says why
    return Text(label, style=state_style(row.get("state")))


def cells(row: dict, mark: str = "") -> dict[str, Text | str]:
    """`mark` is the run's compare slot ("A" or "B") when it is marked for comparison."""
    method = "/".join(x for x in (row.get("method"), row.get("adapter")) if x) or "-"
    model = Path(str(row.get("base_model"))).name if row.get("base_model") else "-"
    return {
        # a sweep's run sits under its group; a run started from another (N, run --from) is marked ↳
        "run": ("  " if row.get("sweep") else "") + ("↳ " if row.get("parent") else "") + run_label(row),
        "mark": Text(mark, style="bold yellow"),
        "state": state_cell(row),
        "progress": progress_cell(row),
        "best": fmt_loss(row.get("best_eval_loss")),
        "gate": gate_cell(row),
        "vs": vs_base_cell(row.get("gate_scores")) if row.get("gate_verdict") else Text("-", style="dim"),
        "model": truncate(model, 22),
        "method": method,
        "started": fmt_clock(row.get("started")),
        "duration": fmt_duration(row.get("duration_s")),
    }


def group_cells(group: SweepGroup) -> dict[str, Text | str]:
    """A sweep folded into one row: its runs' states, how many ended, how many passed the gate."""
    first = group.runs[0] if group.runs else {}
    model = Path(str(first.get("base_model"))).name if first.get("base_model") else "-"
    started = [r["started"] for r in group.runs if is_number(r.get("started"))]
    n = len(group.runs)
    return {
        "run": Text(truncate(f"{'▾' if group.expanded else '▸'} {group.name} ({n})", 24), style="bold"),
        "mark": "",
        "state": Text(truncate(group.state_summary(), 36), style=state_style(group.main_state())),
        "progress": Text(f"{text_bar(group.finished / n if n else 0, BAR_WIDTH)} {group.finished}/{n} runs"),
        "best": "",
        "gate": Text(f"{group.passing} pass", style=verdict_style("pass")) if group.passing else Text("-", style="dim"),
        "vs": "",
        "model": truncate(model, 22),
        "method": "/".join(x for x in (first.get("method"), first.get("adapter")) if x) or "-",
        "started": fmt_clock(min(started)) if started else "-",
        "duration": "",
    }


def matches(row: dict, query: str) -> bool:
    """Every word of the query appears in the run's id, name, state, model, method or gate verdict."""
    hay = " ".join(
        str(row.get(k) or "")
        for k in ("id", "name", "state", "base_model", "method", "adapter", "gate_verdict", "parent")
    ).lower()
    return all(word in hay for word in query.lower().split())


class RunsTable(ListTable):
    BINDINGS = [
        Binding(
            "enter", "select_cursor", "Open", tooltip="Open the selected run; on a sweep, show its runs", id="runs.open"
        )
    ]

    def show_rows(self, rows: list[dict | SweepGroup], marks: dict[str, str] | None = None) -> None:
        """Show the runs and sweep groups, keeping the cursor on the same row; `marks` maps run id -> compare slot."""
        marks = marks or {}
        self.show(
            COLUMNS,
            [
                (row.key, group_cells(row))
                if isinstance(row, SweepGroup)
                else (row["id"], cells(row, marks.get(row["id"], "")))
                for row in rows
            ],
        )

    @property
    def selected_id(self) -> str | None:
        return self.selected_key
