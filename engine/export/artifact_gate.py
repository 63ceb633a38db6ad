"""The gate run on what is shipped: the exported artifact answers the task examples the gate asked its checkpoint.

The examples are the task records in evals/checkpoint-N.jsonl (all of them, or the first N), rebuilt from
the eval sets the gate ran on and asked exactly as the gate asked the checkpoint: the same messages, the
same replaced system turn (the record's system_prompt), the gate's generation settings from gate.json,
through the gate's own generate() and checks (engine/gate/generate.py, example_scoring.score_all). The
artifact is loaded as a user loads it: the adapter on the base, the merged folder, or the GGUF file
through transformers' GGUF loader, with the tokenizer and chat template it carries.

Its scores are compared with the checkpoint's recorded ones on the same examples, under the gate's own
tolerances (gate.json's rules): the task score may fall by at most max(0, -min_task_gain) points (the
gate lets a checkpoint lose no task score against its reference unless min_task_gain is negative), and
format validity by at most max_format_drop points. Beyond either, the export has failed. How many answers
are word-for-word the gate's is reported beside, and is no rule: a quantised file may word an answer
differently and still pass its checks.

When the examples cannot be asked again (the gate never judged the checkpoint, an eval set changed or
is gone), the result says why and nothing is compared.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedeck.engine.run.gate_result import FAIL, PASS

SHOWN_DIFFERENCES = 3


@dataclass
class ArtifactGate:
    """tunedeck-export.json's "artifact_gate": the artifact's task score beside the checkpoint's, on the same
    examples."""

    examples: int = 0  # task examples the artifact answered
    identical: int = 0  # of those, answers word for word the gate's recorded ones
    task: float | None = None  # the artifact's task score: percent, or points of the gate's task metric
    checkpoint_task: float | None = None
    format: float | None = None  # format validity on those examples (None: none is a format example)
    checkpoint_format: float | None = None
    task_metric: str = "pass_rate"
    of: int = 0  # task examples the gate asked the checkpoint
    verdict: str | None = None  # pass / fail; None when it could not run (skipped says why)
    reasons: list[str] = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)  # {"task": points, "format": points}, from the gate's rules
    differences: list[dict] = field(default_factory=list)  # the first answers that differ: id, gate, artifact
    artifact: str = ""  # what answered: "the merged model", "the GGUF file (q8_0) ..."
    generation: dict = field(default_factory=dict)
    tokenized_differently: int | None = None  # prompts the artifact's tokenizer splits unlike the gate's
    seconds: float | None = None
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> ArtifactGate | None:
        if not isinstance(d, dict):
            return None
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        try:
            return cls(**known)
        except TypeError:
            return None


@dataclass
class Plan:
    """What the artifact will be asked, fixed before any model loads."""

    step: int
    records: list[dict]  # the checkpoint's recorded task answers, in file order
    examples: list = field(default_factory=list)  # the EvalExample behind each record
    settings: object = None  # the gate's GenSettings
    rules: dict = field(default_factory=dict)
    judge: object = None
    of: int = 0
    skipped: str | None = None

    def skip(self, why: str) -> ArtifactGate:
        return ArtifactGate(of=self.of, skipped=why)


# ---- what to ask: fixed before any model loads ---------------------------------------------------


def _same_prompt(ex, rec: dict) -> bool:
    asked = ex.prompt if isinstance(ex.prompt, str) else list(ex.prompt)
    if json.dumps(asked, sort_keys=True, default=str) != json.dumps(rec.get("prompt"), sort_keys=True, default=str):
        return False
    return [c.type for c in ex.checks] == [c.get("type") for c in rec.get("checks") or []]


def plan(run_dir: Path, step: int, first: int | None = None) -> Plan:
    """The task examples the gate asked checkpoint `step` (the first `first` of them), with the gate's settings."""
    from tunedeck.engine.gate import overrides as gate_overrides
    from tunedeck.engine.gate.eval_inputs import GenSettings, gen_settings, load_sets
    from tunedeck.engine.gate.eval_sets import GATE_SET_KEYS
    from tunedeck.engine.gate.example_records import read_records
    from tunedeck.engine.gate.judge_client import Judge
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.engine.run.run_record import load_run_record

    run_dir = Path(run_dir)
    records = [r for r in read_records(run_dir, step) if "task" in (r.get("tags") or ())]
    summary = read_gate_summary(run_dir)
    out = Plan(step=step, records=records, of=len(records))
    if summary is None or not records:
        out.skipped = (
            f"the gate has not evaluated checkpoint-{step}, so there is nothing to compare with "
            f"(run `tunedeck eval {run_dir.name} --checkpoint {step}`)"
            if not records
            else "the gate's result (evals/gate.json) is missing or unreadable; run `tunedeck eval` again"
        )
        return out
    out.records = records[:first] if first else records
    record = load_run_record(run_dir)
    record.profile, _ = gate_overrides.apply(record.profile, gate_overrides.merge(summary.context.get("overrides"), []))
    named = {key for key, _ in GATE_SET_KEYS}
    extra = [s.source for s in summary.sets if s.name not in named and s.source and s.source != "held-out split"]
    try:
        sets = load_sets(run_dir, record, extra)
    except Exception as e:  # a moved file, changed data: the examples cannot be rebuilt as the gate asked them
        out.skipped = f"the gate's eval sets cannot be loaded as the gate ran them ({str(e).splitlines()[0]})"
        return out
    by_id = {ex.id: ex for s in sets for ex in s.examples}
    for rec in out.records:
        ex = by_id.get(rec["id"])
        if ex is None or not _same_prompt(ex, rec):
            why = "is no longer in the eval sets" if ex is None else "changed (prompt or checks) since the gate ran"
            out.skipped = (
                f"eval example {rec['id']} {why}; run `tunedeck eval {run_dir.name}` again so both ask the same"
            )
            return out
        out.examples.append(ex)
    generation = summary.context.get("generation")
    try:
        out.settings = GenSettings(**{k: generation[k] for k in GenSettings.__dataclass_fields__})
    except (TypeError, KeyError):
        out.settings = gen_settings(record.profile)
    g = record.profile.gate
    out.rules = {
        "task_metric": g.task_metric,
        "min_task_gain": g.min_task_gain,
        "max_format_drop": g.max_format_drop,
        **{k: v for k, v in summary.rules.items() if k in ("task_metric", "min_task_gain", "max_format_drop")},
    }
    out.judge = Judge(g.judge_url, g.judge_model) if g.judge_url else None
    return out


