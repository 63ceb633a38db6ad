"""Benchmark `tunedeck inspect` on 100,000 chat examples (about 100 MB of JSONL).

Prints wall and CPU time and peak RSS of the whole inspection as `tunedeck inspect --json` does it
(parse, validate, split and fingerprint, chat template and tokenisation, statistics, exact and
near duplicates, leakage), the time of each phase run one after another, and compares
it with a plain `datasets.Dataset.from_list(rows).map(tokenise, batched=True)` tokenisation of the
same rows in the same run. Each measurement runs in a fresh child process so its peak RSS is its own.

    python benchmarks/bench_inspect.py [--rows 100000] [--repeat 3] [--threads 2]

Goals: inspection < 60 s and < 2 GB on 2 cores, and at least as fast as the datasets baseline.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VOCAB = 16384
SYSTEMS = [
    f"You are a careful assistant for team {i}. Answer briefly and cite the policy when relevant." for i in range(20)
]


def _vocabulary(rng: random.Random, n: int = 20000) -> list[str]:
    syllables = [
        "ka",
        "to",
        "ri",
        "me",
        "su",
        "na",
        "lo",
        "pe",
        "di",
        "ga",
        "ve",
        "mo",
        "ti",
        "ra",
        "ne",
        "shi",
        "an",
        "el",
        "or",
        "un",
    ]
    words = {"".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(n * 2)}
    return sorted(words)[:n]


def _sentence(rng: random.Random, vocab: list[str], cum_weights: list[float], k: int) -> str:
    words = rng.choices(vocab, cum_weights=cum_weights, k=k)
    return " ".join(words).capitalize() + rng.choice(".?!")


def generate(path: Path, rows: int, seed: int = 0) -> list[str]:
    """Write `rows` chat examples; 1% are exact copies and 1% near copies of earlier rows. Returns sample texts."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab))))  # Zipf-like, like real text
    kept, sample = [], []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            roll = rng.random()
            if kept and roll < 0.01:
                msgs = rng.choice(kept)
            elif kept and roll < 0.02:
                msgs = json.loads(json.dumps(rng.choice(kept)))
                words = msgs[-1]["content"].split()
                words[rng.randrange(len(words))] = "changed"
                msgs[-1]["content"] = " ".join(words)
            else:
                msgs = [{"role": "system", "content": rng.choice(SYSTEMS)}]
                for _ in range(rng.choice((1, 1, 2, 3))):
                    msgs.append({"role": "user", "content": _sentence(rng, vocab, weights, rng.randint(12, 48))})
                    msgs.append(
                        {
                            "role": "assistant",
                            "content": " ".join(
                                _sentence(rng, vocab, weights, rng.randint(8, 20)) for _ in range(rng.randint(1, 4))
                            ),
                        }
                    )
                if len(kept) < 2000:
                    kept.append(msgs)
            if i < 3000:
                sample += [m["content"] for m in msgs]
            f.write(json.dumps({"messages": msgs}) + "\n")
    return sample


