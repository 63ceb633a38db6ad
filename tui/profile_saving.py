"""Saving the new-run form as a profile TOML, and what a profile changes against the one it extends
(the difference itself is engine/config/profile_diff.py's).

Editing an existing user profile keeps its comments and layout: tomlkit loads the document, only
the keys whose value changed are set, and the document is dumped back. A new profile holds
`extends = "<the profile it came from>"` plus only the keys that differ from it. No textual import
here: the functions are plain and unit-tested.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tunedeck.engine.config.profile_diff import difference_lines, profile_differences
from tunedeck.engine.config.profile_loading import (
    SHIPPED_PROFILES,
    build_profile,
    find_profile,
    load_profile,
    load_profile_data,
)
from tunedeck.engine.config.profile_schema import TOP_LEVEL, Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def nest(flat: dict[str, Any]) -> dict:
    """The inverse of profile_diff.flatten: {'optim.epochs': 3} -> {'optim': {'epochs': 3}}."""
    out: dict = {}
    for key, value in flat.items():
        if key in TOP_LEVEL or "." not in key:
            out[key] = value
        else:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
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
    return difference_lines(build_profile(base), build_profile(child))


def is_user_profile(path: Path) -> bool:
    """A profile the user may edit in place: anything not shipped with tunedeck."""
    try:
        return not Path(path).resolve().is_relative_to(SHIPPED_PROFILES.resolve())
    except OSError:
        return False


def _changed(resolved: Profile, profile: Profile) -> dict[str, Any]:
    return {d.key: d.b for d in profile_differences(resolved, profile, settings_only=True)}


def save_profile(
    profile: Profile,
    path: Path,
    *,
    edit_existing: bool = False,
    extends: str | None = None,
    workspace: Path | None = None,
) -> list[str]:
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
    return difference_lines(before, profile)


def user_profile_dir(workspace: Path | None = None) -> Path:
    """Where new profiles go: the first directory of the search path (the user's config)."""
    from tunedeck.engine.config.profile_loading import profile_search_path

    return profile_search_path(workspace)[0]
