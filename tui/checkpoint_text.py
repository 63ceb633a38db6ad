"""How the checkpoints screen words the gate: a row's table cells (and in a few words why it failed), the
heading with the gate's sentence, and the selected row's reasons in full."""

from __future__ import annotations

from rich.text import Text

from tunedeck.engine.run.formatting import fmt_loss
from tunedeck.engine.run.gate_result import FAIL, RULE_WORDS, SCORE_CATEGORIES

from .checkpoint_table import CheckpointRow, CheckpointTable
from .gate_view import verdict_style, verdict_word

# the verdict and everything it uses first (task, format, safety, general, each with its change against the
# base, and latency): at 80 columns they are what must stay on screen; then why (in full below the table for
# the selected row), then the losses and epoch, which scroll
COLUMNS = (
    ("mark", ""),
    ("step", "Step"),
    ("verdict", "Verdict"),
    ("task", "Task %"),
    ("format", "Format %"),
    ("safety", "Safety %"),
    ("general", "General %"),
    ("p95", "p95 ms"),
    ("why", "Why"),
    ("eval", "Eval loss"),
    ("train", "Train loss"),
    ("epoch", "Epoch"),
)


def columns(table: CheckpointTable | None) -> tuple[tuple[str, str], ...]:
    """COLUMNS, with the task column named after a score task metric ([gate] task_metric = "chrf": chrF points)."""
    metric = (table.rules.get("task_metric") if table is not None else None) or "pass_rate"
    if metric == "pass_rate":
        return COLUMNS
    from tunedeck.engine.gate.similarity import NAMES

    return tuple((key, f"Task {NAMES.get(metric, metric)}" if key == "task" else label) for key, label in COLUMNS)


def score_cell(x: float | None, delta: float | None = None, *, base: bool = False) -> Text:
    """A score in percent (the % is in the header, to keep four of them within 80 columns) and its change
    against the base: "85.0 +35.0", "100.0 =" (no change); the base row has no change to show."""
    if x is None:
        return Text("-", style="dim")
    text = Text(f"{x:.1f}")
    if base or delta is None:
        return text
    if abs(delta) < 0.05:
        return text.append(" =", style="dim")
    return text.append(f" {delta:+.1f}", style="green" if delta > 0 else "red")


def _why(row: CheckpointRow) -> str:
    if not row.present:
        return "deleted (its gate results are kept)"
    if not row.complete:
        return "incomplete save: never used"
    if row.review and row.verdict == "needs_review":
        return f"review {row.review.get('reviewed', 0)}/{row.review.get('sampled', 0)} labelled"
    if row.failed:
        return ", ".join(RULE_WORDS.get(code, code) for code in row.failed)
    if row.verdict == FAIL and row.reasons:  # a gate.json from before rule codes: its first reason
        return row.reasons[0]
    if row.step is not None and not row.evaluated:
        return "not evaluated: press e"
    return ""


def table_cells(row: CheckpointRow, compare_mark: str | None) -> dict:
    mark = ("★" if row.best else "") + ("✓" if row.chosen else "") + ("A" if compare_mark == row.key else "")
    step = Text(
        "base" if row.step is None else str(row.step),
        style="" if row.present and row.complete else "dim strike" if not row.present else "dim",
    )
    verdict = verdict_word(row.verdict) or "-"
    return {
        "mark": Text(mark, style="bold yellow"),
        "step": step,
        "epoch": f"{row.epoch:.2f}" if row.epoch is not None else "-",
        "train": fmt_loss(row.train_loss),
        "eval": fmt_loss(row.eval_loss),
        **{cat: score_cell(getattr(row, cat), row.vs_base.get(cat), base=row.step is None) for cat in SCORE_CATEGORIES},
        "p95": f"{row.p95_ms:.0f}" if row.p95_ms is not None else "-",
        "verdict": Text(verdict, style=verdict_style(row.verdict) if row.verdict != "baseline" else "dim"),
        "why": _why(row),
    }


def gate_heading(table: CheckpointTable) -> Text:
    """Above the table: the gate's verdict and sentence, the checkpoint chosen to ship, the table's notices."""
    head = Text()
    if table.sentence:
        head.append("Gate: ", style="bold")
        head.append(verdict_word(table.verdict), style=verdict_style(table.verdict))
        head.append(f" — {table.sentence}")
    else:
        head.append("Not evaluated yet: press e on a checkpoint, or on the base row to evaluate them all.", style="dim")
    if table.chosen is not None:
        head.append(f"\nChosen to ship: checkpoint-{table.chosen} (b to change)", style="bold green")
    for notice in table.notices:
        head.append(f"\n{notice}", style="yellow")
    return head


def row_detail(row: CheckpointRow | None, table: CheckpointTable | None) -> Text:
    """Below the table: the selected row's verdict, reasons, warnings and review, in full."""
    text = Text()
    if row is not None:
        text.append(row.label, style="bold")
        if row.verdict:
            text.append(f"  {verdict_word(row.verdict)}", style=verdict_style(row.verdict))
        if row.best:
            text.append("  ★ the gate's best", style="yellow")
        if row.chosen:
            text.append("  ✓ chosen to ship", style="green")
        for reason in row.reasons:
            text.append(f"\n  • {reason}")
        for warning in row.warnings:
            text.append(f"\n  ! {warning}", style="yellow")
        if row.review:
            r = row.review
            text.append(
                f"\n  review: {r.get('reviewed', 0)} of {r.get('sampled', 0)} sampled failures labelled, "
                f"{r.get('weird', 0)} weird (r to review)"
            )
        if row.step is not None and not row.present:
            text.append("\n  the folder is gone (pruned or deleted); the scores above are what it had", style="dim")
        if row.step is None and table is not None:
            _sets_asked(text, table.sets)
            _base_prompts(text, table.base_prompts)
        if table is not None and table.overrides:
            changed = ", ".join(f"{o['key']} = {o.get('value')!r} (run.toml {o.get('was')!r})" for o in table.overrides)
            text.append(f"\n  rules changed after training: {changed} (R to edit)", style="dim")
    return text


def _sets_asked(text: Text, sets: list) -> None:
    """Under the base row: how the base was asked each set (its best prompt on task sets, the others as written)."""
    if not sets:
        return
    text.append("\n  asked: ")
    for i, s in enumerate(sets):
        text.append(", " if i else "")
        text.append(s.name, style="bold")
        text.append(
            f" ({s.kind}) " + (s.asked or "not recorded"),
            style="" if s.asked_as_written or s.kind == "task" else "yellow",
        )
    text.append("; checkpoints answer every set as written", style="dim")


def _base_prompts(text: Text, candidates: list[dict]) -> None:
    """The base's prompt candidates under the base row: scores, and which one is the baseline."""
    if len(candidates) < 2:
        return
    text.append("\n  base prompts tried (the best by the task metric is the baseline):")
    for c in candidates:
        prompt = " ".join(str(c.get("prompt") or "").split()) or "(the eval set's own prompt)"
        prompt = prompt if len(prompt) <= 48 else prompt[:47] + "…"
        shots = f" + {c['few_shot']}-shot" if c.get("few_shot") else ""
        task = f"{c['task']:.1f}" if isinstance(c.get("task"), (int, float)) else "-"
        text.append(
            f"\n  {'★' if c.get('chosen') else ' '} task {task}  {prompt}{shots}",
            style="bold" if c.get("chosen") else "",
        )
