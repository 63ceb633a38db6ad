"""Per-example gate results on disk: evals/base.jsonl and evals/checkpoint-N.jsonl, one line per example.

A record holds everything needed to explain a verdict without the model:

  {"id": "golden:17", "set": "golden", "tags": ["task", "format"], "checkpoint": 800 (or "base"),
   "prompt": [...messages] or "raw text", "system_prompt": str or null (what replaced the system turn),
   "output": "...", "reference": "..." or null,
   "checks": [{"type": "json_valid", "pass": true, "reason": "valid JSON"}, ...],
   "pass": true/false/null (all evaluated checks passed; null: every check was skipped),
   "format_pass": true/false/null (null: not a format example),
   "latency_ms": 412.0, "new_tokens": 37, "key": "<hash of the eval sets and generation settings>"}

Files are replaced atomically; readers skip a line they cannot parse rather than fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import iter_jsonl, make_private_dir, write_text_atomic
from tunedeck.engine.run.gate_result import BASE

_CKPT_FILE = re.compile(r"^checkpoint-(\d+)\.jsonl$")


def parse_checkpoint(ref) -> int | str:
    """800, "800", "checkpoint-800" -> 800; "base" -> "base". ValueError otherwise."""
    if ref == BASE:
        return BASE
    if isinstance(ref, bool):
        raise ValueError(f"not a checkpoint: {ref!r}")
    if isinstance(ref, int):
        return ref
    text = str(ref).strip()
    if text.startswith(C.CHECKPOINT_PREFIX):
        text = text[len(C.CHECKPOINT_PREFIX) :]
    if not text.isdigit():
        raise ValueError(f"not a checkpoint: {ref!r} (expected a step such as 800, or 'base')")
    return int(text)


def label(checkpoint) -> str:
    ck = parse_checkpoint(checkpoint)
    return BASE if ck == BASE else f"{C.CHECKPOINT_PREFIX}{ck}"


def evals_dir(run_dir: Path) -> Path:
    return Path(run_dir) / C.EVALS_DIR


def records_path(run_dir: Path, checkpoint) -> Path:
    return evals_dir(run_dir) / f"{label(checkpoint)}.jsonl"


def write_records(run_dir: Path, checkpoint, records: list[dict]) -> Path:
    make_private_dir(evals_dir(run_dir))
    path = records_path(run_dir, checkpoint)
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_records(run_dir: Path, checkpoint) -> list[dict]:
    return [rec for rec in iter_jsonl(records_path(run_dir, checkpoint)) if isinstance(rec.get("id"), str)]


def evaluated_steps(run_dir: Path) -> list[int]:
    try:
        names = [p.name for p in evals_dir(run_dir).iterdir()]
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_CKPT_FILE.match, names) if m)
