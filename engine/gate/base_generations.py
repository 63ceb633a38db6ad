"""The base model's generations, cached, under each prompt candidate; the best candidate is the baseline.

The base is generated under every prompt candidate (engine/gate/base_prompts.py: [gate]
base_system_prompt, base_prompts, base_few_shot) and the best by the task metric is the
baseline. Its generations are cached per example under <workspace>/cache/gate/<hash of base model, precision, device and
generation settings>.jsonl, keyed by the hash of the rendered prompt: a re-run, another run on
the same base, or a set that grew by a few examples only generates what is new. Checks are re-run
on cached text every time, so editing a check needs no new generation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import PRIVATE_FILE, make_private_dir
from tunedeck.engine.run.gate_result import BASE
from tunedeck.engine.gate.base_prompts import (
    Candidate,
    candidates,
    choose,
    demonstrations,
    entries,
    notice,
    with_demonstrations,
)
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.gate.eval_inputs import GenSettings
from tunedeck.engine.gate.eval_sets import EvalExample, content_hash
from tunedeck.engine.gate.example_scoring import Progress, score_all


def cache_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if run_dir.parent.name == "runs":  # <workspace>/runs/<id>: share across the workspace's runs
        return run_dir.parent.parent / "cache" / "gate"
    return run_dir / C.EVALS_DIR / "cache"


def model_identity(profile, precision: str, device: str) -> dict:
    """What decides the base model's text: where it comes from, its weights' identity, dtype and device."""
    base = profile.model.base
    ident: dict = {"base": base, "revision": profile.model.revision, "precision": precision, "device": device,
                   "adapter": profile.method.adapter == "qlora"}
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
        try:
            raw = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return out
        for line in raw.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed writer
            if isinstance(e, dict) and isinstance(e.get("prompt"), str) and isinstance(e.get("text"), str):
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


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def base_records(run_dir: Path, profile, tokenizer, examples: list[EvalExample], settings: GenSettings, *, key: str,
                 get_model: Callable[[], object], identity: dict, judge: Judge | None = None,
                 progress: Progress | None = None, candidate: Candidate | None = None,
                 demos: list | None = None, stage: str = "base") -> tuple[list[dict], int]:
    """The base model's scored records under one prompt candidate (default: base_system_prompt alone)
    and how many examples had to be generated (0: all cached)."""
    from tunedeck.engine.gate.generate import Generation, generate, render_prompt

    candidate = candidate or Candidate(profile.gate.base_system_prompt, 0)
    prompt = candidate.prompt or None
    shots = (demos or [])[:candidate.few_shot]
    texts = [render_prompt(tokenizer, with_demonstrations(ex.prompt, shots), prompt) for ex in examples]
    hashes = [prompt_hash(t) for t in texts]
    cache = BaseCache(cache_dir(run_dir) / f"{content_hash({'model': identity, 'gen': settings.cache_key()})[:24]}.jsonl")
    cached = cache.load()
    missing = [i for i, h in enumerate(hashes) if h not in cached]
    if missing:
        model = get_model()
        if progress:
            progress(stage, 0, len(missing))
        gens = generate(model, tokenizer, [], texts=[texts[i] for i in missing], max_new_tokens=settings.max_new_tokens,
                        batch_size=settings.batch_size, temperature=settings.temperature, top_p=settings.top_p,
                        seed=settings.seed, progress=(lambda d, t: progress(stage, d, t)) if progress else None)
        new = [{"prompt": hashes[i], "text": g.text, "latency_ms": round(g.latency_ms, 2), "new_tokens": g.new_tokens}
               for i, g in zip(missing, gens)]
        cache.append(new)
        cached.update({e["prompt"]: e for e in new})
    elif progress:
        progress(f"{stage} (cached)", len(examples), len(examples))
    gens = [Generation(cached[h]["text"], cached[h]["latency_ms"], cached[h]["new_tokens"]) for h in hashes]
    records = score_all(examples, gens, checkpoint=BASE, key=key, judge=judge, system_prompt=prompt)
    for r in records:
        r["few_shot"] = len(shots)
    return records, len(missing)


@dataclass
class BaseResult:
    records: list[dict]      # the chosen candidate's records: the baseline
    generated: int           # examples generated (not cached), all candidates together
    candidates: list[dict]   # gate.json's base_prompts
    notice: str | None


def best_base_records(run_dir: Path, profile, tokenizer, examples: list[EvalExample], settings: GenSettings, *,
                      key: str, get_model: Callable[[], object], identity: dict, judge: Judge | None = None,
                      progress: Progress | None = None, demos: list | None = None) -> BaseResult:
    """The base under every prompt candidate (engine/gate/base_prompts.py); the best one is the baseline."""
    cands = candidates(profile.gate)
    results, generated = [], 0
    for i, cand in enumerate(cands):
        stage = "base" if len(cands) == 1 else f"base prompt {i + 1}/{len(cands)}"
        recs, n = base_records(run_dir, profile, tokenizer, examples, settings, key=key, get_model=get_model,
                               identity=identity, judge=judge, progress=progress, candidate=cand, demos=demos, stage=stage)
        results.append(recs)
        generated += n
    best = choose(results, profile.gate)
    return BaseResult(results[best], generated, entries(cands, results, best, profile.gate), notice(cands, best))


def few_shot_demos(profile) -> list:
    """Demonstrations for the few-shot candidates, drawn once per gate run (before any model loads)."""
    return demonstrations(profile, profile.gate.base_few_shot, profile.optim.seed)
