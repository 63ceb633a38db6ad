"""What tunedeck adds to a GRPO step: `tunedeck run grpo` against a plain TRL GRPOTrainer script, same settings.

`python benchmarks/bench_grpo.py [--rounds 3] [--steps 24]`

Both sides train the same tiny base (planted, as in tests/engine/training/test_grpo_run.py, to answer `{}` to a third of
its prompts, so rewards vary) with LoRA r 8 on 48 demo prompts: batch 8, 4 completions per prompt, at most
12 new tokens, lr 2e-3, fp32, no checkpoint before the end, json_valid as the only reward. The plain
side's reward is a hand-written json.loads; tunedeck's is the gate's check registry with its completion
window (live samples, completion statistics) and the reward guard, plus its events, status and control
polling. Alternating, each in a fresh process. Seconds are the Trainer's train_runtime and the training
loop's process CPU time. Also: the reward function alone, per completion, registry vs json.loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLAIN = r"""
import json, sys, time
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

base, data, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(data)]
ds = Dataset.from_list([{"prompt": r["messages"][:-1], "reference": r["messages"][-1]["content"]} for r in rows])

def json_valid(prompts, completions, **kw):
    out = []
    for c in completions:
        try:
            json.loads(c[0]["content"].strip())
            out.append(1.0)
        except ValueError:
            out.append(0.0)
    return out

args = GRPOConfig(output_dir=out, per_device_train_batch_size=8, gradient_accumulation_steps=1, num_generations=4,
                  max_completion_length=12, learning_rate=2e-3, max_steps=steps, logging_steps=1, save_steps=steps,
                  save_strategy="steps", bf16=False, use_cpu=True, report_to="none", disable_tqdm=True, seed=42,
                  activation_checkpointing=False, lr_scheduler_type="constant_with_warmup", warmup_steps=0.05,
                  optim="adamw_torch", loss_type="dapo", temperature=1.0, beta=0.0)
trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(base), reward_funcs=[json_valid], args=args,
                      train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(base),
                      peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
cpu0 = time.process_time()
result = trainer.train()
print(json.dumps({"runtime": result.metrics["train_runtime"], "cpu": time.process_time() - cpu0,
                  "rewards": [h["reward"] for h in trainer.state.log_history if "reward" in h]}))
"""


def tunedeck_round(base: Path, data: Path, steps: int, ws: Path) -> dict:
    env = {**os.environ, "TUNEDECK_WORKSPACE": str(ws)}
    args = [
        "run",
        "grpo",
        "--data",
        str(data),
        "--set",
        f"model.base={json.dumps(str(base))}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "method.grpo_num_generations=4",
        "--set",
        "method.grpo_max_completion_length=12",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        f"checkpoints.save_steps={steps}",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        "optim.learning_rate=2e-3",
        "--set",
        "lora.r=8",
        "--set",
        "lora.alpha=16",
        "--set",
        "lora.dropout=0.05",
        "--set",
        "gate.when=never",
        "--set",
        "data.val_fraction=0.0",
        "--set",
        'rewards.checks=[{type="json_valid"}]',
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli", *args], capture_output=True, text=True, env=env, cwd=str(ROOT)
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import find_run

    run = find_run(ws, proc.stdout.strip().splitlines()[0])
    events = read_events(run / "events.jsonl")
    end = next(e for e in events if e["kind"] == "train_end")
    return {
        "runtime": end["train_runtime"],
        "cpu": end["train_cpu_s"],
        "rewards": [e["reward"] for e in events if e["kind"] == "train" and "reward" in e],
    }


def plain_round(base: Path, data: Path, steps: int, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(base), str(data), str(steps), str(out)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reward_cost(n: int = 20000) -> dict:
    """Microseconds per completion: the registry's json_valid reward (with the completion window) vs json.loads."""
    from tunedeck.engine.gate.rewards import parse_reward_checks, reward_functions
    from tunedeck.engine.training.completion_window import CompletionWindow

    texts = ['{"name": "Ana", "age": 31}', "{}", "Ana is here.", ""] * (n // 4)
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    prompts = [[{"role": "user", "content": f"p{i % 16}"}] for i in range(len(texts))]
    checks = parse_reward_checks([{"type": "json_valid"}])
    window = CompletionWindow(["json_valid"], [1.0])
    (fn,), _ = reward_functions(checks, window.on_scored)
    t0 = time.perf_counter()
    fn(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(texts),
        reference=[None] * len(texts),
        log_metric=lambda k, v: None,
    )
    registry = time.perf_counter() - t0

    def plain(cs):
        out = []
        for c in cs:
            try:
                json.loads(c[0]["content"].strip())
                out.append(1.0)
            except ValueError:
                out.append(0.0)
        return out

    t0 = time.perf_counter()
    plain(completions)
    hand = time.perf_counter() - t0
    return {"registry_us": 1e6 * registry / len(texts), "json_loads_us": 1e6 * hand / len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=24)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.planted_models import plant_braces

    from tunedeck.engine.data.demo_data import corpus, make_rows, write_jsonl
    from tunedeck.engine.models.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench_grpo_"))
    tiny = build_tiny_model(tmp / "tiny", corpus(make_rows(240, seed=0)))
    base = plant_braces(tiny, tmp / "planted", make_rows(200, seed=3))
    data = write_jsonl(tmp / "prompts.jsonl", make_rows(48, seed=11))
    rows = []
    for r in range(a.rounds):
        plain = plain_round(base, data, a.steps, tmp / f"plain{r}")
        ours = tunedeck_round(base, data, a.steps, tmp / f"ws{r}")
        rows.append(
            {
                "round": r + 1,
                "plain_s": plain["runtime"],
                "tunedeck_s": ours["runtime"],
                "plain_cpu": plain["cpu"],
                "tunedeck_cpu": ours["cpu"],
                "ratio": plain["runtime"] / ours["runtime"],
                "cpu_ratio": plain["cpu"] / ours["cpu"],
                "same_rewards": plain["rewards"] == ours["rewards"],
                "load": os.getloadavg()[0],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {
                "median_ratio": statistics.median(r["ratio"] for r in rows),
                "median_cpu_ratio": statistics.median(r["cpu_ratio"] for r in rows),
                **reward_cost(),
            }
        )
    )


if __name__ == "__main__":
    main()
