"""A checkpoint as one GGUF file with its Ollama Modelfile: pre-flight, merge, llama.cpp's converter.

LoRA checkpoints are merged into the base first (the same merge as `--merge`), full fine-tuning
checkpoints convert as they are; either is written as an HF folder inside the export's temporary
folder, handed to llama.cpp's converter (engine/export/gguf_convert.py) and removed, so OUT holds the
.gguf, the Modelfile and the record. The Modelfile is written after the artifact gate, so a failed
export says so at its top.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.export import modelfile as mf
from tunedeck.engine.export.gguf_convert import convert, prepare_converter_input
from tunedeck.engine.export.gguf_preflight import preflight, sentencepiece_model
from tunedeck.engine.export.llama_cpp_source import LlamaCpp

MERGED_DIR = ".merged-for-converter"


@dataclass
class GgufWritten:
    file: str  # the .gguf's name inside OUT
    gguf_type: str
    converter: dict  # which llama.cpp converter wrote it (LlamaCpp.to_record)
    timings: dict  # convert_s (and quantize_s), as measured
    stops: list[str] = field(default_factory=list)  # for the Modelfile
    notes: list[str] = field(default_factory=list)  # pre-flight warnings
    tokenizer_model: str | None = None  # the sentencepiece model handed to the converter (gguf_convert)

    def to_record(self) -> dict:
        return {
            "file": self.file,
            "type": self.gguf_type,
            "converter": self.converter,
            **self.timings,
            "tokenizer_model": self.tokenizer_model,
            "stops": self.stops,
        }


def gguf_name(run_name: str, step: int, gguf_type: str) -> str:
    from tunedeck.engine.run.store import sanitize_name

    return f"{sanitize_name(run_name)}-checkpoint-{step}-{gguf_type}.gguf"


def write_gguf(
    ckpt, profile, tokenizer, tmp: Path, gguf_type: str, llama_cpp: LlamaCpp, precision: str, *, run_name: str, progress
) -> GgufWritten:
    """Pre-flight, merge (or load the full weights), convert into tmp/<name>.gguf; the merged folder is removed."""
    from tunedeck.engine.export.checkpoint_export import merged_model, write_model
    from tunedeck.engine.gate.generate import eos_ids

    notes = preflight(profile, ckpt, tokenizer, gguf_type, llama_cpp, precision, tmp, progress)
    for note in notes:
        progress(f"warning: {note}")
    merged = tmp / MERGED_DIR
    merged.mkdir()
    model = merged_model(ckpt, profile, precision, progress)
    stops = mf.stop_tokens(tokenizer, eos_ids(model, tokenizer))
    progress("writing the merged weights for the converter")
    write_model(model, tokenizer, merged)
    del model
    tokenizer.save_pretrained(str(merged))
    spm = sentencepiece_model(profile, ckpt)
    added = prepare_converter_input(merged, tokenizer, spm)
    name = gguf_name(run_name, ckpt.step, gguf_type)
    try:
        timings = convert(
            llama_cpp, merged, tmp / name, gguf_type, model_name=f"{run_name} checkpoint-{ckpt.step}", progress=progress
        )
    finally:
        shutil.rmtree(merged, ignore_errors=True)
    return GgufWritten(
        file=name,
        gguf_type=gguf_type,
        converter=llama_cpp.to_record(),
        timings=timings,
        stops=stops,
        notes=notes,
        tokenizer_model=str(spm) if added else None,
    )


def write_modelfile(
    tmp: Path, written: GgufWritten, task_records: list[dict], generation: dict, failed: list[str]
) -> None:
    system, note = mf.system_prompt(task_records)
    text = mf.modelfile_text(
        written.file,
        stops=written.stops,
        system=system,
        generation=generation,
        notes=[note] if note else [],
        failed=failed,
    )
    (tmp / mf.MODELFILE).write_text(text, encoding="utf-8")
