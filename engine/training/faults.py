"""Faults that tests inject into a training run (TUNEDECK_TEST_* variables), all behind one seam.

Each variable is read once, when the engine imports this module. With none set the trainer class is
used as it is and the checkpoint hook does nothing: production runs never go through this code.

  TUNEDECK_TEST_NAN_AT_STEP=N          step N's training loss is NaN
  TUNEDECK_TEST_OOM_AT_STEP=N          step N raises a CUDA out-of-memory error
  TUNEDECK_TEST_OOM_ABOVE_BATCH=N      every step raises out-of-memory while batch_size > N
  TUNEDECK_TEST_SLOW_STEP_S=S          every training step sleeps S seconds
  TUNEDECK_TEST_HOLD_UNTIL=FILE        every training step waits until FILE exists (a test lets the run go on
                                       when it has seen what it waits for, however slow the machine)
  TUNEDECK_TEST_ENOSPC_AT_STEP=N       saving step N's checkpoint fails with a full disk
  TUNEDECK_TEST_KILL_IN_SAVE_AT_STEP=N SIGKILL inside step N's save, after the Trainer's files and
                                       before the marker, exactly where a real kill leaves a partial checkpoint
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, kind: type = int):
    return kind(os.environ.get(name, "0") or 0)


@dataclass(frozen=True)
class InjectedFaults:
    nan_at_step: int = 0
    oom_at_step: int = 0
    oom_above_batch: int = 0  # OOM when batch > N
    slow_step_s: float = 0.0
    hold_until: str = ""  # a file: steps wait until it exists
    enospc_at_step: int = 0  # disk full saving step N
    kill_in_save_at_step: int = 0

    @classmethod
    def from_env(cls) -> "InjectedFaults":
        return cls(
            nan_at_step=_env("TUNEDECK_TEST_NAN_AT_STEP"),
            oom_at_step=_env("TUNEDECK_TEST_OOM_AT_STEP"),
            oom_above_batch=_env("TUNEDECK_TEST_OOM_ABOVE_BATCH"),
            slow_step_s=_env("TUNEDECK_TEST_SLOW_STEP_S", float),
            hold_until=os.environ.get("TUNEDECK_TEST_HOLD_UNTIL", ""),
            enospc_at_step=_env("TUNEDECK_TEST_ENOSPC_AT_STEP"),
            kill_in_save_at_step=_env("TUNEDECK_TEST_KILL_IN_SAVE_AT_STEP"),
        )

    @property
    def in_trainer(self) -> bool:
        return bool(
            self.nan_at_step
            or self.oom_at_step
            or self.oom_above_batch
            or self.slow_step_s
            or self.hold_until
            or self.enospc_at_step
        )

    def on_training_loss(self, out, step: int, batch_size: int):
        """The loss of training step `step` as the fault makes it (or the exception it raises)."""
        if self.oom_at_step == step or (self.oom_above_batch and batch_size > self.oom_above_batch):
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test hook)")
        if self.nan_at_step == step:
            if isinstance(out, tuple):
                out = (out[0] * float("nan"), *out[1:])
            else:
                out = out * float("nan")
        if self.slow_step_s or self.hold_until:
            import time

            time.sleep(self.slow_step_s)
            while self.hold_until and not os.path.exists(self.hold_until):
                time.sleep(0.05)
        return out

    def on_save_checkpoint(self, output_dir: str, step: int) -> None:
        if self.enospc_at_step and step == self.enospc_at_step:
            import errno

            folder = os.path.join(output_dir, f"checkpoint-{step}")
            os.makedirs(folder, exist_ok=True)  # a real full disk leaves a partial folder too
            raise OSError(errno.ENOSPC, "No space left on device (injected by TUNEDECK_TEST_ENOSPC_AT_STEP)", folder)

    def before_checkpoint_marker(self, step: int) -> None:
        """Called by the run callback once a checkpoint's files are durable and before its marker."""
        if self.kill_in_save_at_step == step:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def trainer_class(self, trainer_cls):
        """`trainer_cls` itself, or with the trainer faults set in the environment."""
        if not self.in_trainer:
            return trainer_cls
        faults = self

        class WithInjectedFaults(trainer_cls):
            def compute_loss(self, model, inputs, *args, **kwargs):
                out = super().compute_loss(model, inputs, *args, **kwargs)
                if model.training:
                    out = faults.on_training_loss(
                        out, self.state.global_step + 1, self.args.per_device_train_batch_size
                    )
                return out

            def _save_checkpoint(self, model, trial):
                faults.on_save_checkpoint(self.args.output_dir, self.state.global_step)
                return super()._save_checkpoint(model, trial)

        WithInjectedFaults.__name__ = trainer_cls.__name__
        return WithInjectedFaults


FAULTS = InjectedFaults.from_env()
