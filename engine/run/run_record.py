"""run.toml: the resolved profile frozen at launch plus the experiment record.

One writer, pre-flight (engine/scheduling/preflight.py), when it creates the run directory; nothing
rewrites it after (resume, the gate and export read it; `--set gate.*` is recorded in gate.json).
The [run] table holds what is not a hyperparameter: id, name, when, the profile it came from, the
base model (and a GGUF base's file, sha256 and folder), the dataset path, format, row counts, skipped
rows and content fingerprint, what the loss covers, the tunedeck version, the command and the parent
run. Everything else is the profile.
"""

from __future__ import annotations

import importlib.metadata
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.config.profile_loading import ProfileError, profile_from_dict, to_toml
from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import write_text_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VERSION = importlib.metadata.version("tunedeck")  # pyproject.toml holds it; run.toml records it


@dataclass
class RunRecord:
    id: str
    name: str
    profile: Profile
    profile_source: str = ""
    base_model: str = ""
    # a GGUF base (engine/models/gguf_base.py): the .gguf file named, its sha256, and the de-quantised HF
    # folder the run loads (also base_model); empty for any other base and in records written before them
    gguf_source: str = ""
    gguf_sha256: str = ""
    gguf_folder: str = ""
    dataset_path: str = ""
    dataset_format: str = ""
    dataset_fingerprint: str = ""
    rows: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    skipped_rows: list = field(default_factory=list)
    loss_masking: str = ""  # what the loss covers, in words (engine/data/loss_masks.py describe_masking)
    created: float = field(default_factory=time.time)
    tunedeck_version: str = VERSION
    command: str = ""
    parent: str = ""  # the run this one was started from (`tunedeck run --from`, N in the app)

    def run_table(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("profile")
        return d


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    data = {"run": record.run_table(), **record.profile.to_dict()}
    header = (
        "# tunedeck run record: the resolved profile, frozen at launch, and what it ran on.\n"
        "# Do not edit: resume and the gate read it.\n"
    )
    write_text_atomic(Path(run_dir) / C.RUN_TOML, header + to_toml(data))


def load_run_record(run_dir: Path) -> RunRecord:
    path = Path(run_dir) / C.RUN_TOML
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError("missing: this directory is not a tunedeck run", file=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"unreadable run record: {e}", file=str(path)) from None
    run = data.pop("run", {})
    profile = profile_from_dict(data, str(path))
    known = {k: v for k, v in run.items() if k in RunRecord.__dataclass_fields__ and k != "profile"}
    return RunRecord(profile=profile, **{"id": Path(run_dir).name, "name": Path(run_dir).name, **known})
