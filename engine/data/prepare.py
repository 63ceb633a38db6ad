"""The data a run trains on: its files loaded, validated and split exactly as the launch did (same seed, same hash
split)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunedeck.engine.config.profile_schema import Profile, data_paths


@dataclass
class PreparedData:
    train_rows: list[dict]
    eval_rows: list[dict]
    format: str
    fingerprint: str
    skipped: list[int]
    ignored_columns: list[str] = field(default_factory=list)  # columns of the file that training does not read
    train_where: list[str] = field(default_factory=list)  # "file:line" of each train row, for messages
    eval_where: list[str] = field(default_factory=list)
    chat_from_strings: bool = False  # string prompt/completion rows rendered as chat (data.apply_chat_template)
    data_warnings: list[str] = field(default_factory=list)  # warning-severity problems of the files, one line per kind


def prepare_data(profile: Profile) -> PreparedData:
    """Load, validate and split the data exactly as the launch did (same seed, same hash split)."""
    from tunedeck.engine.data.dataset import DatasetError, load_dataset
    from tunedeck.engine.data.files import load_data_files
    from tunedeck.engine.data.split import fingerprint, split_indices

    d = profile.data
    loaded = load_data_files(data_paths(d), format=d.format, method=profile.method.method, on_invalid=d.on_invalid)
    rows = loaded.rows
    if d.eval_file:
        eval_loaded = load_dataset(d.eval_file, format=d.format, method=profile.method.method, on_invalid=d.on_invalid)
        if eval_loaded.error_count() and d.on_invalid == "error":
            raise DatasetError(eval_loaded.summary())
        train_rows, eval_rows = rows, eval_loaded.rows
        fp = fingerprint(rows, val_fraction=0.0, seed=profile.optim.seed, eval_rows=eval_rows)
        train_where = list(loaded.where)
        eval_where = [f"{d.eval_file}:{line}" for line in eval_loaded.lines]
    else:
        train_idx, eval_idx = split_indices(rows, d.val_fraction, profile.optim.seed)
        train_rows, eval_rows = [rows[i] for i in train_idx], [rows[i] for i in eval_idx]
        fp = fingerprint(rows, val_fraction=d.val_fraction, seed=profile.optim.seed)
        train_where = [loaded.where[i] for i in train_idx]
        eval_where = [loaded.where[i] for i in eval_idx]
    if not train_rows:
        raise DatasetError(f"{loaded.name}: no valid training rows left after validation and the split")
    grpo = profile.method.method == "grpo"  # GRPO's prompts: a row may be a string prompt without its answer
    strings = (
        any(isinstance(r.get("prompt"), str) for r in train_rows)
        if grpo
        else isinstance(train_rows[0].get("completion"), str)
    )
    chat_from_strings = strings and plain_rows_use_template(profile)
    if chat_from_strings and grpo:
        from tunedeck.engine.data.grpo_prompts import prompts_as_chat

        train_rows, eval_rows = prompts_as_chat(train_rows), prompts_as_chat(eval_rows)
    elif chat_from_strings:
        from tunedeck.engine.data.loss_masks import strings_as_chat  # the fingerprint above stays the file's own rows

        train_rows, eval_rows = strings_as_chat(train_rows), strings_as_chat(eval_rows)
    notes = loaded.warnings + (eval_loaded.warning_notes() if d.eval_file else [])
    return PreparedData(
        train_rows,
        eval_rows,
        loaded.format,
        fp,
        list(loaded.skipped),
        loaded.ignored_columns,
        train_where,
        eval_where,
        chat_from_strings,
        data_warnings=notes,
    )


def plain_rows_use_template(profile: Profile) -> bool:
    """data.apply_chat_template, resolved at launch to on/off; "auto" (a run record from before) asks the tokenizer."""
    setting = profile.data.apply_chat_template
    if setting == "auto":
        from tunedeck.engine.data.loss_masks import resolve_apply_chat_template
        from tunedeck.engine.models.model_loading import load_tokenizer

        setting = resolve_apply_chat_template(setting, load_tokenizer(profile))
    return setting == "on"
