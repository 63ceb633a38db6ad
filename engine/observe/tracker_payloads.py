"""What tunedeck sends to a tracker: the run's dataset and masking, and the gate's decisions as items."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.engine.run.gate_result import GateSummary


def run_info(run_dir: Path, args=None) -> dict[str, Any]:
    """The dataset fingerprint and the loss masking this run trains with (flat, tracker-friendly values)."""
    from tunedeck.engine.run.run_record import load_run_record

    info: dict[str, Any] = {"tunedeck/run_id": Path(run_dir).name}
    try:
        record = load_run_record(run_dir)
        profile = record.profile
        info.update(
            {
                "tunedeck/dataset_fingerprint": record.dataset_fingerprint or "",
                "tunedeck/dataset_path": record.dataset_path or "",
                "tunedeck/train_rows": record.train_rows,
                "tunedeck/eval_rows": record.eval_rows,
                "tunedeck/method": profile.method.method,
                "tunedeck/adapter": profile.method.adapter,
                "tunedeck/base_model": record.base_model or "",
                # what the loss covers, in words, as pre-flight computed it from the rendered template
                "tunedeck/masking": getattr(record, "loss_masking", "") or "not recorded",
            }
        )
    except Exception:  # noqa: BLE001 - the info is a courtesy; the run record stays the source of truth
        pass
    if args is not None:
        info["tunedeck/packing"] = bool(getattr(args, "packing", False))
        info["tunedeck/padding_free"] = bool(getattr(args, "padding_free", False))
    return {k: v for k, v in info.items() if v is not None}


@dataclass
class GateItem:
    """One thing the gate decided: a checkpoint's row (step set) or the run's verdict (step None)."""

    key: str
    step: int | None
    metrics: dict[str, float]
    texts: dict[str, str]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.metrics, self.texts], sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]


_SCORES = ("task", "format", "safety", "general", "latency_p95_ms")


def gate_items(summary: GateSummary) -> list[GateItem]:
    items = []
    for row in summary.rows:
        ckpt = row.checkpoint
        metrics = {f"gate/{k}": float(getattr(row, k)) for k in _SCORES if getattr(row, k) is not None}
        if row.is_base:
            items.append(GateItem("base", None, {k.replace("gate/", "gate/base_"): v for k, v in metrics.items()}, {}))
            continue
        if not isinstance(ckpt, int):
            continue
        delta = row.vs_base.get("task")
        if isinstance(delta, (int, float)):
            metrics["gate/task_vs_base"] = float(delta)
        metrics["gate/passed"] = 1.0 if row.verdict == "pass" else 0.0
        reasons = "; ".join(str(r) for r in row.reasons)
        items.append(
            GateItem(
                f"checkpoint-{ckpt}", ckpt, metrics, {"gate/verdict": str(row.verdict or ""), "gate/reasons": reasons}
            )
        )
    best = summary.best
    final = {
        "gate/final_verdict": str(summary.verdict or "none"),
        "gate/best_checkpoint": "none" if best is None else f"checkpoint-{best}",
        "gate/sentence": str(summary.sentence or ""),
    }
    metrics = {"gate/best_step": float(best)} if isinstance(best, int) else {}
    items.append(GateItem("final", None, metrics, final))
    return items
