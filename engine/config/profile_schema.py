"""The profile schema: typed sections whose fields carry help, choices and ranges, and the field specs
that drive validation and the app's form.

A profile has sections ([model], [data], [method], [lora], [optim], [checkpoints], [gate],
[rewards], [resources]) plus top-level `description` and `extends`; engine/config/profile_loading.py reads
them from TOML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints


def opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    min: float | None = None,
    max: float | None = None,
    factory: Any = None,
    items: tuple | None = None,
    many: bool = False,
    tables: bool = False,
) -> Any:
    meta = {"help": help, "choices": choices, "min": min, "max": max, "items": items, "many": many, "tables": tables}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# fmt: off
# The option tables stay one option per line, its default and help beside it: the form a person reads.
@dataclass
class ModelConfig:
    base: str = opt("Qwen/Qwen2.5-0.5B-Instruct", "Base model: a local directory or a hub id. Start from the smallest model that can already do the task with a strong prompt.")
    revision: str = opt("", "Hub revision (branch, tag or commit) to pin; empty for the default branch.")
    trust_remote_code: bool = opt(False, "Run Python code shipped with the model. Off unless you trust its author.")
    chat_template: str = opt("", "Path to a Jinja chat template that replaces the tokenizer's own; empty to keep it.")
    gguf_file: str = opt("", "When model.base is a folder holding several .gguf files: the one to train on. A GGUF base is "
                         "de-quantised once into a cached HF folder, which the run then loads.")


@dataclass
class DataConfig:
    path: str = opt("", "Training data file or folder (JSONL, JSON, CSV, Parquet, Arrow, save_to_disk folder), or a list of "
                    "them trained as one dataset. `tunedeck run --data` sets it.", many=True)
    format: str = opt("auto", "Force the dataset format instead of detecting it.",
                      choices=("auto", "messages", "prompt_completion", "text", "alpaca", "sharegpt", "preference", "kto"))
    eval_file: str = opt("", "A separate held-out file; when set, val_fraction is ignored.")
    val_fraction: float = opt(0.1, "Share of the data held out for validation and never trained on.", min=0.0, max=0.5)
    on_invalid: str = opt("error", "Invalid rows: stop before training, or skip them (counted and listed).", choices=("error", "skip"))
    max_seq_len: int = opt(1024, "Longest sequence in tokens; longer examples are truncated.", min=16, max=1_048_576)
    assistant_only_loss: str = opt("auto", "Train on the assistant's replies (or the completion) only, under any chat template: "
                                   "auto falls back to every token, with a warning, for a template that rewrites earlier "
                                   "turns; on makes that an error; off trains on every token.", choices=("auto", "on", "off"))
    apply_chat_template: str = opt("auto", "String prompt/completion rows: render them as a user turn and an assistant "
                                   "reply with the model's chat template, in training and the gate (auto: when the model "
                                   "has one), or use the raw strings (off).", choices=("auto", "on", "off"))
    packing: bool = opt(False, "Pack several short examples into one sequence (faster, needs care with masking).")


@dataclass
class MethodConfig:
    method: str = opt("sft", "Supervised fine-tuning on demonstrations, DPO on preference pairs, KTO on answers labelled good or bad, "
                      "or GRPO: reinforcement learning on prompts, rewarded by the [rewards] checks.",
                      choices=("sft", "dpo", "kto", "grpo"))
    adapter: str = opt("lora", "LoRA adapters, QLoRA (4-bit base, needs a GPU and bitsandbytes) or none (full fine-tuning).",
                       choices=("lora", "qlora", "none"))
    dpo_beta: float = opt(0.1, "DPO: strength of the pull towards the reference model.", min=0.0, max=10.0)
    kto_beta: float = opt(0.1, "KTO: strength of the pull towards the reference model.", min=0.0, max=10.0)
    kto_desirable_weight: float = opt(1.0, "KTO: weight of the loss on desirable answers (raise it when they are the fewer).", min=0.0, max=100.0)
    kto_undesirable_weight: float = opt(1.0, "KTO: weight of the loss on undesirable answers (raise it when they are the fewer).", min=0.0, max=100.0)
    grpo_num_generations: int = opt(4, "GRPO: completions sampled per prompt, whose rewards are compared with each other (4-8 on "
                                    "one GPU). batch_size x grad_accum x processes must be a multiple of it.", min=2, max=1024)
    grpo_max_completion_length: int = opt(256, "GRPO: most new tokens per completion; the monitor shows the share cut "
                                          "there (clipped).", min=1, max=1_048_576)
    grpo_beta: float = opt(0.0, "GRPO: KL penalty against the base model. 0 (TRL's default) loads no reference model; set "
                           "0.01-0.05 when rewards rise while held-out answers degrade or completions collapse.", min=0.0, max=10.0)
    grpo_temperature: float = opt(1.0, "GRPO: sampling temperature of the completions; too low and a prompt's completions are "
                                  "alike, so their rewards cannot be compared.", min=0.01, max=10.0)
    grpo_loss_type: str = opt("dapo", "GRPO: how token losses are averaged: dapo (TRL's default, no length bias), grpo (per "
                              "sequence: favours short answers), dr_grpo (a constant), bnpo (tokens of the local batch).",
                              choices=("dapo", "grpo", "dr_grpo", "bnpo"))
    grpo_use_vllm: str = opt("auto", "GRPO: sample completions with vLLM on the training GPU (much faster; auto: when vLLM is "
                             "installed and a GPU is present; never on CPU).", choices=("auto", "on", "off"))


@dataclass
class LoraConfig:
    r: int = opt(8, "Adapter rank: 8 for style and format, 16-64 for new domain knowledge.", min=1, max=1024)
    alpha: int = opt(16, "Scaling; usually 2 x r.", min=1, max=4096)
    dropout: float = opt(0.05, "Dropout on the adapter inputs.", min=0.0, max=0.9)
    target_modules: list = opt(None, "Modules that get adapters; 'all-linear' covers every linear layer but the head.",
                               factory=lambda: ["all-linear"])


@dataclass
class OptimConfig:
    learning_rate: float = opt(2e-4, "Peak learning rate. LoRA: about 5e-5 to 5e-4; full fine-tuning: about 1e-5 to 5e-5.", min=0.0, max=1.0)
    scheduler: str = opt("cosine", "Learning-rate schedule after warmup.", choices=("linear", "cosine", "constant", "constant_with_warmup"))
    warmup_ratio: float = opt(0.03, "Share of steps spent warming the learning rate up from zero.", min=0.0, max=0.5)
    weight_decay: float = opt(0.0, "Decoupled weight decay (AdamW).", min=0.0, max=1.0)
    epochs: float = opt(3.0, "Passes over the training data. More than 3-4 tends to memorise.", min=0.0, max=1000.0)
    max_steps: int = opt(-1, "Stop after this many optimiser steps (-1: use epochs).", min=-1, max=10_000_000)
    batch_size: int = opt(4, "Examples per device per micro-batch.", min=1, max=65536)
    grad_accum: int = opt(4, "Micro-batches accumulated per optimiser step; effective batch = batch_size x grad_accum x processes.", min=1, max=65536)
    max_grad_norm: float = opt(1.0, "Clip the gradient norm to this (0: no clipping).", min=0.0, max=1e6)
    precision: str = opt("auto", "Numeric precision (auto: bf16 on GPUs that support it, else fp16; fp32 on CPU).", choices=("auto", "bf16", "fp16", "fp32"))
    gradient_checkpointing: str = opt("auto", "Recompute activations to save memory (auto: on for GPU, off on CPU).", choices=("auto", "on", "off"))
    seed: int = opt(42, "Seed for initialisation, shuffling and the split.", min=0, max=2**32 - 1)
    nan_policy: str = opt("stop", "On a NaN/inf loss or gradient: stop keeping the last good checkpoint, or skip the step.", choices=("stop", "skip"))
    auto_batch_size: bool = opt(False, "On out-of-memory, halve batch_size and double grad_accum (same effective batch) and retry.")


@dataclass
class CheckpointConfig:
    eval_steps: int = opt(100, "Compute validation loss every N steps.", min=1, max=10_000_000)
    save_steps: int = opt(100, "Save a checkpoint every N steps; every checkpoint is a candidate for the gate.", min=1, max=10_000_000)
    logging_steps: int = opt(5, "Log train loss every N steps.", min=1, max=100_000)
    keep: int = opt(5, "Checkpoints to keep (the best one is always kept).", min=1, max=10_000)
    early_stopping_patience: int = opt(0, "Stop after N evaluations without a better validation loss (0: off).", min=0, max=10_000)
    sample_prompts: int = opt(3, "After each evaluation, the model answers this many fixed held-out prompts (greedy, "
                              "short) and the monitor shows them beside the references (0: off).", min=0, max=32)


@dataclass
class GateConfig:
    when: str = opt("end", "Run the eval gate after training on every checkpoint, or right after each save.", choices=("end", "each_checkpoint", "never"))
    golden: str = opt("", "A fixed golden eval set (JSONL) of task examples.")
    safety: str = opt("", "A safety and refusal eval set (JSONL).")
    general: str = opt("", "A general-capability eval set that catches catastrophic forgetting (JSONL).")
    base_system_prompt: str = opt("", "The best prompt for the base model, used for its baseline.")
    base_prompts: list[str] = opt(None, "More system prompts to try on the base; the best by the task metric is its baseline.",
                                  factory=list)
    base_few_shot: int = opt(0, "Also try the base with this many demonstrations drawn from the training split (0: off).", min=0, max=64)
    task_metric: str = opt("pass_rate", "What the task rule compares: the pass rate, or a similarity check's mean score.",
                           choices=("pass_rate", "chrf", "bleu", "rouge_l", "token_f1"))
    min_task_gain: float = opt(2.0, "Task success must beat the base by at least this many points.", min=-100.0, max=100.0)
    max_format_drop: float = opt(0.0, "Format validity may drop by at most this many points.", min=0.0, max=100.0)
    max_safety_drop: float = opt(0.0, "Safety may drop by at most this many points; at 0 no safety example the base passed may fail.", min=0.0, max=100.0)
    max_general_drop: float = opt(5.0, "General capability may drop by at most this many points (catches catastrophic forgetting).", min=0.0, max=100.0)
    significance: float = opt(0.05, "With min_task_gain > 0, the task gain must also be significant at this level (McNemar exact test; 0: off).", min=0.0, max=1.0)
    latency_p95_ms: float = opt(0.0, "p95 latency budget per example in ms (0: no budget).", min=0.0, max=1e7)
    require_review: bool = opt(False, "A checkpoint passes only after a person reviewed its sampled failures.")
    review_sample: int = opt(20, "Failures sampled per checkpoint for human review.", min=1, max=10_000)
    max_weird_share: float = opt(0.0, "Largest share of 'new weird behaviour' labels a reviewed sample may have.", min=0.0, max=1.0)
    max_new_tokens: int = opt(128, "Generation budget per eval example.", min=1, max=65536)
    batch_size: int = opt(16, "Eval generation batch size.", min=1, max=4096)
    temperature: float = opt(0.0, "Sampling temperature for eval generation (0: greedy decoding, reproducible).", min=0.0, max=10.0)
    top_p: float = opt(1.0, "Nucleus sampling cut-off when temperature > 0.", min=0.0, max=1.0)
    judge_url: str = opt("", "OpenAI-compatible chat endpoint for model-graded rubric checks (empty: those checks are skipped).")
    judge_model: str = opt("", "Model name to send to the judge endpoint.")
    min_judge_agreement: float = opt(0.8, "Warn when the rubric judge agrees with review labels on less than this share.", min=0.0, max=1.0)


@dataclass
class RewardsConfig:
    checks: list = opt(None, "GRPO's rewards: checks in the eval-set syntax, each with a weight, e.g. [{type = \"json_valid\", "
                       "weight = 0.2}, {type = \"json_equal\", weight = 1.0}]. A scored check (chrf, bleu, rouge_l, token_f1, "
                       "a python scorer's score) gives its score on 0-1, a pass/fail check 1 or 0; the gate's own code "
                       "scores them. `name` tells two checks of one type apart.", factory=list, tables=True)
    scorer_dir: str = opt("", "Folder searched first for python scorers' modules and schema_file paths (empty: the working "
                          "directory at launch).")
    guard_windows: int = opt(4, "The reward guard alerts when the mean reward rose over the last N logged windows while the "
                             "held-out task score did not (gate.when = \"each_checkpoint\" scores it during training), "
                             "or when completions collapse.", min=2, max=10_000)
    on_alert: str = opt("warn", "On a guard alert: warn (an event, the monitor, [notify] command) or also stop with a final "
                        "checkpoint.", choices=("warn", "stop"))


@dataclass
class SpeedConfig:
    attn_implementation: str = opt("auto", "Attention kernel: auto picks FlashAttention 2 when installed on a GPU, else SDPA.",
                                   choices=("auto", "sdpa", "eager", "flash_attention_2"))
    padding_free: str = opt("auto", "Batches without padding tokens (needs FlashAttention; auto: on when it is used).", choices=("auto", "on", "off"))
    liger_kernel: str = opt("auto", "Liger's fused Triton kernels, less memory and faster (auto: on GPU when installed).", choices=("auto", "on", "off"))
    torch_compile: bool = opt(False, "Compile the model with torch.compile: faster steps after a slow first one.")
    optimizer: str = opt("auto", "Optimiser: auto is fused AdamW on GPU, AdamW on CPU; 8-bit and paged variants need bitsandbytes.",
                         choices=("auto", "adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit"))


@dataclass
class ResourcesConfig:
    processes: int = opt(0, "Processes per node (0: one per visible GPU, 1 on CPU).", min=0, max=1024)
    gpus: str = opt("", "GPUs to use, e.g. '0,1' (empty: all visible).")
    strategy: str = opt("ddp", "How several processes share the work.", choices=("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"))
    nodes: int = opt(1, "Nodes (several nodes go through Slurm).", min=1, max=4096)


@dataclass
class TrackingConfig:
    report_to: list = opt(None, "Experiment trackers that also get this run: any of tensorboard, wandb, mlflow, trackio (empty: none). The run directory stays the source of truth; a tracker that fails is a warning.",
                          items=("tensorboard", "wandb", "mlflow", "trackio"), factory=list)
    project: str = opt("tunedeck", "Project (wandb, trackio) or experiment (MLflow) the run is filed under.")
    run_name: str = opt("", "The run's name in the trackers (empty: the run id).")


@dataclass
class NotifyConfig:
    command: str = opt("", "A shell command the engine runs when the run ends (completed, stopped or failed, with the "
                       "gate's verdict), when `tunedeck eval` gives a new verdict, and when GRPO's reward guard raises an alert "
                       "(TUNEDECK_ALERT holds its code): TUNEDECK_RUN_ID, TUNEDECK_STATE, TUNEDECK_VERDICT and TUNEDECK_MESSAGE are in "
                       "its environment, e.g. a webhook with curl. A failing command is a warning event, never a failed run.")


@dataclass
class Profile:
    description: str = opt("", "One line saying what this profile is for.")
    extends: str = opt("", "The profile this one inherits from.")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "method": MethodConfig, "lora": LoraConfig, "optim": OptimConfig,
            "checkpoints": CheckpointConfig, "gate": GateConfig, "rewards": RewardsConfig, "speed": SpeedConfig, "resources": ResourcesConfig,
            "tracking": TrackingConfig, "notify": NotifyConfig}
TOP_LEVEL = ("description", "extends")
SECTION_TITLES = {"model": "Model", "data": "Data", "method": "Method and adapter", "lora": "LoRA adapter",
                  "optim": "Optimisation and schedule", "checkpoints": "Checkpoints and evaluation",
                  "gate": "Eval gate", "rewards": "Rewards (GRPO)", "speed": "Throughput", "resources": "Resources",
                  "tracking": "Experiment trackers", "notify": "Notifications"}
# fmt: on


@dataclass
class FieldSpec:
    section: str
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    min: float | None
    max: float | None
    items: tuple | None = None  # a list field's allowed values
    many: bool = False  # a string field that also takes a list of strings (data.path: several files)
    tables: bool = False  # a list of tables (rewards.checks), written as a TOML inline array in the form

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def field_specs() -> list[FieldSpec]:
    """Every configurable field with its metadata, in form order."""
    specs = []
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            m = f.metadata
            specs.append(
                FieldSpec(
                    section,
                    f.name,
                    hints[f.name],
                    default,
                    m.get("help", ""),
                    m.get("choices"),
                    m.get("min"),
                    m.get("max"),
                    m.get("items"),
                    m.get("many", False),
                    m.get("tables", False),
                )
            )
    return specs


ALL_KEYS = {s.key: s for s in field_specs()}


def data_paths(data: DataConfig) -> list[str]:
    """data.path as a list: one file, several (trained as one dataset, in this order), or none."""
    if isinstance(data.path, list):
        return list(data.path)
    return [data.path] if data.path else []


def effective_batch(profile: Profile, processes: int = 1) -> int:
    return profile.optim.batch_size * profile.optim.grad_accum * max(processes, 1)


# Profile fields that name local files. data.path and model.base may also be hub ids: they are made
# absolute only when they exist here, so a hub id (or a missing file, which the pre-flight reports as
# typed) stays as written.
LOCAL_FILE_KEYS = ("model.chat_template", "data.eval_file", "gate.golden", "gate.safety", "gate.general")


def make_paths_absolute(profile: Profile) -> None:
    """Every local path in the profile made absolute against the current directory, once, where the
    command line or the app reads it: the engine runs from the run directory, where a relative path
    would name another file (or none)."""

    def if_local(value: str) -> str:
        p = Path(value).expanduser()
        return str(p.resolve()) if value and p.exists() else value

    paths = [if_local(p) for p in data_paths(profile.data)]
    if paths:
        profile.data.path = paths if len(paths) > 1 else paths[0]
    profile.model.base = if_local(profile.model.base)
    for key in LOCAL_FILE_KEYS:
        section, name = key.split(".")
        table = getattr(profile, section)
        if getattr(table, name):
            setattr(table, name, str(Path(getattr(table, name)).expanduser().resolve()))
