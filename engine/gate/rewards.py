"""GRPO's rewards are the gate's checks: `[rewards] checks` become reward functions scored by the check registry.

Each item of `[rewards] checks` is a check in the eval-set syntax (engine/gate/checks.py) plus `weight`
(default 1) and an optional `name` (default: its type; two checks of one type need names). Per completion
a check gives:
  - pass/fail checks (json_valid, json_equal, regex, contains, max_length, refusal, rubric, ...): 1 or 0
  - similarity checks (chrf, bleu, rouge_l, token_f1): their score on 0-1 (chrF and BLEU divided by 100)
  - python scorers: the score they return (0-1), else 1 or 0
TRL adds them up with the weights (GRPOConfig.reward_weights) and logs each under its name.

The same parse_check and check functions score the gate, so a reward means what the gate's check means.
A check that compares with a reference (json_equal, exact_match, similarity without `value`) is parsed
once per distinct reference. A python scorer that raises or returns something that is not a result is a
RewardError naming it, never a silent 0; so is a rubric check whose judge cannot answer.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.gate.check_spec import Check, CheckSpecError, Context, ScorerOutputError
from tunedeck.engine.gate.checks import CHECK_TYPES, SIMILARITY_CHECKS, parse_check

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,40}")
_PLACEHOLDER_REFERENCE = "null"  # valid JSON and a string: lets a reference-needing check's other options be checked


def _check_options(ctype) -> tuple:
    return tuple(CHECK_TYPES[ctype][0]) if ctype in CHECK_TYPES else ()


class RewardSpecError(ValueError):
    """A reward check written wrongly; str() names the key (rewards.checks[i].option); pre-flight adds the file."""

    def __init__(self, message: str, key: str = "rewards.checks"):
        self.key = key
        super().__init__(f"{key}: {message}")


class RewardError(RuntimeError):
    """A reward that cannot be computed for a completion (a python scorer's exception or garbage, a judge
    that does not answer): training stops with this message rather than reward it as 0."""


@dataclass
class RewardCheck:
    name: str
    weight: float
    spec: dict  # the eval-set spec, without weight and name
    needs_reference: bool
    base_dir: Path | None = None
    judge: Any = None  # engine/gate/judge_client.Judge for rubric checks
    _scorers: dict = field(default_factory=dict, repr=False)
    _parsed: dict = field(default_factory=dict, repr=False)

    @property
    def type(self) -> str:
        return self.spec["type"]

    @property
    def scorer(self) -> str | None:
        return self.spec.get("scorer") if self.type == "python" else None

    def check_for(self, reference: str | None) -> Check:
        """The parsed check for a row's reference (one parse per distinct reference)."""
        key = reference if self.needs_reference else None
        if key not in self._parsed:
            if self.needs_reference and reference is None:
                raise RewardError(
                    f"reward {self.name} ({self.type}) compares with a reference answer, and this prompt has none"
                )
            try:
                self._parsed[key] = parse_check(
                    self.spec, reference=reference, base_dir=self.base_dir, scorers=self._scorers
                )
            except CheckSpecError as e:
                raise RewardError(f"reward {self.name}: {e}") from None
        return self._parsed[key]

    def value(self, output: str, reference: str | None, example: dict) -> float:
        """This check's reward for one completion: its score on 0-1, or 1/0 for pass/fail."""
        check = self.check_for(reference)
        ctx = Context(
            reference=reference, new_tokens=int(example.get("new_tokens") or 0), example=example, judge=self.judge
        )
        try:
            result = check.run(check, output, ctx)  # not check(): the gate's catch-all would turn a crash into a 0
        except ScorerOutputError as e:
            raise RewardError(f"reward {self.name}: {e}") from None
        except Exception as e:  # noqa: BLE001 - every crash is named, with the scorer when it is one
            what = f"python scorer {self.scorer}" if self.scorer else f"the {self.type} check"
            raise RewardError(f"reward {self.name}: {what} raised {type(e).__name__}: {str(e)[:300]}") from e
        if result.passed is None:
            raise RewardError(f"reward {self.name}: {result.reason}")
        if self.type in SIMILARITY_CHECKS and result.score is not None:
            from tunedeck.engine.gate.similarity import SCALES

            return max(0.0, min(1.0, result.score / SCALES[self.type]))
        if result.score is not None:  # a python scorer's own score
            return result.score
        return 1.0 if result.passed else 0.0


