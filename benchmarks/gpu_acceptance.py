"""GPU acceptance: which GPU paths work, how fast tunedeck is against plain TRL, what its own work costs.

    python benchmarks/gpu_acceptance.py --out results.json

One command for the day a GPU is lent (budget: under 8 minutes on one modern GPU). It builds a
0.5B-class model from a config (Qwen2 shapes, random weights, no hub; a tokenizer trained locally),
then for each GPU path (bf16 LoRA on SDPA, QLoRA, full fine-tuning, FlashAttention 2, padding-free,
Liger, 8-bit AdamW, DDP over NCCL; each only when its package or GPUs are there: this script
installs nothing) runs the real `tunedeck run` for --steps steps, SIGKILLs the engine inside the
save of the middle checkpoint (the engine's kill-in-save hook), resumes with `tunedeck resume`, and
runs the gate at the end on a 32-example golden set. A path is ok when its losses are finite and
fall, the kill left the partial checkpoint it should, the resume continued from the checkpoint
before it and finished, and the gate judged every checkpoint. It reads the telemetry pane's NVML
values through the engine's sampler (engine/observe/telemetry.py) while an engine trains, and measures
tokens/s and MFU, alternating in one run, of
  - tunedeck's fastest profile (bf16 LoRA, no gradient checkpointing, speed.* on auto: FlashAttention,
    padding-free and Liger when installed, fused AdamW),
  - a plain TRL script with TRL's defaults (same model, data, LoRA, batch size and max length), and
  - the same plain TRL script with exactly the settings tunedeck resolved (the engine's overhead:
    goal >= 0.98, losses identical).
Every path runs in its own try block and reports ok / skipped / failed with the reason; the script
prints one table, writes one JSON file and exits 0 unless it could not run at all. Without a GPU it
says so, runs its plumbing on CPU with a tiny model (under a minute on a quiet machine) and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# bf16 dense peak TFLOP/s by GPU name (vendor datasheets, without sparsity), for MFU
PEAK_BF16_TFLOPS = [
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 6000 Ada", 364.0),
    ("A6000", 155.0),
    ("V100", 125.0),
    ("MI300X", 1307.0),
]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ---- assets: model, data, golden set -------------------------------------------------------------


@dataclass
class Assets:
    model: Path
    data: Path
    golden: Path
    params: dict


def conversations(n: int, turns: int, seed: int) -> list[dict]:
    """Multi-turn rows of the demo's extraction task: realistic lengths that vary row to row."""
    import random

    from tunedeck.engine.data.demo_data import SYSTEM, make_rows

    rng = random.Random(seed)
    pool = make_rows(n * turns, seed)
    rows = []
    for i in range(n):
        k = rng.randint(1, turns)
        msgs = [{"role": "system", "content": SYSTEM}]
        for ex in pool[i * turns : i * turns + k]:
            msgs += ex["messages"][1:]
        rows.append({"messages": msgs})
    return rows


def build_assets(work: Path, gpu: bool) -> Assets:
    """A 0.5B-class Qwen2 model from a config on GPU (a tiny Llama on CPU), its data and golden set."""
    import torch

    from tunedeck.engine.data.demo_data import corpus, make_eval_set, make_rows, write_jsonl
    from tunedeck.engine.models.tiny_model import build_tiny_model, build_tiny_tokenizer

    rows = conversations(3000 if gpu else 200, 4 if gpu else 1, seed=0)
    data = write_jsonl(work / "train.jsonl", rows)
    golden = make_eval_set(work / "golden.jsonl", 32 if gpu else 8, seed=1)
    texts = corpus(make_rows(500, 0))
    if not gpu:
        model = build_tiny_model(work / "model", texts, hidden=64, layers=2, heads=4, intermediate=256)
        return Assets(model, data, golden, {"kind": "tiny Llama (CPU plumbing)", **_shape(model)})
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = build_tiny_tokenizer(texts)
    # Qwen2.5-0.5B's shapes: 24 layers, hidden 896, 14 heads (2 KV), MLP 4864, a 151,936-token
    # embedding tied to the head, so the head and loss cost what they cost on the real model
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        initializer_range=0.02,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):  # initialising 0.5B parameters is seconds on the GPU, a minute on a CPU
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False, max_new_tokens=32
    )
    out = work / "model"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    del model
    return Assets(out, data, golden, {"kind": "Qwen2 0.5B-class, random weights", **_shape(out)})


def _shape(model_dir: Path) -> dict:
    return _shape_of(json.loads((model_dir / "config.json").read_text()))


def _shape_of(cfg: dict) -> dict:
    h, layers, inter, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    head_dim = h // heads
    attn = h * h * 2 + 2 * h * kv * head_dim  # q, o and k, v projections
    mlp = 3 * h * inter
    per_layer = attn + mlp
    return {
        "hidden": h,
        "layers": layers,
        "vocab": vocab,
        "matmul_params": layers * per_layer + h * vocab,
        "params": layers * per_layer + h * vocab + (0 if cfg.get("tie_word_embeddings") else h * vocab),
    }


