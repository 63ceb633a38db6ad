"""Similarity to a reference, for free-text answers: chrF, BLEU, ROUGE-L and SQuAD token F1.

Each returns one sentence-level score on the scale people quote it on:

  chrf      0-100  character n-gram F-score (sacrebleu's CHRF, chrF2 as published by Popović 2015)
  bleu      0-100  sentence BLEU (sacrebleu, effective order so short answers are not zero)
  rouge_l   0-1    ROUGE-L F-measure over the longest common subsequence (Google's rouge-score)
  token_f1  0-1    SQuAD's F1: tokens after lower-casing and dropping punctuation and articles

A check written {"type": "rouge_l", "min": 0.5} passes when the score reaches `min`, on the same
scale; without `min` the DEFAULT_MIN below applies. sacrebleu and rouge-score are imported on first
use (rouge-score pulls in nltk, about 1.5 s), so loading eval sets stays fast.
"""

from __future__ import annotations

import collections
import re
import string
from functools import lru_cache

SCALES = {"chrf": 100.0, "bleu": 100.0, "rouge_l": 1.0, "token_f1": 1.0}
# where a reply usually reads as "says the same thing" for short free-text answers; tune per task
DEFAULT_MIN = {"chrf": 50.0, "bleu": 30.0, "rouge_l": 0.5, "token_f1": 0.5}
NAMES = {"chrf": "chrF", "bleu": "BLEU", "rouge_l": "ROUGE-L", "token_f1": "token F1"}


@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


@lru_cache(maxsize=1)
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def chrf(output: str, reference: str) -> float:
    return float(_chrf().sentence_score(output, [reference]).score)


def bleu(output: str, reference: str) -> float:
    return float(_bleu().sentence_score(output, [reference]).score)


def rouge_l(output: str, reference: str) -> float:
    return float(_rouge().score(reference, output)["rougeL"].fmeasure)


# SQuAD v1.1/v2.0 evaluation script: normalize_answer and f1_score
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(output: str, reference: str) -> float:
    pred, gold = squad_normalize(output).split(), squad_normalize(reference).split()
    if not pred or not gold:
        return float(pred == gold)  # SQuAD v2: an empty answer scores 1 only against an empty reference
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


SCORERS = {"chrf": chrf, "bleu": bleu, "rouge_l": rouge_l, "token_f1": token_f1}


def similarity(metric: str, output: str, reference: str) -> float:
    return SCORERS[metric](output, reference)


def fmt_score(metric: str, value: float | None) -> str:
    """chrF 62.3, ROUGE-L 0.62: each on its own scale."""
    if value is None:
        return "-"
    return f"{value:.1f}" if SCALES.get(metric, 1.0) > 1 else f"{value:.2f}"
