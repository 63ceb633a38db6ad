"""Token statistics of canonical rows under the model's own tokenizer and chat template.

Counts follow what TRL 1.16 trains on, token for token:
  chat rows ({"messages"})        the chat template with the row's tools; trainable tokens are the
                                  assistant tokens marked by the template's {% generation %} blocks
                                  (all tokens when assistant_only is off or the template has none)
  prompt/completion strings       tokenizer(prompt) and tokenizer(prompt + completion + eos); the
                                  trainable tokens start where the two diverge
  text rows                       tokenizer(text + eos), every token trainable
  preference rows (DPO)           prompt (with the generation prompt), prompt+chosen, prompt+rejected;
                                  the example length is the longer sequence, trainable tokens are
                                  both answers
Truncation keeps the start (TRL's default): tokens past max_seq_len are cut, and an example left
with no trainable token is dropped by the trainer.

Speed: conversations are rendered to strings in batches and encoded with the fast tokenizer's
batch encoder; the assistant spans the template reports are mapped to tokens through the
encodings' offsets, which is what apply_chat_template does (tests check it row by row).
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")  # the test transformers itself uses


class TokenizerError(ValueError):
    """The tokenizer cannot process these rows at all (e.g. chat rows and no chat template)."""


@dataclass
class TrainingPlan:
    examples: int
    batch_size: int
    grad_accum: int
    processes: int
    epochs: float
    steps_per_epoch: int
    total_steps: int
    tokens_per_epoch: int
    trainable_tokens_per_epoch: int
    total_training_tokens: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TokenStats:
    lines: list[int]
    lengths: np.ndarray            # tokens per example before truncation
    trainable: np.ndarray          # trainable tokens per example before truncation
    trainable_kept: np.ndarray     # trainable tokens left after truncation at max_seq_len
    max_seq_len: int
    assistant_only: bool           # whether trainable means assistant-only (after template checks)
    notes: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)   # {"line", "message"}: rows the template rejected

    @property
    def examples(self) -> int:
        return int(self.lengths.size)

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def trainable_tokens(self) -> int:
        return int(self.trainable.sum())

    @property
    def kept_tokens(self) -> int:
        return int(np.minimum(self.lengths, self.max_seq_len).sum())

    def _lines_where(self, mask: np.ndarray) -> list[int]:
        return [self.lines[i] for i in np.flatnonzero(mask)]

    @property
    def truncated_lines(self) -> list[int]:
        return self._lines_where(self.lengths > self.max_seq_len)

    @property
    def zero_trainable_lines(self) -> list[int]:
        """Examples with nothing to learn even before truncation (TRL refuses them with assistant-only loss)."""
        return self._lines_where(self.trainable == 0)

    @property
    def dropped_lines(self) -> list[int]:
        """Examples that truncation leaves with no trainable token; the trainer drops them."""
        return self._lines_where((self.trainable > 0) & (self.trainable_kept == 0))

    @property
    def trainable_cut_share(self) -> float:
        total = self.trainable_tokens
        return 0.0 if total == 0 else 1.0 - int(self.trainable_kept.sum()) / total

    def percentiles(self) -> dict[str, int]:
        if not self.examples:
            return {"p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0}
        p = np.percentile(self.lengths, [50, 90, 99], method="inverted_cdf")
        return {"p50": int(p[0]), "p90": int(p[1]), "p99": int(p[2]), "max": int(self.lengths.max()),
                "mean": round(float(self.lengths.mean()), 1)}

    def histogram(self, bins: int = 12) -> list[dict]:
        """Equal-width bins over [min, max] of tokens per example; `lo` inclusive, `hi` exclusive."""
        if not self.examples:
            return []
        low, top = int(self.lengths.min()), int(self.lengths.max())
        width = max(1, math.ceil((top - low + 1) / bins))
        edges = np.arange(low, low + width * bins + 1, width)
        counts, _ = np.histogram(self.lengths, bins=edges)
        return [{"lo": int(edges[i]), "hi": int(edges[i + 1]), "count": int(c)} for i, c in enumerate(counts)
                if edges[i] <= top]

    def subset(self, lines: list[int]) -> "TokenStats":
        """The statistics of the examples at these lines (e.g. the train side of a split)."""
        wanted = set(lines)
        idx = np.array([i for i, l in enumerate(self.lines) if l in wanted], dtype=np.int64)
        return TokenStats([self.lines[i] for i in idx], self.lengths[idx], self.trainable[idx], self.trainable_kept[idx],
                          self.max_seq_len, self.assistant_only, list(self.notes),
                          [f for f in self.failed if f["line"] in wanted])

    def training_plan(self, batch_size: int, grad_accum: int = 1, processes: int = 1, epochs: float = 1.0) -> TrainingPlan:
        """Optimiser steps and tokens, counted like the HF Trainer (last partial batch and accumulation kept)."""
        n = self.examples - len(self.dropped_lines) - len(self.zero_trainable_lines)
        batches = math.ceil(n / (batch_size * max(processes, 1)))
        per_epoch = max(math.ceil(batches / grad_accum), 1) if n else 0
        kept = np.minimum(self.lengths, self.max_seq_len)
        tokens = int(kept[self.trainable_kept > 0].sum())
        trainable = int(self.trainable_kept.sum())
        return TrainingPlan(n, batch_size, grad_accum, max(processes, 1), epochs, per_epoch, math.ceil(epochs * per_epoch),
                            tokens, trainable, int(round(tokens * epochs)))

    def to_dict(self, bins: int = 12, max_lines: int = 100) -> dict:
        """Plain data; line lists are capped at `max_lines`, the *_examples counts are not."""
        return {
            "examples": self.examples, "total_tokens": self.total_tokens, "trainable_tokens": self.trainable_tokens,
            "max_seq_len": self.max_seq_len, "assistant_only": self.assistant_only, **self.percentiles(),
            "histogram": self.histogram(bins),
            "truncated_examples": len(self.truncated_lines), "truncated_lines": self.truncated_lines[:max_lines],
            "trainable_cut_share": round(self.trainable_cut_share, 6),
            "zero_trainable_examples": len(self.zero_trainable_lines), "zero_trainable_lines": self.zero_trainable_lines[:max_lines],
            "dropped_examples": len(self.dropped_lines), "dropped_lines": self.dropped_lines[:max_lines],
            "failed_examples": len(self.failed),
            "failed": self.failed[:max_lines], "notes": list(self.notes),
        }


# ---- encoding ------------------------------------------------------------------------------------------

class _Encoder:
    """Batch encoding through an independent copy of the fast backend (no truncation, no padding),
    which is exactly what tokenizer(texts) does underneath, without converting ids to Python lists."""

    def __init__(self, tokenizer):
        from tokenizers import Tokenizer

        self.fast = bool(getattr(tokenizer, "is_fast", False))
        self.tokenizer = tokenizer
        if self.fast:
            self.backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            self.backend.no_truncation()
            self.backend.no_padding()
            self.backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))

    def encode(self, texts: list[str], add_special_tokens: bool) -> list:
        if self.fast:
            return self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        return self.tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]


def _ids(enc) -> list[int]:
    return enc if isinstance(enc, list) else enc.ids


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _assistant_tokens(enc, spans: list[tuple[int, int]], limit: int) -> tuple[int, int]:
    """(trainable, trainable below `limit`) from the template's character spans, as apply_chat_template does."""
    n = len(enc)
    intervals = []
    for start_char, end_char in spans:
        start = enc.char_to_token(start_char)
        end = enc.char_to_token(end_char - 1)
        if start is None:
            break  # a span whose first character maps to no token ends the mask, as in transformers
        intervals.append((start, end + 1 if end else n))
    total = kept = 0
    last = 0
    for s, e in sorted(intervals):  # union, so overlapping spans count once
        s = max(s, last)
        if e > s:
            total += e - s
            kept += max(0, min(e, limit) - s)
            last = e
    return total, kept


