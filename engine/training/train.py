"""One training run: data, model, TRL trainer with tunedeck's callbacks, resume, final state."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.data.prepare import PreparedData, prepare_data
from tunedeck.engine.observe.tracking import guard_trackers
from tunedeck.engine.observe.tracking import trainer_args as tracker_args
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.event_log import EventWriter
from tunedeck.engine.run.run_record import load_run_record
from tunedeck.engine.run.status_writer import StatusWriter
from tunedeck.engine.run.store import latest_complete_checkpoint, list_checkpoints
from tunedeck.engine.training.faults import FAULTS
from tunedeck.engine.training.preference_trainers import pretokenized
from tunedeck.engine.training.throughput import parallel_args, resolve_attention, resolve_padding_free, speed_args


class DataChanged(ValueError):
    pass


def encode_sft_rows(rows: list[dict], tokenizer, profile: Profile) -> tuple[list[dict], list[int]]:
    """Rows as the trainer gets them: input ids and the loss mask of engine/data/loss_masks.py (the same
    computation `tunedeck inspect` counts), and the indices of rows the template could not render."""
    from tunedeck.engine.data.loss_masks import MaskEncoder, MaskError, assistant_only_setting

    encoder = MaskEncoder(tokenizer, assistant_only_setting(profile.data.assistant_only_loss))
    out, failed = [], []
    for i, row in enumerate(rows):
        try:
            e = encoder.encode(row)
        except MaskError:
            failed.append(i)
            continue
        out.append({"input_ids": e.input_ids, "assistant_masks": e.mask})
    return out, failed


def _guarded(trainer_cls, guard):
    """The trainer class with NaN/inf checks on the raw loss and gradient norm of every step."""
    import torch

    class Guarded(trainer_cls):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if guard.bad_step is None and not bool(torch.isfinite(loss.detach()).all()):
                guard.bad_step = self.state.global_step + 1
                guard.bad_what = f"the loss is {float(loss.detach().float().mean())}"
            return loss

        def _get_grad_norm(self, model, grad_norm=None):
            norm = super()._get_grad_norm(model, grad_norm)
            if norm is not None and guard.bad_step is None:
                value = float(norm)
                if not math.isfinite(value):
                    guard.bad_step = self.state.global_step + 1
                    guard.bad_what = f"the gradient norm is {value}"
            return norm

    Guarded.__name__ = f"Guarded{trainer_cls.__name__}"
    return Guarded


def warmup_args(ratio: float) -> dict:
    """Warmup as a share of the steps on every supported transformers: 5 reads a warmup_steps below 1 as a
    ratio and dropped warmup_ratio; 4.x has warmup_ratio and reads warmup_steps as a count."""
    from transformers import TrainingArguments

    if "warmup_ratio" in TrainingArguments.__dataclass_fields__:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}


def build_trainer(run_dir: Path, profile: Profile, data: PreparedData, callbacks: list, guard, watch=None):
    import torch
    from datasets import Dataset

    from tunedeck.engine.models.model_loading import (
        load_model,
        load_tokenizer,
        lora_config,
        resolve_gradient_checkpointing,
        resolve_precision,
    )

    precision = resolve_precision(profile)
    tokenizer = load_tokenizer(profile)
    model = load_model(profile, precision, attn_implementation=resolve_attention(profile))
    o, c = profile.optim, profile.checkpoints
    has_eval = bool(data.eval_rows)
    common = dict(
        output_dir=str(Path(run_dir) / C.CHECKPOINTS_DIR),
        per_device_train_batch_size=o.batch_size,
        per_device_eval_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum,
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.scheduler,
        **warmup_args(o.warmup_ratio),
        weight_decay=o.weight_decay,
        num_train_epochs=o.epochs,
        max_steps=o.max_steps,
        max_grad_norm=o.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=resolve_gradient_checkpointing(profile),
        seed=o.seed,
        data_seed=o.seed,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=c.eval_steps,
        save_strategy="steps",
        save_steps=c.save_steps,
        save_total_limit=None,  # tunedeck prunes (keeps the best)
        logging_steps=c.logging_steps,
        logging_first_step=True,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        max_length=profile.data.max_seq_len,
    )
    common.update(tracker_args(profile, run_dir))  # report_to, run_name, project ([tracking])
    common.update(speed_args(profile, precision))
    common.update(parallel_args(profile))
    if profile.method.method == "grpo":  # rewards from the gate's checks (engine/training/grpo.py)
        from tunedeck.engine.training.grpo import build_grpo_trainer

        return build_grpo_trainer(
            profile,
            data,
            common,
            model,
            tokenizer,
            lora_config(profile),
            callbacks,
            watch,
            lambda cls: _guarded(FAULTS.trainer_class(cls), guard),
        )
    if profile.method.method in (
        "sft",
        "dpo",
        "kto",
    ):  # pre-tokenised with tunedeck's masks: TRL builds labels from them
        if profile.method.method == "sft":
            train_rows, failed = encode_sft_rows(data.train_rows, tokenizer, profile)
            eval_rows, eval_failed = encode_sft_rows(data.eval_rows, tokenizer, profile)
        else:
            # prompt, chosen/rejected or completion ids, rendered as SFT renders them (engine/data/preference_tokens.py)
            from tunedeck.engine.data.preference_tokens import encode_preference_rows

            train_rows, failed = encode_preference_rows(data.train_rows, tokenizer)
            eval_rows, eval_failed = encode_preference_rows(data.eval_rows, tokenizer)
        if (failed or eval_failed) and profile.data.on_invalid == "error":  # pre-flight reports these with lines
            raise DataChanged(
                f"{len(failed) + len(eval_failed)} rows can no longer be rendered by the chat template; "
                "run `tunedeck inspect` on the data for their lines"
            )
    else:
        train_rows, eval_rows = data.train_rows, data.eval_rows
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(eval_rows) if has_eval else None
    if profile.method.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=profile.method.dpo_beta)
        cls = _guarded(FAULTS.trainer_class(pretokenized(DPOTrainer)), guard)
    elif profile.method.method == "kto":
        from trl import KTOConfig, KTOTrainer

        m = profile.method
        args = KTOConfig(
            **common,
            beta=m.kto_beta,
            desirable_weight=m.kto_desirable_weight,
            undesirable_weight=m.kto_undesirable_weight,
        )
        cls = _guarded(FAULTS.trainer_class(pretokenized(KTOTrainer)), guard)
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, packing=profile.data.packing, padding_free=resolve_padding_free(profile))
        cls = _guarded(FAULTS.trainer_class(SFTTrainer), guard)
    return cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(profile),
        callbacks=callbacks,
    )


def clear_incomplete_checkpoints(run_dir: Path, events: EventWriter) -> None:
    """Partial checkpoint folders (killed mid-save) are never used; remove them before resuming."""
    for ckpt in list_checkpoints(run_dir):
        if not ckpt.complete:
            shutil.rmtree(ckpt.path, ignore_errors=True)
            events.emit(
                C.EV_WARNING,
                code="incomplete_checkpoint_removed",
                step=ckpt.step,
                message=f"checkpoint-{ckpt.step} was incomplete (interrupted save) and was removed",
            )


def run_training(run_dir: Path, events: EventWriter, status: StatusWriter, resume: bool = False) -> str:
    """Train to the end, a stop request, early stopping or a NaN; return the final state."""
    from tunedeck.engine.training.callbacks import GuardState, RunCallback
    from tunedeck.engine.training.live_samples import LiveSampler

    record = load_run_record(run_dir)
    profile = record.profile
    data = prepare_data(profile)
    if data.fingerprint != record.dataset_fingerprint:
        raise DataChanged(
            f"{profile.data.path}: the dataset changed since this run started (fingerprint "
            f"{data.fingerprint}, recorded {record.dataset_fingerprint}); start a new run instead"
        )
    if record.loss_masking.startswith("all tokens") and (
        "messages" in data.train_rows[0] or "completion" in data.train_rows[0]
    ):
        events.emit(C.EV_WARNING, code="all_tokens_trained", message=f"the loss covers {record.loss_masking}")
    if record.gguf_source and not resume:
        from tunedeck.engine.models.gguf_base import gguf_notice

        events.emit(C.EV_WARNING, code="gguf_base", message=gguf_notice(record.gguf_source))
    resume_path = None
    resumed_from = None
    if resume:
        clear_incomplete_checkpoints(run_dir, events)
        ckpt = latest_complete_checkpoint(run_dir)
        if ckpt is not None:
            resume_path, resumed_from = str(ckpt.path), ckpt.step
        else:
            events.emit(
                C.EV_WARNING,
                code="no_checkpoint",
                message="no complete checkpoint to resume from; starting from step 0",
            )
            resumed_from = 0
    while True:
        guard = GuardState()
        callback = RunCallback(run_dir, profile, events, status, guard, resumed_from=resumed_from)
        callback.live_sampler = LiveSampler.for_run(profile, data.eval_rows)  # what the model writes, after each eval
        callback.heldout_rows = bool(data.eval_rows)
        if profile.method.method == "grpo":  # its live samples are its completions with their rewards, and a guard
            from tunedeck.engine.training.grpo import RewardsWatch

            callback.live_sampler, callback.rewards_watch = None, RewardsWatch.for_run(run_dir, profile)
        _install_stop_signal(callback)
        trainer = build_trainer(run_dir, profile, data, [callback], guard, getattr(callback, "rewards_watch", None))
        guard_trackers(trainer, run_dir, profile, events)  # a failing tracker is a warning, never a failed run
        status.update(state=C.RUNNING)
        try:
            trainer.train(resume_from_checkpoint=resume_path)
            break
        except Exception as exc:
            if not (_is_oom(exc) and profile.optim.auto_batch_size and profile.optim.batch_size > 1):
                raise
            o = profile.optim
            smaller = o.batch_size // 2
            more = -(-o.batch_size * o.grad_accum // smaller)  # ceil: the effective batch never shrinks
            events.emit(
                C.EV_WARNING,
                code="auto_batch_size",
                message=f"out of memory at batch_size {o.batch_size}: retrying with batch_size {smaller} "
                f"and grad_accum {more} (same effective batch {o.batch_size * o.grad_accum})",
            )
            o.batch_size, o.grad_accum = smaller, more
            del trainer
            _free_accelerator_memory()
            clear_incomplete_checkpoints(run_dir, events)
            ckpt = latest_complete_checkpoint(run_dir)
            resume_path = str(ckpt.path) if ckpt else None
    step, total = trainer.state.global_step, trainer.state.max_steps
    if guard.nan_stopped:
        return C.FAILED
    if callback.stop_requested and not callback.early_stopped and step < total:
        return C.STOPPED
    return C.COMPLETED


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or ("CUDA" in str(exc) and "out of memory" in str(exc))


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _install_stop_signal(callback) -> None:
    """SIGTERM and SIGINT ask for a checkpoint and a stop at the next step boundary."""
    import signal

    def handler(signum, frame):
        callback.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
