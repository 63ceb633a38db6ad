"""An HF model folder to one GGUF file, by llama.cpp's own converter (and llama-quantize for the K-quants).

The converter runs in a subprocess with its own import path (PYTHONPATH=<llama.cpp>/gguf-py, the gguf
package it ships with), offline (HF_HUB_OFFLINE=1: nothing comes from the model hub), in the folder it
converts. f16, bf16 and q8_0 are written by the converter directly; q4_k_m, q5_k_m and q6_k by
`llama-quantize` from an f16 file the converter writes first. Its known failures (an architecture it
has no class for, a BPE tokenizer it cannot identify, a missing Python package) become one line that
says what to do; anything else quotes the converter's last line.

Two preparations of the converter's input (never of the converter), both for what transformers 5 no
longer writes when it saves a tokenizer and llama.cpp still reads (measured on a sentencepiece Llama):
- tokenizer.model: without it llama.cpp takes a sentencepiece vocabulary from tokenizer.json with every
  score -1000, so llama.cpp (and transformers reading the GGUF) split words differently from the model's
  own tokenizer and the answers drift. The base's tokenizer.model is copied in when its pieces are the
  checkpoint tokenizer's vocabulary.
- tokenizer_config.json's `added_tokens_decoder`: llama.cpp's sentencepiece path reads the added tokens'
  "special" flags from it; without it a chat marker such as `<|im_start|>` becomes an ordinary piece in
  the GGUF and is no longer read as one token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tunedeck.engine.export.checkpoint_export import ExportError
from tunedeck.engine.export.llama_cpp_source import LlamaCpp
from tunedeck.engine.run.atomic_io import read_json_object

DIRECT_TYPES = ("f16", "bf16", "q8_0")  # written by the converter itself
QUANTIZE_TYPES = {"q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}  # llama-quantize's names
GGUF_TYPES = DIRECT_TYPES + tuple(QUANTIZE_TYPES)
CONVERT_TIMEOUT_S = 6 * 3600
LOG_TAIL = 40


def parse_gguf_type(text: str) -> str:
    """--gguf TYPE, case-insensitive; any other type is refused with what tunedeck can write and how to get the rest."""
    t = str(text).strip().lower().replace("-", "_")
    if t in GGUF_TYPES:
        return t
    raise ExportError(
        f"--gguf {text}: tunedeck writes {', '.join(DIRECT_TYPES)} (llama.cpp's converter) and "
        f"{', '.join(QUANTIZE_TYPES)} (llama-quantize); for another type export f16 and run "
        f"`llama-quantize MODEL-f16.gguf MODEL-{t}.gguf {t.upper()}` from a llama.cpp build"
    )


def require_packages() -> None:
    """The Python packages a GGUF export needs beside tunedeck's own: llama.cpp's converter imports sentencepiece,
    and transformers reads the file back through gguf for the artifact gate."""
    import importlib.util

    missing = [m for m in ("gguf", "sentencepiece") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"--gguf needs the Python package{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"(llama.cpp's converter imports sentencepiece; transformers reads the GGUF back with gguf): "
            f"pip install {' '.join(missing)}"
        )


def needs_quantize(gguf_type: str) -> bool:
    return gguf_type in QUANTIZE_TYPES


def require_quantize(llama_cpp: LlamaCpp, gguf_type: str) -> None:
    if needs_quantize(gguf_type) and llama_cpp.quantize is None:
        raise ExportError(
            f"--gguf {gguf_type} needs llama.cpp's llama-quantize, and none was found (in --llama-cpp DIR's "
            "build/bin, or on PATH): build it in a llama.cpp checkout (`cmake -B build && cmake --build build "
            "--target llama-quantize`) and pass --llama-cpp DIR (or set LLAMA_CPP_DIR); "
            f"{', '.join(DIRECT_TYPES)} need no build"
        )


# ---- the converter's input ----------------------------------------------------------------------


def matching_sentencepiece(path: Path | None, tokenizer) -> bool:
    """Whether the sentencepiece model at `path` holds exactly the tokenizer's base vocabulary, id for id."""
    if path is None or not Path(path).is_file():
        return False
    try:
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except Exception:  # not a sentencepiece model, or sentencepiece missing: nothing to copy
        return False
    n = sp.get_piece_size()
    return n <= len(tokenizer) and tokenizer.convert_ids_to_tokens(list(range(n))) == [
        sp.id_to_piece(i) for i in range(n)
    ]


def prepare_converter_input(folder: Path, tokenizer, sentencepiece_model: Path | None) -> bool:
    """The two preparations above on a saved HF folder; whether a tokenizer.model was copied in."""
    folder = Path(folder)
    write_added_tokens_decoder(folder, tokenizer)
    target = folder / "tokenizer.model"
    if target.exists() or not matching_sentencepiece(sentencepiece_model, tokenizer):
        return False
    shutil.copyfile(sentencepiece_model, target)
    return True


