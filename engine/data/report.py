"""The inspection report of a dataset, as plain data: format, problems, tokens, duplicates, leakage, split.

What `tunedeck inspect` prints (engine/commands/inspect.py) and the new-run screen's dataset pane shows.
Progress goes to a Progress: one (done, total) callback per named phase, or None for a silent phase;
PhaseCallback turns one function of (phase, done, total) into one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from tunedeck.engine.data.dataset import LoadedDataset, load_dataset
from tunedeck.engine.data.kto import kto_balance_warning
from tunedeck.engine.data.sources import hub_reachable
from tunedeck.engine.data.split import fingerprint, split_indices

REPORT_ORDER = (
    "path",
    "format",
    "method",
    "location",
    "rows",
    "valid_rows",
    "invalid_rows",
    "problems",
    "problem_counts",
    "errors",
    "warnings",
    "skipped",
    "ignored_columns",
    "labels",
    "method_note",
    "eval",
    "split",
    "fingerprint",
    "tokenizer",
    "tokens",
    "grpo",
    "plan",
    "duplicates",
    "near_duplicates",
    "leakage",
    "threshold",
    "duplicate_rows",
)


@dataclass
class ReportSettings:
    """What the report counts with: the data and model settings of a profile, or their command-line overrides."""

    method: str  # "auto": the data decides (preference -> dpo, kto -> kto, else sft)
    format: str
    max_seq_len: int
    val_fraction: float
    seed: int
    model: str | None
    chat_template: str
    assistant_only: str
    eval_path: str | None
    batch_size: int
    grad_accum: int
    epochs: float
    processes: int
    profile_method: str | None = None  # the method the --profile trains with, when one is given
    apply_chat_template: str = "auto"  # string prompt/completion rows through the chat template


class SettingsError(ValueError):
    """A mistake in the settings (command line, profile, chat template file): `tunedeck inspect` exits with
    status 2, one message."""


class Progress(Protocol):
    """Where a report's progress goes."""

    def phase(self, name: str) -> Callable[[int, int], None] | None:
        """The (done, total) callback of the phase starting now, or None to report nothing for it."""


class PhaseCallback:
    """A Progress that calls one function with (phase, done, total); silent without one."""

    def __init__(self, report: Callable[[str, int, int], None] | None = None):
        self.report = report

    def phase(self, name: str) -> Callable[[int, int], None] | None:
        report = self.report
        return (lambda done, total: report(name, done, total)) if report else None


def load_tokenizer(model: str | None, chat_template: str = "") -> tuple[Any, str | None]:
    """(tokenizer, None) or (None, why not)."""
    if not model:
        return None, "no model given (--model or --profile): token statistics skipped"
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        local = Path(model).expanduser()
        if not local.exists() and (local.is_absolute() or model.startswith((".", "~"))):
            return None, f"{model}: no such model folder; token statistics skipped"
        if local.exists():
            tok = AutoTokenizer.from_pretrained(str(local), trust_remote_code=False)
        else:
            try:  # the hub cache first: no network round trip when it is there
                tok = AutoTokenizer.from_pretrained(model, trust_remote_code=False, local_files_only=True)
            except Exception:
                if not hub_reachable():
                    return None, (
                        f"{model!r} is not a local folder, is not in the hub cache, and the hub cannot be "
                        "reached; token statistics skipped"
                    )
                tok = AutoTokenizer.from_pretrained(model, trust_remote_code=False)
    except Exception as e:  # offline hub id, missing files, unsupported tokenizer: report, don't crash
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"cannot load a tokenizer from {model!r} ({first}); token statistics skipped"
    if chat_template:
        try:
            tok.chat_template = Path(chat_template).expanduser().read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"{chat_template}: cannot read the chat template: {e.strerror or e}") from None
    return tok, None


def _problems(ds: LoadedDataset) -> dict:
    return {
        "problems": [p.to_dict() for p in ds.problems],
        "problem_counts": ds.counts(),
        "errors": ds.error_count(),
        "warnings": ds.warning_count(),
        "skipped": ds.skipped,
        "ignored_columns": ds.ignored_columns,
    }


