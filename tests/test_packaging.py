"""The wheel holds what the repository holds: every module and data file of engine/, tui/ and profiles/.

The package list is derived from the folders (setup.py); before it was, a new room worked in an
editable install and was missing from the wheel (it happened to the shipped presets)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"engine": "tunedeck/engine", "tui": "tunedeck/tui", "profiles": "tunedeck/profiles"}
DATA = ("*.py", "*.tcss", "*.toml")


@pytest.mark.slow
def test_a_built_wheel_holds_every_module_and_data_file(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("tunedeck-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{FOLDERS[folder]}/{p.relative_to(ROOT / folder).as_posix()}"
        for folder in FOLDERS
        for pattern in DATA
        for p in (ROOT / folder).rglob(pattern)
        if "__pycache__" not in p.parts
    }
    assert expected, "nothing found to package"
    assert not expected - inside, f"missing from the wheel: {sorted(expected - inside)}"


def test_the_version_is_written_once():
    from importlib.metadata import version

    from tunedeck.engine.run.run_record import VERSION

    assert VERSION == version("tunedeck")
    assert '"0.' not in (ROOT / "engine" / "run" / "run_record.py").read_text()  # no literal copy beside pyproject's
