"""From failures to data: corrected eval examples as training rows in `<workspace>/fixes/<run>.jsonl`.

A fix is one row in the canonical layout of the run's training data, so `tunedeck run --from RUN`
can train the data files and the fixes file as one dataset (engine/data/files.py checks they train
the same way): chat data gets {"messages": prompt + the corrected answer}, string prompt/completion
data {"prompt", "completion"}, preference data a pair whose chosen answer is the correction and
whose rejected one is what the checkpoint wrote, KTO data the correction labelled desirable, plain
text the prompt followed by the answer. Fixing an example again replaces its earlier row (same
prompt), so the file never holds two answers to one prompt. The training data itself is never written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tunedeck.engine.config.workspace import fixes_path
from tunedeck.engine.data.split import canonical_json
from tunedeck.engine.run.atomic_io import write_text_atomic


class FixError(ValueError):
    """A fix that cannot be made; str() says why."""


def data_kind(method: str, dataset_format: str, prompt) -> str:
    """The layout fixes take for a run: from its method and data format (and, for prompt/completion
    data, whether the prompt is a string or messages)."""
    if method == "dpo" or dataset_format == "preference":
        return "preference"
    if method == "kto" or dataset_format == "kto":
        return "kto"
    if dataset_format == "text":
        return "text"
    if dataset_format == "prompt_completion" and isinstance(prompt, str):
        return "prompt_completion"
    return "messages"


def _messages(prompt) -> list[dict]:
    if isinstance(prompt, list):
        return [
            {"role": m.get("role", "user"), "content": m.get("content", "")}
            if isinstance(m, dict)
            else {"role": "user", "content": str(m)}
            for m in prompt
        ]
    return [{"role": "user", "content": "" if prompt is None else str(prompt)}]


def _prompt_text(prompt) -> str:
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in prompt)
    return "" if prompt is None else str(prompt)


def fix_row(record: dict, answer: str, kind: str) -> dict:
    """The training row that teaches `answer` for the record's prompt, in the layout `kind`."""
    if not answer.strip():
        raise FixError("the answer is empty: nothing to add")
    prompt = record.get("prompt")
    if kind == "messages":
        return {"messages": _messages(prompt) + [{"role": "assistant", "content": answer}]}
    if kind == "prompt_completion":
        return {"prompt": _prompt_text(prompt), "completion": answer}
    if kind == "preference":
        rejected = record.get("output")
        if not isinstance(rejected, str) or rejected.strip() == answer.strip():
            raise FixError(
                "a preference fix needs the checkpoint's output as the rejected answer, and it equals the "
                "correction (or there is none)"
            )
        return {
            "prompt": _messages(prompt),
            "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    if kind == "kto":
        return {"prompt": _messages(prompt), "completion": [{"role": "assistant", "content": answer}], "label": True}
    if kind == "text":
        return {"text": _prompt_text(prompt) + answer}
    raise FixError(f"unknown data layout {kind!r}")


def _prompt_key(row: dict) -> str:
    """What identifies the example a row fixes: everything but the answer."""
    if "messages" in row:
        return canonical_json({"messages": row["messages"][:-1]})
    if "prompt" in row:
        return canonical_json({"prompt": row["prompt"]})
    return canonical_json(row)


def add_fix(workspace: Path, run_id: str, row: dict) -> tuple[Path, bool, int]:
    """Add (or replace, for the same prompt) a fix; returns (file, replaced, rows now in the file)."""
    path = fixes_path(workspace, run_id)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    key, replaced, out = _prompt_key(row), False, []
    for line in lines:
        if not line.strip():
            continue
        try:
            same = _prompt_key(json.loads(line)) == key
        except (ValueError, TypeError, AttributeError, IndexError):
            same = False  # a line edited by hand into something else: kept as it is, pre-flight will say
        if same:
            if not replaced:
                out.append(json.dumps(row, ensure_ascii=False))
            replaced = True
            continue
        out.append(line)
    if not replaced:
        out.append(json.dumps(row, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(out) + "\n")
    return path, replaced, len(out)


def prefill(record: dict) -> str:
    """What the editor opens with: the reference when there is one, else the checkpoint's output."""
    ref = record.get("reference")
    if isinstance(ref, str) and ref:
        return ref
    out = record.get("output")
    return out if isinstance(out, str) else ""


def editor_command() -> list[str]:
    import shlex

    return shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")


def export_examples(path: Path, examples: list[dict]) -> Path:
    """Write examples (one JSON object each) to a JSONL file for review outside tunedeck."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    return path
