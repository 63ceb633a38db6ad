"""<run>/status.json, the run's state at a glance: every key it holds, typed, in one definition.

One writer, engine/run/status_writer.py's write_status (the launcher, pre-flight, the queue's waiter,
the engine, the gate and the sweep commands all write through it, under a lock); two readers in
engine/run/store.py: read_written_status (the file as written) and read_effective_status (with the
state a reader should show: a live state whose engine is gone reads "crashed").
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Status:
    """status.json. Every field is optional: each writer sets its own and keeps the others."""

    # the run, written once by pre-flight when the run is created
    name: str | None = None  # the run's name (its id without the time stamp and suffix)
    id: str | None = None  # the run's id: its folder's name
    base_model: str | None = None  # model.base of its profile
    method: str | None = None  # sft / dpo / kto / grpo
    adapter: str | None = None  # lora / qlora / none (a full fine-tune)
    created: float | None = None  # unix time the run was created (run.toml's too)
    parent: str | None = None  # the run this one is the next run from (its id); unset for a first run
    sweep: str | None = None  # the sweep it belongs to, by name
    sweep_params: dict | None = None  # the sweep point it trains: {"optim.lr": 2e-4, ...}

    # its state: contract.py's run states ("crashed" is never written: readers derive it)
    state: str | None = None  # unset until pre-flight writes "queued"
    message: str | None = None  # what it is doing now ("queued #2: ...", "eval gate") or why it ended
    started: float | None = None  # unix time the engine began training; unset: it never started
    finished: float | None = None  # unix time it ended; cleared when it is started again
    updated: float | None = None  # unix time of the last write (every write sets it)
    heartbeat: float | None = None  # unix time the engine (or the queue's waiter) last said it is alive

    # the process that answers for it: the queue's waiter, then the engine (the waiter execs into it)
    pid: int | None = None  # unset between a launch and its engine's first write
    pid_started: float | None = None  # that process's start time: a reused pid has another
    host: str | None = None  # where it runs: a pid is only checked on its own host

    # where it is waiting: the local queue or Slurm's
    queue_position: int | None = None  # its place in the local queue (1 is next); cleared by each launch
    slurm_script: str | None = None  # the sbatch script it was submitted with
    slurm_job: str | None = None  # Slurm's job id ("1234" or an array element "1234_0")

    # training, from the engine's callbacks
    step: int | None = None  # the last optimizer step logged
    total_steps: int | None = None  # the steps the trainer plans
    loss: float | None = None  # the training loss at `step`
    best_eval_loss: float | None = None  # the lowest validation loss so far, and its step
    best_eval_step: int | None = None
    last_checkpoint: int | None = None  # the step of the last complete checkpoint

    # the gate's result, projected from evals/gate.json (gate_result.status_fields)
    gate_verdict: str | None = None  # pass / needs_review / fail
    gate_best: int | None = None  # the checkpoint the run ships: a person's choice, else the gate's best
    gate_scores: dict | None = None  # gate_result.row_scores of the featured row: scores against the base

    @classmethod
    def from_dict(cls, d: Any) -> Status:
        """What a status.json holds, any version: a key it does not know is left out, a value of the wrong
        type (a torn or hand-edited file) reads as unset."""
        if not isinstance(d, dict):
            return cls()
        return cls(**{name: d.get(name) if _fits(d.get(name), kinds) else None for name, kinds in _KINDS.items()})

    def to_dict(self) -> dict:
        """The file: only the fields that are set."""
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):  # JSON true is no pid or step
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


# each field's types, from its annotation: `int | None` -> (int,)
_KINDS: dict[str, tuple[type, ...]] = {
    name: tuple(t for t in typing.get_args(hint) if t is not type(None))
    for name, hint in typing.get_type_hints(Status).items()
}
FIELDS = frozenset(_KINDS)  # the keys a writer may set
