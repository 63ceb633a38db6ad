"""One base model for a whole gate run, with each checkpoint switched onto it.

LoRA checkpoints are adapters switched on that one model (PeftModel.load_adapter / set_adapter,
the previous adapter deleted to bound memory); full fine-tuning checkpoints load their weights into
the same model object in place.
"""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.gate.rules import GateError


class ModelSession:
    """One base model for the whole gate run; checkpoints are switched onto it, never reloaded from scratch."""

    def __init__(self, profile):
        self.profile = profile
        self.model = None  # the base model, or the PeftModel wrapping it once an adapter is on
        self.adapter: str | None = None
        self.modified = False  # full weights loaded in place: the base is gone
        self.precision, self.device = precision_and_device(profile)
        self.base_loads = 0  # base models this session loaded: one per gate run at most

    def base(self):
        if self.modified or self.adapter is not None:
            raise RuntimeError("the base model was already changed by a checkpoint; evaluate the base first")
        if self.model is None:
            from tunedeck.engine.models.model_loading import load_model

            model = load_model(self.profile, self.precision)
            self.base_loads += 1
            if self.profile.method.adapter != "qlora":  # 4-bit weights are already placed on the GPU
                model.to(self.device)
            model.eval()
            self.model = model
            _warm_up(model)
        return self.model

    def checkpoint(self, ckpt):
        path = Path(ckpt.path)
        if (path / "adapter_config.json").exists():
            return self._adapter(ckpt.step, path)
        return self._full(ckpt.step, path)

    def _adapter(self, step: int, path: Path):
        import warnings

        from peft import PeftModel

        # peft calls a transformers API deprecated in v5; the warning is not ours to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        name = f"ckpt{step}"
        if self.adapter is None:
            self.model = PeftModel.from_pretrained(self.base(), str(path), adapter_name=name, is_trainable=False)
        else:
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            self.model.set_adapter(name)
            self.model.delete_adapter(self.adapter)  # one adapter in memory at a time
        self.adapter = name
        self.model.eval()
        return self.model

    def _full(self, step: int, path: Path):
        from safetensors.torch import load_file

        files = sorted(path.glob("model*.safetensors"))
        if not files:
            raise GateError(f"checkpoint-{step} has neither a LoRA adapter nor safetensors weights ({path})")
        model = self.base() if not self.modified else self.model
        state: dict = {}
        for f in files:
            state.update(load_file(str(f), device=str(self.device)))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {k for k in missing if "lm_head" in k}  # tied to the embeddings, not saved separately
        if unexpected or set(missing) - tied:
            raise GateError(
                f"checkpoint-{step}: weights do not fit the base model "
                f"({len(set(missing) - tied)} missing, {len(unexpected)} unexpected tensors)"
            )
        self.modified = True
        model.eval()
        return model

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


def _warm_up(model) -> None:
    """One tiny generation, so one-off start-up costs (kernels, allocator) are not billed to the first latency."""
    import torch
    from transformers import GenerationConfig

    with torch.inference_mode():
        ids = torch.zeros((1, 4), dtype=torch.long, device=next(model.parameters()).device)
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            generation_config=GenerationConfig(max_new_tokens=2, do_sample=False, pad_token_id=0),
        )


def precision_and_device(profile) -> tuple[str, str]:
    import torch

    from tunedeck.engine.models.model_loading import resolve_precision

    return resolve_precision(profile), "cuda" if torch.cuda.is_available() else "cpu"