def _labels(ds: LoadedDataset) -> dict | None:
    """KTO: desirable and undesirable rows, with a warning when one side is under 10%."""
    counts = ds.label_counts()
    if counts is None:
        return None
    return {**counts, "warning": kto_balance_warning(ds.rows)}


def dataset_report(path: str, s: ReportSettings, threshold: float = 0.8, progress: Progress | None = None) -> dict:
    """Everything `tunedeck inspect` reports about the dataset at `path`, as plain data. Raises SettingsError or
    DatasetError for user mistakes."""
    return report_and_token_stats(path, s, threshold, progress)[0]


def report_and_token_stats(
    path: str, s: ReportSettings, threshold: float = 0.8, progress: Progress | None = None
) -> tuple[dict, Any]:
    """The report and the TokenStats behind its token figures (None when skipped), for a reader that keeps
    the per-example lengths (the app's dataset pane re-truncates without re-tokenising)."""
    show = progress if progress is not None else PhaseCallback()
    ds = load_dataset(path, format=s.format, method=s.method, progress=show.phase("reading " + Path(path).name))
    method = "grpo" if s.method == "grpo" else ds.method  # GRPO's prompts read as SFT formats: the request decides
    report: dict[str, Any] = {
        "path": str(path),
        "format": ds.format,
        "method": method,
        "location": ds.unit,
        "rows": ds.total_rows,
        "valid_rows": len(ds.rows),
        "invalid_rows": ds.total_rows - len(ds.rows),
        **_problems(ds),
    }
    if ds.label_counts() is not None:
        report["labels"] = _labels(ds)
    if s.profile_method and s.profile_method != method:
        report["method_note"] = (
            f"the profile trains with method {s.profile_method}, but this is {ds.format} data "
            f'for method {ds.method}: set method.method = "{ds.method}"'
        )
    ev = None
    if s.eval_path:
        ev = load_dataset(
            s.eval_path,
            format=s.format if s.format != "auto" else ds.format,
            method=method,
            progress=show.phase("reading " + Path(s.eval_path).name),
        )
        report["eval"] = {
            "path": s.eval_path,
            "format": ev.format,
            "rows": ev.total_rows,
            "valid_rows": len(ev.rows),
            **_problems(ev),
        }
    # The split, fingerprint and duplicates (Python and numpy) run on a thread while the tokenizer's
    # batch encoder (native code, GIL released) works, so their time mostly hides behind it.
    with ThreadPoolExecutor(max_workers=1) as worker:
        side = worker.submit(_split_and_duplicates, report, ds, ev, s, threshold, show)
        stats = _token_stats(report, ds, s, show)
        train_idx = side.result()
    if stats is not None:
        train_lines = [ds.lines[i] for i in train_idx]
        report["plan"] = (
            stats.subset(train_lines).training_plan(s.batch_size, s.grad_accum, s.processes, s.epochs).to_dict()
        )
    first = [k for k in REPORT_ORDER if k in report]  # the two threads filled it in either order
    return {**{k: report[k] for k in first}, **{k: v for k, v in report.items() if k not in first}}, stats


def _split_and_duplicates(
    report: dict, ds: LoadedDataset, ev: LoadedDataset | None, s: ReportSettings, threshold: float, show: Progress
) -> list[int]:
    """Fill in split, fingerprint, duplicates and leakage; return the train indices."""
    from tunedeck.engine.data.duplicates import find_duplicates

    if ev is not None:
        train_idx, eval_idx = list(range(len(ds.rows))), []
        report["split"] = {"train": len(ds.rows), "eval": len(ev.rows), "source": s.eval_path, "seed": s.seed}
        report["fingerprint"] = fingerprint(ds.rows, val_fraction=0.0, seed=s.seed, eval_rows=ev.rows)
    else:
        train_idx, eval_idx = split_indices(ds.rows, s.val_fraction, s.seed)
        report["split"] = {
            "train": len(train_idx),
            "eval": len(eval_idx),
            "source": "split",
            "val_fraction": s.val_fraction,
            "seed": s.seed,
            "eval_lines": [ds.lines[i] for i in eval_idx][:1000],
        }
        report["fingerprint"] = fingerprint(ds.rows, val_fraction=s.val_fraction, seed=s.seed)
    dup = find_duplicates(
        ds.rows,
        ds.lines,
        eval_rows=ev.rows if ev else None,
        eval_lines=ev.lines if ev else None,
        eval_indices=None if ev else eval_idx,
        threshold=threshold,
        progress=show.phase("duplicates"),
    )
    report.update(dup.to_dict())
    return train_idx


