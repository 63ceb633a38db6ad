"""Loading profiles: TOML files with `extends`, `--set` overrides and the key names users bring from
other tools, into a validated Profile.

`extends = "lora"` names a shipped or user profile (or a path) to inherit from; `--set
section.key=value` (or a bare `key=value` when the key name is unique) overrides on the command
line. Any mistake is a ProfileError that names the file, the line and the key, and suggests the
closest valid key.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

from tunedeck.engine.config.profile_schema import ALL_KEYS, SECTIONS, TOP_LEVEL, FieldSpec, Profile
from tunedeck.engine.config.workspace import profiles_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHIPPED_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


class ProfileError(ValueError):
    """A user mistake in a profile or an override; str() is the whole message."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, key: str | None = None):
        self.file, self.line, self.key = file, line, key
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{message}")


# ---- locating keys in TOML source, for messages -----------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Map 'section.key' (or 'key' at top level) to its 1-based line number."""
    out: dict[str, int] = {}
    section = ""
    for lineno, line in enumerate(text.splitlines(), 1):
        h = _HEADER.match(line)
        if h:
            section = h.group(1).strip().strip("\"'")
            out.setdefault(section, lineno)
            continue
        k = _KEYLINE.match(line)
        if k:
            key = k.group(1).strip("\"'")
            out.setdefault(f"{section}.{key}" if section else key, lineno)
    return out


@dataclass
class _Source:
    file: str
    lines: dict[str, int]

    def line(self, key: str) -> int | None:
        return self.lines.get(key) or self.lines.get(key.split(".")[0])


# Names users bring from transformers, TRL, PEFT and Axolotl configs.
ALIASES = {
    "rank": "lora.r",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lr": "optim.learning_rate",
    "num_train_epochs": "optim.epochs",
    "num_epochs": "optim.epochs",
    "per_device_train_batch_size": "optim.batch_size",
    "micro_batch_size": "optim.batch_size",
    "gradient_accumulation_steps": "optim.grad_accum",
    "lr_scheduler_type": "optim.scheduler",
    "lr_scheduler": "optim.scheduler",
    "warmup_steps": "optim.warmup_ratio",
    "max_length": "data.max_seq_len",
    "sequence_len": "data.max_seq_len",
    "max_seq_length": "data.max_seq_len",
    "model_name_or_path": "model.base",
    "base_model": "model.base",
    "bf16": "optim.precision",
    "fp16": "optim.precision",
    "beta": "method.dpo_beta",
    "save_total_limit": "checkpoints.keep",
    "val_set_size": "data.val_fraction",
    "adapter_type": "method.adapter",
}


def suggest_key(key: str, section: str | None = None) -> str:
    alias = ALIASES.get(key.split(".")[-1])
    if alias:
        name = alias.split(".", 1)[1] if section and alias.startswith(section + ".") else alias
        return f" (did you mean {name!r}?)"
    pool = list(ALL_KEYS) + list(SECTIONS) + list(TOP_LEVEL)
    if section in SECTIONS:
        pool = [k.split(".", 1)[1] for k in ALL_KEYS if k.startswith(section + ".")]
        key = key.split(".")[-1]
    match = difflib.get_close_matches(key, pool, n=1, cutoff=0.5)
    if not match and section is None:
        match = difflib.get_close_matches(key.split(".")[-1], [k.split(".")[-1] for k in ALL_KEYS], n=1, cutoff=0.6)
        match = [k for k in ALL_KEYS if k.endswith("." + match[0])][:1] if match else []
    return f" (did you mean {match[0]!r}?)" if match else ""


# ---- loading -----------------------------------------------------------------------------------


def profile_search_path(workspace: Path | None = None) -> list[Path]:
    dirs = []
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    dirs.append(Path(xdg) / "tunedeck" / "profiles")
    if workspace is not None:
        dirs.append(profiles_dir(workspace))
    dirs.append(SHIPPED_PROFILES)
    return dirs


