"""Runs the eval gate: generates on the eval sets with the base and each checkpoint, scores, decides.

- The base model loads once per gate run. LoRA checkpoints are adapters switched on that one model
  (PeftModel.load_adapter / set_adapter, the previous adapter deleted to bound memory); full
  fine-tuning checkpoints load their weights into the same model object in place.
- The base is generated under every prompt candidate (engine/gate/base_prompts.py: [gate]
  base_system_prompt, base_prompts, base_few_shot) and the best by the task metric is the
  baseline. Its generations are cached per example under <workspace>/cache/gate/<hash of base model, precision, device and
  generation settings>.jsonl, keyed by the hash of the rendered prompt: a re-run, another run on
  the same base, or a set that grew by a few examples only generates what is new. Checks are re-run
  on cached text every time, so editing a check needs no new generation.
- Results: evals/base.jsonl and evals/checkpoint-N.jsonl (engine/gate/records.py), evals/gate.json
  (engine/gate/rules.py), and EV_GATE events in the run log as each row is ready.

Entry points: run_gate (the end of training, `tunedeck eval`) and evaluate_in_memory (gate.when =
"each_checkpoint", on the model the trainer holds). Neither writes status.json: callers do, from
status_fields(summary).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import PRIVATE_FILE, make_private_dir
from tunedeck.engine.gate.checks import Context, Judge, run_checks
from tunedeck.engine.gate.records import BASE, write_records
from tunedeck.engine.gate.eval_sets import EvalExample, EvalSet, content_hash, held_out_set, profile_sets, verdict_basis
from tunedeck.engine.gate.base_prompts import (
    Candidate,
    candidates,
    choose,
    demonstrations,
    entries,
    notice,
    with_demonstrations,
)
from tunedeck.engine.gate.rules import GateError, base_row, judge_checkpoint, summarize_run
from tunedeck.engine.training.tracking import log_gate_summary

BASE_LOADS = 0  # base models loaded by this process: the benchmark checks it stays at one per gate run

Progress = Callable[[str, int, int], None]  # (stage: "base" or "checkpoint-N", done, total examples)


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


# ---- eval sets ----------------------------------------------------------------------------------

def load_sets(run_dir: Path, record, extra_sets=()) -> list[EvalSet]:
    """The sets [gate] names and `extra_sets`; with none, the run's held-out split (unchanged data only)."""
    sets = profile_sets(record.profile.gate, list(extra_sets))
    if sets:
        return sets
    from tunedeck.engine.training.train import prepare_data

    profile = record.profile
    try:
        data = prepare_data(profile)
    except Exception as e:
        raise GateError(f"no eval set in [gate] (golden, safety, general) and the held-out split cannot be rebuilt: "
                        f"{str(e).splitlines()[0]}. Name an eval set with `--eval-set FILE` or [gate] golden") from None
    if record.dataset_fingerprint and data.fingerprint != record.dataset_fingerprint:
        raise GateError(f"{profile.data.path} changed since the run started, so its held-out split is not the one "
                        "held out from training; name an eval set with `--eval-set FILE` or [gate] golden")
    heldout = held_out_set(data.eval_rows, judge=bool(profile.gate.judge_url))
    if not heldout.examples:
        raise GateError("the run has no held-out examples to score (data.val_fraction = 0, or plain-text rows); "
                        "name an eval set with `--eval-set FILE` or [gate] golden")
    return [heldout]


def sets_key(sets: list[EvalSet], settings: GenSettings) -> str:
    return content_hash({"sets": [[s.name, s.sha256] for s in sets], "gen": settings.cache_key()})[:16]


def sets_info(sets: list[EvalSet]) -> list[dict]:
    return [{"name": s.name, "source": s.source, "examples": len(s.examples), "sha256": s.sha256[:16]} for s in sets]


def sets_extra(sets: list[EvalSet]) -> dict:
    """What gate.json says about the sets: their names and sizes, and what a held-out verdict rests on."""
    return {"sets": sets_info(sets), "basis": verdict_basis(sets)}


