"""engine/data/token_stats.py: counts agree token for token with a direct tokenizer computation (what TRL does)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tunedeck.engine.data.token_stats import TokenizerError, compute_token_stats
from tunedeck.engine.models.tiny_model import CHAT_TEMPLATE

WORDS = "the cat sat on a mat while Maria from Lisbon wrote JSON answers about 42 cities and 7 jobs".split()
# The tiny ChatML template, plus a tools header, to check that each row's own tools reach the template.
TOOLS_TEMPLATE = (
    "{%- if tools -%}"
    "{{ '<|im_start|>system\nTools: ' + (tools | map(attribute='name') | join(', ')) + '<|im_end|>\n' }}"
    "{%- endif -%}" + CHAT_TEMPLATE
)


@pytest.fixture(scope="module")
def tok():
    from tunedeck.engine.models.tiny_model import build_tiny_tokenizer

    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=30)) for _ in range(200)]
    return build_tiny_tokenizer(texts + ["system user assistant tool Tools:"], vocab_size=400)


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": sentence(rng, 2, 6)}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 3)):
            msgs += [
                {"role": "user", "content": sentence(rng, 1, 30)},
                {"role": "assistant", "content": sentence(rng, 1, 40)},
            ]
        out.append({"messages": msgs})
    return out


def reference_chat(tok, row: dict, limit: int) -> tuple[int, int, int]:
    out = tok.apply_chat_template(
        row["messages"], tools=row.get("tools"), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    mask = out["assistant_masks"]
    return len(out["input_ids"]), sum(mask), sum(mask[:limit])


def triples(stats) -> list[tuple[int, int, int]]:
    return list(zip(stats.lengths.tolist(), stats.trainable.tolist(), stats.trainable_kept.tolist()))


def test_chat_counts_match_apply_chat_template_row_by_row(tok):
    rows = chat_rows(150)
    stats = compute_token_stats(rows, tok, max_seq_len=48, batch_size=32)
    assert triples(stats) == [reference_chat(tok, r, 48) for r in rows]
    assert stats.assistant_only and not stats.notes and not stats.failed
    assert stats.truncated_lines == [i + 1 for i, r in enumerate(rows) if reference_chat(tok, r, 48)[0] > 48]


def test_tools_grouping_is_exact(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(tmp_path)
    t.chat_template = TOOLS_TEMPLATE
    rows = chat_rows(40, seed=3)
    for i, r in enumerate(rows):
        if i % 3:
            r["tools"] = [{"name": f"tool{i % 2}", "description": "x"}]
    stats = compute_token_stats(rows, t, max_seq_len=1000, batch_size=16)
    assert triples(stats) == [reference_chat(t, r, 1000) for r in rows]
    with_tools, without = triples(stats)[1], reference_chat(t, {"messages": rows[1]["messages"]}, 1000)
    assert with_tools[0] > without[0]  # the tools header was rendered


def test_truncation_dropped_and_cut_share(tok):
    rows = chat_rows(60, seed=1)
    limit = 20
    stats = compute_token_stats(rows, tok, max_seq_len=limit)
    ref = [reference_chat(tok, r, limit) for r in rows]
    assert stats.dropped_lines == [i + 1 for i, (n, t, k) in enumerate(ref) if t > 0 and k == 0]
    assert stats.dropped_lines  # a system+user prefix longer than 20 tokens leaves nothing to train on
    assert stats.trainable_cut_share == pytest.approx(1 - sum(k for _, _, k in ref) / sum(t for _, t, _ in ref))
    assert stats.kept_tokens == sum(min(n, limit) for n, _, _ in ref)


def test_examples_without_trainable_tokens_are_listed(tok):
    rows = chat_rows(3) + [{"messages": [{"role": "user", "content": "the cat"}]}]
    stats = compute_token_stats(rows, tok, max_seq_len=100, lines=[2, 4, 6, 8])
    assert stats.zero_trainable_lines == [8] and stats.dropped_lines == []
    assert stats.training_plan(batch_size=1).examples == 3


def test_prompt_completion_and_text_match_the_trainers_tokenisation(tok):
    eos = tok.eos_token
    pc = [{"prompt": "Maria from", "completion": " Lisbon wrote"}, {"prompt": "the cat", "completion": " sat" + eos}]
    stats = compute_token_stats(pc, tok, max_seq_len=4)
    for row, (n, t, k) in zip(pc, triples(stats)):
        p = tok(row["prompt"])["input_ids"]
        completion = row["completion"] if row["completion"].endswith(eos) else row["completion"] + eos
        full = tok(row["prompt"] + completion)["input_ids"]
        start = next((i for i, (a, b) in enumerate(zip(p, full)) if a != b), min(len(p), len(full)))
        assert (n, t, k) == (len(full), len(full) - start, max(0, min(len(full), 4) - start))
    texts = [{"text": "the cat sat"}, {"text": "on a mat" + eos}]
    stats = compute_token_stats(texts, tok, max_seq_len=3)
    for row, (n, t, k) in zip(texts, triples(stats)):
        ids = tok(row["text"] if row["text"].endswith(eos) else row["text"] + eos)["input_ids"]
        assert (n, t, k) == (len(ids), len(ids), min(len(ids), 3))


def test_preference_counts(tok):
    """DPO and KTO rows count what their trainer gets: the prompt, and each answer from its first trained token to
    its last (the reply and <|im_end|>, the tokens the template's generation markers mark; not the newline after)."""
    prompt = [{"role": "user", "content": "the cat"}]
    chosen, rejected = [{"role": "assistant", "content": "sat on a mat"}], [{"role": "assistant", "content": "no"}]
    rows = [{"prompt": prompt, "chosen": chosen, "rejected": rejected}]
    stats = compute_token_stats(rows, tok, max_seq_len=1000)
    p = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    c, r = (
        sum(
            tok.apply_chat_template(
                prompt + answer, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )["assistant_masks"]
        )
        for answer in (chosen, rejected)
    )
    assert triples(stats) == [(len(p) + max(c, r), c + r, c + r)]
    short = compute_token_stats(rows, tok, max_seq_len=len(p))  # the prompt alone fills the window: TRL drops it
    assert short.dropped_lines == [1]
    kto = [
        {"prompt": prompt, "completion": chosen, "label": True},
        {"prompt": prompt, "completion": rejected, "label": False},
    ]
    assert triples(compute_token_stats(kto, tok, max_seq_len=len(p) + 2)) == [
        (len(p) + c, c, 2),
        (len(p) + r, r, min(r, 2)),
    ]


def test_template_without_generation_markers_masks_the_same_replies(tok, tmp_path):
    """Markers are not needed: the incremental render finds the same assistant tokens the markers mark."""
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    rows = chat_rows(20)
    t = AutoTokenizer.from_pretrained(tmp_path)
    t.chat_template = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    stats = compute_token_stats(rows, t, max_seq_len=1000)
    assert stats.assistant_only and not stats.notes and not stats.failed
    assert triples(stats) == [reference_chat(tok, r, 1000) for r in rows]
    assert (stats.trainable < stats.lengths).all()
    every = compute_token_stats(rows, t, max_seq_len=1000, assistant_only=False)  # data.assistant_only_loss = off
    assert (every.trainable == every.lengths).all()


def test_rows_the_template_rejects_are_listed(tok):
    rows = chat_rows(5)
    rows[2]["messages"][-1] = {"role": "assistant", "content": [{"type": "text", "text": "x"}]}  # list + str raises
    stats = compute_token_stats(rows, tok, max_seq_len=100, lines=[10, 20, 30, 40, 50])
    assert [f["line"] for f in stats.failed] == [30] and stats.lines == [10, 20, 40, 50]
    assert "could not be rendered" in stats.notes[-1]


def test_no_chat_template_is_a_tokenizer_error(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(tmp_path)
    t.chat_template = None
    with pytest.raises(TokenizerError, match="no chat template"):
        compute_token_stats(chat_rows(2), t, max_seq_len=10)
    assert compute_token_stats([{"text": "the cat"}], t, max_seq_len=10).examples == 1  # plain text needs none


def test_statistics_histogram_and_plan(tok):
    rows = chat_rows(101, seed=5)
    seen = []
    stats = compute_token_stats(rows, tok, max_seq_len=64, batch_size=25, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (101, 101) and len(seen) == 5
    lengths = np.array([reference_chat(tok, r, 64)[0] for r in rows])
    pct = stats.percentiles()
    assert pct["max"] == lengths.max() and pct["p50"] == int(np.percentile(lengths, 50, method="inverted_cdf"))
    assert pct["p90"] == int(np.percentile(lengths, 90, method="inverted_cdf"))
    hist = stats.histogram(bins=8)
    assert sum(b["count"] for b in hist) == 101 and hist[0]["lo"] == lengths.min() and hist[-1]["hi"] > lengths.max()
    plan = stats.training_plan(batch_size=4, grad_accum=3, processes=2, epochs=2.5)
    n = 101 - len(stats.dropped_lines) - len(stats.zero_trainable_lines)
    assert plan.examples == n
    assert plan.steps_per_epoch == math.ceil(math.ceil(n / 8) / 3)
    assert plan.total_steps == math.ceil(2.5 * plan.steps_per_epoch)
    assert plan.total_training_tokens == round(2.5 * plan.tokens_per_epoch)
    d = stats.to_dict()
    for key in (
        "examples",
        "total_tokens",
        "trainable_tokens",
        "p50",
        "p90",
        "p99",
        "max",
        "histogram",
        "truncated_examples",
        "trainable_cut_share",
        "zero_trainable_lines",
        "dropped_lines",
    ):
        assert key in d
    sub = stats.subset([1, 2, 3])
    assert sub.examples == 3 and sub.lengths.tolist() == stats.lengths[:3].tolist()