def find_profile(ref: str, relative_to: Path | None = None, workspace: Path | None = None) -> Path:
    p = Path(ref).expanduser()
    candidates = []
    if p.suffix == ".toml" or "/" in ref:
        if relative_to is not None and not p.is_absolute():
            candidates.append(relative_to / p)
        candidates.append(p)
    else:
        if relative_to is not None:
            candidates.append(relative_to / f"{ref}.toml")
        candidates += [d / f"{ref}.toml" for d in profile_search_path(workspace)]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted({q.stem for d in profile_search_path(workspace) if d.is_dir() for q in d.glob("*.toml")})
    hint = difflib.get_close_matches(ref, known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else f"; known profiles: {', '.join(known)}"
    raise ProfileError(f"profile {ref!r} not found{extra}")


def _read_toml(path: Path) -> tuple[dict, _Source]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ProfileError(f"cannot read profile: {e.strerror}", file=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ProfileError("not valid UTF-8 text", file=str(path), line=line)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"line (\d+)", msg)
        line = getattr(e, "lineno", None) or (int(m.group(1)) if m else None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        raise ProfileError(f"TOML syntax error: {msg}", file=str(path), line=line)
    except RecursionError:
        raise ProfileError("nested too deeply to be a profile", file=str(path)) from None
    return data, _Source(str(path), _key_lines(text))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_chain(path: Path, workspace: Path | None, seen: tuple = ()) -> tuple[dict, dict[str, _Source]]:
    """Raw merged data and, for every key, the file it came from."""
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ProfileError(f"'extends' forms a cycle: {chain}", file=str(path), key="extends")
    data, src = _read_toml(path)
    provenance: dict[str, _Source] = {}
    merged: dict = {}
    parent = data.get("extends")
    if parent:
        if not isinstance(parent, str):
            raise ProfileError(
                "'extends' must be a profile name or path (a string)",
                file=str(path),
                line=src.line("extends"),
                key="extends",
            )
        try:
            ppath = find_profile(parent, relative_to=path.parent, workspace=workspace)
        except ProfileError as e:
            raise ProfileError(str(e), file=str(path), line=src.line("extends"), key="extends")
        merged, provenance = _load_chain(ppath, workspace, (*seen, path))
    merged = _merge(merged, data)
    for key in _flat_keys(data):
        provenance[key] = src
    return merged, provenance


def _flat_keys(data: dict) -> list[str]:
    keys = []
    for k, v in data.items():
        if isinstance(v, dict) and k in SECTIONS:
            keys += [f"{k}.{kk}" for kk in v]
        keys.append(k)
    return keys


def _coerce(spec: FieldSpec, value: Any) -> Any:
    t = spec.type
    if spec.tables:
        return _tables(value)
    if get_origin(t) is list or t is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("a list of strings")
        bad = [v for v in value if spec.items and v not in spec.items]
        if bad:
            raise ValueError(f"may hold {', '.join(map(repr, spec.items))}, not {bad[0]!r}")
        return value
    if spec.many and isinstance(value, list):
        if not value or not all(isinstance(v, str) and v for v in value):
            raise TypeError("a string or a list of non-empty strings")
        return value if len(value) > 1 else value[0]
    if t is bool:
        if not isinstance(value, bool):
            raise TypeError("true or false")
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TypeError("an integer")
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("a number")
        value = float(value)
    elif t is str:
        if not isinstance(value, str):
            raise TypeError("a string")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"must be one of {', '.join(map(repr, spec.choices))}, not {value!r}")
    if spec.min is not None and value < spec.min:
        raise ValueError(f"must be at least {spec.min:g}, not {value:g}")
    if spec.max is not None and value > spec.max:
        raise ValueError(f"must be at most {spec.max:g}, not {value:g}")
    return value


def _tables(value: Any) -> list[dict]:
    """A list of tables, each with a string `type` and a non-negative `weight` (rewards.checks). What a check's
    options mean is the gate's to say: pre-flight parses them with the check registry."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError('a list of tables, e.g. [{type = "json_valid", weight = 1.0}]')
    for i, table in enumerate(value):
        if not isinstance(table.get("type"), str):
            raise ValueError(f'item {i + 1} needs a type (a check name, e.g. type = "json_valid")')
        weight = table.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"item {i + 1} ({table['type']}): weight must be a number >= 0, not {weight!r}")
    return [dict(t) for t in value]


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def build_profile(data: dict, provenance: dict[str, _Source] | None = None, default_file: str | None = None) -> Profile:
    provenance = provenance or {}

    def where(key: str) -> tuple[str | None, int | None]:
        src = provenance.get(key) or provenance.get(key.split(".")[0])
        return (src.file, src.line(key)) if src else (default_file, None)

    profile = Profile()
    for key, value in data.items():
        if key in TOP_LEVEL:
            if not isinstance(value, str):
                file, line = where(key)
                raise ProfileError(f"'{key}' must be a string, not {_type_name(value)}", file, line, key)
            setattr(profile, key, value)
            continue
        if key not in SECTIONS:
            file, line = where(key)
            if not isinstance(value, dict):
                raise ProfileError(f"unknown key '{key}'{suggest_key(key)}", file, line, key)
            raise ProfileError(f"unknown section [{key}]{suggest_key(key)}", file, line, key)
        if not isinstance(value, dict):
            file, line = where(key)
            raise ProfileError(f"'{key}' must be a [{key}] table, not {_type_name(value)}", file, line, key)
        section = getattr(profile, key)
        for name, v in value.items():
            full = f"{key}.{name}"
            file, line = where(full)
            spec = ALL_KEYS.get(full)
            if spec is None:
                raise ProfileError(f"unknown key '{name}' in [{key}]{suggest_key(full, key)}", file, line, full)
            try:
                setattr(section, name, _coerce(spec, v))
            except TypeError as e:
                raise ProfileError(f"'{full}' must be {e}, not {_type_name(v)} ({v!r})", file, line, full)
            except ValueError as e:
                raise ProfileError(f"'{full}' {e}", file, line, full)
    return profile


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ProfileError(f"--set {item!r}: expected key=value, e.g. optim.learning_rate=1e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if "." not in key and key not in TOP_LEVEL:
        owners = [k for k in ALL_KEYS if k.endswith("." + key)]
        if len(owners) == 1:
            key = owners[0]
        elif len(owners) > 1:
            raise ProfileError(f"--set {key}: ambiguous, say which: {', '.join(owners)}", key=key)
        else:
            raise ProfileError(f"--set {key}: unknown key{suggest_key(key)}", key=key)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare strings need no quotes on the command line
    return key, value


def apply_overrides(data: dict, overrides: list[str], provenance: dict[str, _Source]) -> dict:
    src = _Source("--set", {})
    for item in overrides:
        key, value = parse_override(item)
        if key in TOP_LEVEL:
            data[key] = value
        else:
            section, name = key.split(".", 1)
            if section not in SECTIONS:
                raise ProfileError(f"--set {key}: unknown section{suggest_key(section)}", key=key)
            data.setdefault(section, {})
            if not isinstance(data[section], dict):
                data[section] = {}
            data[section][name] = value
        provenance[key] = src
    return data


def load_profile(ref: str | os.PathLike, overrides: list[str] | None = None, workspace: Path | None = None) -> Profile:
    path = find_profile(str(ref), workspace=workspace)
    data, provenance = _load_chain(path, workspace)
    data = apply_overrides(data, list(overrides or []), provenance)
    return build_profile(data, provenance, str(path))


def key_source(
    ref: str | os.PathLike, key: str, overrides: list[str] | None = None, workspace: Path | None = None
) -> tuple[str | None, int | None]:
    """The file (or "--set") and line that set `key` in profile `ref`, for messages about its value that
    only later checks can judge (rewards.checks, parsed by the gate's registry at pre-flight)."""
    path = find_profile(str(ref), workspace=workspace)
    data, provenance = _load_chain(path, workspace)
    apply_overrides(data, list(overrides or []), provenance)
    src = provenance.get(key) or provenance.get(key.split(".")[0])
    return (src.file, src.line(key)) if src else (str(path), None)


def load_profile_data(ref: str | os.PathLike, workspace: Path | None = None) -> dict:
    """The raw merged table (after extends), for diffs and the form."""
    return _load_chain(find_profile(str(ref), workspace=workspace), workspace)[0]


def profile_from_dict(data: dict, file: str = "run.toml") -> Profile:
    return build_profile(data, {}, file)


def to_toml(profile: Profile | dict) -> str:
    import tomlkit

    data = profile.to_dict() if isinstance(profile, Profile) else profile
    return tomlkit.dumps(data)
