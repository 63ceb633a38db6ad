"""Advice on a profile from fine-tuning practice: worth a look, never blocking."""

from __future__ import annotations

from dataclasses import dataclass

from tunedeck.engine.config.profile_schema import Profile


@dataclass
class Hint:
    key: str
    message: str


def hints(profile: Profile, processes: int = 1) -> list[Hint]:
    """Advice from fine-tuning practice: worth a look, never blocking."""
    out = []
    o, m = profile.optim, profile.method
    lr = o.learning_rate
    if m.adapter in ("lora", "qlora"):
        lo, hi, what = 5e-5, 5e-4, "LoRA"
    else:
        lo, hi, what = 1e-5, 5e-5, "full fine-tuning"
    if m.method in ("dpo", "kto", "grpo"):  # preference and RL updates: lower rates are usual
        lo, hi = lo / 10, hi
    if not lo <= lr <= hi:
        out.append(
            Hint(
                "optim.learning_rate",
                f"learning rate {lr:g} is outside the usual {lo:g}-{hi:g} for {what}"
                + ("; too high erases what the base knew, too low barely moves"),
            )
        )
    if o.max_steps < 0 and o.epochs > 4:
        out.append(
            Hint(
                "optim.epochs",
                f"{o.epochs:g} epochs: more than 4 tends to memorise the training set; watch validation loss",
            )
        )
    eff = o.batch_size * o.grad_accum * max(processes, 1)
    if eff < 8 and o.grad_accum == 1:
        out.append(
            Hint(
                "optim.grad_accum", f"effective batch {eff} without accumulation gives noisy updates; raise grad_accum"
            )
        )
    if m.method == "grpo" and profile.gate.when != "each_checkpoint":
        out.append(
            Hint(
                "gate.when",
                "GRPO: the reward guard compares the reward with held-out task scores; with gate.when = "
                '"each_checkpoint" it can warn during training, otherwise only once the run has ended',
            )
        )
    if o.warmup_ratio == 0:
        out.append(
            Hint("optim.warmup_ratio", "no warmup: the first updates at full learning rate can destabilise training")
        )
    if profile.model.trust_remote_code:
        out.append(Hint("model.trust_remote_code", "trust_remote_code is on: the model's own Python code will run"))
    if m.adapter == "lora" and profile.lora.alpha < profile.lora.r:
        out.append(
            Hint(
                "lora.alpha",
                f"alpha {profile.lora.alpha} below r {profile.lora.r} scales the adapter down; usually alpha = 2 x r",
            )
        )
    return out
