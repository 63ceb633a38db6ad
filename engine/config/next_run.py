"""The next run from this one: a profile that extends a run's frozen profile, on its data plus its fixes.

`tunedeck run --from RUN` and N in the app both go through `write_next_profile`: the parent's
resolved profile (run.toml without its [run] table) is written once as
`<workspace>/profiles/runs/<run>.toml`, and `<workspace>/profiles/next-<run>.toml` extends it,
naming the parent's data files plus `<workspace>/fixes/<run>.jsonl` when that file holds rows.
The child run records the parent's id (run.toml [run] parent, `tunedeck show --json` parent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.config.profile_diff import difference_lines
from tunedeck.engine.config.profile_loading import load_profile, to_toml
from tunedeck.engine.config.profile_schema import Profile, data_paths
from tunedeck.engine.config.workspace import fixes_path, frozen_profile_path, next_profile_path


@dataclass
class NextRun:
    parent: str
    profile_path: Path
    parent_profile: Profile
    data: list[str]
    fixes: Path | None  # the fixes file joined to the data, if any
    warnings: list[str] = field(default_factory=list)
    parent_name: str = ""  # the next run takes the parent's name unless given another


def _has_rows(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return any(line.strip() for line in f)
    except OSError:
        return False


def write_next_profile(workspace: Path, record) -> NextRun:
    """Write the parent's frozen profile and the child profile that extends it; return what they hold.
    `record`: the parent's run.toml (engine/run/run_record.py RunRecord; the caller reads it)."""
    import tomlkit

    frozen = record.profile.to_dict()
    frozen["extends"] = ""  # already resolved: the parent's own chain may since have changed or gone
    frozen_path = frozen_profile_path(workspace, record.id)
    frozen_path.parent.mkdir(parents=True, exist_ok=True)
    frozen_path.write_text(
        f"# The resolved profile of run {record.id}, frozen at its launch (from its run.toml).\n" + to_toml(frozen),
        encoding="utf-8",
    )
    parent_paths = data_paths(record.profile.data)
    # a record written without data.path in its profile still names its data in [run] dataset_path
    paths = list(parent_paths) or ([p for p in record.dataset_path.split(" + ") if p] if record.dataset_path else [])
    fixes = fixes_path(workspace, record.id)
    joined = None
    if _has_rows(fixes) and str(fixes.resolve()) not in paths:
        paths.append(str(fixes.resolve()))
        joined = fixes.resolve()
    doc = tomlkit.document()
    doc["description"] = f"next run from {record.id}"
    doc["extends"] = f"runs/{record.id}.toml"
    if paths != parent_paths:
        doc["data"] = {"path": paths}
    child = next_profile_path(workspace, record.id)
    child.write_text(tomlkit.dumps(doc), encoding="utf-8")
    out = NextRun(record.id, child, record.profile, paths, joined, parent_name=record.name)
    if joined is not None:
        gate = record.profile.gate
        sets = [s for s in (gate.golden, gate.safety, gate.general) if s]
        out.warnings.append(
            f"the fixes in {joined} are corrected eval examples: once trained on, those examples no longer test "
            + ("the held-out split" if not sets else "the eval sets")
            + " fairly; keep a set the fixes never came from"
        )
    return out


def changes_against_parent(
    next_run: NextRun, overrides: list[str] | None = None, workspace: Path | None = None, data: list[str] | None = None
) -> list[str]:
    """'key: parent -> child' for every setting the next run changes, --set and --data included.
    A broken override is left for the pre-flight to report."""
    from tunedeck.engine.config.profile_loading import ProfileError

    try:
        child = load_profile(next_run.profile_path, overrides or [], workspace=workspace)
    except ProfileError:
        return []
    if data:
        child.data.path = (
            [str(Path(p).expanduser().resolve()) for p in data]
            if len(data) > 1
            else str(Path(data[0]).expanduser().resolve())
        )
    return difference_lines(next_run.parent_profile, child)
