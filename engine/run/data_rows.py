"""<run>/data_rows.json: which rows a run trained and was judged on (engine/data/versions.py computes them).

Written once at launch by the pre-flight; read by `tunedeck show` and the app's run comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunedeck.engine.run.atomic_io import read_json_object, write_text_atomic

DATA_ROWS_JSON = "data_rows.json"


def write_data_rows(run_dir: Path, record: dict) -> None:
    write_text_atomic(Path(run_dir) / DATA_ROWS_JSON, json.dumps(record, separators=(",", ":")))


def read_data_rows(run_dir: Path) -> dict | None:
    return read_json_object(Path(run_dir) / DATA_ROWS_JSON)