def parse_reward_checks(items: list[dict], base_dir: Path | None = None, judge: Any = None) -> list[RewardCheck]:
    """The [rewards] checks, each validated by the check registry (python scorers imported, schema files
    read); RewardSpecError names the item and option at fault."""
    if not items:
        raise RewardSpecError(
            'GRPO needs at least one reward check, e.g. checks = [{type = "json_valid", weight = 1.0}]'
        )
    out: list[RewardCheck] = []
    scorers: dict = {}
    for i, item in enumerate(items):
        where = f"rewards.checks[{i}]"
        spec = dict(item)
        weight = spec.pop("weight", 1.0)
        name = spec.pop("name", None)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise RewardSpecError(f"weight must be a number >= 0, not {weight!r}", f"{where}.weight")
        if name is not None and not (isinstance(name, str) and _NAME.fullmatch(name)):
            raise RewardSpecError(f"name must be a short word (letters, digits, _ . -), not {name!r}", f"{where}.name")
        near = [
            k
            for k in spec
            if k != "type"
            and k not in _check_options(spec.get("type"))
            and difflib.get_close_matches(k, ("weight", "name"), n=1, cutoff=0.7)
        ]
        if near:
            hint = difflib.get_close_matches(near[0], ("weight", "name"), n=1, cutoff=0.7)[0]
            raise RewardSpecError(f"unknown option {near[0]!r} (did you mean {hint!r}?)", f"{where}.{near[0]}")
        needs_reference = False
        try:
            parse_check(spec, reference=None, base_dir=base_dir, scorers=scorers)
        except CheckSpecError as e:
            if e.field != "reference":
                raise RewardSpecError(str(e), where + (f".{e.field}" if e.field not in ("checks",) else "")) from None
            needs_reference = True
            try:  # the other options, checked with a stand-in reference
                parse_check(spec, reference=_PLACEHOLDER_REFERENCE, base_dir=base_dir, scorers=scorers)
            except CheckSpecError as e2:
                raise RewardSpecError(
                    str(e2), where + (f".{e2.field}" if e2.field not in ("checks", "reference") else "")
                ) from None
        if spec["type"] == "rubric" and judge is None:
            raise RewardSpecError(
                "a rubric reward needs a judge: set gate.judge_url (it grades every completion)", where
            )
        check = RewardCheck(name or spec["type"], float(weight), spec, needs_reference, base_dir, judge, scorers)
        if any(c.name == check.name for c in out):
            raise RewardSpecError(
                f'two reward checks are named {check.name!r}: give one a name, e.g. name = "{check.name}_2"',
                f"{where}.name",
            )
        out.append(check)
    if not any(c.weight > 0 for c in out):
        raise RewardSpecError("every weight is 0: there is nothing to optimise")
    return out


def missing_references(checks: list[RewardCheck], references: list[str | None]) -> tuple[RewardCheck, list[int]] | None:
    """The first check that needs a reference and the indices of the rows without one, or None."""
    for check in checks:
        if check.needs_reference:
            missing = [i for i, ref in enumerate(references) if ref is None]
            if missing:
                return check, missing
    return None


def check_references(checks: list[RewardCheck], references: list[str | None]) -> tuple[str, int] | None:
    """(message, row index) for the first reference a check cannot use (a json_equal reference that is not
    JSON), or None. Each distinct reference is parsed once and kept for training."""
    for check in checks:
        if not check.needs_reference:
            continue
        for i, ref in enumerate(references):
            if ref is None:
                continue
            try:
                check.check_for(ref)
            except RewardError as e:
                return str(e), i
    return None


def completion_text(completion: Any) -> str:
    """A completion as TRL hands it over: a string, or [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    return "" if completion is None else str(completion)


Scored = Callable[[str, list, list[str], list, list, list[float], Any], None]


class RewardFunction:
    """One reward check as TRL calls a reward function: keyword columns in, one float per completion out.

    `on_scored(name, prompts, texts, completion_ids, references, values, log_metric)` sees every batch (the
    monitor's live samples and the reward guard's completion statistics are built from it; log_metric is
    TRL's, for metrics that travel with its logs)."""

    def __init__(self, check: RewardCheck, on_scored: Scored | None = None):
        self.check = check
        self.on_scored = on_scored
        self.__name__ = check.name  # TRL logs rewards/<name>/mean and /std

    def __call__(
        self,
        prompts: list,
        completions: list,
        completion_ids: list | None = None,
        reference: list | None = None,
        **kw: Any,
    ) -> list[float]:
        texts = [completion_text(c) for c in completions]
        refs = list(reference) if reference is not None else [None] * len(texts)
        ids = completion_ids if completion_ids is not None else [[]] * len(texts)
        values = []
        for prompt, text, ref, toks in zip(prompts, texts, refs, ids):
            example = {
                "id": "reward",
                "messages": prompt if isinstance(prompt, list) else None,
                "prompt": prompt,
                "reference": ref,
                "tags": ["reward"],
                "new_tokens": len(toks),
            }
            values.append(self.check.value(text, ref, example))
        if self.on_scored is not None:
            self.on_scored(self.check.name, prompts, texts, ids, refs, values, kw.get("log_metric"))
        return values


def reward_functions(
    checks: list[RewardCheck], on_scored: Scored | None = None
) -> tuple[list[RewardFunction], list[float]]:
    """TRL's reward_funcs and reward_weights for the checks."""
    return [RewardFunction(c, on_scored) for c in checks], [c.weight for c in checks]
