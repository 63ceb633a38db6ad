"""What differs between two profiles, key by key, computed once for every place that shows it: the next
run against its parent (`tunedeck run --from`, the new-run form), a profile against the one it extends
(the profile picker, saving the form), and two runs side by side (the app's compare screen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunedeck.engine.config.profile_schema import ALL_KEYS, SECTIONS, TOP_LEVEL, Profile


class _Absent:
    """A key one side has and the other does not (and the schema gives no default for)."""

    def __repr__(self) -> str:
        return "—"

    __str__ = __repr__


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ProfileDifference:
    key: str  # "section.key", e.g. "optim.learning_rate"; or a top-level key, "description"
    a: Any  # the value on one side (the parent, the old profile, run A)
    b: Any  # and on the other

    def line(self) -> str:
        """ "optim.learning_rate: 0.0002 -> 0.0003": values as a profile's TOML writes them (true, not True),
        strings quoted, numbers exact."""
        return f"{self.key}: {_value_text(self.a)} -> {_value_text(self.b)}"


def flatten(profile: dict | Profile) -> dict[str, Any]:
    """{'section.key': value} for every section key, plus the top-level description/extends, in the profile's order."""
    if isinstance(profile, Profile):
        profile = profile.to_dict()
    out: dict[str, Any] = {}
    for k, v in profile.items():
        if k in SECTIONS and isinstance(v, dict):
            for name, value in v.items():
                out[f"{k}.{name}"] = value
        else:
            out[k] = v
    return out


def profile_differences(
    a: dict | Profile, b: dict | Profile, *, settings_only: bool = False
) -> list[ProfileDifference]:
    """The keys whose values differ, in A's order (keys only B has come last). A key one side lacks reads the
    schema's default (a partial profile means the default), else ABSENT. `settings_only` leaves out the
    top-level description and extends, which say what a profile is, not how it trains."""
    fa, fb = flatten(a), flatten(b)
    out = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        if settings_only and key in TOP_LEVEL:
            continue
        missing = ALL_KEYS[key].default if key in ALL_KEYS else ABSENT
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            out.append(ProfileDifference(key, va, vb))
    return out


def difference_lines(a: dict | Profile, b: dict | Profile) -> list[str]:
    """'section.key: a -> b' for every setting that differs (description and extends left out)."""
    return [d.line() for d in profile_differences(a, b, settings_only=True)]


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
