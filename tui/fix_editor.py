"""`a` on the examples and review screens: correct an example's answer in $EDITOR and add it to the run's fixes.

The app suspends while the editor owns the terminal (App.suspend); where it cannot (a headless test
driver) the editor runs without the terminal. The answer file holds the answer alone, prefilled
with the reference or the checkpoint's output; an empty file (or a failed editor) adds nothing.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from textual.app import SuspendNotSupported


def edit_text(app, text: str, suffix: str = ".txt") -> str | None:
    """The text after the user edited it in $VISUAL/$EDITOR (vi), or None when the editor failed."""
    from tunedeck.engine.data.fixes import editor_command

    with tempfile.TemporaryDirectory(prefix="tunedeck-fix-") as tmp:
        path = Path(tmp) / f"answer{suffix}"
        path.write_text(text, encoding="utf-8")
        cmd = editor_command() + [str(path)]
        try:
            try:
                with app.suspend():
                    rc = subprocess.run(cmd).returncode
            except SuspendNotSupported:
                rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True).returncode
        except OSError as e:
            app.notify(f"Cannot start the editor {cmd[0]!r}: {e.strerror or e}; set $EDITOR", severity="error")
            return None
        if rc != 0:
            app.notify(f"The editor {cmd[0]!r} exited with status {rc}: nothing added.", severity="warning")
            return None
        edited = path.read_text(encoding="utf-8", errors="replace")
    return edited[:-1] if edited.endswith("\n") and not text.endswith("\n") else edited  # editors add a final newline


def add_fix_from_record(app, run_dir: Path, record: dict | None) -> Path | None:
    """Open the record's answer in the editor and add the corrected example to the run's fixes file."""
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.config.workspace import workspace_of
    from tunedeck.engine.data.fixes import FixError, add_fix, data_kind, fix_row, prefill
    from tunedeck.engine.run.run_record import load_run_record

    if not record:
        app.notify("No example selected.", severity="warning")
        return None
    run_dir = Path(run_dir)
    try:
        rec = load_run_record(run_dir)
    except ProfileError as e:
        app.notify(str(e), severity="error")
        return None
    kind = data_kind(rec.profile.method.method, rec.dataset_format, record.get("prompt"))
    answer = edit_text(app, prefill(record))
    if answer is None:
        return None
    try:
        row = fix_row(record, answer, kind)
        path, replaced, n = add_fix(workspace_of(run_dir), run_dir.name, row)
    except FixError as e:
        app.notify(f"{record.get('id')}: {e}", severity="warning")
        return None
    except OSError as e:
        app.notify(f"{record.get('id')}: the fix was NOT saved ({e})", severity="error")
        return None
    from .keymap import key_name

    n_key = key_name(app, "checkpoints.next_run", "N")
    app.notify(
        f"{record.get('id')}: {'replaced its earlier fix' if replaced else 'added'} in {path} ({n} fixes). "
        f"{n_key} on the run starts the next run on the data plus these fixes.",
        title="Fix saved",
    )
    return path
