"""Throughput options (attention kernel, padding-free, Liger, compile, optimiser) and the
multi-process strategy, resolved per device into TrainingArguments fields.

`auto` means: the fast option where the machine has what it needs, the safe one elsewhere.
"""

from __future__ import annotations

import importlib.util

from tunedeck.engine.config.profile_schema import Profile


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_attention(profile: Profile) -> str:
    a = profile.speed.attn_implementation
    if a != "auto":
        return a
    return "flash_attention_2" if _cuda() and installed("flash_attn") else "sdpa"


def resolve_padding_free(profile: Profile) -> bool:
    p = profile.speed.padding_free
    if p != "auto":
        return p == "on"
    # without FlashAttention, padding-free batches would attend across example boundaries
    return resolve_attention(profile) == "flash_attention_2" and profile.method.method == "sft"


def speed_args(profile: Profile, precision: str) -> dict:
    s = profile.speed
    liger = s.liger_kernel == "on" or (s.liger_kernel == "auto" and _cuda() and installed("liger_kernel"))
    optim = s.optimizer
    if optim == "auto":
        optim = "adamw_torch_fused" if _cuda() else "adamw_torch"
    return {"use_liger_kernel": liger, "torch_compile": s.torch_compile, "optim": optim}


def parallel_args(profile: Profile) -> dict:
    """DDP / FSDP / DeepSpeed settings when the engine runs under torchrun."""
    from tunedeck.engine.training.distributed import world_size

    if world_size() == 1:
        return {}
    out: dict = {"ddp_find_unused_parameters": False}
    if not _cuda():
        out["ddp_backend"] = "gloo"
    strategy = profile.resources.strategy
    if strategy == "fsdp":
        from tunedeck.engine.models.model_loading import resolve_gradient_checkpointing

        # FSDP's own activation checkpointing in place of the training argument's, which would add an
        # all-gather per layer in the backward pass (and both at once recompute twice)
        out["fsdp"] = "full_shard auto_wrap"
        out["fsdp_config"] = {
            "backward_prefetch": "backward_pre",
            "use_orig_params": True,
            "activation_checkpointing": resolve_gradient_checkpointing(profile),
        }
        out["activation_checkpointing"] = False
    elif strategy.startswith("deepspeed"):
        stage = 3 if strategy.endswith("3") else 2
        out["deepspeed"] = {
            "zero_optimization": {"stage": stage, "overlap_comm": True},
            "bf16": {"enabled": "auto"},
            "fp16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "train_batch_size": "auto",
        }
    return out


def check_available(profile: Profile) -> list[str]:
    """Problems with options that need something this machine lacks (blocking, before launch)."""
    problems = []
    s = profile.speed
    if s.attn_implementation == "flash_attention_2" and not installed("flash_attn"):
        problems.append("speed.attn_implementation = 'flash_attention_2' needs the flash-attn package")
    if s.liger_kernel == "on" and not installed("liger_kernel"):
        problems.append("speed.liger_kernel = 'on' needs the liger-kernel package")
    if s.optimizer in ("adamw_8bit", "paged_adamw_8bit") and not installed("bitsandbytes"):
        problems.append(f"speed.optimizer = '{s.optimizer}' needs bitsandbytes")
    if profile.resources.strategy.startswith("deepspeed") and not installed("deepspeed"):
        problems.append(f"resources.strategy = '{profile.resources.strategy}' needs deepspeed (pip install deepspeed)")
    return problems
