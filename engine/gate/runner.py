"""Runs the eval gate: generates on the eval sets with the base and each checkpoint, scores, decides.

- The base model loads once per gate run (engine/gate/model_session.py); its generations are
  cached (engine/gate/base_generations.py). It answers the task sets under its best prompt and the
  general and safety sets as written; checkpoints answer every set as written.
- Results: evals/base.jsonl and evals/checkpoint-N.jsonl (engine/gate/example_records.py), evals/gate.json
  (engine/run/gate_result.py, built by engine/gate/rebuild.py), and EV_GATE events in the run log
  as each row is ready. Each row is judged once, as its checkpoint's records are ready.

Entry points: run_gate (the end of training, `tunedeck eval`) and evaluate_in_memory (gate.when =
"each_checkpoint", on the model the trainer holds). Neither writes status.json: callers do, from
status_fields(summary) (engine/run/gate_result.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from tunedeck.engine.gate.base_generations import best_base_records, few_shot_demos, model_identity
from tunedeck.engine.gate.eval_inputs import gen_settings, load_sets, select_checkpoints, sets_extra, sets_key
from tunedeck.engine.gate.example_records import write_records
from tunedeck.engine.gate.example_scoring import Progress, evaluate_model
from tunedeck.engine.gate.judge_client import Judge
from tunedeck.engine.gate.model_session import ModelSession, precision_and_device
from tunedeck.engine.gate.rebuild import Judging, recorded_overrides, summarize_run
from tunedeck.engine.observe.tracking import log_gate_summary
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import BASE, GateRow, GateSummary, read_gate_summary

# ---- events ---------------------------------------------------------------------------------------


def _row_event(events, row: GateRow) -> None:
    if events is None:
        return
    events.emit(
        C.EV_GATE,
        phase="row",
        checkpoint=row.checkpoint,
        verdict=row.verdict,
        task=row.task,
        format=row.format,
        safety=row.safety,
        general=row.general,
        latency_p95_ms=row.latency_p95_ms,
        reasons=row.reasons,
        warnings=row.warnings,
        task_delta=row.vs_base.get("task"),
        vs_base=row.vs_base,
        p_value=row.p_value,
        n=row.n,
    )


def _summary_event(events, summary: GateSummary) -> None:
    if events is None:
        return
    events.emit(
        C.EV_GATE,
        phase="summary",
        summary=True,
        checkpoint=summary.best,
        best=summary.best,
        verdict=summary.verdict,
        sentence=summary.sentence,
        rows=len(summary.rows) - 1,
    )


# ---- entry points -------------------------------------------------------------------------------


def run_gate(
    run_dir: Path,
    *,
    checkpoints: str | list[int] = "all",
    extra_sets: list[str] | tuple = (),
    events=None,
    progress: Progress | None = None,
    overrides: list[str] | tuple = (),
    reset: bool = False,
) -> GateSummary:
    """Evaluate the base and the chosen complete checkpoints; write evals/ and return the summary.

    `overrides` are gate.KEY=VALUE items (engine/gate/overrides.py), added to those recorded in
    gate.json (`reset`: dropped first). Returns the GateSummary written to evals/gate.json
    (engine/run/gate_result.py). User mistakes raise EvalSetError, GateError or ProfileError.
    """
    from tunedeck.engine.gate import overrides as gate_overrides
    from tunedeck.engine.models.model_loading import load_tokenizer
    from tunedeck.engine.run.run_record import load_run_record

    run_dir = Path(run_dir)
    record = load_run_record(run_dir)
    recorded = None if reset else recorded_overrides(read_gate_summary(run_dir))
    profile, changes = gate_overrides.apply(
        record.profile, gate_overrides.merge(recorded, gate_overrides.parse(list(overrides)))
    )
    record.profile = profile
    rules = profile.gate
    sets = load_sets(run_dir, record, extra_sets)  # mistakes surface before any model loads
    demos = few_shot_demos(profile, sets)
    targets, notices = select_checkpoints(run_dir, checkpoints)
    examples = [ex for s in sets for ex in s.examples]
    settings = gen_settings(profile)
    key = sets_key(sets, settings)
    judge = Judge(rules.judge_url, rules.judge_model) if rules.judge_url else None
    if events is not None:
        events.emit(
            C.EV_GATE,
            phase="start",
            checkpoints=[c.step for c in targets],
            examples=len(examples),
            sets=[s.name for s in sets],
        )
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(profile)
    session = ModelSession(profile)
    try:
        identity = model_identity(profile, session.precision, session.device)
        chosen = best_base_records(
            run_dir,
            profile,
            tokenizer,
            examples,
            settings,
            key=key,
            get_model=session.base,
            identity=identity,
            judge=judge,
            progress=progress,
            demos=demos,
        )
        base, generated = chosen.records, chosen.generated
        write_records(run_dir, BASE, base)
        judging = Judging(run_dir, rules, base)
        judged: dict[int, GateRow] = {}
        _row_event(events, judging.base_row())
        timings = {"base": {"generated": generated, "cached": chosen.asked - generated}}
        for ckpt in targets:
            t = time.perf_counter()
            model = session.checkpoint(ckpt)
            records = evaluate_model(
                model, tokenizer, examples, settings, checkpoint=ckpt.step, key=key, judge=judge, progress=progress
            )
            write_records(run_dir, ckpt.step, records)
            took = time.perf_counter() - t
            timings[f"{C.CHECKPOINT_PREFIX}{ckpt.step}"] = {
                "seconds": round(took, 3),
                "examples_per_s": round(len(examples) / max(took, 1e-9), 2),
            }
            judged[ckpt.step] = judging.row(ckpt.step, records, ckpt.marker.get("eval_loss"))
            _row_event(events, judged[ckpt.step])
    finally:
        session.close()
    notices += [chosen.notice] if chosen.notice else []
    extra = {
        **sets_extra(sets),
        "base_model": profile.model.base,
        "generation": asdict(settings),
        "base_system_prompt": rules.base_system_prompt,
        "base_prompts": chosen.candidates,
        "overrides": changes,
        "timings": timings,
        "notices": notices,
        "seconds": round(time.perf_counter() - t0, 3),
        "base_loads": session.base_loads,
    }
    summary = summarize_run(run_dir, extra=extra, judging=judging, judged=judged)
    _summary_event(events, summary)
    log_gate_summary(run_dir, summary, events)  # [tracking]: the same results in the user's trackers
    return summary


def evaluate_in_memory(
    run_dir: Path, model, tokenizer, step: int, events=None, memo: dict | None = None
) -> GateSummary:
    """gate.when = "each_checkpoint": evaluate the model the trainer holds, right after checkpoint `step` is saved.

    Call it on rank 0 with the unwrapped model (trainer.model, a PeftModel for LoRA). The base
    baseline comes from the cache, else from the same model with its adapter disabled; for full
    fine-tuning (no adapter to disable) the base is loaded once, then cached. The model's training
    mode and the tokenizer's padding side are restored. Returns the summary (see run_gate).
    `memo`: a dict the caller keeps for the run (the training callback), so the sets load once.
    """
    from tunedeck.engine.run.run_record import load_run_record

    run_dir = Path(run_dir)
    memo = {} if memo is None else memo
    if "inputs" not in memo:  # sets and the held-out split do not change during training: load them once
        from tunedeck.engine.gate import overrides as gate_overrides

        record = load_run_record(run_dir)
        # a resumed run keeps the gate settings recorded by `tunedeck eval/gate --set`
        recorded = recorded_overrides(read_gate_summary(run_dir))
        record.profile, _ = gate_overrides.apply(record.profile, gate_overrides.merge(recorded, []))
        sets = load_sets(run_dir, record)
        memo["inputs"] = (record.profile, sets, few_shot_demos(record.profile, sets))
    profile, sets, demos = memo["inputs"]
    rules = profile.gate
    examples = [ex for s in sets for ex in s.examples]
    settings = gen_settings(profile)
    key = sets_key(sets, settings)
    judge = Judge(rules.judge_url, rules.judge_model) if rules.judge_url else None
    identity = model_identity(profile, *precision_and_device(profile))  # as run_gate computes it: one shared cache
    side_session: ModelSession | None = None

    def base_model():
        nonlocal side_session
        if hasattr(model, "disable_adapter"):
            return _AdapterOff(model)
        side_session = ModelSession(profile)
        return side_session.base()

    try:
        chosen = best_base_records(
            run_dir,
            profile,
            tokenizer,
            examples,
            settings,
            key=key,
            get_model=base_model,
            identity=identity,
            judge=judge,
            demos=demos,
        )
        base = chosen.records
    finally:
        if side_session is not None:
            side_session.close()
    write_records(run_dir, BASE, base)
    records = evaluate_model(model, tokenizer, examples, settings, checkpoint=step, key=key, judge=judge)
    write_records(run_dir, step, records)
    judging = Judging(run_dir, rules, base)
    row = judging.row(step, records)
    _row_event(events, row)
    summary = summarize_run(
        run_dir,
        judging=judging,
        judged={step: row},
        extra={
            **sets_extra(sets),
            "base_model": profile.model.base,
            "generation": asdict(settings),
            "base_prompts": chosen.candidates,
            "base_system_prompt": rules.base_system_prompt,
            "notices": [chosen.notice] if chosen.notice else [],
        },
    )
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
