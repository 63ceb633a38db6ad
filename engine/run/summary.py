"""What a run looks like to a reader: one row for `tunedeck ls`, the record for `tunedeck show`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import read_events
from tunedeck.engine.run.store import list_checkpoints, read_effective_status


def run_row(run_dir: Path) -> dict[str, Any]:
    status = read_effective_status(run_dir)
    state = status.state
    started = status.started or status.created
    finished = status.finished
    end = finished if finished and state not in C.LIVE_STATES else time.time()
    message = status.message or ""
    # the worker writes `started` when it begins; a run that ended without it never trained
    at_start = state in (C.CRASHED, C.FAILED) and not status.started
    if state == C.CRASHED:  # it ran until its last sign of life, not until now
        end = status.heartbeat or status.updated or started or end
        from tunedeck.engine.run.engine_log import last_words

        message = last_words(run_dir) or "the engine ended without a final state"
    return {
        "id": run_dir.name,
        "name": status.name or run_dir.name,
        "state": state,
        "at_start": at_start,
        "base_model": status.base_model,
        "method": status.method,
        "adapter": status.adapter,
        "step": status.step or 0,
        "total_steps": status.total_steps,
        "best_eval_loss": status.best_eval_loss,
        "best_eval_step": status.best_eval_step,
        "gate_verdict": status.gate_verdict,
        "gate_best": status.gate_best,
        "gate_scores": status.gate_scores,  # the shipped (or closest) checkpoint's scores against the base
        "started": started,
        "duration_s": (end - started) if started else None,
        "message": message,
        "dir": str(run_dir),
        "sweep": status.sweep,
        "parent": status.parent,
        "queue_position": status.queue_position if status.state == C.QUEUED else None,
    }


_GATE_FIELDS: dict[Path, tuple[tuple, dict]] = {}  # run dir -> (gate.json's mtime and size, its status fields)


def fill_gate_fields(row: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A run_row with the gate's verdict, shipped checkpoint and scores taken from evals/gate.json where status.json
    does not carry them (a gate that never wrote status, or an engine from before gate_scores). gate.json is
    parsed again only when it changes, so the app's scan once a second stays cheap."""
    from tunedeck.engine.run.gate_result import gate_json_path, read_gate_summary, status_fields

    if row.get("gate_verdict") and row.get("gate_scores") is not None:
        return row
    try:
        st = gate_json_path(run_dir).stat()
    except OSError:
        return row
    stamp, known = (st.st_mtime_ns, st.st_size), _GATE_FIELDS.get(Path(run_dir))
    if known is None or known[0] != stamp:
        gate = read_gate_summary(run_dir)
        known = _GATE_FIELDS[Path(run_dir)] = (stamp, status_fields(gate) if gate is not None and gate.verdict else {})
    fields = known[1]
    if fields:
        row.update(fields if not row.get("gate_verdict") else {"gate_scores": fields["gate_scores"]})
    return row


def metrics(run_dir: Path) -> dict[str, Any]:
    """Loss history with resumes applied: points logged after a resume's step are superseded."""
    train: dict[int, dict] = {}
    evals: dict[int, float] = {}
    errors, warnings = [], []
    for ev in read_events(Path(run_dir) / C.EVENTS_JSONL):
        kind = ev.get("kind")
        if kind == C.EV_RESUMED:
            cut = ev.get("from_step") or 0
            train = {s: v for s, v in train.items() if s <= cut}
            evals = {s: v for s, v in evals.items() if s <= cut}
        elif kind == C.EV_TRAIN and isinstance(ev.get("step"), int):
            train[ev["step"]] = ev
        elif kind == C.EV_EVAL and isinstance(ev.get("step"), int):
            evals[ev["step"]] = ev.get("eval_loss")
        elif kind == C.EV_ERROR:
            errors.append(ev.get("message"))
        elif kind == C.EV_WARNING:
            warnings.append(ev.get("message"))
    finite = {s: v for s, v in evals.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    best = min(finite.items(), key=lambda kv: (kv[1], kv[0])) if finite else None
    last_train = train[max(train)] if train else {}
    return {
        "train_loss": {s: e.get("loss") for s, e in sorted(train.items())},
        "eval_loss": dict(sorted(evals.items())),
        "final_train_loss": last_train.get("loss"),
        "best_eval_loss": best[1] if best else None,
        "best_eval_step": best[0] if best else None,
        "errors": errors,
        "warnings": warnings,
    }


def experiment_record(run_dir: Path) -> dict[str, Any]:
    from tunedeck.engine.run.run_record import load_run_record

    record = load_run_record(run_dir)
    m = metrics(run_dir)
    checkpoints = [
        {"step": c.step, "path": str(c.path), "complete": c.complete, "eval_loss": c.marker.get("eval_loss")}
        for c in list_checkpoints(run_dir)
    ]
    profile = record.profile
    return {
        **run_row(run_dir),
        "parent": record.parent or None,
        "base_model": record.base_model,
        "revision": profile.model.revision or None,
        "method": profile.method.method,
        "adapter": profile.method.adapter,
        "dataset": {
            "path": record.dataset_path,
            "format": record.dataset_format,
            "fingerprint": record.dataset_fingerprint,
            "rows": record.rows,
            "train_rows": record.train_rows,
            "eval_rows": record.eval_rows,
            "skipped_rows": record.skipped_rows,
            "files": _data_files(run_dir),
        },
        "loss_masking": record.loss_masking or None,
        "hyperparameters": profile.to_dict(),
        "checkpoints": checkpoints,
        "adapter_paths": [c["path"] for c in checkpoints if c["complete"]] if profile.method.adapter != "none" else [],
        "metrics": {k: m[k] for k in ("final_train_loss", "best_eval_loss", "best_eval_step")},
        "gate": _gate(run_dir),
        "errors": m["errors"],
        "warnings": m["warnings"],
        "command": record.command,
        "created": record.created,
    }


def _data_files(run_dir: Path) -> list[dict] | None:
    """Each data file's path, size and SHA-256 as recorded at launch (engine/data/versions.py)."""
    from tunedeck.engine.run.data_rows import read_data_rows

    rows = read_data_rows(run_dir)
    return rows.get("files") if rows else None


def _gate(run_dir: Path) -> dict[str, Any] | None:
    """Eval scores per checkpoint (each with its change against the base), the verdict, the chosen checkpoint,
    the featured checkpoint's scores (status_fields' gate_scores) and how the base was asked each set."""
    from tunedeck.engine.run.gate_result import read_gate_summary, status_fields

    summary = read_gate_summary(run_dir)
    if summary is None:
        return None
    written = summary.to_dict()  # best, chosen and sets as gate.json holds them
    keep = (
        "checkpoint",
        "task",
        "format",
        "safety",
        "general",
        "vs_base",
        "latency_p95_ms",
        "verdict",
        "reasons",
        "eval_loss",
    )
    return {
        "verdict": summary.verdict,
        "best": written["best"],
        "chosen": written["chosen"],
        "sentence": summary.sentence,
        "scores": status_fields(summary)["gate_scores"],
        "sets": written["sets"],
        "rows": [{k: getattr(r, k) for k in keep} for r in summary.rows],
    }
