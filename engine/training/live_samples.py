"""Live samples: what the model now writes, after each evaluation, on a few fixed held-out prompts.

The first `[checkpoints] sample_prompts` held-out rows that have a prompt and a reference answer
are fixed for the whole run (the split is a hash of each row, so they are the same rows on resume).
After each evaluation the model in memory answers them greedily, in one batch, with a short budget;
the answers go to the event log as one "live_samples" event, which the monitor shows beside the
references. Generation runs on one process only, so a run over several processes skips it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunedeck.engine.run import contract as C

MAX_NEW_TOKENS = 64  # short: a glimpse of the model's writing, not an evaluation


@dataclass
class SamplePrompt:
    prompt: list | str
    reference: str


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"role": "assistant", "content": ...}] answers of pairs and KTO rows
        return "".join(_text(m.get("content")) if isinstance(m, dict) else str(m) for m in content)
    return "" if content is None else str(content)


def prompt_of(row: dict) -> SamplePrompt | None:
    """The prompt and its reference answer of a canonical row, or None (plain text, a bad KTO answer)."""
    if "messages" in row:
        msgs = row["messages"]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if not last:
            return None
        return SamplePrompt(
            [{"role": m["role"], "content": m.get("content") or ""} for m in msgs[:last]],
            _text(msgs[last].get("content")),
        )
    if "chosen" in row:
        return SamplePrompt(row.get("prompt") or "", _text(row["chosen"]))
    if "completion" in row and row.get("label", True) is True:
        return SamplePrompt(row.get("prompt") or "", _text(row["completion"]))
    return None


def pick_prompts(rows: list[dict], n: int) -> list[SamplePrompt]:
    out = []
    for row in rows:
        if len(out) >= n:
            break
        p = prompt_of(row)
        if p is not None and p.prompt and p.reference.strip():
            out.append(p)
    return out


def shown_prompt(prompt) -> str:
    """The prompt as the monitor shows it: the last user turn (the system turn and history are the same each time)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    return _text((users or prompt)[-1].get("content"))


class LiveSampler:
    def __init__(self, prompts: list[SamplePrompt], max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        self.said_skip = False

    @classmethod
    def for_run(cls, profile, eval_rows: list[dict]) -> "LiveSampler":
        n = profile.checkpoints.sample_prompts
        return cls(pick_prompts(eval_rows, n) if n else [], min(MAX_NEW_TOKENS, profile.gate.max_new_tokens))

    def sample(self, model, tokenizer, step: int, events, world_size: int = 1) -> None:
        """Generate and emit; a failure is a warning event, never a stopped run."""
        if not self.prompts or model is None or tokenizer is None:
            return
        if world_size > 1:
            if not self.said_skip:
                self.said_skip = True
                events.emit(
                    C.EV_WARNING,
                    code="live_samples_skipped",
                    step=step,
                    message="live samples are skipped in a run over several processes",
                )
            return
        from tunedeck.engine.gate.generate import generate

        try:
            gens = generate(
                model,
                tokenizer,
                [p.prompt for p in self.prompts],
                max_new_tokens=self.max_new_tokens,
                batch_size=len(self.prompts),
            )
        except Exception as e:  # noqa: BLE001 - a glimpse must never take training down
            if not self.said_skip:
                self.said_skip = True
                events.emit(
                    C.EV_WARNING,
                    code="live_samples_failed",
                    step=step,
                    message="live samples could not be generated: "
                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                )
            return
        events.emit(
            C.EV_LIVE_SAMPLES,
            step=step,
            samples=[
                {
                    "prompt": shown_prompt(p.prompt),
                    "reference": p.reference,
                    "output": g.text,
                    "new_tokens": g.new_tokens,
                }
                for p, g in zip(self.prompts, gens)
            ],
        )
