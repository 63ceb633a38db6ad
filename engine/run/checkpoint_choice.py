"""Which checkpoint a command means: a step, or "best", "chosen", "latest", or none (the one the run ships).

Export, the playground and the commands that take `--checkpoint` read the same words the same way.
"""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary, read_gate_summary
from tunedeck.engine.run.store import Checkpoint, list_checkpoints

SELECTORS = ("best", "chosen", "latest")


class CheckpointChoiceError(ValueError):
    """No such checkpoint, or not a complete one; str() says which exist and what to do."""


def _parse_which(which) -> int | str | None:
    if which is None or isinstance(which, int):
        return which
    text = str(which).strip().lower()
    if text in SELECTORS:
        return text
    text = text.removeprefix(C.CHECKPOINT_PREFIX)
    if text.isdigit():
        return int(text)
    raise CheckpointChoiceError(f"--checkpoint: expected a step number, best, chosen or latest, got {which!r}")


def _gate_step(run_dir: Path, summary: GateSummary | None, key: str) -> int | None:
    if summary is None:
        raise CheckpointChoiceError(
            f"--checkpoint {key}: the gate has not run on {run_dir.name}; "
            f"run `tunedeck eval {run_dir.name}` or name a step"
        )
    step = summary.best if key == "best" else summary.chosen.checkpoint if summary.chosen is not None else None
    if step is None and key == "best":
        raise CheckpointChoiceError(
            f"--checkpoint best: the gate passed no checkpoint ({summary.sentence or 'no verdict'}); "
            "name a step with --checkpoint N to export one anyway"
        )
    if step is None:
        raise CheckpointChoiceError(
            "--checkpoint chosen: no checkpoint has been chosen for this run (choose one in the app's "
            "checkpoints screen), or use --checkpoint best or N"
        )
    return int(step)


def select_checkpoint(run_dir: Path, which=None) -> tuple[Checkpoint, str]:
    """(the complete checkpoint to export, why it was picked). `which`: a step, "best", "chosen", "latest"
    or None: the gate's chosen checkpoint, else its best, else the latest complete one."""
    run_dir = Path(run_dir)
    which = _parse_which(which)
    found = {c.step: c for c in list_checkpoints(run_dir)}
    complete = sorted(s for s, c in found.items() if c.complete)
    have = ", ".join(map(str, complete)) or "none"
    summary = read_gate_summary(run_dir)
    if which is None:  # the checkpoint the run ships (a person's choice, else the gate's best), else the latest
        if summary is not None and summary.shipped is not None:
            which, how = summary.shipped, "chosen" if summary.chosen is not None else "best"
        else:
            which, how = "latest", "latest"
    elif isinstance(which, int):
        how = "step"
    else:
        how = which
    if which == "latest":
        if not complete:
            raise CheckpointChoiceError(
                f"run {run_dir.name} has no complete checkpoint to export"
                + (f" (checkpoint-{max(found)} is incomplete: an interrupted save)" if found else "")
            )
        which = complete[-1]
    elif isinstance(which, str):
        which = _gate_step(run_dir, summary, which)
    ckpt = found.get(which)
    label = f"checkpoint-{which}" + {"best": " (the gate's best checkpoint)", "chosen": " (the chosen checkpoint)"}.get(
        how, ""
    )
    if ckpt is None:
        raise CheckpointChoiceError(f"{label} does not exist (pruned, or never saved); complete checkpoints: {have}")
    if not ckpt.complete:
        raise CheckpointChoiceError(
            f"{label} is incomplete (an interrupted save: no {C.CHECKPOINT_MARKER}); complete checkpoints: {have}"
        )
    return ckpt, how
