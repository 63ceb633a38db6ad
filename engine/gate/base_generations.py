"""The base model's generations, cached: its task sets under each prompt candidate, its other sets as written.

The base answers the task sets under every prompt candidate (engine/gate/base_prompts.py: [gate]
base_system_prompt, base_prompts, base_few_shot) and the best by the task metric is the baseline;
it answers the general and safety sets once, as written (their own messages), as every checkpoint
does. Its generations are cached per prompt under <workspace>/cache/gate/<hash of base model,
precision, device and generation settings>.jsonl, keyed by the hash of the exact text the model saw:
a re-run, another run on the same base, or a set that grew by a few examples only generates what is
new, and an answer given under a task prompt is never reused for a prompt asked as written (their
texts differ). Checks are re-run on cached text every time, so editing a check needs no new generation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunedeck.engine.config.workspace import gate_cache_dir, in_a_workspace, workspace_of
from tunedeck.engine.gate.base_prompts import (
    AS_WRITTEN,
    Candidate,
    candidates,
    choose,
    demonstrations,
    entries,
    notice,
    with_demonstrations,
)
from tunedeck.engine.gate.eval_inputs import GenSettings
from tunedeck.engine.gate.eval_sets import EvalExample, content_hash
from tunedeck.engine.gate.example_scoring import Progress, score_all
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import PRIVATE_FILE, iter_jsonl, make_private_dir
from tunedeck.engine.run.gate_result import BASE


def cache_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if in_a_workspace(run_dir):  # share across the workspace's runs
        return gate_cache_dir(workspace_of(run_dir))
    return run_dir / C.EVALS_DIR / "cache"


def model_identity(profile, precision: str, device: str) -> dict:
    """What decides the base model's text: where it comes from, its weights' identity, dtype and device."""
    base = profile.model.base
    ident: dict = {
        "base": base,
        "revision": profile.model.revision,
        "precision": precision,
        "device": device,
        "adapter": profile.method.adapter == "qlora",
    }
    local = Path(base).expanduser()
    if local.is_dir():
        files = []
        for p in sorted(local.iterdir()):
            if p.suffix in (".safetensors", ".json") and p.is_file():
                st = p.stat()
                files.append([p.name, st.st_size, st.st_mtime_ns])
        ident["files"] = files
    return ident


class BaseCache:
    """Append-only JSONL of the base model's generations, one per rendered prompt."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for e in iter_jsonl(self.path):  # a torn line from a killed writer is skipped
            if isinstance(e.get("prompt"), str) and isinstance(e.get("text"), str):
                out[e["prompt"]] = e
        return out

    def append(self, entries: list[dict]) -> None:
        if not entries:
            return
        make_private_dir(self.path.parent)
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def base_cache(run_dir: Path, identity: dict, settings: GenSettings) -> BaseCache:
    """The cache of one base model's generations under one set of generation settings."""
    return BaseCache(
        cache_dir(run_dir) / f"{content_hash({'model': identity, 'gen': settings.cache_key()})[:24]}.jsonl"
    )


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def asked_text(tokenizer, ex: EvalExample, candidate: Candidate, demos: list | None) -> tuple[str, str | None, int]:
    """(the text the base sees for `ex` under `candidate`, the system prompt that replaced its own, the
    demonstrations placed before it). Task examples get the candidate; general and safety examples are
    asked as written, whatever the candidate."""
    from tunedeck.engine.gate.generate import render_prompt

    if ex.asked_as_written:
        candidate = AS_WRITTEN
    shots = (demos or [])[: candidate.few_shot]
    system = candidate.prompt or None
    return render_prompt(tokenizer, with_demonstrations(ex.prompt, shots), system), system, len(shots)


