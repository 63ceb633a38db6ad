"""Engine overhead: the same tiny-model SFT through a plain TRL script and through `tunedeck run`.

Alternates the two in one invocation (the machine is shared and noisy), prints tokens/s of each,
their ratio (goal >= 0.97: callbacks, events and control polling cost almost nothing) and whether
the loss values are identical at the same seed.

    python benchmarks/bench_engine.py [--rounds 3] [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLAIN = r"""
import json, sys
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer
from peft import LoraConfig
from tunedeck.engine.data.dataset import load_dataset
from tunedeck.engine.data.split import split_indices
cfg = json.loads(sys.argv[1])
rows = load_dataset(cfg["data"]).rows
tr, ev = split_indices(rows, 0.1, 42)
tok = AutoTokenizer.from_pretrained(cfg["model"])
model = AutoModelForCausalLM.from_pretrained(cfg["model"])
losses = {}
class Rec(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: losses[state.global_step] = logs["loss"]
args = SFTConfig(output_dir=cfg["out"], per_device_train_batch_size=16, per_device_eval_batch_size=16,
    gradient_accumulation_steps=1, learning_rate=3e-3, lr_scheduler_type="linear", warmup_steps=0.0,
    max_steps=cfg["steps"], seed=42, data_seed=42, eval_strategy="steps", eval_steps=cfg["every"],
    save_strategy="steps", save_steps=cfg["every"], logging_steps=10, logging_first_step=True, report_to="none",
    disable_tqdm=True, include_num_input_tokens_seen="non_padding", use_cpu=True, bf16=False, fp16=False,
    gradient_checkpointing=False, max_length=256, assistant_only_loss=True, dataloader_num_workers=0,
    optim="adamw_torch")  # what tunedeck resolves on CPU: only the callbacks differ
t = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([rows[i] for i in tr]),
    eval_dataset=Dataset.from_list([rows[i] for i in ev]), processing_class=tok,
    peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
    callbacks=[Rec()])
import time
cpu0 = time.process_time()
out = t.train()
cpu = time.process_time() - cpu0
print("RESULT " + json.dumps({"runtime": out.metrics["train_runtime"], "cpu": cpu,
                              "tokens": t.state.num_input_tokens_seen, "losses": losses}))
"""


def run_plain(model: Path, data: Path, steps: int, every: int, out: Path) -> dict:
    cfg = json.dumps({"model": str(model), "data": str(data), "steps": steps, "every": every, "out": str(out)})
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, cfg],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result_lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not result_lines:
        raise SystemExit(f"plain TRL run failed:\n{proc.stderr[-3000:]}")
    return json.loads(result_lines[0][7:])


def run_tunedeck(model: Path, data: Path, steps: int, every: int, ws: Path) -> dict:
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import find_run

    sets = [
        f"model.base={model}",
        f"optim.max_steps={steps}",
        f"checkpoints.save_steps={every}",
        f"checkpoints.eval_steps={every}",
        "checkpoints.keep=100",
        "gate.when=never",
    ]
    args = [sys.executable, "-m", "tunedeck.tui.cli", "run", "demo-cpu", "--data", str(data), "--workspace", str(ws)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"tunedeck run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run = find_run(ws, proc.stdout.splitlines()[0])
    events = read_events(run / "events.jsonl")
    end = [e for e in events if e["kind"] == "train_end"][-1]
    losses = {e["step"]: e["loss"] for e in events if e["kind"] == "train"}
    return {"runtime": end["train_runtime"], "cpu": end["train_cpu_s"], "tokens": end["tokens_seen"], "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--every", type=int, default=50)
    a = ap.parse_args()
    from tunedeck.engine.data.demo_data import corpus, make_rows, write_jsonl
    from tunedeck.engine.models.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    rows = make_rows(2200, seed=0)
    data = write_jsonl(tmp / "train.jsonl", rows)
    model = build_tiny_model(tmp / "model", corpus(rows))
    plain_tps, deck_tps, plain_cpu, deck_cpu, identical = [], [], [], [], []
    for r in range(a.rounds):
        p = run_plain(model, data, a.steps, a.every, tmp / f"plain-{r}")
        t = run_tunedeck(model, data, a.steps, a.every, tmp / "ws")
        plain_tps.append(p["tokens"] / p["runtime"])
        deck_tps.append(t["tokens"] / t["runtime"])
        plain_cpu.append(p["tokens"] / p["cpu"])
        deck_cpu.append(t["tokens"] / t["cpu"])
        pl = {int(k): v for k, v in p["losses"].items()}
        same = sorted(pl) == sorted(t["losses"]) and all(
            abs(pl[s] - t["losses"][s]) <= 1e-6 * max(1.0, abs(pl[s])) for s in pl
        )
        identical.append(same)
        print(
            f"round {r + 1}: plain TRL {plain_tps[-1]:8.0f} tok/s   tunedeck {deck_tps[-1]:8.0f} tok/s   "
            f"ratio {deck_tps[-1] / plain_tps[-1]:.3f}   per CPU-second: {plain_cpu[-1]:.0f} vs {deck_cpu[-1]:.0f} "
            f"(ratio {deck_cpu[-1] / plain_cpu[-1]:.3f})   losses identical: {same}",
            flush=True,
        )
    ratios = [d / p for d, p in zip(deck_tps, plain_tps)]
    cpu_ratios = [d / p for d, p in zip(deck_cpu, plain_cpu)]
    print(
        f"median: plain TRL {statistics.median(plain_tps):.0f} tok/s, "
        f"tunedeck {statistics.median(deck_tps):.0f} tok/s, "
        f"ratio {statistics.median(ratios):.3f} (goal >= 0.97); "
        f"tokens per CPU-second ratio {statistics.median(cpu_ratios):.3f}; "
        f"losses identical in {sum(identical)}/{len(identical)} rounds"
    )


if __name__ == "__main__":
    main()
