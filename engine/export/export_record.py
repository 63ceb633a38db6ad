"""tunedeck-export.json: what an export wrote, from which run, data and checkpoint, the gate's view of that
checkpoint, and (engine/export/artifact_gate.py) how the exported artifact itself answered the gate's task
examples. One writer: export_checkpoint; readers: people, scripts and the app's export dialog.

  {"format": 1, "kind": "adapter" | "merged" | "full" | "gguf", "run_id", "run_name", "run_dir",
   "checkpoint": {"step", "selected_by", "path", "epoch", "train_loss", "eval_loss"},
   "base_model": {"id", "revision"}, "adapter", "method", "precision", "dataset": {...}, "loss_masking",
   "hyperparameters": {...}, "gate": {"row", "verdict", "overall_verdict", "best", "chosen", "sentence", "updated"},
   "gguf": {"file", "type", "converter": {"source", "commit", "gguf_py", "sdist_sha256", ...}, "convert_s", ...},
   "artifact_gate": {"examples", "identical", "task", "checkpoint_task", "verdict", "reasons", ...},
   "status": "ok" | "failed", "warnings": [...], "notes": [...], "files": {name: bytes},
   "tunedeck_version", "created", "created_utc"}
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from tunedeck.engine.run.gate_result import GateSummary, read_gate_summary
from tunedeck.engine.run.store import Checkpoint

EXPORT_RECORD = "tunedeck-export.json"
EXPORT_FAILED = "EXPORT-FAILED.txt"  # beside a failed export's files, so a listing shows it


def hyperparameters(profile) -> dict:
    p = profile
    out = {
        "method": p.method.method,
        "adapter": p.method.adapter,
        "optim": {
            k: getattr(p.optim, k)
            for k in (
                "learning_rate",
                "scheduler",
                "warmup_ratio",
                "weight_decay",
                "epochs",
                "max_steps",
                "batch_size",
                "grad_accum",
                "max_grad_norm",
                "precision",
                "seed",
            )
        },
        "data": {
            k: getattr(p.data, k) for k in ("format", "max_seq_len", "val_fraction", "packing", "assistant_only_loss")
        },
    }
    if p.method.adapter != "none":
        out["lora"] = asdict(p.lora)
    if p.method.method == "dpo":
        out["dpo_beta"] = p.method.dpo_beta
    return out


def gate_entry(summary: GateSummary | None, step: int) -> dict | None:
    """The checkpoint's gate row and the gate's best/chosen sentence, or None when the gate never ran on it."""
    if summary is None:
        return None
    row = summary.row(step)
    return {
        "row": row.to_dict() if row else None,
        "verdict": row.verdict if row else None,
        "overall_verdict": summary.verdict,
        "best": summary.best,
        "chosen": summary.chosen.to_dict() if summary.chosen else None,
        "sentence": summary.sentence,
        "updated": summary.updated,
    }


def build_record(
    record,
    ckpt: Checkpoint,
    kind: str,
    selected_by: str,
    precision: str | None,
    files: dict,
    *,
    gguf: dict | None = None,
    artifact_gate: dict | None = None,
    warnings: list[str] = (),
) -> dict:
    from tunedeck.engine.run.run_record import VERSION

    p = record.profile
    run_dir = Path(ckpt.path).parent.parent
    now = time.time()
    return {
        "format": 1,
        "kind": kind,
        "run_id": record.id,
        "run_name": record.name,
        "run_dir": str(run_dir),
        "checkpoint": {
            "step": ckpt.step,
            "selected_by": selected_by,
            "path": str(ckpt.path),
            **{k: ckpt.marker.get(k) for k in ("epoch", "train_loss", "eval_loss")},
        },
        "base_model": {"id": p.model.base, "revision": p.model.revision or None},
        "adapter": p.method.adapter,
        "method": p.method.method,
        "precision": precision,
        "dataset": {
            "path": record.dataset_path,
            "format": record.dataset_format,
            "fingerprint": record.dataset_fingerprint,
            "train_rows": record.train_rows,
            "eval_rows": record.eval_rows,
        },
        "loss_masking": record.loss_masking or None,
        "hyperparameters": hyperparameters(p),
        "gate": gate_entry(read_gate_summary(run_dir), ckpt.step),
        **({"gguf": gguf} if gguf else {}),
        "artifact_gate": artifact_gate,
        "status": "failed" if (artifact_gate or {}).get("verdict") == "fail" else "ok",
        "warnings": list(warnings),
        "notes": (
            [
                "QLoRA trained against a 4-bit base; this merge uses the unquantised base, "
                "so outputs can differ slightly from the gate's"
            ]
            if kind in ("merged", "gguf") and p.method.adapter == "qlora"
            else []
        ),
        "files": files,
        "tunedeck_version": VERSION,
        "created": round(now, 3),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
