"""Where things live: the workspace a user names, and every folder the engine and the app keep in it.

    <workspace>/runs/<id>/              a run directory each (engine/run/contract.py: what is inside)
    <workspace>/queue/tickets, locks    the run queue (engine/scheduling/run_queue.py)
    <workspace>/sweeps/<name>.toml      sweep records (engine/scheduling/sweep.py); <name>.sbatch its Slurm script
    <workspace>/profiles/               the workspace's own profiles (on the profile search path);
        runs/<id>.toml                  a run's frozen profile, which its next run extends
        next-<id>.toml                  the next run's profile (engine/config/next_run.py)
    <workspace>/fixes/<id>.jsonl        corrected eval examples: training rows for the next run
    <workspace>/failures/               examples written out from the app's examples screen
    <workspace>/cache/gate/             the base model's answers, shared by the workspace's runs
    <workspace>/exports/                the app's default export folder
    <workspace>/demo/, demo-real/       the demos' model and data

Inside a run directory: engine/run/contract.py. The lowest room holds this module (it imports nothing
of the engine) so that every room, and the app, finds a path the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

# The folder names are what existing workspaces hold: never rename one.
RUNS, QUEUE, SWEEPS, PROFILES, FIXES, FAILURES = "runs", "queue", "sweeps", "profiles", "fixes", "failures"
CACHE, EXPORTS, DEMO, DEMO_REAL = "cache", "exports", "demo", "demo-real"


def absolute_path(path: str | os.PathLike) -> Path:
    """`~` expanded and made absolute against this process's working directory, without following links.

    Every path a user gives is made absolute once, where it is read: engines, queue waiters and eval
    processes run from the run directory, where a relative path would name something else.
    """
    return Path(os.path.abspath(Path(path).expanduser()))


def default_workspace() -> Path:
    """--workspace, else $TUNEDECK_WORKSPACE, else $XDG_DATA_HOME/tunedeck (~/.local/share/tunedeck)."""
    env = os.environ.get("TUNEDECK_WORKSPACE")
    if env:
        return absolute_path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return absolute_path(Path(xdg) / "tunedeck")


def resolve_workspace(workspace: str | os.PathLike | None) -> Path:
    return absolute_path(workspace) if workspace else default_workspace()


def workspace_of(run_dir: str | os.PathLike) -> Path:
    """The workspace a run directory's path names (<workspace>/runs/<id>), absolute, links not followed:
    the folder --workspace names, so fixes, profiles, caches and exports land where the command line looks
    (and the app shows the path the user gave, not a link's target)."""
    return absolute_path(run_dir).parent.parent


def resolved_workspace_of(run_dir: str | os.PathLike) -> Path:
    """The workspace that holds a run directory, links resolved first: the queue's and its GPU locks', so
    that a run found by id (<workspace>/runs/<id>) and the same run found by a path to it (find_run
    resolves one) wait in the one queue even when runs/ is a link."""
    return Path(run_dir).resolve().parent.parent


def in_a_workspace(run_dir: str | os.PathLike) -> bool:
    """A run directory under <workspace>/runs/ (a test's or a copied run may sit anywhere)."""
    return absolute_path(run_dir).parent.name == RUNS


# ---- the folders ---------------------------------------------------------------------------------


def runs_root(workspace: Path) -> Path:
    return Path(workspace) / RUNS


def queue_tickets_dir(workspace: Path) -> Path:
    return Path(workspace) / QUEUE / "tickets"


def queue_locks_dir(workspace: Path) -> Path:
    return Path(workspace) / QUEUE / "locks"


def sweeps_root(workspace: Path) -> Path:
    return Path(workspace) / SWEEPS


def sweep_record_path(workspace: Path, name: str) -> Path:
    return sweeps_root(workspace) / f"{name}.toml"


def sweep_script_path(workspace: Path, name: str) -> Path:
    """The Slurm job-array script of a sweep submitted with --slurm."""
    return sweeps_root(workspace) / f"{name}.sbatch"


def profiles_dir(workspace: Path) -> Path:
    return Path(workspace) / PROFILES


def frozen_profile_path(workspace: Path, run_id: str) -> Path:
    """next-<id>.toml names it as `extends = "runs/<id>.toml"`, relative to the profiles folder."""
    return profiles_dir(workspace) / "runs" / f"{run_id}.toml"


def next_profile_path(workspace: Path, run_id: str) -> Path:
    return profiles_dir(workspace) / f"next-{run_id}.toml"


def fixes_path(workspace: Path, run_id: str) -> Path:
    """Where corrected examples of a run go (the app's `a`); never the training data itself."""
    return Path(workspace) / FIXES / f"{run_id}.jsonl"


def failures_dir(workspace: Path) -> Path:
    return Path(workspace) / FAILURES


def gate_cache_dir(workspace: Path) -> Path:
    return Path(workspace) / CACHE / "gate"


def exports_dir(workspace: Path) -> Path:
    return Path(workspace) / EXPORTS


def demo_dir(workspace: Path) -> Path:
    return Path(workspace) / DEMO


def demo_real_dir(workspace: Path) -> Path:
    return Path(workspace) / DEMO_REAL
