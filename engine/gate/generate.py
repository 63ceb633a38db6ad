"""Batched generation from chat (or plain-text) prompts, with per-example latency and token counts.

Used by the eval gate, the demo and the playground. Chat prompts are rendered with the tokenizer's
own chat template; prompts are tokenised once, sorted by length (less padding per batch) and
left-padded, so one batch holds prompts of any length. Greedy by default; temperature > 0 samples
with a fixed seed.

Latency is per example: the time from the start of its batch until its own last token (its end of
sequence, or the token budget), i.e. what a request waits when served at this batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tunedeck.engine.models.model_loading import ModelLoadError


@dataclass
class Generation:
    text: str
    latency_ms: float  # from the start of its batch to its own last token
    new_tokens: int  # generated tokens, the end-of-sequence token included


class PromptError(ModelLoadError):
    """The tokenizer cannot render a chat prompt (no chat template, a role it does not know): a user error."""


class ChatPrompt(list):
    """A chat prompt's messages, and the tools (OpenAI schemas) its template offers the model.

    A list, so every caller that passes messages along keeps working; render_prompt reads the tools."""

    def __init__(self, messages, tools: list | None = None):
        super().__init__(messages)
        self.tools = tools or None


def render_prompt(tokenizer, messages, system_prompt: str | None = None, tools: list | None = None) -> str:
    """The text the model sees; `system_prompt` replaces any system message (the base's best prompt).

    Rendered as training renders it (engine/loss_masks.ChatRenderer): the row's tools, and a template
    without a system role gets the system message folded into the first user turn."""
    from tunedeck.engine.data.loss_masks import ChatRenderer, MaskError

    if isinstance(messages, str):
        return f"{system_prompt}\n\n{messages}" if system_prompt else messages
    tools = tools if tools is not None else getattr(messages, "tools", None)
    msgs = list(messages)
    if system_prompt:
        msgs = [m for m in msgs if m.get("role") != "system"]
        msgs.insert(0, {"role": "system", "content": system_prompt})
    renderer = ChatRenderer(tokenizer)
    if not renderer.has_template:
        raise PromptError(
            "the tokenizer has no chat template, so this chat prompt cannot be rendered; "
            "set model.chat_template to a Jinja chat template"
        )
    try:
        return renderer.render(msgs, tools, generation_prompt=True)
    except MaskError as e:
        raise PromptError(f"{e}; set model.chat_template to a Jinja chat template that accepts it") from None


def eos_ids(model, tokenizer) -> set[int]:
    """Every token that ends a reply: the tokenizer's eos and the model's generation config's."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gc_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gc_eos, int):
        ids.add(gc_eos)
    elif isinstance(gc_eos, (list, tuple)):
        ids.update(int(i) for i in gc_eos)
    return ids


def _step_clock(times: list[float]):
    """A stopping criterion that never stops: it timestamps every decoding step (one call per new token)."""
    import torch
    from transformers import StoppingCriteria

    class StepClock(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StepClock()


def generate(
    model,
    tokenizer,
    prompts: list,
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    system_prompt: str | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    texts: list[str] | None = None,
    progress=None,
) -> list[Generation]:
    """One Generation per prompt, in order. `texts` may pass prompts already rendered (render_prompt)."""
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    if texts is None:
        texts = [render_prompt(tokenizer, p, system_prompt) for p in prompts]
    if not texts:
        return []
    device = next(model.parameters()).device
    stops = eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops, default=0)
    sampling = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        num_beams=1,
        use_cache=True,
        pad_token_id=pad,
        eos_token_id=sorted(stops) or None,
        **({"temperature": temperature, "top_p": top_p} if sampling else {}),
    )
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # similar lengths batch with less padding
    out: list[Generation | None] = [None] * len(texts)
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    if sampling:
        torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            times: list[float] = []
            t0 = time.perf_counter()
            with torch.inference_mode():
                gen = model.generate(
                    **enc, generation_config=config, stopping_criteria=StoppingCriteriaList([_step_clock(times)])
                )
            t_end = time.perf_counter()
            new = gen[:, enc["input_ids"].shape[1] :].tolist()
            for row, i in enumerate(idx):
                tokens = new[row]
                n = next((k + 1 for k, t in enumerate(tokens) if t in stops), len(tokens))
                done = times[n - 1] if 0 < n <= len(times) else t_end
                text = tokenizer.decode(tokens[:n], skip_special_tokens=True)
                out[i] = Generation(text=text.strip(), latency_ms=(done - t0) * 1000, new_tokens=n)
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        tokenizer.padding_side = side  # the training collator may rely on the other side
        model.train(was_training)
    return out  # type: ignore[return-value]
