"""Where llama.cpp's GGUF converter comes from: a llama.cpp directory the user names, else the copy vendored
in the llama-cpp-python source distribution at a pinned version, downloaded once, verified and cached.

tunedeck never rewrites the converter: `convert_hf_to_gguf.py` with its `conversion/` package and `gguf-py/`
run as llama.cpp ships them (engine/export/gguf_convert.py). Where they come from, in order:

1. `--llama-cpp DIR` or $LLAMA_CPP_DIR: a llama.cpp checkout (or an unpacked llama-cpp-python sdist, whose
   `vendor/llama.cpp/` is used). Its `llama-quantize` (build/bin/, bin/ or the top) makes the K-quants.
2. The cache, $XDG_CACHE_HOME/tunedeck/llama.cpp-<version>/ (default ~/.cache/tunedeck/...): what step 3 unpacked.
3. `pip download` of the llama-cpp-python sdist (the ordinary client, so the user's index, proxy and
   certificates apply), its sha256 checked against the pinned one; only the converter's files are unpacked,
   into a temporary folder beside the cache entry that is renamed into place (a half-written copy never
   looks whole). The sdist itself is not kept.

Offline with nothing cached, LlamaCppUnavailable says what to download and what to set. `llama-quantize`
is also looked up on PATH (Homebrew and distribution packages of llama.cpp install it there).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tunedeck.engine.export.checkpoint_export import ExportError
from tunedeck.engine.run.atomic_io import read_json_object

PINNED_VERSION = "0.3.36"
PINNED_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST = f"llama_cpp_python-{PINNED_VERSION}.tar.gz"
SDIST_URL = f"https://pypi.org/project/llama-cpp-python/{PINNED_VERSION}/#files"
ENV_DIR = "LLAMA_CPP_DIR"
MARKER = "tunedeck-llama-cpp.json"  # written inside a cache entry before it is renamed into place
CONVERTER = "convert_hf_to_gguf.py"
# what the converter needs from the vendored tree (conversion/ exists in newer llama.cpp only)
NEEDED = (CONVERTER, "conversion/", "gguf-py/", "LICENSE")
QUANTIZE_PLACES = ("build/bin", "bin", ".", "build")
PIP_TIMEOUT_S = 900


class LlamaCppUnavailable(ExportError):
    """No llama.cpp converter here and none could be fetched; str() says what to download or set."""


@dataclass(frozen=True)
class LlamaCpp:
    """A llama.cpp converter ready to run, and where it came from (the export record keeps this)."""

    root: Path  # holds convert_hf_to_gguf.py and gguf-py/
    source: str  # "llama.cpp directory DIR" or "llama-cpp-python 0.3.36 source distribution"
    commit: str | None = None  # llama.cpp's git commit, where known
    gguf_py: str | None = None  # the version of its gguf-py package
    sdist_sha256: str | None = None
    quantize: Path | None = None  # llama-quantize, for the K-quants

    @property
    def script(self) -> Path:
        return self.root / CONVERTER

    def to_record(self) -> dict:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        out["converter"] = CONVERTER
        return out


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/tunedeck (default ~/.cache/tunedeck): where the pinned converter is unpacked."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunedeck"


def offline_help() -> str:
    return (
        f"download the llama-cpp-python {PINNED_VERSION} source distribution ({SDIST}, sha256 {PINNED_SHA256}) "
        f"from {SDIST_URL} (or `pip download --no-deps --no-binary :all: llama-cpp-python=={PINNED_VERSION}`), "
        f"unpack it with `tar xzf {SDIST}` and pass --llama-cpp llama_cpp_python-{PINNED_VERSION}/vendor/llama.cpp "
        f"(or set {ENV_DIR}); a llama.cpp checkout (https://github.com/ggml-org/llama.cpp) works as well"
    )


# ---- a directory the user names -----------------------------------------------------------------


def _gguf_py_version(root: Path) -> str | None:
    try:
        import tomllib

        data = tomllib.loads((root / "gguf-py" / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (data.get("project") or data.get("tool", {}).get("poetry") or {}).get("version")


def _git_commit(root: Path) -> str | None:
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def find_quantize(root: Path | None) -> Path | None:
    """llama-quantize in the llama.cpp directory's build, else on PATH."""
    for place in QUANTIZE_PLACES if root is not None else ():
        exe = root / place / "llama-quantize"
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    found = shutil.which("llama-quantize")
    return Path(found) if found else None


def from_directory(path: str | Path, how: str) -> LlamaCpp:
    """The converter in a llama.cpp checkout, or in an unpacked llama-cpp-python sdist's vendor/llama.cpp."""
    given = Path(path).expanduser().absolute()
    root = given / "vendor" / "llama.cpp" if (given / "vendor" / "llama.cpp" / CONVERTER).is_file() else given
    if not given.is_dir():
        raise LlamaCppUnavailable(f"{how}: {given} is not a directory (a llama.cpp checkout holding {CONVERTER})")
    if not (root / CONVERTER).is_file() or not (root / "gguf-py" / "gguf").is_dir():
        raise LlamaCppUnavailable(
            f"{how}: {given} holds no {CONVERTER} with its gguf-py/ folder; name a llama.cpp "
            "checkout (or an unpacked llama-cpp-python source distribution)"
        )
    return LlamaCpp(
        root=root,
        source=f"llama.cpp directory {given} ({how})",
        commit=_git_commit(root),
        gguf_py=_gguf_py_version(root),
        quantize=find_quantize(root),
    )