# ---- asking the artifact ---------------------------------------------------------------------------


def load_artifact(kind: str, folder: Path, profile, gguf_file: str | None = None):
    """(model, tokenizer) as a user loads the export, on the gate's device and in its precision."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.gate.model_session import precision_and_device

    precision, device = precision_and_device(profile)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    folder = str(folder)
    if kind == "adapter":
        import warnings

        from peft import PeftModel

        from tunedeck.engine.models.model_loading import load_model

        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        base = load_model(profile, precision)
        if profile.method.adapter != "qlora":  # 4-bit weights are placed on the GPU already
            base.to(device)
        model = PeftModel.from_pretrained(base, folder, is_trainable=False)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra).to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    model.eval()
    return model, tokenizer


def ask(p: Plan, model, tokenizer) -> list[dict]:
    """The artifact's records for the plan's examples, in the plan's order: the gate's own evaluate_model (the gate
    asks checkpoints their examples as written); records whose system turn the gate replaced are asked through
    the gate's generate() with that system prompt, a group per prompt."""
    from tunedeck.engine.gate.example_scoring import evaluate_model, score_all
    from tunedeck.engine.gate.generate import generate

    s, key = p.settings, (p.records[0].get("key") if p.records else None)
    if all(rec.get("system_prompt") is None for rec in p.records):
        return evaluate_model(model, tokenizer, p.examples, s, checkpoint=p.step, key=key, judge=p.judge)
    groups: dict = {}
    for i, rec in enumerate(p.records):
        groups.setdefault(rec.get("system_prompt"), []).append(i)
    out: list = [None] * len(p.records)
    for system_prompt, idx in groups.items():
        exs = [p.examples[i] for i in idx]
        gens = generate(
            model,
            tokenizer,
            [ex.prompt for ex in exs],
            max_new_tokens=s.max_new_tokens,
            batch_size=s.batch_size,
            system_prompt=system_prompt,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=s.seed,
        )
        for i, rec in zip(
            idx, score_all(exs, gens, checkpoint=p.step, key=key, judge=p.judge, system_prompt=system_prompt)
        ):
            out[i] = rec
    return out


def tokenized_differently(p: Plan, tokenizer, reference) -> int:
    """How many of the plan's prompts the artifact's tokenizer turns into other token ids than `reference`, the
    tokenizer the gate asked the checkpoint with (its template and vocabulary against the exported ones)."""
    from tunedeck.engine.gate.generate import PromptError, render_prompt

    n = 0
    for ex, rec in zip(p.examples, p.records):
        try:
            ids = [
                tok(render_prompt(tok, ex.prompt, rec.get("system_prompt")), add_special_tokens=False)["input_ids"]
                for tok in (tokenizer, reference)
            ]
        except PromptError:
            n += 1
            continue
        n += ids[0] != ids[1]
    return n


# ---- comparing ---------------------------------------------------------------------------------------