# ---- running tunedeck ----------------------------------------------------------------------------


def tunedeck(args: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def kill_engine(run: Path | None) -> None:
    if run is None:
        return
    from tunedeck.engine.run.store import pid_alive, read_written_status

    pid = read_written_status(run).pid
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_engines_under(work: Path) -> None:
    """Every engine this script started and left running (a stop at the time limit, a failed path)."""
    from tunedeck.engine.run import contract as C

    for status in work.glob(f"**/{C.STATUS_JSON}"):
        kill_engine(status.parent)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Sampler(threading.Thread):
    """The telemetry pane's readings (tunedeck.engine.observe.telemetry.sample) of an engine while it trains."""

    def __init__(self, run: Path):
        super().__init__(daemon=True)
        self.run_dir, self.samples, self.halt = run, [], threading.Event()

    def run(self) -> None:  # noqa: D401 - threading API
        from tunedeck.engine.observe import telemetry
        from tunedeck.engine.run.store import read_written_status

        while not self.halt.is_set():
            pid = read_written_status(self.run_dir).pid
            if pid:
                s = telemetry.sample(pid)
                s["t"] = time.time()
                self.samples.append(s)
            self.halt.wait(0.5)


@dataclass
class PathSpec:
    name: str
    sets: list[str]
    needs: list[str] = field(default_factory=list)  # importable modules
    gpus: int = 1  # GPUs it needs (0: runs on CPU too)


@dataclass
class PathResult:
    name: str
    status: str = "skipped"  # ok / skipped / failed
    reason: str = ""
    seconds: float = 0.0
    checks: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    run_dir: str = ""


def gpu_paths() -> list[PathSpec]:
    base = [
        "optim.precision=bf16",
        "speed.attn_implementation=sdpa",
        "speed.padding_free=off",
        "speed.liger_kernel=off",
        "optim.gradient_checkpointing=off",
    ]

    def with_(*sets: str) -> list[str]:
        keys = {s.split("=")[0] for s in sets}
        return [s for s in base if s.split("=")[0] not in keys] + list(sets)

    return [
        PathSpec("bf16 LoRA, SDPA, fused AdamW", with_("speed.optimizer=adamw_torch_fused")),
        PathSpec("QLoRA (4-bit NF4)", with_("method.adapter=qlora"), needs=["bitsandbytes"]),
        PathSpec("full fine-tuning, bf16", with_("method.adapter=none", "optim.learning_rate=1e-4")),
        PathSpec("FlashAttention 2", with_("speed.attn_implementation=flash_attention_2"), needs=["flash_attn"]),
        PathSpec(
            "padding-free batches",
            with_("speed.attn_implementation=flash_attention_2", "speed.padding_free=on"),
            needs=["flash_attn"],
        ),
        PathSpec("Liger kernels", with_("speed.liger_kernel=on"), needs=["liger_kernel"]),
        PathSpec("8-bit AdamW", with_("speed.optimizer=adamw_8bit"), needs=["bitsandbytes"]),
        PathSpec("DDP over NCCL, 2 processes", with_("resources.processes=2", "resources.strategy=ddp"), gpus=2),
        PathSpec("FSDP over NCCL, 2 processes", with_("resources.processes=2", "resources.strategy=fsdp"), gpus=2),
    ]  # gradient checkpointing runs in the throughput part: TRL's defaults turn it on


CPU_PATH = PathSpec("fp32 LoRA on CPU (plumbing)", ["optim.precision=fp32", "optim.gradient_checkpointing=off"], gpus=0)


def common_sets(a: Assets, steps: int, save: int, gpu: bool) -> list[str]:
    batch = 8 if gpu else 4
    return [
        f"model.base={a.model}",
        f"optim.max_steps={steps}",
        f"checkpoints.save_steps={save}",
        f"checkpoints.eval_steps={save}",
        "checkpoints.logging_steps=1",
        "checkpoints.keep=100",
        f"optim.batch_size={batch}",
        "optim.grad_accum=1",
        "optim.learning_rate=1e-3",
        "optim.warmup_ratio=0",
        "optim.scheduler=constant",
        f"data.max_seq_len={512 if gpu else 256}",
        "data.val_fraction=0.05",
        "gate.when=end",
        f"gate.golden={a.golden}",
        f"gate.max_new_tokens={24 if gpu else 8}",
        "gate.batch_size=32",
        "gate.min_task_gain=0",
        "gate.significance=0",
    ]


def run_path(spec: PathSpec, a: Assets, ws: Path, steps: int, gpu: bool, telemetry_out: dict | None) -> PathResult:
    """Train, SIGKILL inside the save of the middle checkpoint, resume, gate; check each part."""
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.engine.run.store import find_run, list_checkpoints, read_effective_status
    from tunedeck.engine.run.summary import metrics

    res = PathResult(spec.name)
    save = max(steps // 3, 1)
    kill_at = 2 * save
    sets = common_sets(a, steps, save, gpu) + spec.sets
    args = [
        "run",
        "lora",
        "--data",
        str(a.data),
        "--workspace",
        str(ws),
        "--name",
        spec.name.split()[0].lower(),
        "--detach",
    ]
    for s in sets:
        args += ["--set", s]
    t0 = time.perf_counter()
    run = None
    sampler = None
    try:
        started = tunedeck(args, env={"TUNEDECK_TEST_KILL_IN_SAVE_AT_STEP": str(kill_at)})
        if started.returncode:
            raise RuntimeError(f"tunedeck run refused: {(started.stderr or started.stdout).strip()[-600:]}")
        run = find_run(ws, started.stdout.strip().splitlines()[0])
        res.run_dir = str(run)
        if telemetry_out is not None:
            sampler = Sampler(run)
            sampler.start()
        wait_for(lambda: read_effective_status(run).state in C.FINAL_STATES, 600, "the kill inside the save")
        if sampler:
            sampler.halt.set()
            telemetry_out["samples"] = sampler.samples
        first = read_effective_status(run).state
        ckpts = {c.step: c.complete for c in list_checkpoints(run)}
        res.checks["killed in the save"] = (
            first == C.CRASHED and ckpts.get(save) is True and ckpts.get(kill_at) is False
        )
        if first != C.CRASHED:
            raise RuntimeError(f"the first launch ended {first}, not killed at step {kill_at}: {_last_error(run)}")
        resumed = tunedeck(["resume", run.name, "--workspace", str(ws)], timeout=900)
        res.checks["resumed from the checkpoint before"] = f"resumed from step {save}" in resumed.stdout
        state = read_effective_status(run).state
        res.checks["finished after resume"] = resumed.returncode == 0 and state == C.COMPLETED
        if state != C.COMPLETED:
            raise RuntimeError(f"the resume ended {state}: {_last_error(run)}")
        losses = metrics(run)["train_loss"]
        res.losses = {int(k): v for k, v in sorted(losses.items())}
        values = list(res.losses.values())
        res.checks["every step logged"] = sorted(res.losses) == list(range(1, steps + 1))
        res.checks["finite losses"] = bool(values) and all(math.isfinite(v) for v in values)
        k = max(len(values) // 5, 1)
        res.checks["falling loss"] = bool(values) and statistics.mean(values[-k:]) < statistics.mean(values[:k])
        done = [c.step for c in list_checkpoints(run) if c.complete]
        res.checks["checkpoints complete"] = done == list(range(save, steps + 1, save))
        gate = read_gate_summary(run)
        examples = sum(s.examples or 0 for s in gate.sets) if gate is not None else 0
        judged = sorted(r.checkpoint for r in gate.rows if not r.is_base) if gate is not None else []
        res.gate = {
            "verdict": gate.verdict if gate is not None else None,
            "examples": examples,
            "checkpoints": judged,
            "seconds": gate.context.get("seconds") if gate is not None else None,
        }
        res.checks["gate judged every checkpoint"] = judged == done and examples == (32 if gpu else 8)
        warnings = [e.get("message") for e in read_events(run / C.EVENTS_JSONL) if e.get("kind") == C.EV_WARNING]
        res.status = "ok" if all(res.checks.values()) else "failed"
        res.reason = "; ".join(f"{n}: no" for n, ok in res.checks.items() if not ok) or (
            f"{len(warnings)} warnings, first: {warnings[0][:160]}" if warnings else ""
        )
    except Exception as exc:  # noqa: BLE001 - one path's failure never stops the others
        res.status, res.reason = "failed", f"{type(exc).__name__}: {str(exc).strip()[:600]}"
        kill_engine(run)
    finally:
        if sampler:
            sampler.halt.set()
        res.seconds = round(time.perf_counter() - t0, 1)
    return res


def _last_error(run: Path) -> str:
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.event_log import read_events

    errors = [e for e in read_events(run / C.EVENTS_JSONL) if e.get("kind") == C.EV_ERROR]
    if errors:
        return errors[-1].get("message", "")[:600]
    log = run / "engine.log"
    return log.read_text(errors="replace")[-600:] if log.exists() else "no error recorded"


# ---- telemetry -------------------------------------------------------------------------------------


def engine_samples(run_dir: str) -> dict:
    """The 'sample' events the engine's heartbeat wrote (what the monitor shows for a recorded run)."""
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.event_log import read_events

    if not run_dir or not (Path(run_dir) / C.EVENTS_JSONL).exists():
        return {"events": 0}
    evs = [e for e in read_events(Path(run_dir) / C.EVENTS_JSONL) if e.get("kind") == C.EV_SAMPLE]
    with_gpu = [e for e in evs if e.get("gpus")]
    return {
        "events": len(evs),
        "with_gpu_readings": len(with_gpu),
        "gpu_unavailable": next((e.get("gpu_unavailable") for e in evs if e.get("gpu_unavailable")), None),
    }


def telemetry_result(samples: list[dict], gpu: bool) -> dict:
    from tunedeck.engine.observe import telemetry

    if not gpu:
        s = telemetry.sample()
        return {
            "status": "skipped",
            "reason": f"no GPU: the sampler says {s.get('gpu_unavailable')!r}",
            "cpu_fields": sorted(k for k in s if k not in ("gpus", "gpu_unavailable")),
        }
    readings = [g for s in samples for g in (s.get("gpus") or [])]
    if not readings:
        why = next((s.get("gpu_unavailable") for s in samples if s.get("gpu_unavailable")), "no samples taken")
        return {"status": "failed", "reason": f"no NVML readings while the engine trained: {why}"}
    fields = ("name", "util_percent", "mem_used", "mem_total", "temperature_c", "power_w", "power_limit_w", "own_mem")
    missing = [f for f in fields if all(g.get(f) is None for g in readings)]
    # the pane needs these; the rest (and the engine's own memory, which NVML cannot map to a pid
    # inside some containers) degrade to "n/a" there and are listed here
    required = ("name", "util_percent", "mem_used", "mem_total")
    peak = {
        "util_percent": max((g["util_percent"] or 0) for g in readings),
        "mem_used_gib": round(max((g["mem_used"] or 0) for g in readings) / 2**30, 2),
        "engine_mem_gib": round(max((g.get("own_mem") or 0) for g in readings) / 2**30, 2),
        "power_w": max((g["power_w"] or 0) for g in readings),
        "temperature_c": max((g["temperature_c"] or 0) for g in readings),
    }
    bad = [f for f in required if f in missing] + (["util_percent (always 0)"] if peak["util_percent"] <= 0 else [])
    note = f"; not available: {', '.join(missing)}" if missing and not bad else ""
    return {
        "status": "failed" if bad else "ok",
        "samples": len(samples),
        "gpu": readings[0].get("name"),
        "peak": peak,
        "missing_fields": missing,
        "reason": f"missing: {', '.join(bad)}" if bad else note.lstrip("; "),
    }


# ---- throughput: tunedeck against plain TRL --------------------------------------------------------

PLAIN = r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer
rows = [json.loads(l) for l in open(cfg["data"])]
tok = AutoTokenizer.from_pretrained(cfg["model"])
losses = {}
class Rec(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: losses[state.global_step] = logs["loss"]
lora = LoraConfig(**cfg["lora"])
if cfg["mode"] == "defaults":   # what a TRL user gets out of the box, at the same batch and length
    import torch
    model = cfg["model"]
    args = SFTConfig(output_dir=cfg["out"], max_steps=cfg["steps"], per_device_train_batch_size=cfg["batch"],
                     max_length=cfg["max_length"], logging_steps=1, report_to="none", disable_tqdm=True,
                     save_strategy="steps", save_steps=cfg["steps"], include_num_input_tokens_seen="non_padding",
                     seed=42, data_seed=42, **({} if torch.cuda.is_available() else {"bf16": False}))
else:                           # exactly what tunedeck resolved for its run
    import torch
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[cfg["precision"]]
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=dtype, attn_implementation=cfg["attn"])
    args = SFTConfig(**cfg["args"])
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=lora, callbacks=[Rec()])
cpu0 = time.process_time()
out = trainer.train()
print("RESULT " + json.dumps({"runtime": out.metrics["train_runtime"], "cpu": time.process_time() - cpu0,
                              "tokens": trainer.state.num_input_tokens_seen, "losses": losses,
                              "resolved": {"attn": trainer.model.config._attn_implementation,
                                           "activation_checkpointing": trainer.args.activation_checkpointing,
                                           "optim": str(trainer.args.optim), "bf16": trainer.args.bf16,
                                           "padding_free": trainer.args.padding_free,
                                           "liger": trainer.args.use_liger_kernel}}))
"""


def fast_sets(a: Assets, steps: int, gpu: bool) -> list[str]:
    """tunedeck's fastest profile for this model: bf16 LoRA, speed.* on auto, no gradient checkpointing."""
    return [
        f"model.base={a.model}",
        f"optim.max_steps={steps}",
        f"checkpoints.save_steps={steps}",
        f"checkpoints.eval_steps={steps}",
        "checkpoints.logging_steps=1",
        f"optim.batch_size={16 if gpu else 4}",
        "optim.grad_accum=1",
        f"data.max_seq_len={512 if gpu else 256}",
        "data.val_fraction=0",
        "gate.when=never",
        f"optim.precision={'bf16' if gpu else 'fp32'}",
        "optim.gradient_checkpointing=off",
        "optim.warmup_ratio=0",
        "lora.r=16",
        "lora.alpha=32",
        "lora.dropout=0",
    ]


def resolved_plain_config(a: Assets, sets: list[str], steps: int, out: Path) -> dict:
    """The plain script's arguments for 'same settings': resolved by the engine's own functions."""
    from tunedeck.engine.config.profile_loading import load_profile
    from tunedeck.engine.models.model_loading import resolve_gradient_checkpointing, resolve_precision
    from tunedeck.engine.training.throughput import resolve_attention, resolve_padding_free, speed_args
    from tunedeck.engine.training.train import warmup_args

    p = load_profile("lora", sets)
    precision = resolve_precision(p)
    o, c = p.optim, p.checkpoints
    from transformers import AutoTokenizer

    from tunedeck.engine.models.model_loading import has_generation_markers

    # TRL's own way to the loss tunedeck computes from its masks: assistant tokens, by the template's markers
    assistant_only = p.data.assistant_only_loss != "off" and has_generation_markers(
        AutoTokenizer.from_pretrained(str(a.model))
    )
    args = dict(
        output_dir=str(out),
        per_device_train_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum,
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.scheduler,
        **warmup_args(o.warmup_ratio),
        weight_decay=o.weight_decay,
        max_steps=o.max_steps,
        max_grad_norm=o.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=resolve_gradient_checkpointing(p),
        seed=o.seed,
        data_seed=o.seed,
        eval_strategy="no",
        save_strategy="steps",
        save_steps=c.save_steps,
        save_total_limit=None,
        logging_steps=c.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        max_length=p.data.max_seq_len,
        packing=p.data.packing,
        padding_free=resolve_padding_free(p),
        assistant_only_loss=assistant_only,
    )
    args.update(speed_args(p, precision))
    import torch

    args["use_cpu"] = not torch.cuda.is_available()
    lora = {
        "r": p.lora.r,
        "lora_alpha": p.lora.alpha,
        "lora_dropout": p.lora.dropout,
        "target_modules": "all-linear",
        "task_type": "CAUSAL_LM",
        "bias": "none",
    }
    return {
        "mode": "same",
        "model": str(a.model),
        "data": str(a.data),
        "precision": precision,
        "attn": resolve_attention(p),
        "args": args,
        "lora": lora,
    }


def run_plain(cfg: dict, timeout: float) -> dict:
    # keep the PYTHONPATH this script was given: on the lent GPU machine the carried packages live there
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        timeout=timeout,
    )
    result_lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not result_lines:
        raise RuntimeError(f"plain TRL ({cfg['mode']}) failed: {proc.stderr.strip()[-800:]}")
    out = json.loads(result_lines[0][7:])
    out["losses"] = {int(k): v for k, v in out["losses"].items()}
    return out


def run_deck(a: Assets, sets: list[str], ws: Path, timeout: float) -> dict:
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import find_run

    args = ["run", "lora", "--data", str(a.data), "--workspace", str(ws), "--name", "speed"]
    for s in sets:
        args += ["--set", s]
    proc = tunedeck(args, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"tunedeck run failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    run = find_run(ws, proc.stdout.strip().splitlines()[0])
    events = read_events(run / C.EVENTS_JSONL)
    end = [e for e in events if e["kind"] == C.EV_TRAIN_END][-1]
    losses = {e["step"]: e["loss"] for e in events if e["kind"] == C.EV_TRAIN}
    return {"runtime": end["train_runtime"], "cpu": end["train_cpu_s"], "tokens": end["tokens_seen"], "losses": losses}


MFU_FORMULA = (
    "tokens/s x model FLOPs per token / bf16 dense peak; FLOPs per token = 4N (LoRA) or 6N (full) "
    "+ 12 L H T, N = every matmul weight and the tied head, T = mean tokens per row"
)


def flops_per_token(shape: dict, tokens_per_row: float, full: bool) -> float:
    """Model FLOPs per trained token: 6N for full fine-tuning, 4N for LoRA (frozen weights need no
    weight gradients), N counting every matmul weight and the tied head, plus 12*L*H*T for attention
    (PaLM's formula, T the mean sequence length)."""
    return (6 if full else 4) * shape["matmul_params"] + 12 * shape["layers"] * shape["hidden"] * tokens_per_row


def peak_tflops(name: str | None) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if name and key.lower() in name.lower():
            return value
    return None


def throughput(
    a: Assets,
    work: Path,
    steps: int,
    rounds: int,
    gpu: bool,
    gpu_name: str | None,
    peak_override: float | None,
    deadline: float = math.inf,
) -> dict:
    sets = fast_sets(a, steps, gpu)
    same = resolved_plain_config(a, sets, steps, work / "plain-same")
    batch, max_len = same["args"]["per_device_train_batch_size"], same["args"]["max_length"]
    defaults = {
        "mode": "defaults",
        "model": str(a.model),
        "data": str(a.data),
        "steps": steps,
        "batch": batch,
        "max_length": max_len,
        "lora": same["lora"],
        "out": str(work / "plain-defaults"),
    }
    runs: dict[str, list[dict]] = {"tunedeck": [], "plain_defaults": [], "plain_same": []}
    errors: dict[str, str] = {}
    for r in range(rounds):
        for name, fn in (
            ("tunedeck", lambda: run_deck(a, sets, work / "ws-speed", 900)),
            ("plain_defaults", lambda: run_plain(defaults, 900)),
            ("plain_same", lambda: run_plain(same, 900)),
        ):
            if name in errors:
                continue
            try:
                runs[name].append(fn())
            except Exception as exc:  # noqa: BLE001
                errors[name] = f"{type(exc).__name__}: {str(exc)[:600]}"
        print(
            f"  throughput round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {x[-1]['tokens'] / x[-1]['runtime']:.0f} tok/s" for n, x in runs.items() if x),
            flush=True,
        )
        if time.perf_counter() > deadline and r + 1 < rounds:
            errors["rounds"] = f"stopped after {r + 1} of {rounds} rounds: over the time budget"
            break
    peak = peak_override or (peak_tflops(gpu_name) if gpu else None)
    out: dict = {
        "steps": steps,
        "rounds": rounds,
        "batch": batch,
        "max_length": max_len,
        "errors": errors,
        "tunedeck_settings": {
            k: same["args"][k]
            for k in (
                "bf16",
                "activation_checkpointing",
                "padding_free",
                "use_liger_kernel",
                "optim",
                "assistant_only_loss",
            )
        }
        | {"attn_implementation": same["attn"]},
        "peak_tflops": peak,
        "mfu_formula": MFU_FORMULA,
    }
    for name, xs in runs.items():
        if not xs:
            continue
        tps = [x["tokens"] / x["runtime"] for x in xs]
        tokens_per_row = xs[0]["tokens"] / (steps * batch)
        fpt = flops_per_token(a.params, tokens_per_row, full=False)
        out[name] = {
            "tokens_per_s": [round(t, 1) for t in tps],
            "median_tokens_per_s": round(statistics.median(tps), 1),
            "tokens": xs[0]["tokens"],
            "runtime_s": [round(x["runtime"], 2) for x in xs],
            "mfu": round(statistics.median(tps) * fpt / (peak * 1e12), 4) if peak else None,
            "resolved": xs[0].get("resolved"),
        }
    if runs["tunedeck"] and runs["plain_defaults"]:
        out["speedup_vs_trl_defaults"] = round(
            statistics.median(
                [
                    d["tokens"] / d["runtime"] / (p["tokens"] / p["runtime"])
                    for d, p in zip(runs["tunedeck"], runs["plain_defaults"])
                ]
            ),
            3,
        )
    if runs["tunedeck"] and runs["plain_same"]:
        out["ratio_vs_same_settings"] = round(
            statistics.median(
                [
                    d["tokens"] / d["runtime"] / (p["tokens"] / p["runtime"])
                    for d, p in zip(runs["tunedeck"], runs["plain_same"])
                ]
            ),
            3,
        )
        out["ratio_vs_same_settings_cpu_s"] = round(
            statistics.median(
                [
                    d["tokens"] / d["cpu"] / (p["tokens"] / p["cpu"])
                    for d, p in zip(runs["tunedeck"], runs["plain_same"])
                ]
            ),
            3,
        )
        same_losses = []
        max_rel = 0.0
        for d, p in zip(runs["tunedeck"], runs["plain_same"]):
            steps_d, steps_p = sorted(d["losses"]), sorted(p["losses"])
            diffs = [
                abs(d["losses"][s] - p["losses"][s]) / max(1.0, abs(p["losses"][s]))
                for s in steps_p
                if s in d["losses"]
            ]
            max_rel = max([max_rel, *diffs])
            same_losses.append(steps_d == steps_p and all(x <= 1e-6 for x in diffs))
        out["losses_identical"] = f"{sum(same_losses)}/{len(same_losses)}"
        out["loss_max_rel_diff"] = max_rel
    return out


# ---- report ------------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "gpu": None,
    }
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_mem_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
            cuda_version=torch.version.cuda,
        )
    import importlib.metadata

    for mod, dist in (
        ("transformers", "transformers"),
        ("trl", "trl"),
        ("peft", "peft"),
        ("accelerate", "accelerate"),
        ("bitsandbytes", "bitsandbytes"),
        ("flash_attn", "flash-attn"),
        ("liger_kernel", "liger-kernel"),
    ):
        if not installed(mod):
            info[mod] = None
            continue
        try:  # the version from the distribution (not every package sets __version__), after an import
            __import__(mod)
            info[mod] = importlib.metadata.version(dist)
        except Exception as exc:  # noqa: BLE001 - a broken install is a finding too
            info[mod] = f"import failed: {type(exc).__name__}: {str(exc)[:120]}"
    return info