def build_tokenizer(texts: list[str]):
    """A GPT-2 style byte-level BPE (regex pre-tokenizer, like Llama 3 and Qwen) with the tiny model's ChatML
    template, whose {% generation %} markers give the assistant mask."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tunedeck.engine.models.tiny_model import BOS, CHAT_TEMPLATE, EOS, PAD

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainer=trainers.BpeTrainer(
            vocab_size=VOCAB,
            special_tokens=[PAD, BOS, EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, model_max_length=32768)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child_inspect(data: str, tok_dir: str) -> dict:
    """The whole `tunedeck inspect DATA --model TOK --json` minus printing (duplicates overlap tokenising).

    Imports happen before the clock starts, as in the baseline; loading the tokenizer and reading the
    file are timed here (the baseline reads its rows before its clock starts).
    """
    import datasketch  # noqa: F401
    from transformers import AutoTokenizer  # noqa: F401

    from tunedeck.engine.commands.inspect import build_parser, build_report

    start, cpu = time.perf_counter(), _cpu_s()
    args = build_parser().parse_args(["inspect", data, "--model", tok_dir, "--max-seq-len", "1024", "--json"])
    report = build_report(args)
    tokens = report["tokens"]
    return {
        "wall": time.perf_counter() - start,
        "cpu": _cpu_s() - cpu,
        "rss_mb": _rss_mb(),
        "rows": report["valid_rows"],
        "tokens": tokens["total_tokens"],
        "trainable": tokens["trainable_tokens"],
        "steps": report["plan"]["total_steps"],
        "exact_clusters": len(report["duplicates"]),
        "near_clusters": len(report["near_duplicates"]),
        "leaks": len(report["leakage"]),
        "fingerprint": report["fingerprint"],
    }


def child_phases(data: str, tok_dir: str) -> dict:
    """The same work one library call after another, timed per phase."""
    t0 = time.perf_counter()
    from transformers import AutoTokenizer

    from tunedeck.engine.data.dataset import load_dataset
    from tunedeck.engine.data.duplicates import find_duplicates
    from tunedeck.engine.data.split import fingerprint, split_indices
    from tunedeck.engine.data.token_stats import compute_token_stats

    tok = AutoTokenizer.from_pretrained(tok_dir)
    phases = {"imports+tokenizer": time.perf_counter() - t0}

    def lap(name: str, t: float) -> float:
        now = time.perf_counter()
        phases[name] = now - t
        return now

    t = time.perf_counter()
    ds = load_dataset(data)
    t = lap("parse+validate", t)
    train, evl = split_indices(ds.rows, 0.1, 42)
    fingerprint(ds.rows, val_fraction=0.1, seed=42)
    t = lap("split+fingerprint", t)
    stats = compute_token_stats(ds.rows, tok, max_seq_len=1024, lines=ds.lines)
    stats.to_dict()
    stats.subset([ds.lines[i] for i in train]).training_plan(8, 4, 1, 3)
    t = lap("tokens+stats", t)
    find_duplicates(ds.rows, ds.lines, eval_indices=evl)
    lap("duplicates+leakage", t)
    return {"phases": phases}


def child_baseline(data: str, tok_dir: str) -> dict:
    from datasets import Dataset, disable_progress_bars
    from transformers import AutoTokenizer

    disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    with open(data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    t, cpu = time.perf_counter(), _cpu_s()

    def tokenise(batch):
        out = tok.apply_chat_template(
            batch["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return {"input_ids": out["input_ids"], "assistant_masks": out["assistant_masks"]}

    with tempfile.TemporaryDirectory() as cache:
        ds = Dataset.from_list(rows)
        ds = ds.map(
            tokenise, batched=True, remove_columns=["messages"], cache_file_name=os.path.join(cache, "map.arrow")
        )
        tokens = sum(len(x) for x in ds["input_ids"])
    return {"wall": time.perf_counter() - t, "cpu": _cpu_s() - cpu, "rss_mb": _rss_mb(), "tokens": tokens}


def _run_child(kind: str, data: Path, tok_dir: Path, threads: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true", OMP_NUM_THREADS=str(threads))
    cmd = ["taskset", "-c", f"0-{threads - 1}"] if _has_taskset() else []
    cmd += [sys.executable, __file__, "--child", kind, "--data", str(data), "--tok", str(tok_dir)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None and (os.cpu_count() or 1) > 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="cores the children may use (taskset)")
    ap.add_argument("--child", choices=("inspect", "phases", "baseline"))
    ap.add_argument("--data")
    ap.add_argument("--tok")
    args = ap.parse_args()
    if args.child:
        fn = {"inspect": child_inspect, "phases": child_phases, "baseline": child_baseline}[args.child]
        print(json.dumps(fn(args.data, args.tok)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        data, tok_dir = Path(tmp) / "chat.jsonl", Path(tmp) / "tok"
        t = time.perf_counter()
        sample = generate(data, args.rows)
        build_tokenizer(sample).save_pretrained(tok_dir)
        print(
            f"generated {args.rows:,} rows, {data.stat().st_size / 1e6:.1f} MB, byte-level BPE vocab {VOCAB} "
            f"in {time.perf_counter() - t:.1f} s; {args.threads} cores, {args.repeat} repeats"
        )
        runs, bases = [], []
        for i in range(args.repeat):
            runs.append(_run_child("inspect", data, tok_dir, args.threads))
            bases.append(_run_child("baseline", data, tok_dir, args.threads))
            r, b = runs[-1], bases[-1]
            print(
                f"  run {i + 1}: inspect {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['rss_mb']:.0f} MB peak; "
                f"datasets map {b['wall']:.1f} s wall, {b['cpu']:.1f} s CPU, {b['rss_mb']:.0f} MB peak; "
                f"load {os.getloadavg()[0]:.1f}"
            )
        phases = _run_child("phases", data, tok_dir, args.threads)["phases"]
        med = statistics.median
        r0 = runs[0]
        print(
            f"rows {r0['rows']:,}, tokens {r0['tokens']:,} (trainable {r0['trainable']:,}), exact clusters "
            f"{r0['exact_clusters']}, near clusters {r0['near_clusters']}, leaks {r0['leaks']}, "
            f"fingerprint {r0['fingerprint']}"
        )
        assert all(b["tokens"] == r0["tokens"] for b in bases), "token counts differ from the datasets baseline"
        print(
            f"median inspection: {med(x['wall'] for x in runs):.1f} s wall, {med(x['cpu'] for x in runs):.1f} s CPU, "
            f"peak RSS {med(x['rss_mb'] for x in runs):.0f} MB"
        )
        print("  one phase after another (one run): " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
        print(
            f"median datasets from_list+map tokenisation: {med(x['wall'] for x in bases):.1f} s wall, "
            f"{med(x['cpu'] for x in bases):.1f} s CPU, peak RSS {med(x['rss_mb'] for x in bases):.0f} MB"
        )
        # Paired per-run ratios: the two measurements of a run are back to back, so they share the machine's load.
        wall = [r["wall"] / b["wall"] for r, b in zip(runs, bases)]
        cpu = [r["cpu"] / b["cpu"] for r, b in zip(runs, bases)]
        print(
            "inspection / baseline, median of paired runs: "
            f"wall {med(wall):.2f} ({', '.join(f'{x:.2f}' for x in wall)}), "
            f"CPU {med(cpu):.2f} ({', '.join(f'{x:.2f}' for x in cpu)}) (goal <= 1.00)"
        )


if __name__ == "__main__":
    main()
