"""Scores generated text on eval examples with their checks: one per-example record each
(engine/gate/example_records.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from tunedeck.engine.gate.check_spec import Context
from tunedeck.engine.gate.checks import run_checks
from tunedeck.engine.gate.eval_inputs import GenSettings
from tunedeck.engine.gate.eval_sets import EvalExample
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import BASE

Progress = Callable[[str, int, int], None]  # (stage: "base" or "checkpoint-N", done, total examples)


def score_example(
    ex: EvalExample,
    text: str,
    latency_ms: float,
    new_tokens: int,
    *,
    checkpoint,
    key: str,
    judge: Judge | None = None,
    system_prompt: str | None = None,
) -> dict:
    ctx = Context(
        reference=ex.reference,
        new_tokens=new_tokens,
        judge=judge,
        example={
            "id": ex.id,
            "messages": ex.messages,
            "prompt": ex.prompt,
            "reference": ex.reference,
            "tags": list(ex.tags),
            "new_tokens": new_tokens,
            "meta": ex.meta,
        },
    )
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
    return {
        "id": ex.id,
        "set": ex.set,
        "tags": list(ex.tags),
        "checkpoint": checkpoint,
        "prompt": ex.prompt,
        "system_prompt": system_prompt,
        "output": text,
        "reference": ex.reference,
        "checks": [r.to_dict() for r in results],
        "pass": passed,
        "format_pass": format_pass,
        "latency_ms": round(latency_ms, 2),
        "new_tokens": new_tokens,
        "key": key,
        **({"tools": ex.tools} if ex.tools else {}),
    }


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


def evaluate_model(
    model,
    tokenizer,
    examples: list[EvalExample],
    settings: GenSettings,
    *,
    checkpoint,
    key: str,
    judge: Judge | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Generate on every example with the model as it is (adapter active or not) and score the outputs.
    A LoRA checkpoint loaded for evaluation generates merged where that is exact and cheap
    (engine/gate/adapter_merge.py)."""
    from tunedeck.engine.gate.adapter_merge import merged_for_generation
    from tunedeck.engine.gate.generate import generate

    stage = "base" if checkpoint == BASE else f"{C.CHECKPOINT_PREFIX}{checkpoint}"
    if progress:
        progress(stage, 0, len(examples))
    with merged_for_generation(model) as m:
        gens = generate(
            m,
            tokenizer,
            [ex.prompt for ex in examples],
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            progress=(lambda d, t: progress(stage, d, t)) if progress else None,
        )
    return score_all(examples, gens, checkpoint=checkpoint, key=key, judge=judge)