def print_table(results: dict) -> None:
    m = results["machine"]
    print()
    print(
        f"tunedeck GPU acceptance: {m.get('gpu') or 'no GPU (CPU plumbing)'}, torch {m['torch']}, "
        f"{results['model'].get('kind')} ({results['model'].get('params', 0) / 1e6:.0f}M parameters), "
        f"{results['seconds']:.0f} s"
    )
    print(f"{'check':<34} {'status':<8} {'time':>6}  details")
    print("-" * 100)
    for p in results["paths"]:
        details = p["reason"]
        if p["status"] == "ok" and p["losses"]:
            vals = list(p["losses"].values())
            details = (
                f"loss {vals[0]:.3f} -> {vals[-1]:.3f}, gate {p['gate'].get('verdict')} on "
                f"{p['gate'].get('examples')} examples x {len(p['gate'].get('checkpoints') or [])} checkpoints"
            )
        print(f"{p['name'][:34]:<34} {p['status']:<8} {p['seconds']:>5.0f}s  {details[:160]}")
    t = results["telemetry"]
    tdetail = (
        t.get("reason")
        if t.get("status") != "ok"
        else (
            f"{t['gpu']}: peak util {t['peak']['util_percent']:.0f}%, "
            f"engine {t['peak']['engine_mem_gib']} GiB, {t['peak']['power_w']:.0f} W, "
            f"{t['peak']['temperature_c']:.0f} C ({t['samples']} samples) {t.get('reason', '')}"
        )
    )
    print(f"{'telemetry (NVML via the sampler)':<34} {t['status']:<8} {'':>6}  {tdetail[:160]}")
    tp = results["throughput"]
    for name, label in (
        ("tunedeck", "tunedeck fastest profile"),
        ("plain_defaults", "plain TRL, TRL defaults"),
        ("plain_same", "plain TRL, tunedeck's settings"),
    ):
        x = tp.get(name)
        if x:
            mfu = f", MFU {x['mfu'] * 100:.1f}%" if x.get("mfu") is not None else ""
            print(
                f"{label:<34} {'ok':<8} {'':>6}  {x['median_tokens_per_s']:.0f} tokens/s (median of "
                f"{len(x['tokens_per_s'])}){mfu}"
            )
        elif name in tp.get("errors", {}):
            print(f"{label:<34} {'failed':<8} {'':>6}  {tp['errors'][name][:160]}")
    for key, msg in tp.get("errors", {}).items():
        if key not in ("tunedeck", "plain_defaults", "plain_same"):
            print(f"{'throughput (' + key + ')':<34} {'failed' if key == 'setup' else 'note':<8} {'':>6}  {msg[:160]}")
    if tp.get("side_by_side_with_the_paths"):
        print("(CPU plumbing: the throughput runs shared the CPU with the path; their ratios are not figures)")
    if "speedup_vs_trl_defaults" in tp:
        print(f"{'speed-up vs TRL defaults':<34} {'':<8} {'':>6}  {tp['speedup_vs_trl_defaults']:.3f}x")
    if "ratio_vs_same_settings" in tp:
        print(
            f"{'engine overhead (same settings)':<34} {'':<8} {'':>6}  ratio {tp['ratio_vs_same_settings']:.3f} "
            f"(goal >= 0.98; per CPU-second {tp['ratio_vs_same_settings_cpu_s']:.3f}), losses identical "
            f"{tp['losses_identical']} (max rel. diff {tp['loss_max_rel_diff']:.1e})"
        )
    print(f"settings tunedeck resolved: {json.dumps(tp.get('tunedeck_settings', {}))}")
    print(f"seconds per phase: {json.dumps(results.get('phase_seconds', {}))}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gpu_acceptance.json", help="JSON file to write (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=30, help="training steps per path (default 30 on GPU, 6 on CPU)")
    ap.add_argument("--bench-steps", type=int, default=0, help="steps per throughput run (default 80 on GPU, 6 on CPU)")
    ap.add_argument("--rounds", type=int, default=0, help="alternating throughput rounds (default 2 on GPU, 1 on CPU)")
    ap.add_argument("--only", default="", help="comma-separated words: run only paths whose name contains one")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of this GPU when its name is not known")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (models, runs) for a look")
    # sized for one lent machine's 10-minute command limit: the last path starts by 360 s, the last
    # throughput round by 450 s, so a slow machine still ends near 8 minutes (every phase is saved)
    ap.add_argument(
        "--total-s",
        type=float,
        default=450.0,
        help="no further throughput round starts after this many seconds (default %(default)s)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=360.0,
        help="paths not started by then are skipped, leaving time for the throughput part (default %(default)s)",
    )
    a = ap.parse_args()

    t0 = time.perf_counter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    m = machine()
    gpu = bool(m["cuda"])
    if not gpu:
        print(
            "no GPU here (torch.cuda.is_available() is False): every GPU path is skipped; running the plumbing "
            "on CPU with a tiny model",
            flush=True,
        )
    steps = a.steps if (gpu or a.steps != 30) else 6
    bench_steps = a.bench_steps or (80 if gpu else 6)
    rounds = a.rounds or (2 if gpu else 1)
    work = Path(tempfile.mkdtemp(prefix="tunedeck-gpu-acceptance-"))
    # "complete" stays false until the end: a file left by a run stopped at its time limit says so
    results: dict = {
        "complete": False,
        "machine": m,
        "model": {},
        "paths": [],
        "telemetry": {},
        "throughput": {},
        "work_dir": str(work),
    }
    out_path, saving = Path(a.out), threading.Lock()

    def save() -> None:
        """The results so far, whole (written aside, then renamed): saved after every phase, so a run
        stopped at its time limit leaves what it measured."""
        with saving:
            results["seconds"] = round(time.perf_counter() - t0, 1)
            tmp = out_path.with_name(out_path.name + ".tmp")
            tmp.write_text(json.dumps(results, indent=2, default=str))
            os.replace(tmp, out_path)

    def stop(signum, frame):  # a time limit's SIGTERM: end through the finally below (save, kill engines)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"building the model and data in {work} ...", flush=True)
        assets = build_assets(work, gpu)
        results["model"] = assets.params
        results["phase_seconds"] = {"model and data": round(time.perf_counter() - t0, 1)}
        specs = gpu_paths() if gpu else []
        if a.only:
            words = [w.strip().lower() for w in a.only.split(",") if w.strip()]
            specs = [s for s in specs if any(w in s.name.lower() for w in words)]

        def measure() -> None:
            print(
                "throughput: tunedeck's fastest profile, plain TRL with its defaults, plain TRL with tunedeck's "
                "settings, alternating ...",
                flush=True,
            )
            t_tp = time.perf_counter()
            try:
                tp = throughput(
                    assets, work, bench_steps, rounds, gpu, m.get("gpu"), a.peak_tflops, deadline=t0 + a.total_s
                )
            except Exception as exc:  # noqa: BLE001
                tp = {"errors": {"setup": f"{type(exc).__name__}: {exc}"}, "traceback": traceback.format_exc(limit=-4)}
            tp["side_by_side_with_the_paths"] = not gpu  # CPU: plumbing, not figures
            with saving:  # on CPU this is another thread than the one saving after each path
                results["throughput"] = tp
                results["phase_seconds"]["throughput"] = round(time.perf_counter() - t_tp, 1)

        # On CPU the figures are plumbing, not measurements: the throughput runs go side by side with
        # the path (two processes at a time on two cores) to keep the whole check near a minute.
        side_by_side = None
        if not gpu and not a.skip_throughput:
            side_by_side = threading.Thread(target=measure, daemon=True)
            side_by_side.start()
        samples: dict = {}
        first = True
        for spec in ([CPU_PATH] if not gpu else []) + specs:
            missing = [n for n in spec.needs if not installed(n)]
            if missing:
                results["paths"].append(asdict(PathResult(spec.name, "skipped", f"{', '.join(missing)} not installed")))
                continue
            if spec.gpus > max(m["gpu_count"], 0 if not gpu else 1):
                results["paths"].append(
                    asdict(
                        PathResult(spec.name, "skipped", f"needs {spec.gpus} GPUs, this machine has {m['gpu_count']}")
                    )
                )
                continue
            if time.perf_counter() - t0 > a.budget_s:
                results["paths"].append(
                    asdict(
                        PathResult(
                            spec.name, "skipped", f"over the time budget ({a.budget_s:.0f} s; run it alone with --only)"
                        )
                    )
                )
                continue
            print(f"path: {spec.name} ...", flush=True)
            res = run_path(spec, assets, work / "ws", steps, gpu, samples if first else None)
            first = False
            print(f"  {res.status} in {res.seconds:.0f}s {res.reason[:200]}", flush=True)
            results["paths"].append(asdict(res))
            save()
        if not gpu:
            for spec in gpu_paths():
                results["paths"].append(asdict(PathResult(spec.name, "skipped", "no GPU")))
        results["phase_seconds"]["paths"] = round(sum(p["seconds"] for p in results["paths"]), 1)
        try:
            results["telemetry"] = telemetry_result(samples.get("samples", []), gpu)
            first_run = next((p["run_dir"] for p in results["paths"] if p.get("run_dir")), "")
            t = results["telemetry"]
            t["engine_sample_events"] = engine_samples(first_run)
            if gpu and t["status"] == "ok" and not t["engine_sample_events"].get("with_gpu_readings"):
                t["status"], t["reason"] = (
                    "failed",
                    "the engine's own sample events (the monitor's source) carry no GPU readings",
                )
        except Exception as exc:  # noqa: BLE001
            results["telemetry"] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        if side_by_side is not None:
            side_by_side.join()
        elif not a.skip_throughput:
            measure()
        results["complete"] = True
    finally:
        kill_engines_under(work)
        save()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
