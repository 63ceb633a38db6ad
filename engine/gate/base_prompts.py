"""The base model with its best prompt: the candidates the gate tries, and how the baseline is picked.

A fine-tune has to beat what the base model does when asked well, not when asked badly. The gate
scores the base's task sets (golden, `--eval-set` files, the held-out split) under every candidate;
general and safety sets are asked as written, to the base and every checkpoint alike (their own
messages: no replaced system turn, no demonstrations), since they measure what the fine-tune cost and
a task prompt would make the base look worse at them than it is:

  prompts   [gate] base_system_prompt, then each of [gate] base_prompts (duplicates once). Each
            replaces the eval example's system turn; "" keeps the example's own.
  few-shot  with [gate] base_few_shot = k > 0, every prompt is tried twice: as it is, and with k
            demonstrations (user turn and answer) drawn by seed from the training split, placed
            before the example's own turns. Never from an eval set, so no example sees its own answer.
            Drawn from the training rows that carry a system turn the task sets' examples carry (or
            none, as they do), where there are k: rows of another kind mixed in for the next run
            (replay answers to plain questions) are no demonstration of the task, and would make
            the base the next run is judged against weaker than the one the previous run met.

The baseline is the candidate with the best task metric ([gate] task_metric), ties to the earlier.
Choosing on the eval set itself can only favour the base (its best of several tries), so a
checkpoint's gain against it is, if anything, understated; the gate says so in a notice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunedeck.engine.gate.rules import GateError
from tunedeck.engine.gate.scores import scores, task_metric, task_points
from tunedeck.engine.run.gate_result import ASKED_AS_WRITTEN


@dataclass(frozen=True)
class Candidate:
    prompt: str  # the system prompt; "" keeps the eval example's own system turn
    few_shot: int  # demonstrations placed before the example

    @property
    def changes_prompt(self) -> bool:
        return bool(self.prompt) or self.few_shot > 0

    def label(self) -> str:
        shown = " ".join(self.prompt.split())
        shown = "(the eval set's own prompt)" if not shown else repr(shown if len(shown) <= 50 else shown[:49] + "…")
        return shown + (f" + {self.few_shot}-shot" if self.few_shot else "")


AS_WRITTEN = Candidate("", 0)  # the example's own messages: how general and safety sets, and checkpoints, are asked


def asked_label(system_prompt: str | None, few_shot: int | None) -> str:
    """How one record's prompt was asked, in words: "as written", or the candidate's label."""
    cand = Candidate(system_prompt or "", few_shot if isinstance(few_shot, int) and few_shot > 0 else 0)
    return cand.label() if cand.changes_prompt else ASKED_AS_WRITTEN


def asked_by_set(records: list[dict]) -> dict[str, str]:
    """How the base was asked each set, read from its records (what was done, not what was meant): the set's
    name -> "as written" or the candidate's label ("; "-joined if its examples were asked differently)."""
    out: dict[str, list[str]] = {}
    for r in records:
        labels = out.setdefault(str(r.get("set") or ""), [])
        label = asked_label(r.get("system_prompt"), r.get("few_shot"))
        if label not in labels:
            labels.append(label)
    return {name: "; ".join(labels) for name, labels in out.items()}


def candidates(gate) -> list[Candidate]:
    prompts = list(dict.fromkeys([gate.base_system_prompt, *gate.base_prompts]))
    shots = [0] + ([gate.base_few_shot] if gate.base_few_shot > 0 else [])
    return [Candidate(p, k) for p in prompts for k in shots]


def demonstrations(profile, k: int, seed: int, like: set | None = None) -> list[tuple[str, str]]:
    """k (user text, answer) pairs from the run's training split, drawn by `seed`; from the rows whose system
    turn (None: none) is in `like` (the task examples'), when there are at least k of them."""
    if k <= 0:
        return []
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.gate.eval_sets import prompt_and_reference

    try:
        rows = prepare_data(profile).train_rows
    except Exception as e:
        raise GateError(
            f"gate.base_few_shot = {k} draws demonstrations from the training split, which cannot be "
            f"rebuilt: {str(e).splitlines()[0]}; set gate.base_few_shot = 0"
        ) from None
    pairs, systems = [], []
    for row in rows:
        split = prompt_and_reference(row)
        if split is None:
            continue
        messages, text, reference = split
        user = (
            text
            if messages is None
            else next((m["content"] for m in reversed(messages) if m.get("role") == "user"), None)
        )
        if isinstance(user, str) and user:
            pairs.append((user, reference))
            systems.append(system_turn(messages))
    if len(pairs) < k:
        raise GateError(f"gate.base_few_shot = {k}, but the training split has only {len(pairs)} prompt/answer rows")
    alike = [p for p, s in zip(pairs, systems) if like is not None and s in like]
    return random.Random(seed).sample(alike if len(alike) >= k else pairs, k)


def system_turn(messages: list | None) -> str | None:
    """A chat prompt's system text (None: no system turn, or a plain-text prompt)."""
    return next((m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "system"), None)


def with_demonstrations(prompt, demos: list[tuple[str, str]]):
    """The eval prompt with the demonstrations before its own turns (after any system turn)."""
    if not demos:
        return prompt
    if isinstance(prompt, str):
        return "".join(f"{u}\n{a}\n\n" for u, a in demos) + prompt
    head = [m for m in prompt if m.get("role") == "system"]
    rest = [m for m in prompt if m.get("role") != "system"]
    shots = [turn for u, a in demos for turn in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    return head + shots + rest


def task_value(records: list[dict], rules) -> float | None:
    """The base's task result under one candidate, in the task metric's points."""
    metric = task_metric(rules)
    if metric == "pass_rate":
        return scores(records)["task"]
    pts = task_points(records, metric)
    return sum(pts.values()) / len(pts) if pts else None


def choose(results: list[list[dict]], rules) -> int:
    """The index of the best candidate's records by the task metric; ties (and no task score) to the earlier."""
    values = [task_value(r, rules) for r in results]
    best = 0
    for i, v in enumerate(values):
        if v is not None and (values[best] is None or v > values[best] + 1e-9):
            best = i
    return best


def entries(cands: list[Candidate], results: list[list[dict]], chosen: int, rules) -> list[dict]:
    """gate.json's base_prompts: every candidate with its scores and which one became the baseline."""
    out = []
    for i, (c, recs) in enumerate(zip(cands, results)):
        s = scores(recs)
        out.append(
            {
                "prompt": c.prompt,
                "few_shot": c.few_shot,
                "task": _r(task_value(recs, rules)),
                "format": _r(s["format"]),
                "safety": _r(s["safety"]),
                "general": _r(s["general"]),
                "chosen": i == chosen,
            }
        )
    return out


def notice(cands: list[Candidate], chosen: int) -> str | None:
    if len(cands) < 2:
        return None
    return (
        f"the base's baseline is the best of {len(cands)} prompts, {cands[chosen].label()}, chosen on the same eval "
        "set: this can only favour the base, so a checkpoint's gain is if anything understated"
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
