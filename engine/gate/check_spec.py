"""What every check works with: the Check parsed from an eval set's spec, the Context it looks at, the
CheckResult it returns, and CheckSpecError for a check written wrongly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tunedeck.engine.gate.judge_client import Judge

FORMAT_CHECKS = frozenset({"json_valid", "json_schema"})


class CheckSpecError(ValueError):
    """A check written wrongly; `field` is the option at fault. eval_sets adds the file and line."""

    def __init__(self, message: str, field: str = "checks"):
        self.field = field
        super().__init__(message)


class ScorerOutputError(ValueError):
    """A python scorer returned something that is not a result: the gate fails the example with this reason,
    GRPO's rewards (engine/gate/rewards.py) stop with it rather than reward garbage as zero."""


@dataclass
class CheckResult:
    type: str
    passed: bool | None  # None: skipped (no judge configured, judge error); never counts as passed
    reason: str
    score: float | None = None  # similarity checks: the score on its own scale (engine/gate/similarity.py); python: 0-1
    judge: dict | None = None  # rubric checks: the judge's prompt, model and raw answer

    def to_dict(self) -> dict:
        d = {"type": self.type, "pass": self.passed, "reason": self.reason}
        if self.score is not None:
            d["score"] = self.score
        if self.judge is not None:
            d["judge"] = self.judge
        return d


@dataclass
class Context:
    """What a check may look at besides the output."""

    reference: str | None = None
    new_tokens: int = 0
    example: dict = field(default_factory=dict)  # id, messages, reference, tags (for python scorers)
    judge: "Judge | None" = None


@dataclass
class Check:
    type: str
    options: dict
    run: Callable[["Check", str, Context], CheckResult] = field(repr=False)

    @property
    def is_format(self) -> bool:
        return self.type in FORMAT_CHECKS

    def __call__(self, output: str, ctx: Context) -> CheckResult:
        try:
            return self.run(self, output, ctx)
        except ScorerOutputError as e:
            return CheckResult(self.type, False, str(e))
        except Exception as e:  # a check must never stop an eval; a crash is a failure with its cause
            return CheckResult(self.type, False, f"check raised {type(e).__name__}: {str(e)[:200]}")

    def spec(self) -> dict:
        """The JSON-able form, for hashing an eval set's content."""
        return {"type": self.type, **{k: v for k, v in self.options.items() if not k.startswith("_")}}


def short_quote(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return json.dumps(text if len(text) <= n else text[: n - 1] + "…", ensure_ascii=False)
