"""The errors a command prints as one line (no traceback): UserError and every engine error meant for the user."""

from __future__ import annotations

from tunedeck.engine.run.store import RunLocked, RunNotFound


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never with a traceback."""


def user_errors() -> tuple:
    """Every exception type a command reports as one line."""
    from tunedeck.engine.config.profile_loading import ProfileError
    from tunedeck.engine.data.dataset import DatasetError
    from tunedeck.engine.export.checkpoint_export import ExportError
    from tunedeck.engine.gate.eval_sets import EvalSetError
    from tunedeck.engine.gate.rules import GateError
    from tunedeck.engine.models.model_loading import ModelLoadError
    from tunedeck.engine.scheduling.preflight import PreflightError
    from tunedeck.engine.scheduling.run_queue import GpuBusy
    from tunedeck.engine.scheduling.sweep import SweepError

    return (
        UserError,
        ProfileError,
        ModelLoadError,
        PreflightError,
        RunNotFound,
        RunLocked,
        DatasetError,
        EvalSetError,
        GateError,
        ExportError,
        GpuBusy,
        SweepError,
    )
