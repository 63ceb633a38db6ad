"""<run>/tracking.json and the run directory's tracker folders: how to reach a run's tracker runs again,
and what was already sent to them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedeck.engine.run.atomic_io import read_json_object, write_json_atomic

TRACKING_FILE = "tracking.json"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"


@dataclass
class TrackingState:
    """<run>/tracking.json: how to reach this run's tracker runs again, and what was already sent."""

    project: str = ""
    run_name: str = ""
    wandb_id: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_run_id: str = ""
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # tracker -> item key -> content hash

    @classmethod
    def load(cls, run_dir: Path) -> "TrackingState":
        data = read_json_object(Path(run_dir) / TRACKING_FILE)
        if data is None:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return cls()

    def save(self, run_dir: Path) -> None:
        write_json_atomic(Path(run_dir) / TRACKING_FILE, asdict(self))


def wandb_run_id(run_dir: Path) -> str:
    """Stable and unique per run directory (two workspaces may hold the same run id)."""
    run_dir = Path(run_dir).resolve()
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name)[:48]
    return f"{slug}-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]}"