# ---- scoring ------------------------------------------------------------------------------------

def score_example(ex: EvalExample, text: str, latency_ms: float, new_tokens: int, *, checkpoint, key: str,
                  judge: Judge | None = None, system_prompt: str | None = None) -> dict:
    ctx = Context(reference=ex.reference, new_tokens=new_tokens, judge=judge,
                  example={"id": ex.id, "messages": ex.messages, "prompt": ex.prompt, "reference": ex.reference,
                           "tags": list(ex.tags), "new_tokens": new_tokens, "meta": ex.meta})
    results = run_checks(ex.checks, text, ctx)
    evaluated = [r.passed for r in results if r.passed is not None]
    passed = all(evaluated) if evaluated else None
    format_pass = None
    if ex.is_format:
        if any(c.is_format for c in ex.checks):
            fmt = [r.passed for r, c in zip(results, ex.checks) if c.is_format and r.passed is not None]
            format_pass = all(fmt) if fmt else None
        else:
            format_pass = passed  # tagged format without a JSON check: its own checks say what format means
    return {"id": ex.id, "set": ex.set, "tags": list(ex.tags), "checkpoint": checkpoint, "prompt": ex.prompt,
            "system_prompt": system_prompt, "output": text, "reference": ex.reference,
            "checks": [r.to_dict() for r in results], "pass": passed, "format_pass": format_pass,
            "latency_ms": round(latency_ms, 2), "new_tokens": new_tokens, "key": key,
            **({"tools": ex.tools} if ex.tools else {})}


def score_all(examples: list[EvalExample], gens: list, **kw) -> list[dict]:
    """Score every example; rubric checks wait on a network judge, so those run a few at a time."""
    def one(pair):
        ex, g = pair
        return score_example(ex, g.text, g.latency_ms, g.new_tokens, **kw)

    pairs = list(zip(examples, gens))
    if kw.get("judge") is not None and any(c.type == "rubric" for ex in examples for c in ex.checks):
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, pairs))
    return [one(p) for p in pairs]


def evaluate_model(model, tokenizer, examples: list[EvalExample], settings: GenSettings, *, checkpoint, key: str,
                   judge: Judge | None = None, progress: Progress | None = None) -> list[dict]:
    """Generate on every example with the model as it is (adapter active or not) and score the outputs."""
    from tunedeck.engine.gate.generate import generate

    stage = "base" if checkpoint == BASE else f"{C.CHECKPOINT_PREFIX}{checkpoint}"
    if progress:
        progress(stage, 0, len(examples))
    gens = generate(model, tokenizer, [ex.prompt for ex in examples], max_new_tokens=settings.max_new_tokens,
                    batch_size=settings.batch_size, temperature=settings.temperature, top_p=settings.top_p,
                    seed=settings.seed, progress=(lambda d, t: progress(stage, d, t)) if progress else None)
    return score_all(examples, gens, checkpoint=checkpoint, key=key, judge=judge)


# ---- the base model's cached generations ----------------------------------------------------------

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


class _Gen:
    def __init__(self, text: str, latency_ms: float, new_tokens: int):
        self.text, self.latency_ms, self.new_tokens = text, latency_ms, new_tokens


def base_records(run_dir: Path, profile, tokenizer, examples: list[EvalExample], settings: GenSettings, *, key: str,
                 get_model: Callable[[], object], identity: dict, judge: Judge | None = None,
                 progress: Progress | None = None, candidate: Candidate | None = None,
                 demos: list | None = None, stage: str = "base") -> tuple[list[dict], int]:
    """The base model's scored records under one prompt candidate (default: base_system_prompt alone)
    and how many examples had to be generated (0: all cached)."""
    from tunedeck.engine.gate.generate import generate, render_prompt

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
    gens = [_Gen(cached[h]["text"], cached[h]["latency_ms"], cached[h]["new_tokens"]) for h in hashes]
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


