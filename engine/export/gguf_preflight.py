"""Checks before a GGUF export merges anything or the converter writes a byte.

- the tokenizer fits the model: no more tokens than the embedding has rows (the converter would fail
  after the merge; fewer tokens are padded by the converter and are fine);
- a chat template is present, else a warning: Ollama and llama.cpp will not know how to prompt it;
- free disk beside OUT for the merged weights and the GGUF (and llama-quantize's f16 input);
- the converter accepts the architecture and the tokenizer: llama.cpp's converter itself runs with
  --vocab-only on the config and tokenizer alone (seconds, no weights), so an unsupported architecture
  or a BPE tokenizer it cannot identify stops the export before a long merge.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tunedeck.engine.export.checkpoint_export import ExportError
from tunedeck.engine.export.gguf_convert import needs_quantize, prepare_converter_input, run_converter
from tunedeck.engine.export.llama_cpp_source import LlamaCpp

# bytes per weight in each GGUF type (q8_0 stores 32 weights in 34 bytes; the K-quants mix block types)
GGUF_BYTES = {"f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q6_k": 0.82, "q5_k_m": 0.71, "q4_k_m": 0.61}
PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GB = 1024**3


def base_config(profile):
    from transformers import AutoConfig

    from tunedeck.engine.models.model_loading import resolve_base

    kw = {"trust_remote_code": profile.model.trust_remote_code}
    if profile.model.revision:
        kw["revision"] = profile.model.revision
    try:
        return AutoConfig.from_pretrained(resolve_base(profile), **kw)
    except Exception as e:
        raise ExportError(
            f"cannot read the base model's config ({profile.model.base}): {str(e).splitlines()[0]}"
        ) from None


def check_vocab(config, tokenizer) -> None:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    rows = getattr(text, "vocab_size", None)
    if isinstance(rows, int) and len(tokenizer) > rows:
        raise ExportError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embeddings have {rows} rows: tokens "
            f"from {rows} on have no embedding (added without resizing the embeddings), and the converter "
            "cannot write them; train with those tokens' embeddings resized, or drop the added tokens"
        )


def template_warning(tokenizer) -> str | None:
    if getattr(tokenizer, "chat_template", None):
        return None
    return (
        "the tokenizer has no chat template: the GGUF carries none, so Ollama and llama.cpp will not know how to "
        "prompt this model (set model.chat_template in the profile and train again, or give Ollama a TEMPLATE)"
    )


def weights_bytes(profile, ckpt) -> int | None:
    """The stored size of the model's weights: the full checkpoint's, else the base's safetensors (local or cached)."""
    if profile.method.adapter == "none":
        files = list(Path(ckpt.path).glob("model*.safetensors"))
        return sum(f.stat().st_size for f in files) or None
    from tunedeck.engine.models.model_loading import resolve_base

    base = Path(resolve_base(profile))
    if base.is_dir():
        return sum(f.stat().st_size for f in base.glob("*.safetensors")) or None
    try:
        import json

        from huggingface_hub import try_to_load_from_cache

        index = try_to_load_from_cache(
            profile.model.base, "model.safetensors.index.json", revision=profile.model.revision or None
        )
        if isinstance(index, str):
            return int(json.loads(Path(index).read_text())["metadata"]["total_size"])
        single = try_to_load_from_cache(
            profile.model.base, "model.safetensors", revision=profile.model.revision or None
        )
        return Path(single).stat().st_size if isinstance(single, str) else None
    except Exception:
        return None


def check_disk(profile, ckpt, config, gguf_type: str, precision: str, where: Path) -> str | None:
    """ExportError when `where` has too little room for the merged weights and the GGUF; a note when unknown."""
    stored = weights_bytes(profile, ckpt)
    if not stored:
        return "the model's size is unknown here, so free disk was not checked"
    dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32").removeprefix(
        "torch."
    )
    weights = stored / DTYPE_BYTES.get(dtype, 4)
    per_weight = PRECISION_BYTES.get(precision, 4) + GGUF_BYTES[gguf_type] + (2.0 if needs_quantize(gguf_type) else 0.0)
    need = int(weights * per_weight)
    free = shutil.disk_usage(where).free
    if free < need:
        raise ExportError(
            f"not enough free disk in {where}: the GGUF export needs about {need / GB:.1f} GB (the merged "
            f"weights in {precision} and the {gguf_type} file), {free / GB:.1f} GB are free"
        )
    return None


def probe_converter(llama_cpp: LlamaCpp, config, tokenizer, work: Path, sentencepiece_model: Path | None) -> None:
    """llama.cpp's converter on the config and tokenizer alone (--vocab-only): it refuses an unsupported
    architecture or an unknown BPE tokenizer in seconds, before the merge."""
    folder = work / "converter-probe"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        config.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        prepare_converter_input(folder, tokenizer, sentencepiece_model)
        run_converter(llama_cpp, folder, work / "converter-probe.gguf", "f16", vocab_only=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        (work / "converter-probe.gguf").unlink(missing_ok=True)


def sentencepiece_model(profile, ckpt) -> Path | None:
    """The tokenizer.model the checkpoint's vocabulary came from: the checkpoint's own (older transformers saved it),
    else the base model's (a local folder, or the Hugging Face cache); None when there is none."""
    from tunedeck.engine.models.model_loading import resolve_base

    for folder in (Path(ckpt.path), Path(resolve_base(profile))):
        if (folder / "tokenizer.model").is_file():
            return folder / "tokenizer.model"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(profile.model.base, "tokenizer.model", revision=profile.model.revision or None)
    except Exception:  # not a hub id, or no cache: no sentencepiece model to add
        return None
    return Path(found) if isinstance(found, str) else None


def preflight(
    profile, ckpt, tokenizer, gguf_type: str, llama_cpp: LlamaCpp, precision: str, work: Path, progress=None
) -> list[str]:
    """Every check above; ExportError on the first that fails, the warnings otherwise."""
    say = progress or (lambda message: None)
    config = base_config(profile)
    check_vocab(config, tokenizer)
    notes = [
        w for w in (template_warning(tokenizer), check_disk(profile, ckpt, config, gguf_type, precision, work)) if w
    ]
    say("checking that llama.cpp's converter accepts the architecture and the tokenizer")
    probe_converter(llama_cpp, config, tokenizer, work, sentencepiece_model(profile, ckpt))
    return notes