# ---- per-kind workers: each returns (length, trainable, trainable_kept) per row -------------------------

Job = tuple[list[str], bool, Callable[[list], list[tuple[int, int, int]]]]


class _Counter:
    def __init__(self, tokenizer, max_seq_len: int, assistant_only: bool):
        self.tok, self.limit = tokenizer, max_seq_len
        self.enc = _Encoder(tokenizer)
        self.eos = tokenizer.eos_token
        self.assistant_only = assistant_only
        self.kwargs = dict(tokenizer.special_tokens_map)
        try:
            from transformers.utils.chat_template_utils import render_jinja_template
            self.render_fn = render_jinja_template
        except ImportError:  # pragma: no cover - an older or newer transformers layout
            self.render_fn = None

    def render(self, convs: list[list[dict]], tools, *, mask: bool, add_generation_prompt: bool = False):
        """Template output strings and assistant character spans, as apply_chat_template renders them."""
        template = self.tok.get_chat_template(None, tools)
        convs = [[{k: v for k, v in m.items() if v is not None} for m in c] for c in convs]
        if self.render_fn is None:
            texts = self.tok.apply_chat_template(convs, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt)
            return texts, [[] for _ in convs]
        texts, spans = self.render_fn(conversations=convs, tools=tools, chat_template=template,
                                      return_assistant_tokens_mask=mask, add_generation_prompt=add_generation_prompt,
                                      **self.kwargs)
        return texts, (spans if mask else [[] for _ in convs])

    # Each kind renders its rows to (texts, add_special_tokens, finish); finish(encodings) gives one
    # (length, trainable, trainable_kept) per row. Rendering needs the GIL, encoding does not, so
    # compute_token_stats encodes one batch on a worker thread while it renders the next.

    def chat(self, rows: list[dict], tools) -> Job:
        mask = self.assistant_only and self.enc.fast
        texts, spans = self.render([r["messages"] for r in rows], tools, mask=mask)

        def finish(encs) -> list[tuple[int, int, int]]:
            out = []
            for enc, sp in zip(encs, spans):
                n = len(enc)
                t, k = _assistant_tokens(enc, sp, self.limit) if mask else (n, min(n, self.limit))
                out.append((n, t, k))
            return out
        return texts, False, finish

    def preference(self, rows: list[dict], tools) -> Job:
        prompts, _ = self.render([r["prompt"] for r in rows], tools, mask=False, add_generation_prompt=True)
        chosen, _ = self.render([r["prompt"] + r["chosen"] for r in rows], tools, mask=False)
        rejected, _ = self.render([r["prompt"] + r["rejected"] for r in rows], tools, mask=False)
        n = len(rows)

        def finish(encs) -> list[tuple[int, int, int]]:
            out = []
            for i in range(n):
                p, c, r = _ids(encs[i]), _ids(encs[n + i]), _ids(encs[2 * n + i])
                pl = min(_common_prefix(p, c), _common_prefix(p, r))
                lc, lr = len(c) - pl, len(r) - pl
                kept = 0 if pl >= self.limit else min(lc, self.limit - pl) + min(lr, self.limit - pl)
                out.append((pl + max(lc, lr), lc + lr, kept))
            return out
        return prompts + chosen + rejected, False, finish

    def _with_eos(self, text: str) -> str:
        return text if not self.eos or text.endswith(self.eos) else text + self.eos

    def prompt_completion(self, rows: list[dict], tools) -> Job:
        n = len(rows)

        def finish(encs) -> list[tuple[int, int, int]]:
            out = []
            for i in range(n):
                p, pc = _ids(encs[i]), _ids(encs[n + i])
                pl = _common_prefix(p, pc)
                out.append((len(pc), len(pc) - pl, max(0, min(len(pc), self.limit) - pl)))
            return out
        return [r["prompt"] for r in rows] + [r["prompt"] + self._with_eos(r["completion"]) for r in rows], True, finish

    def text(self, rows: list[dict], tools) -> Job:
        def finish(encs) -> list[tuple[int, int, int]]:
            return [(len(e), len(e), min(len(e), self.limit)) for e in encs]
        return [self._with_eos(r["text"]) for r in rows], True, finish


