"""Eval gate speed: the runner against a plain batched `generate` loop, and model loads for N checkpoints.

1. Throughput: on one model (the tiny base with a LoRA adapter on) and one eval set, the gate's
   runner (render, length-sorted batches, per-example latency, every check) against the loop
   anyone would write (render, batch in file order, model.generate, decode). The two alternate in
   one process, since the machine is shared and noisy; medians of examples/s and their ratio
   (goal >= 0.9) are printed, on wall time and on CPU time (steadier when neighbours load the machine).
2. Loads: run_gate on a run with N LoRA checkpoints, counting AutoModelForCausalLM.from_pretrained
   calls (goal: 1 for the base + N adapters), with the time of that load and of each adapter switch.

    python benchmarks/bench_gate.py [--examples 128] [--rounds 5] [--checkpoints 4] [--json]
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


def build_run(root: Path, n_checkpoints: int, n_examples: int) -> tuple[Path, Path, Path]:
    """A run directory (as `tunedeck run` makes it) with N complete checkpoints holding random LoRA adapters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.data import demo_data
    from tunedeck.engine.models.tiny_model import build_tiny_model
    from tunedeck.engine.scheduling.preflight import create_run, run_preflight

    rows = demo_data.make_rows(600, seed=0)
    data = demo_data.write_jsonl(root / "train.jsonl", rows)
    golden = demo_data.make_eval_set(root / "golden.jsonl", n_examples, seed=1)
    model_dir = build_tiny_model(root / "model", demo_data.corpus(rows))
    ws = root / "ws"
    pre = run_preflight(
        "demo-cpu",
        str(data),
        [
            f"model.base={json.dumps(str(model_dir))}",
            f"gate.golden={json.dumps(str(golden))}",
            f"gate.base_system_prompt={json.dumps(demo_data.BASE_PROMPT)}",
        ],
        workspace=ws,
    )
    run_dir = create_run(pre, ws, "bench-gate")
    for k in range(1, n_checkpoints + 1):
        torch.manual_seed(k)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        peft = get_peft_model(
            base,
            LoraConfig(
                r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
            ),
        )  # random B: each adapter changes the outputs
        path = run_dir / "checkpoints" / f"checkpoint-{k * 100}"
        peft.save_pretrained(path)
        (path / "tunedeck-complete.json").write_text(json.dumps({"step": k * 100}))
    return run_dir, model_dir, golden


def plain_loop(model, tokenizer, prompts: list, batch_size: int, max_new_tokens: int) -> list[str]:
    """The baseline: what a script without tunedeck does."""
    import torch

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def throughput(run_dir: Path, model_dir: Path, golden: Path, rounds: int) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.gate.eval_inputs import gen_settings
    from tunedeck.engine.gate.eval_sets import load_eval_set
    from tunedeck.engine.gate.example_scoring import evaluate_model
    from tunedeck.engine.run.run_record import load_run_record

    settings = gen_settings(load_run_record(run_dir).profile)
    examples = load_eval_set(golden, "golden").examples
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_dir), str(sorted((run_dir / "checkpoints").iterdir())[0])
    )
    model.eval()
    prompts = [ex.prompt for ex in examples]
    plain_loop(model, tokenizer, prompts[: settings.batch_size], settings.batch_size, 4)  # warm both paths up
    wall: dict[str, list[float]] = {"runner": [], "plain": []}
    cpu: dict[str, list[float]] = {"runner": [], "plain": []}
    for r in range(rounds):
        for which in ("runner", "plain") if r % 2 == 0 else ("plain", "runner"):  # alternate who goes first
            t, c = time.perf_counter(), time.process_time()
            if which == "runner":
                evaluate_model(model, tokenizer, examples, settings, checkpoint=100, key="bench")
            else:
                plain_loop(model, tokenizer, prompts, settings.batch_size, settings.max_new_tokens)
            wall[which].append(time.perf_counter() - t)
            cpu[which].append(time.process_time() - c)
    n = len(examples)
    # paired per round: a neighbour's burst of load hits both halves of a round about equally
    ratio_wall = statistics.median(p / r for p, r in zip(wall["plain"], wall["runner"]))
    ratio_cpu = statistics.median(p / r for p, r in zip(cpu["plain"], cpu["runner"]))
    return {
        "examples": n,
        "batch_size": settings.batch_size,
        "max_new_tokens": settings.max_new_tokens,
        "runner_examples_per_s": round(n / statistics.median(wall["runner"]), 1),
        "plain_examples_per_s": round(n / statistics.median(wall["plain"]), 1),
        "ratio": round(ratio_wall, 3),
        "ratio_cpu_time": round(ratio_cpu, 3),
        "runner_all": [round(n / x, 1) for x in wall["runner"]],
        "plain_all": [round(n / x, 1) for x in wall["plain"]],
    }


def loads(run_dir: Path) -> dict:
    import transformers

    from tunedeck.engine.gate import runner as gate_runner

    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        t = time.perf_counter()
        model = real(cls, *args, **kwargs)
        calls.append(time.perf_counter() - t)
        return model

    transformers.AutoModelForCausalLM.from_pretrained = classmethod(counting)
    try:
        t = time.perf_counter()
        summary = gate_runner.run_gate(run_dir)
        total = time.perf_counter() - t
    finally:
        transformers.AutoModelForCausalLM.from_pretrained = classmethod(real)
    ckpts = [r for r in summary.rows if not r.is_base]
    per = {k: v for k, v in summary.context["timings"].items() if k != "base"}
    return {
        "checkpoints": len(ckpts),
        "from_pretrained_calls": len(calls),
        "base_loads": summary.context["base_loads"],
        "base_load_s": round(calls[0], 3) if calls else None,
        "gate_total_s": round(total, 2),
        "per_checkpoint_s": statistics.median(v["seconds"] for v in per.values()) if per else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--checkpoints", type=int, default=4)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: stable on a shared machine; 0: torch's default)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        run_dir, model_dir, golden = build_run(Path(tmp), args.checkpoints, args.examples)
        result = {"throughput": throughput(run_dir, model_dir, golden, args.rounds), "loads": loads(run_dir)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    t, load_stats = result["throughput"], result["loads"]
    print(
        f"throughput ({t['examples']} examples, batch {t['batch_size']}, {t['max_new_tokens']} new tokens, "
        f"{torch.get_num_threads()} torch thread(s), median of {args.rounds} rounds):"
    )
    print(f"  gate runner   {t['runner_examples_per_s']:8.1f} examples/s   {t['runner_all']}")
    print(f"  plain loop    {t['plain_examples_per_s']:8.1f} examples/s   {t['plain_all']}")
    print(
        f"  ratio         {t['ratio']:8.3f}   (goal >= 0.9; median of paired rounds)"
        f"   cpu-time ratio {t['ratio_cpu_time']:.3f}"
    )
    print(
        f"loads ({load_stats['checkpoints']} LoRA checkpoints + base): "
        f"from_pretrained called {load_stats['from_pretrained_calls']}x "
        f"(goal 1), base load {load_stats['base_load_s']} s, {load_stats['per_checkpoint_s']} s per checkpoint, "
        f"gate {load_stats['gate_total_s']} s"
    )
    ok = t["ratio"] >= 0.9 and load_stats["from_pretrained_calls"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
