"""Everything checked before a run directory exists: profile, data, model, tokenizer, chat template.

A failure here is one clear message and no run; nothing heavy is loaded beyond the tokenizer and
the model's config.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import Hint, Profile, hints, load_profile
from .run_record import RunRecord, write_run_record
from .run_store import create_run_dir, sanitize_name


class PreflightError(ValueError):
    pass


@dataclass
class Preflight:
    profile: Profile
    record_fields: dict
    hints: list[Hint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(profile_ref: str, data: str | None, overrides: list[str], workspace: Path | None = None,
          check_model: bool = True) -> Preflight:
    from .dataset import DatasetError

    profile = load_profile(profile_ref, overrides, workspace=workspace)
    if data:
        profile.data.path = data
    if not profile.data.path:
        raise PreflightError("no training data: pass --data PATH or set data.path in the profile")
    profile.data.path = str(Path(profile.data.path).expanduser().resolve()) if Path(profile.data.path).expanduser().exists() else profile.data.path
    if profile.data.eval_file:
        profile.data.eval_file = str(Path(profile.data.eval_file).expanduser().resolve())
    for key in ("golden", "safety", "general"):  # the engine runs from the run directory
        value = getattr(profile.gate, key)
        if value:
            setattr(profile.gate, key, str(Path(value).expanduser().resolve()))
    base = Path(profile.model.base).expanduser()
    if base.exists():
        profile.model.base = str(base.resolve())
    from .throughput import check_available
    from .train import prepare_data

    missing = check_available(profile)
    if missing:
        raise PreflightError("; ".join(missing))

    try:
        prepared = prepare_data(profile)
    except DatasetError as e:
        raise PreflightError(str(e)) from None
    if profile.gate.when != "never":
        from .eval_sets import EvalSetError, profile_sets

        try:
            profile_sets(profile.gate)  # a broken eval set fails now, not after hours of training
        except EvalSetError as e:
            raise PreflightError(str(e)) from None
    pre = Preflight(profile, {}, hints(profile, train_rows=len(prepared.train_rows)))
    if prepared.skipped:
        shown = ", ".join(map(str, prepared.skipped[:10])) + (" ..." if len(prepared.skipped) > 10 else "")
        pre.warnings.append(f"{len(prepared.skipped)} invalid rows skipped (data.on_invalid = 'skip'): lines {shown}")
    if not prepared.eval_rows:
        pre.warnings.append("no validation split (data.val_fraction = 0 and no eval_file): overfitting will go unseen")
    if check_model:
        from .model_loading import check_model_config, load_tokenizer
        from .train import uses_assistant_only_loss

        check_model_config(profile)
        tokenizer = load_tokenizer(profile)
        conversational = "messages" in prepared.train_rows[0] or prepared.format == "preference"
        if conversational and not tokenizer.chat_template:
            raise PreflightError(f"model.base: {profile.model.base} has no chat template but the data is conversational "
                                 f"({prepared.format}); set model.chat_template to a Jinja template file")
        if (profile.data.assistant_only_loss == "auto" and "messages" in prepared.train_rows[0]
                and not uses_assistant_only_loss(profile, prepared.train_rows, tokenizer)):
            pre.warnings.append("the chat template has no {% generation %} markers: loss is computed on all tokens, "
                                "not only the assistant's")
    pre.record_fields = dict(base_model=profile.model.base, dataset_path=profile.data.path,
                             dataset_format=prepared.format, dataset_fingerprint=prepared.fingerprint,
                             rows=len(prepared.train_rows) + len(prepared.eval_rows),
                             train_rows=len(prepared.train_rows), eval_rows=len(prepared.eval_rows),
                             skipped_rows=prepared.skipped, profile_source=str(profile_ref))
    return pre


def create_run(pre: Preflight, workspace: Path, name: str | None) -> Path:
    name = sanitize_name(name or Path(pre.profile.data.path).stem or "run")
    run_dir = create_run_dir(workspace, name)
    from . import contract as C
    from .run_store import write_status

    record = RunRecord(id=run_dir.name, name=name, profile=pre.profile,
                       command=" ".join(shlex.quote(a) for a in ["tunedeck", *sys.argv[1:]]), **pre.record_fields)
    write_run_record(run_dir, record)
    write_status(run_dir, state=C.QUEUED, name=name, id=run_dir.name, base_model=record.base_model,
                 method=pre.profile.method.method, adapter=pre.profile.method.adapter, created=record.created)
    return run_dir