def write_added_tokens_decoder(folder: Path, tokenizer) -> None:
    """tokenizer_config.json's added_tokens_decoder, as transformers 4 wrote it, for llama.cpp's sentencepiece
    reader."""
    path = Path(folder) / "tokenizer_config.json"
    config = read_json_object(path)
    if config is None or config.get("added_tokens_decoder"):
        return
    config["added_tokens_decoder"] = {
        str(i): {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
        for i, t in sorted(tokenizer.added_tokens_decoder.items())
    }
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---- running it ---------------------------------------------------------------------------------


def _env(llama_cpp: LlamaCpp) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=str(llama_cpp.root / "gguf-py"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def _explain(lines: list[str], llama_cpp: LlamaCpp) -> str:
    """The converter's failure in one line: a known cause with what to do, else its last line."""
    text = "\n".join(lines)
    which = (
        f"llama.cpp's converter ({llama_cpp.source}{', commit ' + llama_cpp.commit[:12] if llama_cpp.commit else ''})"
    )
    for line in lines:
        if " is not supported" in line and "Model " in line:
            arch = line.split("Model ", 1)[1].split(" is not supported")[0]
            return (
                f"{which} has no support for the architecture {arch}; a newer llama.cpp may have it "
                "(pass its checkout with --llama-cpp DIR)"
            )
    if "BPE pre-tokenizer was not recognized" in text:
        return (
            f"{which} does not recognise this model's tokenizer (a BPE pre-tokenizer it has no hash for: a tokenizer "
            "that is not one of the published models' it knows); a newer llama.cpp may know it (--llama-cpp DIR)"
        )
    for line in reversed(lines):
        if line.startswith("ModuleNotFoundError:"):
            module = line.split("'")[1] if "'" in line else line
            return f"{which} needs the Python package {module!r}, which is not installed here: pip install {module}"
    last = next((ln.strip() for ln in reversed(lines) if ln.strip() and not ln.startswith((" ", "\t"))), "no output")
    return f"{which} failed: {last}"


def run_converter(
    llama_cpp: LlamaCpp,
    model_dir: Path,
    outfile: Path,
    outtype: str,
    *,
    vocab_only: bool = False,
    model_name: str | None = None,
) -> float:
    """Run convert_hf_to_gguf.py on `model_dir`; seconds it took. ExportError with the cause when it fails."""
    cmd = [sys.executable, str(llama_cpp.script), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    if vocab_only:
        cmd.append("--vocab-only")
    if model_name:
        cmd += ["--model-name", model_name]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=_env(llama_cpp),
            cwd=str(model_dir),
            stdin=subprocess.DEVNULL,
            timeout=CONVERT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"llama.cpp's converter did not finish within {CONVERT_TIMEOUT_S // 3600} h") from None
    took = time.perf_counter() - t0
    if proc.returncode != 0 or not outfile.is_file():
        raise ExportError(_explain((proc.stderr + "\n" + proc.stdout).splitlines()[-LOG_TAIL:], llama_cpp))
    return took


def run_quantize(llama_cpp: LlamaCpp, src: Path, dst: Path, gguf_type: str) -> float:
    """llama-quantize SRC DST TYPE; seconds it took."""
    require_quantize(llama_cpp, gguf_type)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(llama_cpp.quantize), str(src), str(dst), QUANTIZE_TYPES[gguf_type]],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CONVERT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExportError(f"llama-quantize ({llama_cpp.quantize}) could not run: {e}") from None
    if proc.returncode != 0 or not dst.is_file():
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise ExportError(
            f"llama-quantize ({llama_cpp.quantize}) failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
        )
    return time.perf_counter() - t0


def convert(
    llama_cpp: LlamaCpp, model_dir: Path, outfile: Path, gguf_type: str, *, model_name: str | None = None, progress=None
) -> dict:
    """`model_dir` (an HF folder) to `outfile` as `gguf_type`; {"convert_s", "quantize_s"} as measured."""
    progress = progress or (lambda message: None)
    if not needs_quantize(gguf_type):
        progress(f"converting to GGUF ({gguf_type}) with llama.cpp's convert_hf_to_gguf.py")
        return {"convert_s": round(run_converter(llama_cpp, model_dir, outfile, gguf_type, model_name=model_name), 3)}
    require_quantize(llama_cpp, gguf_type)
    f16 = outfile.with_name(outfile.stem + ".f16-intermediate.gguf")
    progress("converting to GGUF (f16, to quantize) with llama.cpp's convert_hf_to_gguf.py")
    took = run_converter(llama_cpp, model_dir, f16, "f16", model_name=model_name)
    progress(f"quantizing to {gguf_type} with {llama_cpp.quantize}")
    try:
        q = run_quantize(llama_cpp, f16, outfile, gguf_type)
    finally:
        f16.unlink(missing_ok=True)
    return {"convert_s": round(took, 3), "quantize_s": round(q, 3)}