# ---- the pinned copy: cached, else downloaded -----------------------------------------------------


def cache_entry() -> Path:
    return cache_dir() / f"llama.cpp-{PINNED_VERSION}"


def cached() -> LlamaCpp | None:
    entry = cache_entry()
    meta = read_json_object(entry / MARKER)
    if meta is None or not (entry / CONVERTER).is_file() or meta.get("sdist_sha256") != PINNED_SHA256:
        return None
    return LlamaCpp(
        root=entry,
        source=f"llama-cpp-python {PINNED_VERSION} source distribution (cached in {entry})",
        commit=meta.get("commit"),
        gguf_py=meta.get("gguf_py"),
        sdist_sha256=PINNED_SHA256,
        quantize=find_quantize(None),
    )


def _download(into: Path, progress) -> Path:
    """pip download the pinned sdist into `into`; LlamaCppUnavailable with pip's own reason when it cannot."""
    progress(
        f"downloading llama.cpp's converter: the llama-cpp-python {PINNED_VERSION} source distribution "
        "(76 MB, once; cached afterwards)"
    )
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--retries",
        "2",
        "--disable-pip-version-check",
        "-d",
        str(into),
        f"llama-cpp-python=={PINNED_VERSION}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LlamaCppUnavailable(
            f"llama.cpp's converter is not cached and pip could not fetch it ({e}); {offline_help()}"
        ) from None
    sdist = into / SDIST
    if proc.returncode != 0 or not sdist.is_file():
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        said = next(
            (ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else f"exit {proc.returncode}"
        )
        offline = next(
            (ln for ln in lines if "connection broken by" in ln or "Failed to establish a new connection" in ln), None
        )
        if offline:  # pip's last line ("no matching distribution") hides that the index was never reached
            why = re.search(r"(\[Errno [^\]]+\][^'\"]*|Failed to resolve[^'\"]*|timed out)", offline)
            said = "the package index could not be reached" + (f": {why.group(1).strip()}" if why else "")
        raise LlamaCppUnavailable(
            f"llama.cpp's converter is not cached and pip could not download it ({said}); {offline_help()}"
        )
    return sdist


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unpack(sdist: Path, dest: Path) -> dict:
    """The converter's files from the sdist's vendor/llama.cpp/ into dest; the vendored commit from the sdist's git."""
    prefix = f"llama_cpp_python-{PINNED_VERSION}/"
    vendor = prefix + "vendor/llama.cpp/"
    head = prefix + ".git/modules/vendor/llama.cpp/HEAD"
    commit = None
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar:
            if member.name == head and member.isfile():
                commit = tar.extractfile(member).read().decode("ascii", "replace").strip() or None
                continue
            rel = member.name[len(vendor) :] if member.name.startswith(vendor) else ""
            if not rel or not any(rel == n or (n.endswith("/") and rel.startswith(n)) for n in NEEDED):
                continue
            if not (member.isfile() or member.isdir()):
                continue  # no links or devices from an archive
            target = (dest / rel).resolve()
            if dest.resolve() not in target.parents:
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    if not (dest / CONVERTER).is_file():
        raise LlamaCppUnavailable(f"{sdist.name} holds no vendor/llama.cpp/{CONVERTER}; {offline_help()}")
    return {"sdist": SDIST, "sdist_sha256": PINNED_SHA256, "commit": commit, "gguf_py": _gguf_py_version(dest)}


def fetch(progress=None) -> LlamaCpp:
    """Download, verify and cache the pinned converter (instant when it is cached already)."""
    progress = progress or (lambda message: None)
    have = cached()
    if have is not None:
        return have
    entry = cache_entry()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    except OSError as e:
        raise LlamaCppUnavailable(
            f"cannot write the converter's cache {entry.parent}: {e.strerror}; set XDG_CACHE_HOME "
            f"to a writable folder, or {offline_help()}"
        ) from None
    try:
        sdist = _download(work / "download", progress)
        digest = _sha256(sdist)
        if digest != PINNED_SHA256:
            raise LlamaCppUnavailable(
                f"the downloaded {SDIST} has sha256 {digest}, not the pinned {PINNED_SHA256}: "
                "refusing to run it (a changed or tampered file); check your package index"
            )
        tree = work / "llama.cpp"
        tree.mkdir()
        meta = _unpack(sdist, tree)
        (tree / MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tree, entry)
        except OSError:
            if cached() is None:  # another export won the race with a whole copy, or the entry is broken
                shutil.rmtree(entry, ignore_errors=True)
                os.rename(tree, entry)
    except OSError as e:
        raise LlamaCppUnavailable(f"cannot unpack the converter into {entry}: {e.strerror}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = cached()
    if found is None:
        raise LlamaCppUnavailable(f"the converter unpacked into {entry} is not usable; remove that folder and retry")
    return found


def locate(llama_cpp: str | Path | None = None, *, progress=None, download: bool = True) -> LlamaCpp:
    """The converter to run: --llama-cpp DIR, else $LLAMA_CPP_DIR, else the cached pinned copy, else fetch it."""
    if llama_cpp:
        return from_directory(llama_cpp, "--llama-cpp")
    if os.environ.get(ENV_DIR):
        return from_directory(os.environ[ENV_DIR], ENV_DIR)
    have = cached()
    if have is not None or not download:
        if have is None:
            raise LlamaCppUnavailable(f"llama.cpp's converter is not cached; {offline_help()}")
        return have
    return fetch(progress)
