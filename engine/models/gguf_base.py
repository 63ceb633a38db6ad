"""A GGUF file as a base model: de-quantised once, through transformers' GGUF loader, into a cached HF folder.

`model.base` may name a `.gguf` file, or a folder holding one (with `model.gguf_file` when it holds
several). `materialize_gguf` turns it into an ordinary HF folder (config, safetensors weights,
tokenizer with its chat template) under `<cache>/tunedeck/gguf/<sha256[:16]>/`, keyed by the file's
content, so every later run, gate, export and playground loads that folder like any other model.

The folder is written under a temporary name and renamed into place, so a half-written one never
looks whole; a lock file keeps two runs from de-quantising the same file at once, and where locks
do not hold (some network filesystems) the rename still lets only one complete folder win.
Nothing heavy is imported at module level: the app reads `is_gguf_ref` and the notice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.run.atomic_io import read_json_object
from tunedeck.engine.run.formatting import fmt_gib

MARKER = "tunedeck-gguf.json"  # written inside a cache folder before it is renamed into place
FP32_MAX_PARAMETERS = 1_500_000_000  # above this, the de-quantised weights are stored as bf16 (half the disk)


class GgufBaseError(ValueError):
    """The GGUF base cannot be used; str() names the file and says what to do."""


@dataclass(frozen=True)
class GgufBase:
    folder: Path  # the de-quantised HF folder everything downstream loads
    sha256: str  # of the .gguf file
    source: Path  # the .gguf file itself
    architecture: str = ""
    dtype: str = ""  # how the de-quantised weights are stored


def gguf_notice(source: str | Path) -> str:
    """What training on a de-quantised base means, said wherever such a base is used."""
    return (
        f"model.base is a quantised GGUF file ({Path(source).name}): it is de-quantised to an HF model, which keeps "
        "its quantisation error, so the fine-tune starts from a degraded copy of the original model; train on the "
        "original (unquantised) weights where they exist"
    )


def is_gguf_ref(base: str, gguf_file: str = "") -> bool:
    """Whether model.base (with model.gguf_file) names a GGUF file rather than an HF model; reads no file."""
    if gguf_file:
        return True
    if base.lower().endswith(".gguf"):
        return True
    folder = Path(base).expanduser()
    return folder.is_dir() and not (folder / "config.json").exists() and any(folder.glob("*.gguf"))


def find_gguf_file(base: str, gguf_file: str = "") -> Path:
    """The .gguf file model.base (and model.gguf_file) name, resolved; an error names what is missing."""
    path = Path(base).expanduser()
    if gguf_file:
        if not path.is_dir():
            raise GgufBaseError(
                f"model.gguf_file = {gguf_file!r} names a file inside model.base, but model.base "
                f"{base!r} is not a local folder"
            )
        path = path / gguf_file
    elif path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            what = (
                "no .gguf file" if not found else f"{len(found)} .gguf files ({', '.join(p.name for p in found[:5])})"
            )
            raise GgufBaseError(
                f"model.base: the folder {path} holds {what}; set model.gguf_file to the one to train on"
            )
        path = found[0]
    if not path.is_file():
        raise GgufBaseError(f"model.base: {path}: no such GGUF file")
    if path.suffix.lower() != ".gguf":
        raise GgufBaseError(f"model.gguf_file: {path} is not a .gguf file")
    return path.resolve()


def cache_root() -> Path:
    """Where de-quantised GGUF bases are kept: $XDG_CACHE_HOME/tunedeck/gguf (default ~/.cache/tunedeck/gguf)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tunedeck" / "gguf"


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime, inode) so that a large file is hashed once."""
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()).hexdigest()
    memo = cache_root() / "hashes" / key
    try:
        digest = memo.read_text(encoding="ascii").strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        from tunedeck.engine.run.atomic_io import write_text_atomic

        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(memo, digest + "\n", mode=0o644)
    except OSError:
        pass  # a read-only cache only costs the hash next time
    return digest


def gguf_architecture(path: Path) -> tuple[str, int]:
    """(general.architecture, number of parameters) of a GGUF file, from its metadata and tensor table."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise GgufBaseError(
            f"model.base: {path} is a GGUF file; reading it needs the gguf package: pip install gguf"
        ) from None
    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8"), sum(int(t.n_elements) for t in reader.tensors)
    except KeyError:
        raise GgufBaseError(
            f"model.base: {path} has no general.architecture in its metadata: not a model GGUF"
        ) from None
    except Exception as e:  # noqa: BLE001 - truncated, or not a GGUF at all: any reader error means that
        raise GgufBaseError(
            f"model.base: {path} is not a readable GGUF file ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''})"
        ) from None


