"""A LoRA checkpoint merged into its base's weights while the gate generates with it, then taken out exactly.

Generating through an unmerged adapter adds, in every adapted linear layer and at every decoding
step, two small matmuls, a scale and an add: on 2 CPU cores that made the gate's generation on
SmolLM2-135M about 0.86x of plain `generate` on the merged checkpoint (BENCHMARKS.md, real model).
Merged, each layer is one matmul, as in the model `tunedeck export --merge` writes.

The merge is peft's safe merge (a new weight tensor W + scale * B @ A, refused if not finite) and
the original tensors are kept and put back afterwards, never `W + d - d` rounded: the base the next
checkpoint is switched onto stays bit-for-bit the one loaded. It is done only where it is the same
model to float precision and cheap to undo:
- an adapter loaded for evaluation (no trainable parameters): a model in training is left alone;
- LoRA on linear layers only, none of whose weights is tied to another parameter (a merged tied
  embedding would change the output layer too);
- fp32 weights: in bf16/fp16 the merge would round the adapter's small update into the base's
  coarse weights, which is no longer the checkpoint that was trained;
- on CPU, where the small matmuls cost most, with room in memory for a copy of the adapted weights.
Anything else generates through the adapter as before.
"""

from __future__ import annotations

from contextlib import contextmanager


def merge_refusal(model) -> str | None:
    """Why `model` is generated with unmerged (None: it can be merged and restored exactly)."""
    import torch

    try:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return "peft is not installed"
    if not isinstance(model, PeftModel):
        return "not an adapter model"
    if any(p.requires_grad for p in model.parameters()):
        return "a model in training"
    tuned = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    if not tuned or not all(
        isinstance(m, LoraLayer) and isinstance(m.get_base_layer(), torch.nn.Linear) for m in tuned
    ):
        return "not LoRA on linear layers only"
    weights = [m.get_base_layer().weight for m in tuned]
    if any(w.dtype != torch.float32 or w.device.type != "cpu" for w in weights):
        return "weights not fp32 on CPU"
    if any(m.merged for m in tuned):
        return "already merged"
    shared: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        shared[id(p)] = shared.get(id(p), 0) + 1
    if any(shared.get(id(w), 0) > 1 for w in weights):
        return "an adapted weight is tied to another parameter"
    needed = 2 * sum(w.numel() * w.element_size() for w in weights)  # the copy, and room to spare
    try:
        import psutil

        if psutil.virtual_memory().available < needed:
            return "not enough free memory for a merged copy"
    except Exception:  # noqa: BLE001 - no reading of free memory: do not risk it
        return "free memory unknown"
    return None


@contextmanager
def merged_for_generation(model):
    """`model` with its LoRA adapter merged for the `with` block where merge_refusal allows it, else as it is;
    on exit every merged layer gets back its original weight tensors (and merged state)."""
    if merge_refusal(model) is not None:
        yield model
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuned = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    originals = [(m, m.get_base_layer().weight.data, getattr(m.get_base_layer().bias, "data", None)) for m in tuned]
    try:
        for m in tuned:
            m.merge(safe_merge=True)  # a new tensor per layer: the originals above stay untouched
    except ValueError:  # a non-finite update: generate through the adapter, as it is, and let the checks judge it
        _restore(originals)
        yield model
        return
    try:
        yield model
    finally:
        _restore(originals)


def _restore(originals: list) -> None:
    for m, weight, bias in originals:
        base = m.get_base_layer()
        base.weight.data = weight
        if bias is not None:
            base.bias.data = bias
        m.merged_adapters.clear()  # what peft's unmerge leaves, without subtracting the update back out
