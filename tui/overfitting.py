"""Where a run starts to overfit: the lowest eval loss, and eval loss rising while train loss falls."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .metric_series import MetricSeries

RISING_EVALS = 3  # warn once eval loss has risen this many evals in a row while train loss falls


@dataclass(frozen=True)
class BestEval:
    step: int
    loss: float


@dataclass(frozen=True)
class OverfitWarning:
    rising_evals: int
    from_step: int
    to_step: int
    eval_from: float
    eval_to: float
    train_from: float
    train_to: float
    best: BestEval

    def sentence(self) -> str:
        return (
            f"Overfitting: eval loss rose for {self.rising_evals} evals "
            f"({self.eval_from:.4f} → {self.eval_to:.4f}, steps {self.from_step}–{self.to_step}) "
            f"while train loss fell ({self.train_from:.4f} → {self.train_to:.4f}). "
            f"Lowest eval loss {self.best.loss:.4f} at step {self.best.step}."
        )


def best_eval(evals: MetricSeries) -> BestEval | None:
    """The lowest eval loss; on a tie the earliest step."""
    if not len(evals):
        return None
    i = min(range(len(evals)), key=lambda k: (evals.ys[k], evals.xs[k]))
    return BestEval(int(evals.xs[i]), evals.ys[i])


def detect_overfitting(train: MetricSeries, evals: MetricSeries, rising: int = RISING_EVALS) -> OverfitWarning | None:
    """Eval loss went up at each of the last `rising` (or more) evals while the mean train loss
    over the same span went down."""
    n = len(evals)
    if n < rising + 1:
        return None
    k = 0  # trailing consecutive rises
    while k < n - 1 and evals.ys[n - 1 - k] > evals.ys[n - 2 - k]:
        k += 1
    if k < rising:
        return None
    start = n - 1 - k  # the eval the rise started from
    before = evals.xs[start - 1] if start > 0 else -math.inf
    train_from = train.window_mean(before, evals.xs[start])
    train_to = train.window_mean(evals.xs[n - 2], evals.xs[n - 1])
    if train_from is None or train_to is None or not train_to < train_from:
        return None
    best = best_eval(evals)
    assert best is not None
    return OverfitWarning(
        rising_evals=k,
        from_step=int(evals.xs[start]),
        to_step=int(evals.xs[n - 1]),
        eval_from=evals.ys[start],
        eval_to=evals.ys[n - 1],
        train_from=train_from,
        train_to=train_to,
        best=best,
    )
