"""GRPO's pre-flight: its rewards, its prompts and its batch, checked before a run exists.

- [rewards] checks go through the gate's check registry (python scorers imported, schema files read);
  a mistake names the profile file, its line and the key (rewards.checks[i].option).
- Every prompt that a reference-comparing check scores has a reference, and each reference is one the
  check can use (a json_equal reference must be JSON); a mistake names the data file and line.
- The completions of one optimiser step split into whole groups: batch_size x grad_accum x processes
  is a multiple of method.grpo_num_generations (TRL's rule, said in the profile's words).
- vLLM only where it can run; prompts that leave no room for a completion within data.max_seq_len are
  a warning with the first line.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunedeck.engine.config.profile_loading import key_source
from tunedeck.engine.data.grpo_prompts import reference_of
from tunedeck.engine.gate.rewards import RewardSpecError, check_references, missing_references
from tunedeck.engine.run.reward_history import describe_rewards
from tunedeck.engine.training.grpo import reward_checks, vllm_installed


class GrpoPreflightError(ValueError):
    pass


def _where(ref, key: str, overrides, workspace) -> str:
    try:
        file, line = key_source(ref, key, overrides, workspace)
    except Exception:  # noqa: BLE001 - the profile loaded a moment ago; a message without a line is still right
        return ""
    return f"{file}:{line}: " if file and line else (f"{file}: " if file else "")


def check_rewards(profile, prepared, profile_ref, overrides, workspace=None) -> list:
    """The reward checks, parsed as training will parse them, against the data's references."""
    r = profile.rewards
    r.scorer_dir = str(Path(r.scorer_dir or os.getcwd()).expanduser().resolve())  # the engine runs elsewhere
    try:
        checks = reward_checks(profile)  # as training will parse them
    except RewardSpecError as e:
        raise GrpoPreflightError(f"{_where(profile_ref, 'rewards.checks', overrides, workspace)}{e}") from None
    rows = prepared.train_rows + prepared.eval_rows
    where = prepared.train_where + prepared.eval_where
    refs = [reference_of(row) for row in rows]
    missing = missing_references(checks, refs[: len(prepared.train_rows)])  # held-out rows without one are not scored
    if missing:
        check, idx = missing
        first = ", ".join(where[i] for i in idx[:3]) + (f" (and {len(idx) - 3} more)" if len(idx) > 3 else "")
        raise GrpoPreflightError(
            f"reward {check.name} ({check.type}) compares each completion with the prompt's reference "
            f"answer, but {len(idx)} training prompts have none: {first}. Give them one (a last "
            "assistant turn, a completion or an output), or a check a prompt alone can score"
        )
    bad = check_references(checks, refs)
    if bad:
        message, i = bad
        raise GrpoPreflightError(f"{where[i]}: {message}")
    m, o = profile.method, profile.optim
    processes = max(profile.resources.processes, 1)
    per_step = o.batch_size * o.grad_accum * processes
    if per_step % m.grpo_num_generations:
        raise GrpoPreflightError(
            f"method.grpo_num_generations = {m.grpo_num_generations} "
            "must divide the completions of one optimiser step, "
            "optim.batch_size x optim.grad_accum x processes = "
            f"{o.batch_size} x {o.grad_accum} x {processes} = {per_step}: "
            f"each prompt's completions are compared within one step"
        )
    if m.grpo_use_vllm == "on":
        if not vllm_installed():
            raise GrpoPreflightError("method.grpo_use_vllm = 'on' needs vLLM (pip install vllm) on a GPU machine")
        import torch

        if not torch.cuda.is_available():
            raise GrpoPreflightError(
                "method.grpo_use_vllm = 'on' needs a GPU; without one, completions are sampled "
                "with transformers (set it to 'auto' or 'off')"
            )
    return checks


def check_prompts(profile, prepared, tokenizer, warnings: list[str]) -> str:
    """Prompts render under the model's template (a string prompt raw, or as a user turn); returns what
    GRPO trains on, in words, for the run record."""
    from tunedeck.engine.data.loss_masks import resolve_apply_chat_template

    d, m = profile.data, profile.method
    d.apply_chat_template = resolve_apply_chat_template(d.apply_chat_template, tokenizer)  # frozen as on/off
    rows = prepared.train_rows + prepared.eval_rows
    where = prepared.train_where + prepared.eval_where
    kinds = {isinstance(r["prompt"], str) for r in rows}
    if len(kinds) > 1:
        i = next(i for i, r in enumerate(rows) if isinstance(r["prompt"], str) != isinstance(rows[0]["prompt"], str))
        raise GrpoPreflightError(
            f"{where[i]}: the prompts mix chat messages and plain strings, and "
            "data.apply_chat_template = 'off' leaves strings raw; write them one way"
        )
    budget = d.max_seq_len - m.grpo_max_completion_length
    long_rows = []
    for i, row in enumerate(prepared.train_rows):
        prompt = row["prompt"]
        try:
            if isinstance(prompt, str):
                n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            else:
                n = len(
                    tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
                        "input_ids"
                    ]
                )
        except Exception as e:  # noqa: BLE001 - a template that cannot render a prompt is the data's line, not a traceback
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise GrpoPreflightError(
                f"{prepared.train_where[i]}: the model's chat template cannot render this prompt: {first}"
            ) from None
        if n > budget:
            long_rows.append(i)
    if long_rows:
        warnings.append(
            f"{len(long_rows)} prompts leave fewer than method.grpo_max_completion_length = "
            f"{m.grpo_max_completion_length} tokens within data.max_seq_len = {d.max_seq_len} (first at "
            f"{prepared.train_where[long_rows[0]]}); GRPO does not cut prompts, so they take more memory"
        )
    return (
        f"the completions the model samples ({m.grpo_num_generations} per prompt, at most "
        f"{m.grpo_max_completion_length} tokens), rewarded by {describe_rewards(profile.rewards.checks)}"
    )