# ---- models ---------------------------------------------------------------------------------------

class ModelSession:
    """One base model for the whole gate run; checkpoints are switched onto it, never reloaded from scratch."""

    def __init__(self, profile):
        self.profile = profile
        self.model = None          # the base model, or the PeftModel wrapping it once an adapter is on
        self.adapter: str | None = None
        self.modified = False      # full weights loaded in place: the base is gone
        self.precision, self.device = _precision_and_device(profile)

    def base(self):
        global BASE_LOADS
        if self.modified or self.adapter is not None:
            raise RuntimeError("the base model was already changed by a checkpoint; evaluate the base first")
        if self.model is None:
            from tunedeck.engine.training.model_loading import load_model

            model = load_model(self.profile, self.precision)
            BASE_LOADS += 1
            if self.profile.method.adapter != "qlora":  # 4-bit weights are already placed on the GPU
                model.to(self.device)
            model.eval()
            self.model = model
            _warm_up(model)
        return self.model

    def checkpoint(self, ckpt):
        path = Path(ckpt.path)
        if (path / "adapter_config.json").exists():
            return self._adapter(ckpt.step, path)
        return self._full(ckpt.step, path)

    def _adapter(self, step: int, path: Path):
        import warnings

        from peft import PeftModel

        # peft calls a transformers API deprecated in v5; the warning is not ours to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        name = f"ckpt{step}"
        if self.adapter is None:
            self.model = PeftModel.from_pretrained(self.base(), str(path), adapter_name=name, is_trainable=False)
        else:
            self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            self.model.set_adapter(name)
            self.model.delete_adapter(self.adapter)  # one adapter in memory at a time
        self.adapter = name
        self.model.eval()
        return self.model

    def _full(self, step: int, path: Path):
        from safetensors.torch import load_file

        files = sorted(path.glob("model*.safetensors"))
        if not files:
            raise GateError(f"checkpoint-{step} has neither a LoRA adapter nor safetensors weights ({path})")
        model = self.base() if not self.modified else self.model
        state: dict = {}
        for f in files:
            state.update(load_file(str(f), device=str(self.device)))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {k for k in missing if "lm_head" in k}  # tied to the embeddings, not saved separately
        if unexpected or set(missing) - tied:
            raise GateError(f"checkpoint-{step}: weights do not fit the base model "
                            f"({len(set(missing) - tied)} missing, {len(unexpected)} unexpected tensors)")
        self.modified = True
        model.eval()
        return model

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


def _warm_up(model) -> None:
    """One tiny generation, so one-off start-up costs (kernels, allocator) are not billed to the first latency."""
    import torch
    from transformers import GenerationConfig

    with torch.inference_mode():
        ids = torch.zeros((1, 4), dtype=torch.long, device=next(model.parameters()).device)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                       generation_config=GenerationConfig(max_new_tokens=2, do_sample=False, pad_token_id=0))


def _precision_and_device(profile) -> tuple[str, str]:
    import torch

    from tunedeck.engine.training.model_loading import resolve_precision

    return resolve_precision(profile), "cuda" if torch.cuda.is_available() else "cpu"


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


# ---- events ---------------------------------------------------------------------------------------

def _row_event(events, row: dict) -> None:
    if events is None:
        return
    events.emit(C.EV_GATE, phase="row", checkpoint=row["checkpoint"], verdict=row["verdict"], task=row["task"],
                format=row["format"], safety=row["safety"], general=row["general"],
                latency_p95_ms=row["latency_p95_ms"], reasons=row["reasons"], warnings=row["warnings"],
                task_delta=row["vs_base"].get("task"), p_value=row.get("p_value"), n=row["n"])


def _summary_event(events, summary: dict) -> None:
    if events is None:
        return
    best = summary["best"]["checkpoint"]
    events.emit(C.EV_GATE, phase="summary", summary=True, checkpoint=best, best=best, verdict=summary["verdict"],
                sentence=summary["sentence"], rows=len(summary["rows"]) - 1)


