"""N on a run (runs list, monitor, checkpoints): the new-run screen with the next run from it.

The engine writes the profile (engine/config/next_run.py: the run's frozen profile, extended, on its data
plus its fixes file); the screen opens on it and shows what changes against the parent as the form
is edited. Writing two small TOML files is quick, so it happens on the UI thread.
"""

from __future__ import annotations

from pathlib import Path


def open_next_run(app, run_dir: Path) -> None:
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.config.workspace import workspace_of

    from .engine_client import next_run
    from .screens.new_run import NewRunScreen

    run_dir = Path(run_dir)
    workspace = workspace_of(run_dir)  # the fixes and profiles of this workspace
    try:
        nxt = next_run(run_dir)
    except (ProfileError, OSError) as e:
        app.notify(f"Cannot start the next run from {run_dir.name}: {e}", title="Next run", severity="error")
        return
    app.push_screen(
        NewRunScreen(workspace, profile=nxt.profile_path.stem, parent=nxt, run_name=nxt.parent_name or None)
    )