def cached_generations(
    run_dir: Path,
    identity: dict,
    settings: GenSettings,
    texts: list[str],
    *,
    get_model: Callable[[], object],
    tokenizer,
    progress: Progress | None = None,
) -> tuple[dict, int]:
    """The base's generation for every text, keyed by the hash of the exact text it saw (so a cached answer is
    only ever reused for the same prompt), and how many had to be generated (0: all cached). The missing
    ones are generated in one call: one model load, full batches."""
    from tunedeck.engine.gate.generate import Generation, generate

    hashes = list(dict.fromkeys(prompt_hash(t) for t in texts))
    text_of = {prompt_hash(t): t for t in texts}
    cache = base_cache(run_dir, identity, settings)
    cached = cache.load()
    missing = [h for h in hashes if h not in cached]
    if missing:
        model = get_model()
        if progress:
            progress("base", 0, len(missing))
        gens = generate(
            model,
            tokenizer,
            [],
            texts=[text_of[h] for h in missing],
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            progress=(lambda d, t: progress("base", d, t)) if progress else None,
        )
        new = [
            {"prompt": h, "text": g.text, "latency_ms": round(g.latency_ms, 2), "new_tokens": g.new_tokens}
            for h, g in zip(missing, gens)
        ]
        cache.append(new)
        cached.update({e["prompt"]: e for e in new})
    elif progress:
        progress("base (cached)", len(texts), len(texts))
    return {h: Generation(cached[h]["text"], cached[h]["latency_ms"], cached[h]["new_tokens"]) for h in hashes}, len(
        missing
    )


@dataclass
class BaseResult:
    records: list[dict]  # the chosen candidate's records: the baseline
    generated: int  # prompts generated (not cached), all candidates together
    candidates: list[dict]  # gate.json's base_prompts
    notice: str | None
    asked: int = 0  # prompts the base was asked, all candidates together (generated + cached)


def best_base_records(
    run_dir: Path,
    profile,
    tokenizer,
    examples: list[EvalExample],
    settings: GenSettings,
    *,
    key: str,
    get_model: Callable[[], object],
    identity: dict,
    judge: Judge | None = None,
    progress: Progress | None = None,
    demos: list | None = None,
) -> BaseResult:
    """The base's records: its task examples under every prompt candidate (engine/gate/base_prompts.py), the best
    candidate by the task metric being the baseline; its general and safety examples once, as written."""
    cands = candidates(profile.gate)
    task = [ex for ex in examples if not ex.asked_as_written]
    plain = [ex for ex in examples if ex.asked_as_written]
    asks = [[asked_text(tokenizer, ex, c, demos) for ex in task] for c in cands]
    plain_asks = [asked_text(tokenizer, ex, AS_WRITTEN, demos) for ex in plain]
    texts = [t for ask in [*asks, plain_asks] for t, _, _ in ask]
    gens, generated = cached_generations(
        run_dir, identity, settings, texts, get_model=get_model, tokenizer=tokenizer, progress=progress
    )

    def scored(exs: list[EvalExample], ask: list[tuple]) -> list[dict]:
        records = score_all(exs, [gens[prompt_hash(t)] for t, _, _ in ask], checkpoint=BASE, key=key, judge=judge)
        for r, (_, system, shots) in zip(records, ask):
            r["system_prompt"], r["few_shot"] = system, shots  # how it was asked (base_prompts.asked_by_set)
        return records

    plain_records = scored(plain, plain_asks)  # the same for every candidate: scored (and judged) once
    order = {ex.id: i for i, ex in enumerate(examples)}
    results = [sorted(scored(task, ask) + plain_records, key=lambda r: order[r["id"]]) for ask in asks]
    best = choose(results, profile.gate)
    return BaseResult(
        results[best], generated, entries(cands, results, best, profile.gate), notice(cands, best), asked=len(texts)
    )


def few_shot_demos(profile, sets: list) -> list:
    """Demonstrations for the few-shot candidates, drawn once per gate run (before any model loads), from
    training rows with the system turn of the task sets' examples (engine/gate/base_prompts.py)."""
    from tunedeck.engine.gate.base_prompts import system_turn

    like = {system_turn(ex.messages) for s in sets for ex in s.examples if not ex.asked_as_written}
    return demonstrations(profile, profile.gate.base_few_shot, profile.optim.seed, like)
