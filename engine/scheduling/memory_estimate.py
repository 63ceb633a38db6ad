"""Training memory estimate before launch: weights, gradients, optimiser state, activations.

Rules of thumb, stated so they can be checked:
- weights: bytes per parameter of the load precision (fp32 4, bf16/fp16 2); QLoRA's NF4 with
  double quantisation about 0.55 bytes per parameter.
- trainable parameters: all of them for full fine-tuning; for LoRA r x (in + out) of every
  adapted linear layer (all-linear: q, k, v, o, gate, up, down).
- gradients: one per trainable parameter in its dtype; PEFT keeps adapters in fp32 (4 bytes).
- AdamW: two moments per trainable parameter in the parameter's dtype (8 bytes for fp32).
- activations (Korthikanti et al. 2022, with fused SDPA attention): about 34 x hidden bytes per
  token per layer in half precision; with gradient checkpointing only each layer's input is
  kept plus one layer being recomputed. The logits and their gradient in fp32 (2 x vocab x 4
  bytes per token) are often the single largest term for large vocabularies.
- 1 GiB of CUDA context and allocator slack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tunedeck.engine.run.formatting import fmt_gib

GIB = 1024**3
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
CUDA_OVERHEAD = 1 * GIB


@dataclass
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool = False
    params: int | None = None  # exact count when known; else derived from the shape

    @property
    def kv_dim(self) -> int:
        return self.hidden * self.kv_heads // self.heads

    def param_count(self) -> int:
        if self.params:
            return self.params
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
        embed = self.vocab * h * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embed + h

    def lora_params(self, r: int) -> int:
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return self.layers * r * (9 * h + 2 * kv + 3 * i)


@dataclass
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int
    trainable_params: int
    total_params: int
    available: int | None = None

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def verdict(self) -> str:
        """'fits' below 80% of the GPU, 'tight' up to 100%, 'will not fit' beyond; 'unknown' without a GPU."""
        if not self.available:
            return "unknown"
        share = self.total / self.available
        return "fits" if share < 0.8 else "tight" if share <= 1.0 else "will not fit"

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "verdict": self.verdict}

    def summary(self) -> str:
        parts = (
            f"weights {fmt_gib(self.weights)}, gradients {fmt_gib(self.gradients)}, "
            f"optimiser {fmt_gib(self.optimizer)}, activations {fmt_gib(self.activations)}, "
            f"overhead {fmt_gib(self.overhead)}"
        )
        avail = f" of {fmt_gib(self.available)}: {self.verdict}" if self.available else " (no GPU detected)"
        return f"about {fmt_gib(self.total)}{avail} ({parts})"


def estimate(
    shape: ModelShape,
    *,
    adapter: str,
    precision: str,
    batch_size: int,
    seq_len: int,
    lora_r: int = 8,
    gradient_checkpointing: bool = False,
    available: int | None = None,
) -> MemoryEstimate:
    p = shape.param_count()
    act_bytes = BYTES.get(precision, 2)
    if adapter == "qlora":
        weights = int(p * 0.55)
    else:
        weights = p * BYTES.get(precision, 4)
    if adapter == "none":
        trainable = p
        state_bytes = BYTES.get(precision, 4)
    else:
        trainable = shape.lora_params(lora_r)
        state_bytes = 4  # adapters stay in fp32
    gradients = trainable * state_bytes
    optimizer = 2 * trainable * state_bytes
    tokens = batch_size * seq_len
    per_layer = tokens * 34 * shape.hidden * act_bytes // 2
    if gradient_checkpointing:
        activations = shape.layers * tokens * shape.hidden * act_bytes + per_layer
    else:
        activations = shape.layers * per_layer
    activations += tokens * shape.vocab * 4 * 2  # fp32 logits and their gradient
    return MemoryEstimate(weights, gradients, optimizer, activations, CUDA_OVERHEAD, trainable, p, available)


def shape_from_config(config) -> ModelShape:
    """A ModelShape from a transformers config (AutoConfig.from_pretrained(...))."""
    text = getattr(config, "text_config", None) or config
    heads = getattr(text, "num_attention_heads", 1)
    return ModelShape(
        hidden=text.hidden_size,
        layers=text.num_hidden_layers,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        vocab=text.vocab_size,
        heads=heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def estimate_for_profile(profile, available: int | None = None) -> MemoryEstimate:
    """Estimate for a profile's base model (reads only its config) and settings."""
    from transformers import AutoConfig

    from tunedeck.engine.models.model_loading import resolve_gradient_checkpointing, resolve_precision

    kw = {"trust_remote_code": profile.model.trust_remote_code}
    if profile.model.revision:
        kw["revision"] = profile.model.revision
    shape = shape_from_config(AutoConfig.from_pretrained(profile.model.base, **kw))
    return estimate(
        shape,
        adapter=profile.method.adapter,
        precision=resolve_precision(profile),
        batch_size=profile.optim.batch_size,
        seq_len=profile.data.max_seq_len,
        lora_r=profile.lora.r,
        gradient_checkpointing=resolve_gradient_checkpointing(profile),
        available=available,
    )