def _kind(row: dict) -> str:
    if "messages" in row:
        return "chat"
    if "chosen" in row:
        return "preference"
    if "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    raise TokenizerError(f"not a canonical row: keys {sorted(row)}")


def _tools_key(row: dict) -> str:
    return json.dumps(row["tools"], sort_keys=True) if row.get("tools") else ""


def _has_generation_markers(tokenizer) -> bool:
    template = tokenizer.chat_template
    templates = template.values() if isinstance(template, dict) else [template or ""]
    return any(_GENERATION_TAG.search(t) for t in templates)


def compute_token_stats(rows: list[dict], tokenizer, *, max_seq_len: int, assistant_only: bool = True,
                        batch_size: int = 1000, lines: list[int] | None = None,
                        progress: Callable[[int, int], None] | None = None) -> TokenStats:
    """Tokenise canonical rows exactly as the trainer will and gather the statistics.

    Rows the chat template rejects (it raised) are listed in `failed` and left out of the counts.
    """
    lines = list(lines) if lines is not None else list(range(1, len(rows) + 1))
    notes: list[str] = []
    kinds = {_kind(r) for r in rows[:1000]} | ({_kind(rows[-1])} if rows else set())
    if kinds & {"chat", "preference"} and not tokenizer.chat_template:
        raise TokenizerError("the tokenizer has no chat template, so chat rows cannot be tokenised; "
                             "set model.chat_template to a Jinja template file")
    if assistant_only and "chat" in kinds:
        if not _has_generation_markers(tokenizer):
            notes.append("the chat template has no {% generation %} markers, so assistant-only loss is unavailable "
                         "(TRL refuses it); counting every token as trainable")
            assistant_only = False
        elif not getattr(tokenizer, "is_fast", False):
            notes.append("a slow (Python) tokenizer cannot mark assistant tokens; counting every token as trainable")
            assistant_only = False
    counter = _Counter(tokenizer, max_seq_len, assistant_only)
    results: list[tuple[int, int, int] | None] = [None] * len(rows)
    failed: list[dict] = []
    with ThreadPoolExecutor(max_workers=1) as encoder:
        pending: list = []
        for start in range(0, len(rows), batch_size):
            jobs = _render_batch(counter, rows, range(start, min(start + batch_size, len(rows))), failed, lines)
            submitted = [(members, finish, encoder.submit(counter.enc.encode, texts, special))
                         for members, (texts, special, finish) in jobs]
            _collect(pending, results)  # the previous batch, while this one encodes
            pending = submitted
            if progress and start:
                progress(start, len(rows))
        _collect(pending, results)
    if progress:
        progress(len(rows), len(rows))
    failed.sort(key=lambda f: f["line"])
    ok = [i for i, r in enumerate(results) if r is not None]
    arr = np.array([results[i] for i in ok], dtype=np.int64).reshape(-1, 3)
    if failed:
        notes.append(f"{len(failed)} rows could not be rendered by the chat template; first at line {failed[0]['line']}: "
                     f"{failed[0]['message']}")
    return TokenStats([lines[i] for i in ok], arr[:, 0], arr[:, 1], arr[:, 2], max_seq_len, assistant_only, notes, failed)


def _render_batch(counter: _Counter, rows: list[dict], idx: range, failed: list, lines: list[int]) -> list[tuple[list[int], Job]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i in idx:  # one template call per (kind, tools): apply_chat_template takes one tools list per call
        groups.setdefault((_kind(rows[i]), _tools_key(rows[i])), []).append(i)
    jobs = []
    for (kind, _), members in groups.items():
        prepare = getattr(counter, kind)
        tools = rows[members[0]].get("tools") or None
        try:
            jobs.append((members, prepare([rows[i] for i in members], tools)))
        except Exception:  # the template raised for some row: find which, one by one
            for i in members:
                try:
                    jobs.append(([i], prepare([rows[i]], tools)))
                except Exception as e:  # jinja2 TemplateError, TypeError, ...: a per-row data problem
                    failed.append({"line": lines[i], "message": f"{type(e).__name__}: {e}"})
    return jobs


def _collect(pending: list, results: list) -> None:
    for members, finish, future in pending:
        for i, r in zip(members, finish(future.result())):
            results[i] = r
