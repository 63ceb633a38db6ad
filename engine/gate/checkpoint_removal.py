"""Deleting a checkpoint by hand, with the rules that keep a run's decision intact.

Never deleted: the checkpoint a person chose ([chosen] in evals/gate.json), the gate's best one, and
any checkpoint while an engine works on the run (training, resuming or evaluating: it may be loading
it). The completion marker goes first, so a deletion cut short leaves an incomplete checkpoint, which
nothing resumes from, evaluates or exports, never a damaged one that looks complete. Gate records are
kept: the gate table shows the checkpoint as deleted, with the scores it had.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tunedeck.engine.gate.example_records import evaluated_steps
from tunedeck.engine.gate.rebuild import summarize_run
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventWriter
from tunedeck.engine.run.gate_result import read_gate_summary
from tunedeck.engine.run.store import EngineLock, RunLocked, list_checkpoints, read_effective_status


class CheckpointProtected(ValueError):
    """This checkpoint may not be deleted now; str() says why and what to do instead."""


def protected_steps(run_dir: Path) -> dict[int, str]:
    """{step: why it is kept} for the chosen and the best checkpoint."""
    summary = read_gate_summary(run_dir)
    out: dict[int, str] = {}
    if summary is not None and summary.best is not None:
        out[summary.best] = "it is the gate's best checkpoint"
    if summary is not None and summary.chosen is not None:
        out[summary.chosen.checkpoint] = "it is the chosen checkpoint (press b on it to unmark it first)"
    return out


def delete_checkpoint(run_dir: Path, step: int) -> Path:
    """Remove checkpoint-<step> for good; returns the path removed. CheckpointProtected when a rule forbids it."""
    run_dir = Path(run_dir)
    found = {c.step: c for c in list_checkpoints(run_dir)}
    if step not in found:
        raise CheckpointProtected(f"checkpoint-{step} does not exist in {run_dir.name}")
    why = protected_steps(run_dir).get(step)
    if why:
        raise CheckpointProtected(f"checkpoint-{step} is kept: {why}")
    state = read_effective_status(run_dir).state
    if state in C.LIVE_STATES:
        raise CheckpointProtected(f"run {run_dir.name} is {state}: delete checkpoints once the engine has stopped")
    try:
        lock = EngineLock(run_dir).acquire()  # no resume or evaluation may start while the folder goes
    except RunLocked:
        raise CheckpointProtected(
            f"an engine is working on {run_dir.name} (training or evaluating): delete checkpoints once it has finished"
        ) from None
    try:
        path = found[step].path
        try:
            os.unlink(path / C.CHECKPOINT_MARKER)
        except FileNotFoundError:
            pass
        shutil.rmtree(path)
        events = EventWriter(run_dir / C.EVENTS_JSONL)
        try:
            events.emit(C.EV_CHECKPOINT_PRUNED, step=step, path=str(path), reason="deleted by hand")
        finally:
            events.close()
        if step in evaluated_steps(run_dir):
            summarize_run(run_dir)  # its gate row now reads as deleted, and it can no longer be best
    finally:
        lock.release()
    return path
