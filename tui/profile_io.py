"""Saving the new-run form as a profile TOML, and diffs between profiles.

Editing an existing user profile keeps its comments and layout: tomlkit loads the document, only
the keys whose value changed are set, and the document is dumped back. A new profile holds
`extends = "<the profile it came from>"` plus only the keys that differ from it. No textual import
here: the functions are plain and unit-tested.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tunedeck.engine.config.profile_loading import (
    SHIPPED_PROFILES,
    build_profile,
    find_profile,
    load_profile,
    load_profile_data,
)
from tunedeck.engine.config.profile_schema import ALL_KEYS, SECTIONS, TOP_LEVEL, Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def flatten(data: dict | Profile) -> dict[str, Any]:
    """{'section.key': value} for every section key, plus top-level description/extends."""
    if isinstance(data, Profile):
        data = data.to_dict()
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in SECTIONS and isinstance(v, dict):
            for name, value in v.items():
                out[f"{k}.{name}"] = value
        else:
            out[k] = v
    return out


def nest(flat: dict[str, Any]) -> dict:
    """The inverse of flatten: {'optim.epochs': 3} -> {'optim': {'epochs': 3}}."""
    out: dict = {}
    for key, value in flat.items():
        if key in TOP_LEVEL or "." not in key:
            out[key] = value
        else:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def diff_lines(old: dict, new: dict) -> list[str]:
    """'section.key: old -> new' for every key whose value differs (either dict nested or flat)."""
    a, b = flatten(old), flatten(new)
    out = []
    for key in list(ALL_KEYS) + [k for k in b if k not in ALL_KEYS and k not in TOP_LEVEL]:
        if key not in a and key not in b:
            continue
        va, vb = a.get(key, ALL_KEYS[key].default if key in ALL_KEYS else None), b.get(key, ALL_KEYS[key].default if key in ALL_KEYS else None)
        if va != vb:
            out.append(f"{key}: {_fmt(va)} -> {_fmt(vb)}")
    return out


def parent_of(path: Path) -> str | None:
    """The profile a file extends (its own `extends` line), or None."""
    try:
        parent = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("extends")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return parent if isinstance(parent, str) and parent else None


def diff_against_parent(path: Path, workspace: Path | None = None) -> list[str]:
    """What a profile changes relative to the profile it extends (merged data vs merged data)."""
    parent = parent_of(path)
    if not parent:
        return []
    child = load_profile_data(path, workspace)
    ppath = find_profile(parent, relative_to=Path(path).parent, workspace=workspace)
    base = load_profile_data(ppath, workspace)
    child.pop("description", None), child.pop("extends", None)
    base.pop("description", None), base.pop("extends", None)
    return diff_lines(build_profile(base).to_dict(), build_profile(child).to_dict())


def is_user_profile(path: Path) -> bool:
    """A profile the user may edit in place: anything not shipped with tunedeck."""
    try:
        return not Path(path).resolve().is_relative_to(SHIPPED_PROFILES.resolve())
    except OSError:
        return False


def _changed(resolved: Profile, profile: Profile) -> dict[str, Any]:
    a, b = flatten(resolved), flatten(profile)
    return {k: v for k, v in b.items() if k not in TOP_LEVEL and a.get(k) != v}


def save_profile(profile: Profile, path: Path, *, edit_existing: bool = False, extends: str | None = None,
                 workspace: Path | None = None) -> list[str]:
    """Write `profile` to `path`; return the diff lines against what the file (or its parent) held.

    edit_existing: `path` is a user profile being edited; its comments and layout are kept and only
    changed keys are set. Otherwise a new file: `extends = "<extends>"` and the keys that differ.
    """
    import tomlkit

    path = Path(path)
    if edit_existing and path.is_file():
        before = load_profile(path, workspace=workspace)
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
        if profile.description != before.description:
            doc["description"] = profile.description
        changes = _changed(before, profile)
    else:
        before = load_profile(extends, workspace=workspace) if extends else Profile()
        doc = tomlkit.document()
        if profile.description:
            doc["description"] = profile.description
        if extends:
            doc["extends"] = extends
        changes = _changed(before, profile)
    for key, value in changes.items():
        section, name = key.split(".", 1)
        if section not in doc:
            doc[section] = tomlkit.table()
        doc[section][name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    tmp.replace(path)
    return diff_lines(before.to_dict(), profile.to_dict())


def user_profile_dir(workspace: Path | None = None) -> Path:
    """Where new profiles go: the first directory of the search path (the user's config)."""
    from tunedeck.engine.config.profile_loading import profile_search_path

    return profile_search_path(workspace)[0]