def _task(records: list[dict], metric: str) -> float | None:
    from tunedeck.engine.gate.scores import scores, task_points

    if metric == "pass_rate":
        return scores(records)["task"]
    pts = task_points(records, metric)
    return sum(pts.values()) / len(pts) if pts else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def compare(p: Plan, artifact_records: list[dict], artifact: str, seconds: float | None = None) -> ArtifactGate:
    """The artifact against the checkpoint on the same examples, under the gate's tolerances."""
    from tunedeck.engine.gate.scores import scores

    metric = p.rules.get("task_metric") or "pass_rate"
    tol_task = max(0.0, -float(p.rules.get("min_task_gain", 0.0)))
    tol_format = float(p.rules.get("max_format_drop", 0.0))
    task, was = _task(artifact_records, metric), _task(p.records, metric)
    fmt, was_fmt = scores(artifact_records)["format"], scores(p.records)["format"]
    same = [a.get("output") == r.get("output") for a, r in zip(artifact_records, p.records)]
    differences = [
        {"id": r["id"], "gate": r.get("output"), "artifact": a.get("output")}
        for a, r, s in zip(artifact_records, p.records, same)
        if not s
    ][:SHOWN_DIFFERENCES]
    unit = "%" if metric == "pass_rate" else f" {metric} points"
    ck = f"checkpoint-{p.step}"
    reasons = []
    if task is not None and was is not None and was - task > tol_task + 1e-9:
        allowed = f"allows {tol_task:g}" if tol_task else "allows no task loss (min_task_gain >= 0)"
        reasons.append(
            f"task {task:.1f}{unit} is {was - task:.1f} points below {ck}'s {was:.1f}{unit} on the same "
            f"{len(p.records)} examples (the gate {allowed})"
        )
    if fmt is not None and was_fmt is not None and was_fmt - fmt > tol_format + 1e-9:
        reasons.append(
            f"format validity {fmt:.1f}% dropped {was_fmt - fmt:.1f} points from {ck}'s {was_fmt:.1f}% "
            f"(the gate allows {tol_format:g}: max_format_drop)"
        )
    return ArtifactGate(
        examples=len(p.records),
        identical=sum(same),
        task=_r(task),
        checkpoint_task=_r(was),
        format=_r(fmt),
        checkpoint_format=_r(was_fmt),
        task_metric=metric,
        of=p.of,
        verdict=FAIL if reasons else PASS,
        reasons=reasons,
        tolerance={"task": tol_task, "format": tol_format},
        differences=differences,
        artifact=artifact,
        generation=asdict(p.settings) if p.settings is not None else {},
        seconds=None if seconds is None else round(seconds, 3),
    )


def run_artifact_gate(
    p: Plan,
    kind: str,
    folder: Path,
    profile,
    *,
    artifact: str,
    gguf_file: str | None = None,
    reference_tokenizer=None,
    progress=None,
) -> ArtifactGate:
    """Load the artifact, ask it the plan's examples, compare; the plan's skip reason when it has one."""
    if p.skipped:
        return p.skip(p.skipped)
    say = progress or (lambda message: None)
    say(f"artifact gate: {artifact} answers the {len(p.records)} task examples the gate asked checkpoint-{p.step}")
    t0 = time.perf_counter()
    model, tokenizer = load_artifact(kind, folder, profile, gguf_file)
    try:
        records = ask(p, model, tokenizer)
    finally:
        del model
    result = compare(p, records, artifact, time.perf_counter() - t0)
    if reference_tokenizer is not None:
        result.tokenized_differently = tokenized_differently(p, tokenizer, reference_tokenizer)
    return result


def summary_lines(gate: ArtifactGate, step: int) -> list[str]:
    """The command's last lines: the artifact's task score beside the checkpoint's, and the agreement."""
    if gate.skipped:
        return [f"artifact gate: not run: {gate.skipped}"]
    unit = "%" if gate.task_metric == "pass_rate" else f" ({gate.task_metric})"

    def pct(x):
        return "-" if x is None else f"{x:.1f}{unit}"

    some = f" (the first {gate.examples} of {gate.of})" if gate.examples < gate.of else ""
    lines = [
        f"artifact gate: {gate.artifact} answered the gate's {gate.examples} task examples{some} for checkpoint-{step}",
        f"artifact task {pct(gate.task)} vs checkpoint-{step} {pct(gate.checkpoint_task)}"
        + (
            f", format {gate.format:.1f}% vs {gate.checkpoint_format:.1f}%"
            if gate.format is not None and gate.checkpoint_format is not None
            else ""
        )
        + f"; {gate.identical} of {gate.examples} answers identical to the gate's",
    ]
    if gate.failed:
        d = gate.differences[0] if gate.differences else None
        if d:
            lines.append(
                f"first different answer, {d['id']}: the gate recorded {d['gate']!r}, "
                f"the artifact said {d['artifact']!r}"
            )
        if gate.tokenized_differently:
            lines.append(
                f"{gate.tokenized_differently} of {gate.examples} prompts are tokenized differently by the "
                "exported tokenizer (its chat template or vocabulary) than by the one the gate used"
            )
        lines += [f"artifact gate FAILED: {r}" for r in gate.reasons]
    else:
        lines.append("artifact gate: pass (within the gate's tolerances)")
    return lines
