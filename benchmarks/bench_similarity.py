"""Similarity checks' cost against generation, on the demo's golden set (issue 15: goal under 5%).

The demo's model and golden set (200 JSON-extraction and 40 free-text examples) as `tunedeck demo`
builds them. Per round, the gate's generation for the whole set (demo-cpu settings: batch 64, 48
new tokens) is timed, then scoring those outputs with every check of every example
(engine/gate/example_scoring.py, score_all), in three versions of the set:

  shipped    its own checks (json_valid + json_equal; chrf on the 40 free-text answers)
  chrf-all   plus a chrf check on every example (chrF is the slowest of the four, about 1 ms)
  all-four   plus chrf, bleu, rouge_l and token_f1 on every example (a stress case)

The goal (scoring under 5% of generation) is for the set as shipped; the others show how it grows. The first use of
sacrebleu and rouge-score (imports; rouge-score pulls in nltk) is paid once per gate process and is reported on
its own, beside the per-checkpoint cost.

    python benchmarks/bench_similarity.py [--rounds 5] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIMILARITY = ("chrf", "bleu", "rouge_l", "token_f1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable on a shared machine)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from tunedeck.engine.commands.demo import prepare_assets
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.gate.checks import parse_check
    from tunedeck.engine.gate.eval_sets import load_eval_set
    from tunedeck.engine.gate.example_scoring import score_all
    from tunedeck.engine.gate.generate import generate

    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    gate = load_profile("demo-cpu").gate
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as tmp:
        model_dir, _, golden = prepare_assets(Path(tmp))
        examples = load_eval_set(golden, "golden").examples
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    own = [list(ex.checks) for ex in examples]
    variants = {"shipped": (), "chrf-all": ("chrf",), "all-four": SIMILARITY}
    prompts = [ex.prompt for ex in examples]

    from tunedeck.engine.gate.check_spec import Context

    first_use: dict[str, float] = {}
    for metric in SIMILARITY:  # first use: sacrebleu (chrf, bleu) and rouge-score (rouge_l) import here
        t = time.perf_counter()
        parse_check(metric, reference="warm up")("warm up", Context(reference="warm up"))
        first_use[metric] = round(time.perf_counter() - t, 3)

    gen_s: list[float] = []
    score_s: dict[str, list[float]] = {v: [] for v in variants}
    scored: dict[str, int] = {}
    for _ in range(args.rounds):
        t = time.perf_counter()
        gens = generate(model, tokenizer, prompts, max_new_tokens=gate.max_new_tokens, batch_size=gate.batch_size)
        gen_s.append(time.perf_counter() - t)
        for name, extra in variants.items():
            for ex, checks in zip(examples, own):
                ex.checks = checks + [parse_check(m, reference=ex.reference) for m in extra]
            t = time.perf_counter()
            records = score_all(examples, gens, checkpoint=1, key="bench")
            score_s[name].append(time.perf_counter() - t)
            scored[name] = sum(1 for r in records for c in r["checks"] if "score" in c)
    ratios = {v: statistics.median(s / g for s, g in zip(score_s[v], gen_s)) for v in variants}
    result = {
        "examples": len(examples),
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "max_new_tokens": gate.max_new_tokens,
        "batch_size": gate.batch_size,
        "generation_s": round(statistics.median(gen_s), 3),
        "first_use_s": first_use,
        "mean_output_chars": round(statistics.mean(len(g.text) for g in gens), 1),
        "variants": {
            v: {
                "similarity_scores": scored[v],
                "scoring_s": round(statistics.median(score_s[v]), 4),
                "ratio": round(ratios[v], 4),
            }
            for v in variants
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"demo golden set: {result['examples']} examples, {result['threads']} torch thread(s), "
            f"median of {args.rounds} rounds"
        )
        print(
            f"  generation   {result['generation_s']:8.3f} s   "
            f"(batch {gate.batch_size}, {gate.max_new_tokens} new tokens, "
            f"{result['mean_output_chars']} chars per output)"
        )
        for v, r in result["variants"].items():
            print(
                f"  {v:<10}   {r['scoring_s']:8.4f} s   {r['ratio']:6.2%} of generation   "
                f"({r['similarity_scores']} similarity scores)"
            )
        print(
            "  first use    "
            + ", ".join(f"{m} {v:.3f} s" for m, v in first_use.items())
            + "   (imports, once per gate process)"
        )
    ratio = ratios["shipped"]
    return 0 if ratio < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
