"""What a GRPO policy writes: each generation batch's completions with their rewards, from the reward functions.

The reward functions (engine/gate/rewards.py) hand every scored batch here, one check after another; once
every check has scored a batch it is complete. A complete batch gives:
  - two statistics sent with TRL's own logs (so events and trackers carry them), for the reward guard:
    completions/near_empty_ratio  share of completions with no text (at most one token, or blank)
    completions/identical_share   share of completions whose text is also a completion of another prompt
                                  of the batch (needs two prompts or more in the batch)
  - the live samples: the first prompts of the latest batch, each with one completion and its rewards.
TRL itself logs completions/clipped_ratio (cut at the length limit) and completions/mean_length.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunedeck.engine.training.live_samples import shown_prompt

NEAR_EMPTY_TOKENS = 1
SHOWN_CHARS = 2000  # a live sample keeps this much of a completion; the monitor cuts further


@dataclass
class Completion:
    prompt: Any
    text: str
    tokens: int
    reference: str | None
    rewards: dict[str, float]

    @property
    def near_empty(self) -> bool:
        return self.tokens <= NEAR_EMPTY_TOKENS or not self.text.strip()


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def identical_share(batch: list[Completion]) -> float | None:
    """Share of completions whose text is also some other prompt's completion; None with fewer than two prompts."""
    by_text: dict[str, set[str]] = {}
    prompts = set()
    for c in batch:
        key = _prompt_key(c.prompt)
        prompts.add(key)
        by_text.setdefault(c.text.strip(), set()).add(key)
    if len(prompts) < 2:
        return None
    return sum(1 for c in batch if len(by_text[c.text.strip()]) > 1) / len(batch)


class CompletionWindow:
    def __init__(self, names: list[str], weights: list[float]):
        self.names, self.weights = list(names), list(weights)
        self._pending: dict[str, list[float]] = {}
        self.latest: list[Completion] = []
        self.batches = 0

    def on_scored(
        self, name: str, prompts: list, texts: list[str], ids: list, refs: list, values: list[float], log_metric=None
    ) -> None:
        """A reward function's batch; the last check of the batch completes it."""
        self._pending[name] = list(values)
        if len(self._pending) < len(self.names):
            return
        scored, self._pending = self._pending, {}
        self.latest = [
            Completion(p, t, len(i), r, {n: scored[n][k] for n in self.names})
            for k, (p, t, i, r) in enumerate(zip(prompts, texts, ids, refs))
        ]
        self.batches += 1
        if log_metric is not None and self.latest:
            log_metric("completions/near_empty_ratio", sum(c.near_empty for c in self.latest) / len(self.latest))
            same = identical_share(self.latest)
            if same is not None:
                log_metric("completions/identical_share", same)

    def total(self, c: Completion) -> float:
        return sum(w * c.rewards.get(n, 0.0) for n, w in zip(self.names, self.weights))

    def samples(self, n: int) -> list[dict]:
        """Up to n prompts of the latest batch, each with its first completion, its rewards and its group's."""
        groups: dict[str, list[Completion]] = {}
        for c in self.latest:
            groups.setdefault(_prompt_key(c.prompt), []).append(c)
        out = []
        for group in list(groups.values())[:n]:
            c = group[0]
            out.append(
                {
                    "prompt": shown_prompt(c.prompt),
                    "reference": c.reference or "",
                    "output": c.text[:SHOWN_CHARS],
                    "new_tokens": c.tokens,
                    "rewards": {k: round(v, 4) for k, v in c.rewards.items()},
                    "reward": round(self.total(c), 4),
                    "group_rewards": [round(self.total(g), 4) for g in group],
                }
            )
        return out

    def most_common(self) -> tuple[str, int] | None:
        """The latest batch's most frequent completion text and how many completions wrote it."""
        counts = Counter(c.text.strip() for c in self.latest)
        return counts.most_common(1)[0] if counts else None
