"""Batched greedy generation from chat prompts, with per-example timing.

Used by the eval gate, the demo and the playground. Prompts are rendered with the tokenizer's own
chat template and left-padded, so one batch holds prompts of any length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Generation:
    text: str
    latency_ms: float      # wall time of the batch this example was generated in
    new_tokens: int


def render_prompt(tokenizer, messages: list[dict], system_prompt: str | None = None) -> str:
    msgs = list(messages)
    if system_prompt:
        msgs = [m for m in msgs if m.get("role") != "system"]
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int = 128, batch_size: int = 16,
             system_prompt: str | None = None, progress=None) -> list[Generation]:
    import torch

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    texts = [render_prompt(tokenizer, p, system_prompt) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch with less padding
    out: list[Generation | None] = [None] * len(texts)
    model.eval()
    eos = tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        new = gen[:, enc["input_ids"].shape[1]:]
        for row, i in enumerate(idx):
            ids = new[row].tolist()
            n = len(ids)
            if eos in ids:
                n = ids.index(eos) + 1
            text = tokenizer.decode(ids[:n], skip_special_tokens=True)
            out[i] = Generation(text=text.strip(), latency_ms=elapsed_ms, new_tokens=n)
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return out  # type: ignore[return-value]
