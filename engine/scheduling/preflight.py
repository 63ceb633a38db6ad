"""Everything checked before a run directory exists: profile, data, model, tokenizer, chat template.

A failure here is one clear message and no run; nothing heavy is loaded beyond the tokenizer and
the model's config.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.config.profile_hints import Hint, hints
from tunedeck.engine.config.profile_loading import load_profile
from tunedeck.engine.config.profile_schema import Profile, data_paths, make_paths_absolute
from tunedeck.engine.data.kto import kto_balance_warning
from tunedeck.engine.gate.eval_inputs import gate_sets_named
from tunedeck.engine.models.gguf_base import gguf_notice
from tunedeck.engine.run.run_record import RunRecord, write_run_record
from tunedeck.engine.run.store import create_run_dir, sanitize_name


class PreflightError(ValueError):
    pass


@dataclass
class Preflight:
    profile: Profile
    record_fields: dict
    hints: list[Hint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    data_rows: dict | None = None  # engine/data/versions.py: files, row hashes, eval set examples


def run_preflight(
    profile_ref: str,
    data: str | list[str] | None,
    overrides: list[str],
    workspace: Path | None = None,
    check_model: bool = True,
) -> Preflight:
    from tunedeck.engine.data.dataset import DatasetError

    profile = load_profile(profile_ref, overrides, workspace=workspace)
    if data:
        profile.data.path = data if isinstance(data, str) or len(data) > 1 else data[0]
    if not profile.data.path:
        raise PreflightError("no training data: pass --data PATH or set data.path in the profile")
    make_paths_absolute(profile)  # the engine runs from the run directory
    gguf_source = checked_gguf_source(profile) if check_model else None  # an unreadable GGUF stops before data loads
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.training.throughput import check_available

    missing = check_available(profile)
    from tunedeck.engine.observe.tracking import missing_message

    if missing_message(profile.tracking.report_to):  # a tracker that cannot even start is the user's to fix now
        missing.append(missing_message(profile.tracking.report_to))
    if missing:
        raise PreflightError("; ".join(missing))

    try:
        prepared = prepare_data(profile)
    except DatasetError as e:
        raise PreflightError(str(e)) from None
    sets = []
    if profile.gate.when != "never":
        from tunedeck.engine.gate.eval_sets import EvalSetError, profile_sets

        try:
            sets = profile_sets(profile.gate)  # a broken eval set fails now, not after hours of training
        except EvalSetError as e:
            raise PreflightError(str(e)) from None
    from tunedeck.engine.data.versions import data_rows_record

    files = data_paths(profile.data) + ([profile.data.eval_file] if profile.data.eval_file else [])
    data_rows = data_rows_record(files, prepared.train_rows, prepared.eval_rows, sets)
    if profile.method.method == "kto" and profile.optim.batch_size < 2:
        raise PreflightError(
            "optim.batch_size: KTO needs at least 2 rows per batch (it estimates its KL term from "
            f"the other rows of the batch), not {profile.optim.batch_size}"
        )
    pre = Preflight(profile, {}, hints(profile), data_rows=data_rows)
    balance = kto_balance_warning(prepared.train_rows) if prepared.format == "kto" else None
    if balance:
        pre.warnings.append(balance)
    if prepared.skipped:
        shown = ", ".join(map(str, prepared.skipped[:10])) + (" ..." if len(prepared.skipped) > 10 else "")
        pre.warnings.append(f"{len(prepared.skipped)} invalid rows skipped (data.on_invalid = 'skip'): lines {shown}")
    if not prepared.eval_rows:
        pre.warnings.append(no_heldout_warning(profile, prepared))
        if profile.gate.when != "never" and not gate_sets_named(profile):
            pre.warnings.append(
                "the eval gate will be skipped: no eval set in [gate] (golden, safety, general) and no "
                "held-out split to score; name one with gate.golden"
            )
    if prepared.ignored_columns:
        pre.warnings.append("columns not used for training (ignored): " + ", ".join(prepared.ignored_columns))
    pre.warnings += prepared.data_warnings
    if profile.method.method == "grpo":  # rewards parsed by the gate's check registry, against the data's references
        from tunedeck.engine.scheduling.grpo_preflight import GrpoPreflightError, check_rewards

        try:
            check_rewards(profile, prepared, profile_ref, overrides, workspace)
        except GrpoPreflightError as e:
            raise PreflightError(str(e)) from None
    gguf = None
    if check_model:
        from tunedeck.engine.models.model_loading import check_model_config, load_tokenizer

        gguf = gguf_base_of(profile, gguf_source)
        if gguf is not None:
            pre.warnings.append(gguf_notice(gguf.source))
        check_model_config(profile)
        tokenizer = load_tokenizer(profile)
        first = prepared.train_rows[0]
        conversational = "messages" in first or prepared.format == "preference" or isinstance(first.get("prompt"), list)
        if conversational and not tokenizer.chat_template:
            raise PreflightError(
                f"model.base: {profile.model.base} has no chat template but the data is conversational "
                f"({prepared.format}); set model.chat_template to a Jinja template file"
            )
        if profile.method.method == "grpo":  # GRPO trains on sampled completions: no masks, prompts to render
            from tunedeck.engine.scheduling.grpo_preflight import GrpoPreflightError, check_prompts

            try:
                masking = check_prompts(profile, prepared, tokenizer, pre.warnings)
            except GrpoPreflightError as e:
                raise PreflightError(str(e)) from None
        else:
            masking = check_masks(profile, prepared, tokenizer, pre.warnings)
    pre.record_fields = dict(
        base_model=profile.model.base,
        dataset_path=" + ".join(data_paths(profile.data)),
        dataset_format=prepared.format,
        dataset_fingerprint=prepared.fingerprint,
        rows=len(prepared.train_rows) + len(prepared.eval_rows),
        train_rows=len(prepared.train_rows),
        eval_rows=len(prepared.eval_rows),
        skipped_rows=prepared.skipped,
        profile_source=str(profile_ref),
    )
    if check_model:
        pre.record_fields["loss_masking"] = masking
    if gguf is not None:
        pre.record_fields.update(gguf_source=str(gguf.source), gguf_sha256=gguf.sha256, gguf_folder=str(gguf.folder))
    return pre


def checked_gguf_source(profile: Profile) -> Path | None:
    """The .gguf file model.base names, checked (readable, an architecture transformers loads) before
    anything else loads; None when model.base is not a GGUF file."""
    from tunedeck.engine.models.gguf_base import GgufBaseError, checked_gguf_file, is_gguf_ref

    m = profile.model
    if not is_gguf_ref(m.base, m.gguf_file):
        return None
    try:
        return checked_gguf_file(m.base, m.gguf_file)
    except GgufBaseError as e:
        raise PreflightError(str(e)) from None


def gguf_base_of(profile: Profile, source: Path | None):
    """A GGUF base de-quantised (once, cached) and frozen into the profile as that HF folder, so the engine,
    gate, export and playground load an ordinary model; a base that already is such a folder (the frozen
    profile of `--from`) keeps its provenance. None for any other base."""
    from tunedeck.engine.models.gguf_base import GgufBaseError, cached_gguf, materialize_gguf

    if source is None:
        return cached_gguf(profile.model.base) if Path(profile.model.base).is_dir() else None
    try:
        gguf = materialize_gguf(source)
    except GgufBaseError as e:
        raise PreflightError(str(e)) from None
    profile.model.base, profile.model.gguf_file = str(gguf.folder), ""
    return gguf


def check_masks(profile: Profile, prepared, tokenizer, warnings: list[str]) -> str:
    """Every row renders and masks under the model's template (else an error with its file line, or with
    on_invalid = "skip" a warning with the count); returns what the loss covers, in words."""
    from tunedeck.engine.data.loss_masks import (
        REWRITES,
        MaskEncoder,
        assistant_only_setting,
        describe_masking,
        resolve_apply_chat_template,
        strings_as_chat,
        unmaskable_rows,
    )

    d = profile.data
    if d.apply_chat_template == "auto":  # frozen as on/off: the engine and the gate then need no tokenizer to decide
        d.apply_chat_template = resolve_apply_chat_template("auto", tokenizer)
    if d.apply_chat_template == "on" and isinstance(prepared.train_rows[0].get("completion"), str):
        prepared.train_rows, prepared.eval_rows = (
            strings_as_chat(prepared.train_rows),
            strings_as_chat(prepared.eval_rows),
        )
        prepared.chat_from_strings = True
    encoder = MaskEncoder(tokenizer, assistant_only_setting(profile.data.assistant_only_loss))
    rows, where = prepared.train_rows + prepared.eval_rows, prepared.train_where + prepared.eval_where
    bad = unmaskable_rows(rows, where, encoder)
    rewrites = (
        d.assistant_only_loss == "auto"
        and profile.method.method == "sft"  # DPO/KTO rows always mask the prompt
        and any(REWRITES in b for b in bad)
    )
    if rewrites:
        # auto trains on every token rather than guess where the replies are, and says so; "on" refuses
        warnings.append(
            "the chat template rewrites earlier turns, so the assistant's replies cannot be masked "
            f"(first at {bad[0].split(': ')[0]}): training on every token, frozen in the run as "
            'data.assistant_only_loss = "off"; set it to "on" to refuse such data instead'
        )
        d.assistant_only_loss = "off"
        encoder = MaskEncoder(tokenizer, False)
        bad = unmaskable_rows(rows, where, encoder)
    if bad and profile.data.on_invalid == "error":
        more = f" (and {len(bad) - 3} more rows)" if len(bad) > 3 else ""
        raise PreflightError("; ".join(bad[:3]) + more + '; data.on_invalid = "skip" leaves such rows out')
    if bad:
        warnings.append(
            f"{len(bad)} rows the chat template cannot render are skipped (data.on_invalid = 'skip'); first: {bad[0]}"
        )
    words = describe_masking(prepared.train_rows, encoder, prepared.format)
    if rewrites:
        words = "all tokens: the chat template rewrites earlier turns, so the assistant's replies cannot be masked"
    if prepared.chat_from_strings:
        words += "; string prompt/completion rows are rendered with the chat template as a user turn and the reply"
    if words.startswith("all tokens") and (
        "messages" in prepared.train_rows[0] or "completion" in prepared.train_rows[0]
    ):
        warnings.append(f"the loss covers {words}")
    return words


def no_heldout_warning(profile: Profile, prepared) -> str:
    """Why this run has no held-out rows: the setting, a held-out file without valid rows, or too few rows to split."""
    d = profile.data
    if d.eval_file:
        why = f"the held-out file {d.eval_file} has no valid rows"
    elif d.val_fraction == 0:
        why = "data.val_fraction = 0 and no data.eval_file"
    else:
        n = len(prepared.train_rows)
        why = (
            f"only {n} valid row{'s' if n != 1 else ''}: too few to hold any out at "
            f"data.val_fraction = {d.val_fraction:g}"
        )
    stopping = (
        "; checkpoints.early_stopping_patience has no validation loss to watch, so it never stops early"
        if profile.checkpoints.early_stopping_patience
        else ""
    )
    return f"no held-out split ({why}): no validation loss, so overfitting will go unseen{stopping}"


def create_run(pre: Preflight, workspace: Path, name: str | None) -> Path:
    name = sanitize_name(name or Path(data_paths(pre.profile.data)[0]).stem or "run")
    run_dir = create_run_dir(workspace, name)
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.status_writer import write_status

    record = RunRecord(
        id=run_dir.name,
        name=name,
        profile=pre.profile,
        command=" ".join(shlex.quote(a) for a in ["tunedeck", *sys.argv[1:]]),
        **pre.record_fields,
    )
    write_run_record(run_dir, record)
    if pre.data_rows is not None:
        from tunedeck.engine.run.data_rows import write_data_rows

        write_data_rows(run_dir, pre.data_rows)
    write_status(
        run_dir,
        state=C.QUEUED,
        name=name,
        id=run_dir.name,
        base_model=record.base_model,
        method=pre.profile.method.method,
        adapter=pre.profile.method.adapter,
        created=record.created,
        **({"parent": record.parent} if record.parent else {}),
    )
    return run_dir
