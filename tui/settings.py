"""What the app remembers between sessions: $XDG_CONFIG_HOME/tunedeck/settings.toml (default
~/.config/tunedeck/settings.toml), next to keymap.toml. Today: the colour theme chosen with ctrl+t.

    theme = "nord"

An unreadable file is ignored (the defaults apply) and rewritten on the next change.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tunedeck" / "settings.toml"


def load_settings(path: Path | None = None) -> dict:
    try:
        data = tomllib.loads((path or settings_path()).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_setting(key: str, value, path: Path | None = None) -> None:
    import tomlkit

    path = path or settings_path()
    data = load_settings(path)
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(data), encoding="utf-8")
    tmp.replace(path)
