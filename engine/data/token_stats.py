"""Token statistics of canonical rows under the model's own tokenizer and chat template.

Trainable tokens are exactly what the trainer trains on: chat, prompt/completion and text rows
go through engine/data/loss_masks.py, the computation that also feeds the trainer its input ids and
masks (tests compare the two token for token):
  chat rows ({"messages"})        the assistant replies and their end-of-turn tokens, found by
                                  rendering the conversation incrementally with the model's template,
                                  or located in one render where the template rewrites earlier turns
  prompt/completion strings       the completion and eos
  text rows                       every token
  preference rows (DPO)           the prompt ids, chosen ids and rejected ids the DPO trainer gets
                                  (engine/data/preference_tokens.py); the example length is the prompt
                                  and the longer answer, trainable tokens are both answers
  KTO rows                        the prompt ids and completion ids the KTO trainer gets
With data.assistant_only_loss = "off" every token of every SFT row trains (DPO and KTO always mask the prompt).
Truncation keeps the start (TRL's default): tokens past max_seq_len are cut, and an example left
with no trainable token is dropped by the trainer.

Speed: rows are rendered to strings (and character spans) on this thread and encoded in batches
with the fast tokenizer's batch encoder on another; spans map to tokens through the offsets.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tunedeck.engine.data.loss_masks import FIRST_USER_TURN, LAST_USER_TURN, MaskError


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
    lengths: np.ndarray  # tokens per example before truncation
    trainable: np.ndarray  # trainable tokens per example before truncation
    trainable_kept: np.ndarray  # trainable tokens left after truncation at max_seq_len
    max_seq_len: int
    assistant_only: bool  # whether trainable means assistant-only (after template checks)
    notes: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"line", "message"}: rows the template rejected

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
        return {
            "p50": int(p[0]),
            "p90": int(p[1]),
            "p99": int(p[2]),
            "max": int(self.lengths.max()),
            "mean": round(float(self.lengths.mean()), 1),
        }

    def histogram(self, bins: int = 12) -> list[dict]:
        """Equal-width bins over [min, max] of tokens per example; `lo` inclusive, `hi` exclusive."""
        if not self.examples:
            return []
        low, top = int(self.lengths.min()), int(self.lengths.max())
        width = max(1, math.ceil((top - low + 1) / bins))
        edges = np.arange(low, low + width * bins + 1, width)
        counts, _ = np.histogram(self.lengths, bins=edges)
        return [
            {"lo": int(edges[i]), "hi": int(edges[i + 1]), "count": int(c)}
            for i, c in enumerate(counts)
            if edges[i] <= top
        ]

    def subset(self, lines: list[int]) -> "TokenStats":
        """The statistics of the examples at these lines (e.g. the train side of a split)."""
        wanted = set(lines)
        idx = np.array([i for i, line in enumerate(self.lines) if line in wanted], dtype=np.int64)
        return TokenStats(
            [self.lines[i] for i in idx],
            self.lengths[idx],
            self.trainable[idx],
            self.trainable_kept[idx],
            self.max_seq_len,
            self.assistant_only,
            list(self.notes),
            [f for f in self.failed if f["line"] in wanted],
        )

    def training_plan(
        self, batch_size: int, grad_accum: int = 1, processes: int = 1, epochs: float = 1.0
    ) -> TrainingPlan:
        """Optimiser steps and tokens, counted like the HF Trainer (last partial batch and accumulation kept)."""
        n = self.examples - len(self.dropped_lines) - len(self.zero_trainable_lines)
        batches = math.ceil(n / (batch_size * max(processes, 1)))
        per_epoch = max(math.ceil(batches / grad_accum), 1) if n else 0
        kept = np.minimum(self.lengths, self.max_seq_len)
        tokens = int(kept[self.trainable_kept > 0].sum())
        trainable = int(self.trainable_kept.sum())
        return TrainingPlan(
            n,
            batch_size,
            grad_accum,
            max(processes, 1),
            epochs,
            per_epoch,
            math.ceil(epochs * per_epoch),
            tokens,
            trainable,
            int(round(tokens * epochs)),
        )

    def to_dict(self, bins: int = 12, max_lines: int = 100) -> dict:
        """Plain data; line lists are capped at `max_lines`, the *_examples counts are not."""
        return {
            "examples": self.examples,
            "total_tokens": self.total_tokens,
            "trainable_tokens": self.trainable_tokens,
            "max_seq_len": self.max_seq_len,
            "assistant_only": self.assistant_only,
            **self.percentiles(),
            "histogram": self.histogram(bins),
            "truncated_examples": len(self.truncated_lines),
            "truncated_lines": self.truncated_lines[:max_lines],
            "trainable_cut_share": round(self.trainable_cut_share, 6),
            "zero_trainable_examples": len(self.zero_trainable_lines),
            "zero_trainable_lines": self.zero_trainable_lines[:max_lines],
            "dropped_examples": len(self.dropped_lines),
            "dropped_lines": self.dropped_lines[:max_lines],
            "failed_examples": len(self.failed),
            "failed": self.failed[:max_lines],
            "notes": list(self.notes),
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


def _masked_counts(enc, spans: list[tuple[int, int]] | None, limit: int) -> tuple[int, int, int]:
    """(length, trainable, trainable below `limit`) of one encoding, masked as the trainer masks it."""
    from tunedeck.engine.data.loss_masks import token_ranges

    n = len(enc)
    if spans is None:
        return n, n, min(n, limit)
    ranges = token_ranges(enc, spans)
    return n, sum(e - s for s, e in ranges), sum(max(0, min(e, limit) - s) for s, e in ranges)


# ---- per-kind workers: each returns (length, trainable, trainable_kept) per row -------------------------

Job = tuple[list[str], bool, Callable[[list], list[tuple[int, int, int]]]]


class _Counter:
    def __init__(self, tokenizer, max_seq_len: int, assistant_only: bool, encoder=None):
        from tunedeck.engine.data.loss_masks import MaskEncoder

        self.tok, self.limit = tokenizer, max_seq_len
        self.enc = _Encoder(tokenizer)
        self.masks = encoder if encoder is not None else MaskEncoder(tokenizer, assistant_only)
        self.answers = None  # the encoder DPO and KTO rows go through (their prompt is always masked)
        self.assistant_only = assistant_only

    # Each kind renders its rows to (texts, add_special_tokens, finish); finish(encodings) gives one
    # (length, trainable, trainable_kept) per row. Rendering needs the GIL, encoding does not, so
    # compute_token_stats encodes one batch on a worker thread while it renders the next.

    def masked(self, rows: list[dict], tools) -> Job:
        """Chat, prompt/completion and text rows: the spans engine/data/loss_masks.py trains on."""
        rendered = [self.masks.texts_and_spans(r) for r in rows]
        special = rendered[0][2]
        if self.assistant_only and not self.enc.fast:
            raise MaskError("a slow (Python) tokenizer cannot map text to tokens, so the loss cannot be masked")

        def finish(encs) -> list[tuple[int, int, int]]:
            if not self.enc.fast:
                return [(len(e), len(e), min(len(e), self.limit)) for e in encs]
            return [_masked_counts(e, sp, self.limit) for e, (_, sp, _) in zip(encs, rendered)]

        return [t for t, _, _ in rendered], special, finish

    def preference(self, rows: list[dict], tools) -> Job:
        """DPO and KTO rows, tokenised here as their trainer gets them (nothing left for the batch encoder)."""
        from tunedeck.engine.data.loss_masks import MaskEncoder
        from tunedeck.engine.data.preference_tokens import preference_ids

        if self.answers is None:
            self.answers = self.masks if self.assistant_only else MaskEncoder(self.tok, assistant_only=True)
        counts = [self._preference_counts(preference_ids(self.answers, r)) for r in rows]
        return [], False, lambda encs: counts

    def _preference_counts(self, ids: dict) -> tuple[int, int, int]:
        """(length, trainable, trainable kept): each answer follows the prompt and is cut at max_seq_len."""
        pl = len(ids["prompt_ids"])
        answers = [len(ids[k]) for k in ("chosen_ids", "rejected_ids", "completion_ids") if k in ids]
        kept = 0 if pl >= self.limit else sum(min(n, self.limit - pl) for n in answers)
        return pl + max(answers), sum(answers), kept


def _kind(row: dict) -> str:
    if "chosen" in row or "label" in row:
        return "preference"
    if "messages" in row:
        return "chat"
    if "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    raise TokenizerError(f"not a canonical row: keys {sorted(row)}")


def _tools_key(row: dict) -> str:
    return json.dumps(row["tools"], sort_keys=True) if row.get("tools") else ""


def compute_token_stats(
    rows: list[dict],
    tokenizer,
    *,
    max_seq_len: int,
    assistant_only: bool = True,
    batch_size: int = 1000,
    lines: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    mask_encoder=None,
) -> TokenStats:
    """Tokenise canonical rows exactly as the trainer will and gather the statistics.

    Rows the chat template rejects (it raised) are listed in `failed` and left out of the counts. `mask_encoder`, a
    loss_masks.MaskEncoder for this tokenizer, lets the caller read afterwards what it learned (system folding,
    replies located in one render) to describe the masking.
    """
    lines = list(lines) if lines is not None else list(range(1, len(rows) + 1))
    notes: list[str] = []
    sample = rows[:1000] + rows[-1:]
    for r in sample:
        _kind(r)  # not a canonical row: TokenizerError
    if any("messages" in r or isinstance(r.get("prompt"), list) for r in sample) and not tokenizer.chat_template:
        raise TokenizerError(
            "the tokenizer has no chat template, so chat rows cannot be tokenised; "
            "set model.chat_template to a Jinja template file"
        )
    counter = _Counter(tokenizer, max_seq_len, assistant_only, mask_encoder)
    results: list[tuple[int, int, int] | None] = [None] * len(rows)
    failed: list[dict] = []
    with ThreadPoolExecutor(max_workers=1) as encoder:
        pending: list = []
        for start in range(0, len(rows), batch_size):
            jobs = _render_batch(counter, rows, range(start, min(start + batch_size, len(rows))), failed, lines)
            submitted = [
                (members, finish, encoder.submit(counter.enc.encode, texts, special))
                for members, (texts, special, finish) in jobs
            ]
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
        notes.append(
            f"{len(failed)} rows could not be rendered or masked with the chat template; first at line "
            f"{failed[0]['line']}: {failed[0]['message']}"
        )
    renderers = [e.renderer for e in (counter.masks, counter.answers) if e is not None]
    fold = next((r.system_fold for r in renderers if r.system_fold), "")
    if fold == FIRST_USER_TURN:
        notes.append(
            "the chat template has no system role: the system message is folded into the first user turn "
            "(in training, the gate and the playground alike)"
        )
    elif fold == LAST_USER_TURN:
        notes.append(
            "the chat template writes the system message only into a conversation's last user turn: it is "
            "folded into the last user turn (in training, the gate and the playground alike)"
        )
    if any(e is not None and e.located for e in (counter.masks, counter.answers)):
        notes.append(
            "the chat template rewrites earlier turns: the replies were located in one render of each such "
            "conversation and checked token by token (the masked tokens are each reply and its end-of-turn)"
        )
    return TokenStats(
        [lines[i] for i in ok], arr[:, 0], arr[:, 1], arr[:, 2], max_seq_len, assistant_only, notes, failed
    )


def _render_batch(
    counter: "_Counter", rows: list[dict], idx: range, failed: list, lines: list[int]
) -> list[tuple[list[int], Job]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i in idx:  # one template call per (kind, tools): apply_chat_template takes one tools list per call
        groups.setdefault((_kind(rows[i]), _tools_key(rows[i])), []).append(i)
    jobs = []
    for (kind, _), members in groups.items():
        prepare = counter.preference if kind == "preference" else counter.masked
        tools = rows[members[0]].get("tools") or None
        try:
            jobs.append((members, prepare([rows[i] for i in members], tools)))
        except Exception:  # the template raised for some row: find which, one by one
            for i in members:
                try:
                    jobs.append(([i], prepare([rows[i]], tools)))
                except MaskError as e:  # the template refused the row, or rewrites earlier turns
                    failed.append({"line": lines[i], "message": str(e)})
                except Exception as e:  # jinja2 TemplateError, TypeError, ...: a per-row data problem
                    failed.append({"line": lines[i], "message": f"{type(e).__name__}: {e}"})
    return jobs


def _collect(pending: list, results: list) -> None:
    for members, finish, future in pending:
        for i, r in zip(members, finish(future.result())):
            results[i] = r
