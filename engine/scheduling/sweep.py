"""Sweeps: many runs of one profile over a grid (or seeded random points), and their ranking by the gate.

The record <workspace>/sweeps/NAME.toml names the profile, the data, the grid or ranges, and the
runs with the values each was given; the runs themselves are ordinary runs (queued, each with its
own early stopping and gate), so nothing here is needed to train, only to launch and to rank.

Ranking: runs whose gate passed come first, by the task score of their best checkpoint; then the
rest by the task score of their closest checkpoint; runs without gate results last.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.config.profile_loading import ProfileError, parse_override
from tunedeck.engine.config.workspace import runs_root, sweep_record_path, sweeps_root
from tunedeck.engine.run import contract as C

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_POINTS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")


class SweepError(ValueError):
    """A sweep that cannot be built or found as asked; str() names the argument and what to do."""


# ---- points ------------------------------------------------------------------------------------


def _key(item: str, flag: str) -> tuple[str, str]:
    if "=" not in item:
        raise SweepError(f"{flag} {item!r}: expected KEY=..., e.g. {flag} optim.learning_rate=1e-4,2e-4")
    key, raw = item.split("=", 1)
    try:
        full, _ = parse_override(f"{key.strip()}=0")  # resolves short names (learning_rate) and refuses unknown ones
    except ProfileError as e:
        raise SweepError(f"{flag} {item!r}: {str(e).removeprefix('--set ')}") from None
    return full, raw.strip()


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for item in items:
        key, raw = _key(item, "--grid")
        values = [v.strip() for v in raw.split(",")]
        if not raw or any(not v for v in values):
            raise SweepError(f"--grid {item!r}: expected comma-separated values, e.g. {key}=1e-4,2e-4")
        if key in grid:
            raise SweepError(f"--grid {key} is given twice; list all its values in one --grid")
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {item!r}: a value is repeated")
        grid[key] = values
    return grid


@dataclass
class Range:
    key: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: random.Random) -> str:
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.uniform(self.low, self.high)
        if self.integer:
            return str(min(int(self.high), max(int(self.low), round(x))))
        return f"{float(f'{x:.3g}'):g}"  # three significant digits: readable, and distinct enough to rank


def parse_range(item: str) -> Range:
    key, raw = _key(item, "--range")
    parts = raw.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise SweepError(f"--range {item!r}: expected KEY=LOW:HIGH or KEY=LOW:HIGH:log")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise SweepError(f"--range {item!r}: LOW and HIGH must be numbers") from None
    if not low < high:
        raise SweepError(f"--range {item!r}: LOW must be below HIGH")
    log = len(parts) == 3
    if log and low <= 0:
        raise SweepError(f"--range {item!r}: a log range needs LOW > 0")
    integer = all(re.fullmatch(r"[+-]?\d+", p.strip()) for p in parts[:2])
    return Range(key, low, high, log, integer)


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def random_points(
    ranges: list[Range], samples: int, seed: int, grid: dict[str, list[str]] | None = None
) -> list[dict[str, str]]:
    """`samples` points drawn with `seed`: the same arguments always give the same points."""
    rng = random.Random(seed)
    points = []
    for _ in range(samples):
        point = {r.key: r.draw(rng) for r in ranges}
        for key, values in (grid or {}).items():
            point[key] = rng.choice(values)
        points.append(point)
    return points


def points_from_args(
    grid_items: list[str], range_items: list[str], samples: int | None, seed: int
) -> list[dict[str, str]]:
    grid = parse_grid(grid_items)
    ranges = [parse_range(r) for r in range_items]
    for r in ranges:
        if r.key in grid:
            raise SweepError(f"{r.key} is in both --grid and --range; give it once")
    if len({r.key for r in ranges}) != len(ranges):
        raise SweepError("a --range key is given twice")
    if samples is not None and samples < 1:
        raise SweepError("--samples must be at least 1")
    if ranges and not samples:
        raise SweepError("--range draws random points: say how many with --samples N")
    if samples:
        if not ranges and not grid:
            raise SweepError("--samples needs at least one --range (or --grid to draw from)")
        points = random_points(ranges, samples, seed, grid)
    else:
        if not grid:
            raise SweepError("nothing to sweep: give --grid KEY=V1,V2 (or --samples N with --range KEY=LOW:HIGH)")
        points = grid_points(grid)
    if len(points) > MAX_POINTS:
        raise SweepError(f"{len(points)} runs is more than {MAX_POINTS}; narrow the grid")
    return points


def check_sets(points: list[dict[str, str]], sets: list[str]) -> None:
    swept = set(points[0]) if points else set()
    for item in sets:
        key, _ = parse_override(item)
        if key in swept:
            raise SweepError(f"--set {item!r}: {key} is swept; leave it out of --set")


# ---- the record ----------------------------------------------------------------------------------


@dataclass
class SweepRun:
    id: str
    params: dict[str, str]


@dataclass
class SweepRecord:
    name: str
    profile: str
    data: str
    runs: list[SweepRun] = field(default_factory=list)
    grid: dict[str, list[str]] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)
    samples: int = 0
    seed: int = 0
    sets: list[str] = field(default_factory=list)
    slurm: bool = False
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepRecord":
        runs = [
            SweepRun(str(r["id"]), {str(k): str(v) for k, v in (r.get("params") or {}).items()})
            for r in d.get("runs", [])
        ]
        return cls(
            name=str(d["name"]),
            profile=str(d.get("profile", "")),
            data=str(d.get("data", "")),
            runs=runs,
            grid={str(k): [str(v) for v in vs] for k, vs in (d.get("grid") or {}).items()},
            ranges=[str(r) for r in d.get("ranges", [])],
            samples=int(d.get("samples", 0)),
            seed=int(d.get("seed", 0)),
            sets=[str(s) for s in d.get("sets", [])],
            slurm=bool(d.get("slurm", False)),
            created=float(d.get("created", 0)),
        )


def check_name(name: str) -> str:
    if not name or not _NAME.match(name):
        raise SweepError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 48, starting with a letter or digit)"
        )
    return name


def write_record(ws: Path, record: SweepRecord) -> Path:
    import tomlkit

    from tunedeck.engine.run.atomic_io import make_private_dir, write_text_atomic

    make_private_dir(sweeps_root(ws))
    doc = tomlkit.document()
    doc.add(tomlkit.comment("tunedeck sweep: the profile, what was swept and the runs it made. Do not edit."))
    for k, v in record.to_dict().items():
        if k != "runs":
            doc[k] = v
    runs = tomlkit.aot()
    for r in record.runs:
        t = tomlkit.table()
        t["id"] = r.id
        t["params"] = r.params
        runs.append(t)
    doc["runs"] = runs
    path = sweep_record_path(ws, record.name)
    write_text_atomic(path, tomlkit.dumps(doc))
    return path


def load_record(ws: Path, name: str) -> SweepRecord:
    path = sweep_record_path(ws, name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(list_sweeps(ws)[:8]) or "none yet"
        raise SweepError(f"no sweep named {name!r} in {sweeps_root(ws)} (sweeps: {known})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
        raise SweepError(f"{path}: unreadable sweep record: {e}") from None
    try:
        return SweepRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise SweepError(f"{path}: malformed sweep record ({e})") from None


def list_sweeps(ws: Path) -> list[str]:
    root = sweeps_root(ws)
    return sorted(p.stem for p in root.glob("*.toml")) if root.is_dir() else []


# ---- ranking -------------------------------------------------------------------------------------


def short_keys(keys: list[str]) -> dict[str, str]:
    """'optim.learning_rate' -> 'learning_rate', unless two keys share the last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def differing_keys(record: SweepRecord) -> list[str]:
    keys: list[str] = []
    for r in record.runs:
        for k in r.params:
            if k not in keys:
                keys.append(k)
    return [k for k in keys if len({r.params.get(k) for r in record.runs}) > 1] or keys


def typed(key: str, raw: str) -> Any:
    return parse_override(f"{key}={raw}")[1]


def _gate_view(run_dir: Path) -> dict[str, Any]:
    from tunedeck.engine.run.gate_result import PASS, read_gate_summary

    summary = read_gate_summary(run_dir)
    if summary is None:
        return {"verdict": None, "row": None, "best_checkpoint": None}
    rows = [r for r in summary.rows if not r.is_base]
    best = summary.best
    if summary.verdict == PASS and best is not None:
        row = summary.row(best)
    else:  # the closest checkpoint, the way the gate picks it
        row = max(rows, key=lambda r: (r.task if r.task is not None else -1, -(r.step or 0)), default=None)
        best = None
    return {"verdict": summary.verdict, "row": row, "best_checkpoint": best}


def rank_runs(ws: Path, record: SweepRecord) -> list[dict[str, Any]]:
    """One dict per run, ranked (see the module docstring)."""
    from tunedeck.engine.run.gate_result import PASS
    from tunedeck.engine.run.status import Status
    from tunedeck.engine.run.store import read_effective_status
    from tunedeck.engine.scheduling.run_queue import queue_position

    out = []
    for order, r in enumerate(record.runs):
        run_dir = runs_root(ws) / r.id
        exists = run_dir.is_dir()
        status = read_effective_status(run_dir) if exists else Status(state="deleted")
        gate = _gate_view(run_dir) if exists else {"verdict": None, "row": None, "best_checkpoint": None}
        row = gate["row"]
        vs = row.vs_base if row else {}
        out.append(
            {
                "id": r.id,
                "params": {k: typed(k, v) for k, v in r.params.items()},
                "state": status.state,
                "queue_position": queue_position(ws, r.id) if status.state == C.QUEUED else None,
                "verdict": gate["verdict"],
                "best_checkpoint": gate["best_checkpoint"],
                "checkpoint": row.checkpoint if row else None,
                "task": row.task if row else None,
                "task_vs_base": vs.get("task"),
                "task_ci": row.task_ci if row else None,
                "format": row.format if row else None,
                "format_vs_base": vs.get("format"),
                "safety": row.safety if row else None,
                "safety_vs_base": vs.get("safety"),
                "latency_p95_ms": row.latency_p95_ms if row else None,
                "reasons": row.reasons if row else [],
                "step": status.step or 0,
                "total_steps": status.total_steps,
                "message": status.message or "",
                "_row": gate["row"],
                "_order": order,
            }
        )

    def key(x):
        group = 0 if x["verdict"] == PASS else 1 if x["task"] is not None else 2
        return (group, -(x["task"] if x["task"] is not None else -1), x["_order"])

    ranked = sorted(out, key=key)
    for i, x in enumerate(ranked, 1):
        x["rank"] = i
    return ranked


def params_text(params: dict[str, Any], keys: list[str], raw: dict[str, str] | None = None) -> str:
    names = short_keys(keys)
    return ", ".join(f"{names[k]}={(raw or {}).get(k, params.get(k))}" for k in keys if k in params)


def verdict_sentence(record: SweepRecord, ranked: list[dict[str, Any]]) -> str:
    """ "learning_rate=2e-4, r=16 wins: checkpoint-800 task 82.0% (+6.0 vs base), format 100% (=), safety 100% (=)"."""
    from tunedeck.engine.gate.best_checkpoint import describe_row
    from tunedeck.engine.run.gate_result import PASS

    keys = differing_keys(record)
    raw = {r.id: r.params for r in record.runs}
    if not ranked:
        return "the sweep has no runs"

    def said(x):
        return params_text(x["params"], keys, raw.get(x["id"]))

    top = ranked[0]
    if top["verdict"] == PASS and top["_row"]:
        others = sum(1 for x in ranked if x["verdict"] == PASS) - 1
        tail = f"; {others} other run(s) also pass" if others else ""
        return f"{said(top)} wins: {describe_row(top['_row']).replace(': ', ' ', 1)}{tail}"
    live = [x for x in ranked if x["state"] in C.LIVE_STATES]
    waiting = f" ({len(live)} of {len(ranked)} runs still queued or running)" if live else ""
    if top["_row"]:
        return (
            f"no run passed the gate{waiting}; the closest, {said(top)}, "
            f"{describe_row(top['_row']).replace(': ', ' ', 1)}, fails: {'; '.join(top['reasons']) or top['verdict']}"
        )
    return f"no run has gate results yet{waiting}"


def public_rows(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if not k.startswith("_")} for x in ranked]


def stop_sweep_runs(ws: Path, record: SweepRecord) -> tuple[list[str], list[str]]:
    """Cancel the sweep's queued runs first (so none starts in a slot the running one frees), then ask
    its running ones to stop with a final checkpoint. Returns (cancelled, stopped) run ids."""
    from tunedeck.engine.run.store import read_effective_status, request_control

    states = {
        r.id: read_effective_status(runs_root(ws) / r.id).state for r in record.runs if (runs_root(ws) / r.id).is_dir()
    }
    queued = [rid for rid, s in states.items() if s == C.QUEUED]
    running = [rid for rid, s in states.items() if s in (C.RUNNING, C.STOPPING)]
    for rid in queued + running:
        request_control(runs_root(ws) / rid, C.CTL_STOP)
    return queued, running