def status_fields(summary: dict | None) -> dict:
    """What status.json carries about the gate: gate_verdict and gate_best (a step or None)."""
    if not summary:
        return {"gate_verdict": None, "gate_best": None}
    return {"gate_verdict": summary.get("verdict"), "gate_best": (summary.get("best") or {}).get("checkpoint")}


def _row_for(run_dir: Path, base: list[dict], records: list[dict], rules, step: int, eval_loss=None) -> dict:
    review = None
    if rules.require_review:
        from tunedeck.engine.gate.reviews import review_state

        review = review_state(run_dir, step, size=rules.review_sample)
    return judge_checkpoint(base, records, rules, checkpoint=step, eval_loss=eval_loss, review=review)


# ---- entry points -------------------------------------------------------------------------------

def run_gate(run_dir: Path, *, checkpoints: str | list[int] = "all", extra_sets: list[str] | tuple = (),
             events=None, progress: Progress | None = None, overrides: list[str] | tuple = (),
             reset: bool = False) -> dict:
    """Evaluate the base and the chosen complete checkpoints; write evals/ and return the summary.

    `overrides` are gate.KEY=VALUE items (engine/gate/overrides.py), added to those recorded in
    gate.json (`reset`: dropped first). Summary keys: rows, best {"checkpoint", "sentence"}, verdict
    ("pass" / "needs_review" / "fail" / None), sentence, sets, base_prompts, overrides, notices, ...
    (evals/gate.json). User mistakes raise EvalSetError, GateError or ProfileError.
    """
    from tunedeck.engine.gate import overrides as gate_overrides
    from tunedeck.engine.gate.rules import load_gate_summary
    from tunedeck.engine.training.model_loading import load_tokenizer
    from tunedeck.engine.run.record import load_run_record

    run_dir = Path(run_dir)
    record = load_run_record(run_dir)
    recorded = None if reset else (load_gate_summary(run_dir) or {}).get("overrides")
    profile, changes = gate_overrides.apply(record.profile,
                                            gate_overrides.merge(recorded, gate_overrides.parse(list(overrides))))
    record.profile = profile
    rules = profile.gate
    sets = load_sets(run_dir, record, extra_sets)           # mistakes surface before any model loads
    demos = few_shot_demos(profile)
    targets, notices = select_checkpoints(run_dir, checkpoints)
    examples = [ex for s in sets for ex in s.examples]
    settings = gen_settings(profile)
    key = sets_key(sets, settings)
    judge = Judge(rules.judge_url, rules.judge_model) if rules.judge_url else None
    if events is not None:
        events.emit(C.EV_GATE, phase="start", checkpoints=[c.step for c in targets], examples=len(examples),
                    sets=[s.name for s in sets])
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(profile)
    session = ModelSession(profile)
    try:
        identity = model_identity(profile, session.precision, session.device)
        chosen = best_base_records(run_dir, profile, tokenizer, examples, settings, key=key, get_model=session.base,
                                   identity=identity, judge=judge, progress=progress, demos=demos)
        base, generated = chosen.records, chosen.generated
        write_records(run_dir, BASE, base)
        _row_event(events, base_row(base, rules))
        timings = {"base": {"generated": generated, "cached": len(examples) * len(chosen.candidates) - generated}}
        for ckpt in targets:
            t = time.perf_counter()
            model = session.checkpoint(ckpt)
            records = evaluate_model(model, tokenizer, examples, settings, checkpoint=ckpt.step, key=key, judge=judge,
                                     progress=progress)
            write_records(run_dir, ckpt.step, records)
            took = time.perf_counter() - t
            timings[f"{C.CHECKPOINT_PREFIX}{ckpt.step}"] = {"seconds": round(took, 3),
                                                             "examples_per_s": round(len(examples) / max(took, 1e-9), 2)}
            _row_event(events, _row_for(run_dir, base, records, rules, ckpt.step, ckpt.marker.get("eval_loss")))
    finally:
        session.close()
    notices += [chosen.notice] if chosen.notice else []
    extra = {**sets_extra(sets), "base_model": profile.model.base, "generation": asdict(settings),
             "base_system_prompt": rules.base_system_prompt, "base_prompts": chosen.candidates, "overrides": changes,
             "timings": timings, "notices": notices, "seconds": round(time.perf_counter() - t0, 3), "base_loads": BASE_LOADS}
    summary = summarize_run(run_dir, rules, extra=extra)
    _summary_event(events, summary)
    log_gate_summary(run_dir, summary, events)  # [tracking]: the same results in the user's trackers
    return summary