def _token_stats(report: dict, ds: LoadedDataset, s: ReportSettings, show: Progress):
    """Fill in tokenizer and tokens; return the TokenStats, or None when skipped."""
    from tunedeck.engine.data.loss_masks import (
        REWRITES,
        MaskEncoder,
        assistant_only_setting,
        describe_masking,
        resolve_apply_chat_template,
        strings_as_chat,
    )
    from tunedeck.engine.data.token_stats import TokenizerError, compute_token_stats

    tok, why = load_tokenizer(s.model, s.chat_template)
    report["tokenizer"] = {"model": s.model, "loaded": tok is not None, "note": why}
    report["tokens"] = report["plan"] = None
    if report["method"] == "grpo":  # GRPO samples its own completions: no loss masks; what its prompts are instead
        from tunedeck.engine.data.grpo_report import grpo_summary

        report["grpo"] = grpo_summary(ds.rows, ds.lines, tok, s.apply_chat_template, s.max_seq_len)
        return None
    if tok is None:
        return None
    if not ds.rows:
        report["tokenizer"]["note"] = "no valid rows: token statistics skipped"
        return None
    assistant_only = assistant_only_setting(s.assistant_only)
    rows, strings_rendered = ds.rows, False
    if isinstance(rows[0].get("completion"), str) and resolve_apply_chat_template(s.apply_chat_template, tok) == "on":
        rows, strings_rendered = strings_as_chat(rows), True
    encoder = MaskEncoder(tok, assistant_only)
    try:
        stats = compute_token_stats(
            rows,
            tok,
            max_seq_len=s.max_seq_len,
            assistant_only=assistant_only,
            lines=ds.lines,
            progress=show.phase("tokenising"),
            mask_encoder=encoder,
        )
        if (
            assistant_only
            and s.assistant_only == "auto"
            and ds.method == "sft"
            and any(REWRITES in f["message"] for f in stats.failed)
        ):
            # auto: replies that can be found neither incrementally nor in one render: every token trains, said out
            # loud; "on" refuses such data (DPO and KTO always mask the prompt: their rows stay errors)
            encoder = MaskEncoder(tok, False)
            stats = compute_token_stats(
                rows, tok, max_seq_len=s.max_seq_len, assistant_only=False, lines=ds.lines, mask_encoder=encoder
            )
            stats.notes.insert(
                0,
                "the chat template rewrites earlier turns, and the assistant replies could not be "
                "located in one render either, so they cannot be masked: counting every token as "
                'trainable (data.assistant_only_loss = "auto"; "on" refuses such data)',
            )
            assistant_only = False
    except TokenizerError as e:
        report["tokenizer"]["note"] = f"{s.model}: {e}; token statistics skipped"
        return None
    if strings_rendered:
        stats.notes.append(
            "string prompt/completion rows are rendered with the chat template as a user turn and the "
            'reply (data.apply_chat_template = "off" keeps the raw strings)'
        )
    elif isinstance(rows[0].get("completion"), str):
        stats.notes.append("string prompt/completion rows are used as raw strings: no chat template is applied")
    report["tokens"] = stats.to_dict()
    report["tokens"]["masking"] = describe_masking(rows, encoder, ds.format)
    add_template_errors(report, stats.failed)
    return stats


def add_template_errors(report: dict, failed: list[dict]) -> None:
    """Rows the chat template cannot render or mask are errors, like any invalid row: training refuses them
    (or skips them with data.on_invalid = "skip")."""
    for f in failed:
        report["problems"].append(
            {
                "category": "template_error",
                "line": f["line"],
                "message": f["message"],
                "severity": "error",
                "field": "messages",
            }
        )
    if failed:
        report["errors"] += len(failed)
        report["problem_counts"]["template_error"] = len(failed)
