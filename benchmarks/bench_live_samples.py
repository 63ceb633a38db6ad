"""Live samples: what generating the monitor's samples costs next to the evaluation it follows.

After each evaluation the engine has the model answer `[checkpoints] sample_prompts` (3) held-out
prompts, greedy, at most 64 new tokens, in one batch (engine/training/live_samples.py). This measures that
step against the evaluation itself (the held-out loss: forward passes over every held-out row, in
batches as the trainer runs them), on the same model in the same process, and prints the medians
and their ratio. The default model is the demo's tiny one (built here, no download); `--model DIR`
takes any local causal LM with a chat template.

    python benchmarks/bench_live_samples.py [--model DIR] [--heldout 24] [--prompts 3] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a local model folder (default: the demo's tiny model, built here)")
    ap.add_argument("--heldout", type=int, default=24, help="held-out rows the evaluation scores")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="evaluation batch size")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.data.demo_data import corpus, make_rows
    from tunedeck.engine.gate.generate import render_prompt
    from tunedeck.engine.training.live_samples import LiveSampler, pick_prompts

    rows = make_rows(240 + args.heldout, seed=0)
    heldout = rows[-args.heldout :]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if not model_dir:
            from tunedeck.engine.models.tiny_model import build_tiny_model

            model_dir = str(build_tiny_model(Path(tmp) / "model", corpus(rows)))
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        texts = [render_prompt(tok, r["messages"][:-1]) + r["messages"][-1]["content"] for r in heldout]

        def evaluation() -> None:
            model.eval()
            with torch.inference_mode():
                for i in range(0, len(texts), args.batch):
                    enc = tok(texts[i : i + args.batch], return_tensors="pt", padding=True, add_special_tokens=False)
                    model(**enc, labels=enc["input_ids"])

        class Events:
            def emit(self, kind, **fields) -> None:
                self.last = fields

        sampler = LiveSampler(pick_prompts(heldout, args.prompts))
        events = Events()

        def timed(fn) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        evaluation(), sampler.sample(model, tok, 0, events)  # warm-up: first calls pay one-off costs
        evals = [timed(evaluation) for _ in range(args.rounds)]
        samples = [timed(lambda: sampler.sample(model, tok, 0, events)) for _ in range(args.rounds)]
    e, s = statistics.median(evals), statistics.median(samples)
    out = {
        "model": args.model or "demo tiny model",
        "heldout_rows": args.heldout,
        "prompts": args.prompts,
        "evaluation_s": round(e, 4),
        "live_samples_s": round(s, 4),
        "samples_per_evaluation": round(s / e, 3),
        "new_tokens": [x["new_tokens"] for x in events.last["samples"]],
        "rounds": args.rounds,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"evaluation ({args.heldout} held-out rows): {e * 1000:.1f} ms   live samples ({args.prompts} prompts, "
            f"≤64 new tokens): {s * 1000:.1f} ms   ratio {s / e:.2f}x of an evaluation"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
