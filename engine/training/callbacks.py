"""The Trainer's hooks into the run directory: what happens there while the trainer steps.

RunCallback turns Trainer hooks into events and status, writes checkpoint markers and prunes, answers
control requests (stop with a final checkpoint, checkpoint now, eval now, rebuild the gate), runs the
gate on the model in memory (gate.when = "each_checkpoint", eval now), stops early on a stalled
validation loss, and guards against NaN/inf losses and gradients. It is not the only hand in the run
directory during training: the Trainer saves the checkpoint folders, train.py removes partial ones on
resume and emits its own warnings (data, GGUF base, the out-of-memory retry), worker.py writes the
state before and after, and the trackers keep their folders (engine/observe). Events and status go
through the worker's one EventWriter and StatusWriter (rank 0; other ranks get null ones).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import write_json_atomic
from tunedeck.engine.run.event_log import EventWriter
from tunedeck.engine.run.status_writer import StatusWriter
from tunedeck.engine.run.store import Checkpoint, list_checkpoints, take_control_requests
from tunedeck.engine.training.distributed import share_flags
from tunedeck.engine.training.faults import FAULTS
from tunedeck.engine.training.grpo import reward_log_fields

CONTROL_POLL_S = 0.25


class GuardState:
    """Shared between the trainer (which sees raw losses and grad norms) and the callback."""

    def __init__(self) -> None:
        self.bad_step: int | None = None
        self.bad_what = ""
        self.nan_stopped = False


def checkpoints_to_prune(checkpoints: list[Checkpoint], keep: int, best_step: int | None) -> list[Checkpoint]:
    """Complete checkpoints beyond the newest `keep`, never the best one."""
    complete = [c for c in checkpoints if c.complete]
    old = complete[:-keep] if keep > 0 else complete
    return [c for c in old if c.step != best_step]


def best_step_by_eval_loss(checkpoints: list[Checkpoint]) -> int | None:
    scored = [(c.marker.get("eval_loss"), c.step) for c in checkpoints if c.complete]
    scored = [(loss, step) for loss, step in scored if isinstance(loss, (int, float)) and math.isfinite(loss)]
    return min(scored)[1] if scored else None


def best_step_by_gate(run_dir: Path) -> int | None:
    """The checkpoint the run ships (the gate's chosen or best), once the gate has run (evals/gate.json)."""
    from tunedeck.engine.run.gate_result import read_gate_summary

    summary = read_gate_summary(run_dir)
    return summary.shipped if summary is not None else None


class RunCallback(TrainerCallback):
    def __init__(
        self,
        run_dir: Path,
        profile: Profile,
        events: EventWriter,
        status: StatusWriter,
        guard: GuardState,
        resumed_from: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.profile = profile
        self.events = events
        self.status = status
        self.guard = guard
        self.resumed_from = resumed_from
        self.stop_requested = False
        self.stop_reason = ""
        self.early_stopped = False
        self._next_poll = 0.0
        self._last_log_t: float | None = None
        self._last_tokens = 0
        self._last_eval: tuple[int, float] | None = None
        self._best_eval = math.inf
        self._evals_without_gain = 0
        self._last_train_loss: float | None = None
        self.has_eval = True
        self._gate_skip_said = False
        self._gate_requested = False  # "eval now": judge the checkpoint saved for it
        self._gate_memo: dict = {}  # the gate's eval sets, loaded once per run

    # -- life cycle --
    def on_train_begin(self, args, state, control, **kw):
        self.has_eval = args.eval_strategy != "no"
        self.status.update(state=C.RUNNING, step=state.global_step, total_steps=state.max_steps)
        self.events.emit(
            C.EV_RUN_STARTED,
            total_steps=state.max_steps,
            step=state.global_step,
            resumed_from=self.resumed_from,
            pid=os.getpid(),
        )
        if self.resumed_from is not None:
            self.events.emit(C.EV_RESUMED, from_step=self.resumed_from)
        self._last_log_t = time.perf_counter()
        self._last_tokens = getattr(state, "num_input_tokens_seen", 0) or 0
        self._train_cpu0 = time.process_time()

    def request_stop(self, reason: str) -> None:
        self.stop_requested = True
        self.stop_reason = reason

    # -- NaN / inf guard: runs after backward and clipping, before the optimiser step --
    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
        if self.guard.bad_step is None:
            return
        step = state.global_step + 1
        what = self.guard.bad_what
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)  # params without grads are left untouched by the step
        if self.profile.optim.nan_policy == "skip":
            self.events.emit(
                C.EV_WARNING, code="nan_skipped", step=step, message=f"step {step}: {what}; the update was skipped"
            )
            self.guard.bad_step = None
            return
        self.guard.nan_stopped = True
        self.events.emit(
            C.EV_ERROR,
            code="nan",
            step=step,
            message=f"step {step}: {what}. Training stopped; the last good checkpoint is kept. "
            "Try a lower learning rate, warmup, gradient clipping, or fp32/bf16 instead of fp16.",
        )
        control.should_training_stop = True

    # -- per step --
    def on_step_end(self, args, state, control, **kw):
        step = state.global_step
        if self.guard.nan_stopped:
            control.should_save = False  # never checkpoint a step whose update was refused
            control.should_evaluate = False
            control.should_training_stop = True
            return
        self.status.set_step(step)  # an attribute: the heartbeat writes it, the final state carries it
        now = time.monotonic()
        if state.is_world_process_zero and now >= self._next_poll:
            self._next_poll = now + CONTROL_POLL_S
            for req in take_control_requests(self.run_dir):
                self._handle_request(req, step, control)
        if args.world_size > 1:  # every rank calls this every step, so all act on the same step
            stop, save, evaluate = share_flags(
                [int(self.stop_requested), int(control.should_save), int(control.should_evaluate)], args.device
            )
            if stop and not self.stop_requested:
                self.request_stop("stop requested on another rank")
            control.should_save, control.should_evaluate = bool(save), bool(evaluate)
        if self.stop_requested and not control.should_training_stop:
            self.status.update(state=C.STOPPING)
            control.should_save = True
            control.should_training_stop = True
        if state.max_steps and step >= state.max_steps:
            control.should_save = True  # the last step is always a checkpoint: a candidate for the gate
            control.should_evaluate = True
        if control.should_evaluate and args.eval_strategy == "no":
            control.should_evaluate = False  # no held-out rows: the Trainer refuses to evaluate without an eval set

    def _handle_request(self, req: dict[str, Any], step: int, control) -> None:
        kind = req.get("kind")
        self.events.emit(C.EV_CONTROL, request=kind, step=step)
        if kind == C.CTL_STOP:
            self.request_stop("stop requested")
        elif kind == C.CTL_CHECKPOINT:
            control.should_save = True
        elif kind == C.CTL_REBUILD_GATE:
            self._rebuild_gate(req)
        elif kind == C.CTL_EVAL:
            # eval now: validation loss, and the gate on a checkpoint saved at this step (the latest)
            control.should_save = True
            self._gate_requested = True
            if self.has_eval:
                control.should_evaluate = True

    # -- metrics --
    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        step = state.global_step
        if "loss" in logs:
            now = time.perf_counter()
            tokens = getattr(state, "num_input_tokens_seen", 0) or 0
            dt = now - (self._last_log_t or now)
            tps = (tokens - self._last_tokens) / dt if dt > 0 and tokens else None
            self._last_log_t, self._last_tokens = now, tokens
            self._last_train_loss = logs.get("loss")
            self.events.emit(
                C.EV_TRAIN,
                step=step,
                epoch=state.epoch,
                loss=logs.get("loss"),
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens_per_s=tps,
                tokens_seen=tokens or None,
                **reward_log_fields(logs),
            )
            self.status.update(step=step, loss=logs.get("loss"))
            watch = getattr(self, "rewards_watch", None)  # GRPO: live samples with rewards, and the reward guard
            if watch is not None and state.is_world_process_zero:
                watch.on_log(step, logs, self.events, self.request_stop)
        if "train_runtime" in logs and "train_loss" in logs:  # transformers 5 adds train_runtime to every log;
            # only the closing summary of a training attempt carries train_loss
            self.events.emit(
                C.EV_TRAIN_END,
                step=step,
                train_runtime=logs.get("train_runtime"),
                train_cpu_s=time.process_time() - getattr(self, "_train_cpu0", 0.0),
                train_loss=logs.get("train_loss"),
                tokens_seen=getattr(state, "num_input_tokens_seen", None),
            )
        if "eval_loss" in logs:
            loss = logs["eval_loss"]
            self._last_eval = (step, loss)
            self.events.emit(
                C.EV_EVAL,
                step=step,
                epoch=state.epoch,
                eval_loss=loss,
                **{
                    k: v
                    for k, v in logs.items()
                    if k.startswith("eval_")
                    and k != "eval_loss"
                    and isinstance(v, (int, float))
                    and "runtime" not in k
                    and "per_second" not in k
                },
            )
            self._track_early_stopping(loss, step, control)

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        sampler = getattr(self, "live_sampler", None)
        if sampler is not None and state.is_world_process_zero:
            sampler.sample(kw.get("model"), kw.get("processing_class"), state.global_step, self.events, args.world_size)

    def _track_early_stopping(self, loss: float, step: int, control) -> None:
        if isinstance(loss, float) and math.isfinite(loss) and loss < self._best_eval:
            self._best_eval = loss
            self._evals_without_gain = 0
            self.status.update(best_eval_loss=loss, best_eval_step=step)
            return
        self._evals_without_gain += 1
        patience = self.profile.checkpoints.early_stopping_patience
        if patience and self._evals_without_gain >= patience and not self.stop_requested:
            self.early_stopped = True
            self.events.emit(
                C.EV_WARNING,
                code="early_stopping",
                step=step,
                message=f"validation loss has not improved for {patience} evaluations "
                f"(best {self._best_eval:.4f}); stopping early with a final checkpoint",
            )
            self.request_stop("early stopping")
            control.should_save = True
            control.should_training_stop = True

    # -- checkpoints --
    def on_save(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        step = state.global_step
        path = self.run_dir / C.CHECKPOINTS_DIR / f"{C.CHECKPOINT_PREFIX}{step}"
        if not path.is_dir():
            return
        eval_loss = self._last_eval[1] if self._last_eval and self._last_eval[0] == step else None
        files = {}
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.name != C.CHECKPOINT_MARKER:
                files[str(p.relative_to(path))] = p.stat().st_size
        _fsync_dir_files(path)
        FAULTS.before_checkpoint_marker(
            step
        )  # tests kill the engine here, where a real kill leaves a partial checkpoint
        marker = {
            "step": step,
            "epoch": state.epoch,
            "time": time.time(),
            "eval_loss": eval_loss,
            "eval_loss_step": self._last_eval[0] if self._last_eval else None,
            "train_loss": self._last_train_loss,
            "files": files,
        }
        write_json_atomic(path / C.CHECKPOINT_MARKER, marker)  # last: the checkpoint now counts
        self.events.emit(C.EV_CHECKPOINT, step=step, path=str(path), eval_loss=eval_loss, complete=True)
        self.status.update(last_checkpoint=step)
        if self.profile.gate.when == "each_checkpoint" or self._gate_requested:
            self._gate_requested = False
            self._gate_in_memory(step, kw.get("model"), kw.get("processing_class"), args)
        self._prune()

    def _gate_in_memory(self, step: int, model, tokenizer, args) -> None:
        """gate.when = "each_checkpoint": judge the model in memory right after its save."""
        from tunedeck.engine.gate.eval_inputs import gate_sets_named
        from tunedeck.engine.gate.runner import evaluate_in_memory
        from tunedeck.engine.run.gate_result import status_fields

        if not gate_sets_named(self.profile) and not getattr(self, "heldout_rows", args.eval_strategy != "no"):
            if not self._gate_skip_said:  # once per run, not once per checkpoint
                self._gate_skip_said = True
                self.events.emit(
                    C.EV_WARNING,
                    code="gate_skipped",
                    step=step,
                    message="eval gate skipped: no eval set in [gate] (golden, safety, general) and no "
                    "held-out rows to score",
                )
            return
        try:
            summary = evaluate_in_memory(self.run_dir, model, tokenizer, step, self.events, memo=self._gate_memo)
        except Exception as exc:  # noqa: BLE001 - the gate must not take training down
            self.events.emit(C.EV_ERROR, code="gate", step=step, message=f"eval gate on checkpoint-{step}: {exc}")
            return
        self.status.update(**status_fields(summary))
        watch = getattr(self, "rewards_watch", None)
        if watch is not None:  # the held-out task score, for the reward guard
            watch.on_gate(step, summary, self.events, self.request_stop)

    def _rebuild_gate(self, req: dict[str, Any]) -> None:
        """The app's request after a review label or a choice: this engine owns gate.json, so it rebuilds it."""
        from tunedeck.engine.gate.rebuild import KEEP, rebuild

        try:
            rebuild(
                self.run_dir,
                choose=req.get("choose", KEEP),
                note=str(req.get("note") or ""),
                update_status=self.status.update,
            )
        except Exception as exc:  # noqa: BLE001 - a bad request must not take training down
            self.events.emit(C.EV_WARNING, code="rebuild_gate", message=f"gate rebuild: {exc}")

    def _prune(self) -> None:
        checkpoints = list_checkpoints(self.run_dir)
        best = best_step_by_gate(self.run_dir) or best_step_by_eval_loss(checkpoints)
        for c in checkpoints_to_prune(checkpoints, self.profile.checkpoints.keep, best):
            shutil.rmtree(c.path, ignore_errors=True)
            self.events.emit(C.EV_CHECKPOINT_PRUNED, step=c.step, path=str(c.path), best_step=best)


def _fsync_dir_files(path: Path) -> None:
    # The Trainer does not fsync; make the files durable before the marker says they are whole.
    for p in path.rglob("*"):
        if p.is_file():
            try:
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass
