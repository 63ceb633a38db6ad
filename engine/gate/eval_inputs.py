"""What a gate run evaluates: its eval sets, its generation settings and the checkpoints it judges."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tunedeck.engine.gate.eval_sets import EvalSet, content_hash, held_out_set, profile_sets, verdict_basis
from tunedeck.engine.gate.rules import GateError
from tunedeck.engine.run.gate_result import SET_TASK, GateSet


@dataclass
class GenSettings:
    max_new_tokens: int
    batch_size: int
    temperature: float
    top_p: float
    seed: int

    def cache_key(self) -> dict:  # batch size changes timing, not text
        return {k: v for k, v in asdict(self).items() if k != "batch_size"}


def gen_settings(profile) -> GenSettings:
    g = profile.gate
    return GenSettings(g.max_new_tokens, g.batch_size, g.temperature, g.top_p, profile.optim.seed)


def load_sets(run_dir: Path, record, extra_sets=()) -> list[EvalSet]:
    """The sets [gate] names and `extra_sets`; with none, the run's held-out split (unchanged data only)."""
    sets = profile_sets(record.profile.gate, list(extra_sets))
    if sets:
        return sets
    from tunedeck.engine.data.prepare import prepare_data

    profile = record.profile
    try:
        data = prepare_data(profile)
    except Exception as e:
        raise GateError(
            f"no eval set in [gate] (golden, safety, general) and the held-out split cannot be rebuilt: "
            f"{str(e).splitlines()[0]}. Name an eval set with `--eval-set FILE` or [gate] golden"
        ) from None
    if record.dataset_fingerprint and data.fingerprint != record.dataset_fingerprint:
        raise GateError(
            f"{profile.data.path} changed since the run started, so its held-out split is not the one "
            "held out from training; name an eval set with `--eval-set FILE` or [gate] golden"
        )
    heldout = held_out_set(data.eval_rows, judge=bool(profile.gate.judge_url))
    if not heldout.examples:
        raise GateError(
            "the run has no held-out examples to score (data.val_fraction = 0, or plain-text rows); "
            "name an eval set with `--eval-set FILE` or [gate] golden"
        )
    return [heldout]


def sets_key(sets: list[EvalSet], settings: GenSettings) -> str:
    return content_hash({"sets": [[s.name, s.sha256] for s in sets], "gen": settings.cache_key()})[:16]


def sets_info(sets: list[EvalSet]) -> list[dict]:
    return [
        {"name": s.name, "kind": s.kind, "source": s.source, "examples": len(s.examples), "sha256": s.sha256[:16]}
        for s in sets
    ]


def sets_as_asked(entries: list[dict] | None, base_records: list[dict]) -> tuple[list[GateSet], list[str]]:
    """gate.json's sets, each with how the base was asked it, read from the base's records (engine/run/gate_result.py
    GateSet), and a notice for each general or safety set the base was not asked as written (records from a
    gate before sets were asked as written). `entries`: the sets as the gate run recorded them; None (a
    gate.json from before sets were recorded): the sets the records name."""
    from tunedeck.engine.gate.base_prompts import asked_by_set

    asked = asked_by_set(base_records)
    if entries is None:
        counts: dict[str, int] = {}
        for r in base_records:
            counts[str(r.get("set") or "")] = counts.get(str(r.get("set") or ""), 0) + 1
        entries = [{"name": name, "examples": n} for name, n in counts.items() if name]
    out, notices = [], []
    for entry in entries:
        s = GateSet.from_dict(entry)
        if s is None:
            continue
        s.asked = asked.get(s.name)
        if s.kind != SET_TASK and s.asked is not None and not s.asked_as_written:
            which = f"its {s.kind} set" if s.name == s.kind else f"its {s.kind} set {s.name!r}"
            notices.append(
                f"the base answered {which} under a task prompt ({s.asked}), not as written, so its {s.kind} "
                "score is not what the base does; run `tunedeck eval` to ask it as written"
            )
        out.append(s)
    return out, notices


def sets_extra(sets: list[EvalSet]) -> dict:
    """What gate.json says about the sets: their names and sizes, and what a held-out verdict rests on."""
    return {"sets": sets_info(sets), "basis": verdict_basis(sets)}


def select_checkpoints(run_dir: Path, checkpoints) -> tuple[list, list[str]]:
    """(complete checkpoints to evaluate, notices). `checkpoints` is "all" or a list of steps."""
    from tunedeck.engine.run.store import list_checkpoints

    found = list_checkpoints(run_dir)
    complete = {c.step: c for c in found if c.complete}
    incomplete = [c.step for c in found if not c.complete]
    notices = [f"checkpoint-{s} is incomplete (an interrupted save) and was not evaluated" for s in incomplete]
    if checkpoints == "all" or checkpoints is None:
        return [complete[s] for s in sorted(complete)], notices
    out = []
    for step in checkpoints:
        if step not in complete:
            have = ", ".join(map(str, sorted(complete))) or "none"
            why = "is incomplete (an interrupted save)" if step in incomplete else "does not exist"
            raise GateError(f"checkpoint-{step} {why}; complete checkpoints: {have}")
        out.append(complete[step])
    return out, []


def gate_sets_named(profile) -> bool:
    """Whether the profile names an eval set of its own ([gate] golden, safety or general)."""
    return any(getattr(profile.gate, key) for key in ("golden", "safety", "general"))
