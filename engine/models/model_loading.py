"""Base model, tokenizer and adapter configuration from a profile (heavy imports inside)."""

from __future__ import annotations

import re
from pathlib import Path

from tunedeck.engine.config.profile_schema import Profile


class ModelLoadError(ValueError):
    """The base model or its tokenizer cannot be used; str() says why and what to do."""


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(profile: Profile) -> str:
    p = profile.optim.precision
    if p != "auto":
        return p
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def resolve_gradient_checkpointing(profile: Profile) -> bool:
    g = profile.optim.gradient_checkpointing
    return has_cuda() if g == "auto" else g == "on"


def _hub_kwargs(profile: Profile) -> dict:
    kw = {"trust_remote_code": profile.model.trust_remote_code}
    if profile.model.revision:
        kw["revision"] = profile.model.revision
    return kw


def resolve_base(profile: Profile) -> str:
    """What to load for model.base: itself, or for a GGUF file its de-quantised HF folder (built once, then
    cached; the pre-flight freezes that folder into the run, so a run's engine finds it here already)."""
    from tunedeck.engine.models.gguf_base import GgufBaseError, is_gguf_ref, materialize_gguf

    if not is_gguf_ref(profile.model.base, profile.model.gguf_file):
        return profile.model.base
    try:
        return str(materialize_gguf(profile.model.base, profile.model.gguf_file).folder)
    except GgufBaseError as e:
        raise ModelLoadError(str(e)) from None


def load_tokenizer(profile: Profile):
    from transformers import AutoTokenizer

    base = resolve_base(profile)
    try:
        tok = AutoTokenizer.from_pretrained(base, **_hub_kwargs(profile))
    except Exception as e:  # OSError for missing files/offline hub, ValueError for bad configs
        raise ModelLoadError(_explain_load_error(base, "tokenizer", e)) from None
    if profile.model.chat_template:
        path = Path(profile.model.chat_template).expanduser()
        try:
            tok.chat_template = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ModelLoadError(f"model.chat_template: cannot read {path}: {e.strerror}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # common for base models; padding is masked out of the loss
    return tok


_GENERATION_TAG = re.compile(r"{%-?\s*generation\s*-?%}")


def has_generation_markers(tokenizer) -> bool:
    """Whether the chat template marks assistant text, which assistant-only loss needs."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return bool(_GENERATION_TAG.search(template))


def _refuses_attention(message: str) -> bool:
    m = message.lower()
    return "attn_implementation" in m or "scaled_dot_product_attention" in m or "flash attention" in m or "sdpa" in m


def check_model_config(profile: Profile) -> None:
    """Cheap check that the base model exists and is a known architecture, before any weights load."""
    from transformers import AutoConfig

    base = resolve_base(profile)
    try:
        AutoConfig.from_pretrained(base, **_hub_kwargs(profile))
    except Exception as e:
        raise ModelLoadError(_explain_load_error(base, "model config", e)) from None


def _explain_load_error(base: str, what: str, e: Exception) -> str:
    local = Path(base).expanduser()
    if local.exists():
        return f"model.base: cannot load the {what} from {local}: {str(e).splitlines()[0]}"
    return (
        f"model.base: {base!r} is not a local directory and its {what} could not be loaded from the hub "
        f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Check the id, your network, or "
        f"download it once with `huggingface-cli download {base}` and use the local path."
    )


def load_model(profile: Profile, precision: str, attn_implementation: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    kwargs = dict(_hub_kwargs(profile), dtype=dtype, use_safetensors=True)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if profile.method.adapter == "qlora":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                "method.adapter = 'qlora' needs an NVIDIA GPU (4-bit weights via bitsandbytes); use 'lora' on CPU"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ModelLoadError("method.adapter = 'qlora' needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    base = resolve_base(profile)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except Exception as e:
        msg = str(e)
        if attn_implementation and _refuses_attention(msg):
            if profile.speed.attn_implementation == "auto" and attn_implementation != "eager":
                # some classes (Gemma-2 in transformers 5) refuse SDPA: auto means "one that works"
                return load_model(profile, precision, attn_implementation="eager")
            raise ModelLoadError(
                f'speed.attn_implementation = "{attn_implementation}": {profile.model.base} does not '
                f"support it ({msg.strip().splitlines()[0][:200]}); set speed.attn_implementation = "
                '"eager" (or "auto")'
            ) from None
        if "safetensors" in msg.lower():
            raise ModelLoadError(
                f"model.base: {profile.model.base} has no safetensors weights; tunedeck does not load "
                "pickled .bin weights (they can run code). Convert them to safetensors first."
            ) from None
        raise ModelLoadError(_explain_load_error(profile.model.base, "model", e)) from None
    if profile.method.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=resolve_gradient_checkpointing(profile)
        )
    return model


def lora_config(profile: Profile):
    if profile.method.adapter == "none":
        return None
    from peft import LoraConfig

    targets = profile.lora.target_modules
    target = targets[0] if targets == ["all-linear"] else targets
    return LoraConfig(
        r=profile.lora.r,
        lora_alpha=profile.lora.alpha,
        lora_dropout=profile.lora.dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
        bias="none",
    )
