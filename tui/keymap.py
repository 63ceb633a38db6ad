"""User key remapping: every binding has an id, and a keymap file maps ids to keys.

$XDG_CONFIG_HOME/tunedeck/keymap.toml (default ~/.config/tunedeck/keymap.toml):

    [keys]
    "runs.delete" = "x"
    "monitor.smoothing" = "S,m"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tunedeck" / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """(binding id -> keys, a problem worth telling the user or None)."""
    path = path or keymap_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return {}, f"{path}: {e}"
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        return {}, f'{path}: [keys] must be a table of binding id = "key"'
    return {str(k): str(v) for k, v in keys.items() if isinstance(v, str)}, None


_KEY_NAMES = {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc"}


def key_name(app, binding_id: str, default: str) -> str:
    """The key a hint should name for a binding: the user's remapped one (keymap.toml), else the default."""
    keys = (getattr(app, "keymap_overrides", None) or {}).get(binding_id)
    first = keys.split(",")[0].strip() if keys else default
    return _KEY_NAMES.get(first, first)