_SETS_MEMO: dict[str, tuple] = {}


def evaluate_in_memory(run_dir: Path, model, tokenizer, step: int, events=None) -> dict:
    """gate.when = "each_checkpoint": evaluate the model the trainer holds, right after checkpoint `step` is saved.

    Call it on rank 0 with the unwrapped model (trainer.model, a PeftModel for LoRA). The base
    baseline comes from the cache, else from the same model with its adapter disabled; for full
    fine-tuning (no adapter to disable) the base is loaded once, then cached. The model's training
    mode and the tokenizer's padding side are restored. Returns the summary (see run_gate).
    """
    from tunedeck.engine.run.record import load_run_record

    run_dir = Path(run_dir)
    memo = _SETS_MEMO.get(str(run_dir))
    if memo is None:  # sets and the held-out split do not change during training: load them once
        from tunedeck.engine.gate import overrides as gate_overrides
        from tunedeck.engine.gate.rules import load_gate_summary

        record = load_run_record(run_dir)
        # a resumed run keeps the gate settings recorded by `tunedeck eval/gate --set`
        recorded = (load_gate_summary(run_dir) or {}).get("overrides")
        record.profile, _ = gate_overrides.apply(record.profile, gate_overrides.merge(recorded, []))
        sets = load_sets(run_dir, record)
        memo = _SETS_MEMO[str(run_dir)] = (record.profile, sets, few_shot_demos(record.profile))
    profile, sets, demos = memo
    rules = profile.gate
    examples = [ex for s in sets for ex in s.examples]
    settings = gen_settings(profile)
    key = sets_key(sets, settings)
    judge = Judge(rules.judge_url, rules.judge_model) if rules.judge_url else None
    identity = model_identity(profile, *_precision_and_device(profile))  # as run_gate computes it: one shared cache
    side_session: ModelSession | None = None

    def base_model():
        nonlocal side_session
        if hasattr(model, "disable_adapter"):
            return _AdapterOff(model)
        side_session = ModelSession(profile)
        return side_session.base()

    try:
        chosen = best_base_records(run_dir, profile, tokenizer, examples, settings, key=key, get_model=base_model,
                                   identity=identity, judge=judge, demos=demos)
        base = chosen.records
    finally:
        if side_session is not None:
            side_session.close()
    write_records(run_dir, BASE, base)
    records = evaluate_model(model, tokenizer, examples, settings, checkpoint=step, key=key, judge=judge)
    write_records(run_dir, step, records)
    _row_event(events, _row_for(run_dir, base, records, rules, step))
    summary = summarize_run(run_dir, rules, extra={**sets_extra(sets), "base_model": profile.model.base,
                                                    "generation": asdict(settings), "base_prompts": chosen.candidates,
                                                    "base_system_prompt": rules.base_system_prompt,
                                                    "notices": [chosen.notice] if chosen.notice else []})
    _summary_event(events, summary)
    log_gate_summary(run_dir, summary, events)  # [tracking]: the same results in the user's trackers
    return summary


class _AdapterOff:
    """The PeftModel with its adapter disabled for the duration of generate() (what the base would say)."""

    def __init__(self, peft_model):
        self._m = peft_model

    def __getattr__(self, name):
        return getattr(self._m, name)

    def generate(self, *args, **kwargs):
        with self._m.disable_adapter():
            return self._m.generate(*args, **kwargs)
