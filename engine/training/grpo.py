"""GRPO in a run: TRL's GRPOTrainer with rewards from the gate's checks, and what the run shows of it.

- Data: canonical GRPO rows (engine/data/grpo_prompts.py) become TRL's "prompt" column and a "reference"
  column, which TRL hands to the reward functions.
- Rewards: engine/gate/rewards.py turns [rewards] checks into TRL reward functions and weights.
- The profile sets num_generations, max_completion_length, beta (KL; 0 loads no reference model), the
  temperature, the loss type and vLLM generation (on a GPU, colocated with training, when installed).
- TRL gets no eval set: its GRPO evaluation samples num_generations completions per held-out prompt;
  the gate scores the held-out prompts instead, at every checkpoint or at the end.
- RewardsWatch, called by RunCallback: at each train log the live samples (the latest completions with
  their rewards) and the reward guard (engine/training/reward_guard.py); after each in-training gate,
  the held-out task score for the guard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tunedeck.engine.data.grpo_prompts import reference_of
from tunedeck.engine.gate.rewards import RewardCheck, parse_reward_checks, reward_functions
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary
from tunedeck.engine.run.reward_history import RewardHistory, read_reward_history
from tunedeck.engine.training.completion_window import CompletionWindow
from tunedeck.engine.training.reward_guard import Alert, RewardGuard, emit_alerts

# Keys of TRL's GRPO logs that the train events carry (and the monitor's rewards pane reads), besides the
# per-check rewards/<name>/mean and /std and the completions/ statistics.
LOGGED = ("reward", "reward_std", "frac_reward_zero_std", "kl", "entropy")
# Arguments of the common TrainingArguments that GRPOConfig has no use for (or counts itself).
NOT_FOR_GRPO = ("max_length", "include_num_input_tokens_seen", "eval_steps", "per_device_eval_batch_size")


def reward_log_fields(logs: dict) -> dict:
    """The GRPO metrics of one Trainer log, for the train event."""
    return {
        k: v
        for k, v in logs.items()
        if (k in LOGGED or k.startswith(("rewards/", "completions/")))
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
    }


def trl_rows(rows: list[dict]) -> list[dict]:
    """TRL's dataset rows: the prompt (messages or a string) and the reference answer (None without one)."""
    return [{"prompt": row["prompt"], "reference": reference_of(row)} for row in rows]


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def use_vllm(profile) -> bool:
    """method.grpo_use_vllm resolved: on, or auto when vLLM is installed and a GPU is present."""
    setting = profile.method.grpo_use_vllm
    if setting != "auto":
        return setting == "on"
    if not vllm_installed():
        return False
    import torch

    return torch.cuda.is_available()


def reward_checks(profile) -> list[RewardCheck]:
    """[rewards] checks parsed by the gate's registry (pre-flight has already reported any mistake)."""
    judge = None
    if profile.gate.judge_url:
        from tunedeck.engine.gate.judge_client import Judge

        judge = Judge(profile.gate.judge_url, profile.gate.judge_model)
    base_dir = Path(profile.rewards.scorer_dir) if profile.rewards.scorer_dir else None
    return parse_reward_checks(profile.rewards.checks, base_dir, judge)


def grpo_args(profile, common: dict, weights: list[float], vllm: bool) -> dict:
    m = profile.method
    args = {k: v for k, v in common.items() if k not in NOT_FOR_GRPO}
    args.update(
        eval_strategy="no",
        num_generations=m.grpo_num_generations,
        max_completion_length=m.grpo_max_completion_length,
        beta=m.grpo_beta,
        temperature=m.grpo_temperature,
        loss_type=m.grpo_loss_type,
        reward_weights=weights,
        log_completions=False,
        use_vllm=vllm,
        # Liger's fused GRPO loss supports fewer loss types than TRL's: only when asked for by name
        use_liger_kernel=profile.speed.liger_kernel == "on",
    )
    if vllm:
        args.update(vllm_mode="colocate")
    return args


def build_grpo_trainer(
    profile, data, common: dict, model, tokenizer, peft_config, callbacks: list, watch: "RewardsWatch", wrap: Callable
):
    """The GRPOTrainer; `wrap` adds tunedeck's NaN guard and test faults to the trainer class."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(**grpo_args(profile, common, watch.weights, use_vllm(profile)))
    return wrap(GRPOTrainer)(
        model=model,
        reward_funcs=watch.functions,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(data.train_rows)),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


class RewardsWatch:
    """The reward functions of a run, what they saw, and the guard over them."""

    def __init__(self, run_dir: Path, profile, checks: list[RewardCheck], history: RewardHistory | None = None):
        self.run_dir, self.profile = Path(run_dir), profile
        self.window = CompletionWindow([c.name for c in checks], [c.weight for c in checks])
        self.functions, self.weights = reward_functions(checks, self.window.on_scored)
        self.guard = RewardGuard.for_profile(profile, history)
        self.sample_prompts = profile.checkpoints.sample_prompts

    @classmethod
    def for_run(cls, run_dir: Path, profile) -> "RewardsWatch":
        """With the guard's memory of what the run logged before (a resumed run)."""
        return cls(run_dir, profile, reward_checks(profile), read_reward_history(run_dir))

    def on_log(self, step: int, logs: dict, events, request_stop: Callable[[str], None]) -> None:
        if not isinstance(logs.get("reward"), (int, float)):
            return
        if self.sample_prompts and self.window.latest:
            events.emit(C.EV_LIVE_SAMPLES, step=step, samples=self.window.samples(self.sample_prompts))
        self._raise(self.guard.add_window(step, logs), events, request_stop)

    def on_gate(self, step: int, summary: GateSummary | None, events, request_stop: Callable[[str], None]) -> None:
        """After the gate judged checkpoint `step` during training: its held-out task score."""
        alerts: list[Alert] = []
        for row in summary.rows if summary is not None else []:
            if row.task is not None and (row.is_base or row.checkpoint == step):
                alerts += self.guard.add_task(row.checkpoint, row.task)
        self._raise(alerts, events, request_stop)

    def _raise(self, alerts: list[Alert], events, request_stop: Callable[[str], None]) -> None:
        if not alerts:
            return
        common = self.window.most_common()
        extra = ""
        if any(a.code == C.COMPLETION_COLLAPSE for a in alerts) and common:
            text = " ".join(common[0].split())
            extra = f" (latest batch: {common[1]} of {len(self.window.latest)} completions were {text[:60]!r})"
        emit_alerts(alerts, self.run_dir, self.profile, events, extra)
        if self.profile.rewards.on_alert == "stop":
            request_stop(f"reward guard: {alerts[0].code}")