def check_gguf_supported(path: Path) -> dict:
    """What transformers will build from this GGUF file (architecture, model_type, parameters), or an error
    naming the file and its architecture when transformers' GGUF loader cannot read it or it is not a causal
    language model."""
    arch, params = gguf_architecture(path)
    from transformers.modeling_gguf_pytorch_utils import (
        GGUF_SUPPORTED_ARCHITECTURES,
        load_gguf_checkpoint,
    )

    readable = sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
    try:
        parsed = load_gguf_checkpoint(str(path), return_tensors=False)
    except ValueError as e:
        if "not supported" not in str(e):
            raise GgufBaseError(f"model.base: {path} (architecture {arch!r}): {str(e).splitlines()[0][:200]}") from None
        raise GgufBaseError(
            f"model.base: {path} is a GGUF file of architecture {arch!r}, which transformers' GGUF "
            f"loader cannot read (it reads {', '.join(readable)}); use the model's original HF weights "
            "instead"
        ) from None
    model_type = parsed["config"].get("model_type", arch)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise GgufBaseError(
            f"model.base: {path} is a GGUF file of architecture {arch!r} (model type {model_type!r}), "
            "which is not a causal language model tunedeck can fine-tune"
        )
    return {
        "architecture": arch,
        "model_type": model_type,
        "parameters": params,
        "name": parsed["config"].get("_model_name_or_path", ""),
    }


def cached_gguf(folder: str | Path) -> GgufBase | None:
    """The GGUF provenance of a cache folder (a frozen run's model.base), or None for any other folder."""
    info = read_json_object(Path(folder) / MARKER)
    if info is None:
        return None
    try:
        return GgufBase(
            Path(folder), info["sha256"], Path(info["source"]), info.get("architecture", ""), info.get("dtype", "")
        )
    except (KeyError, TypeError):  # a marker that is not one of ours
        return None


def checked_gguf_file(path: str | Path, gguf_file: str | None = None) -> Path:
    """The .gguf file, checked as far as can be without de-quantising it (found, readable, an architecture
    transformers can load as a causal LM); instant when its de-quantised folder is already cached."""
    source = find_gguf_file(str(path), gguf_file or "")
    if not (cache_root() / file_sha256(source)[:16] / MARKER).exists():
        check_gguf_supported(source)
    return source


def materialize_gguf(path: str | Path, gguf_file: str | None = None, progress=None) -> GgufBase:
    """The de-quantised HF folder of a GGUF base, built on first use and reused after (keyed by the file's hash).

    `path` is the .gguf file, or a folder holding it (`gguf_file` names it when there are several).
    `progress(message)` hears about the slow first build. Raises GgufBaseError, naming the file, when it
    cannot be used (missing, not GGUF, an architecture transformers cannot read, no room in the cache)."""
    source = find_gguf_file(str(path), gguf_file or "")
    digest = file_sha256(source)
    root = cache_root()
    final = root / digest[:16]
    if (final / MARKER).exists():
        return cached_gguf(final) or GgufBase(final, digest, source)
    info = check_gguf_supported(source)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GgufBaseError(
            f"model.base: cannot create the GGUF cache {root}: {e.strerror}; set XDG_CACHE_HOME to a writable folder"
        ) from None
    import fcntl

    with open(root / f"{digest[:16]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run de-quantising the same file: wait for it, then reuse
        if not (final / MARKER).exists():
            for stale in root.glob(f".{digest[:16]}.*.partial"):  # a build killed midway: we hold the lock now
                shutil.rmtree(stale, ignore_errors=True)
            if progress:
                progress(f"de-quantising {source.name} once into {final} (later runs reuse it)")
            tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", suffix=".partial", dir=root))
            try:
                info["dtype"] = _write_hf_folder(source, tmp, info)
                info.update(sha256=digest, source=str(source))
                (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
                publish(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return cached_gguf(final) or GgufBase(final, digest, source)


def publish(tmp: Path, final: Path) -> None:
    """Rename a complete folder into place; where another process got there first, keep theirs."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared cache is read by the user's other processes
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / MARKER).exists():
            if final.exists():  # an incomplete leftover under the final name (not written by this code): replace it
                shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)


def _write_hf_folder(source: Path, out: Path, info: dict) -> str:
    """De-quantise `source` into `out` (config, safetensors weights, tokenizer); returns the stored dtype.

    save_pretrained refuses a model loaded from GGUF ("quantized with gguf and is not serializable"), so
    the weights move into a plain model of the same config, built on the meta device (no second copy)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars_were_on, tqdm_env = hf_logging.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()  # no progress bars on the app's screen or in logs: the GGUF loader's
    os.environ["TQDM_DISABLE"] = "1"  # own tqdm reads only this
    try:
        params = info["parameters"]
        dtype = torch.float32 if params <= FP32_MAX_PARAMETERS else torch.bfloat16
        free = shutil.disk_usage(out).free
        need = params * (4 if dtype == torch.float32 else 2)
        if free < need * 1.1:
            raise GgufBaseError(
                f"model.base: de-quantising {source} needs about {fmt_gib(need)} in {out.parent}, "
                f"which has {fmt_gib(free)} free; set XDG_CACHE_HOME to a roomier disk"
            )
        folder, name = str(source.parent), source.name
        try:
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        except Exception as e:  # noqa: BLE001 - the loader's own errors vary by architecture; each ends here
            raise GgufBaseError(
                f"model.base: transformers could not de-quantise {source} ({info['architecture']}): "
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            ) from None
        plain_config = loaded.config
        if hasattr(plain_config, "quantization_config"):
            del plain_config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(plain_config, dtype=dtype)
        plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        if loaded.generation_config is not None:
            plain.generation_config = loaded.generation_config
        del loaded
        plain.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        if tqdm_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_env
    return str(dtype).removeprefix("torch.")
