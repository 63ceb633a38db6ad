"""Re-judging without retraining: `--set gate.KEY=VALUE` on `tunedeck eval` and `tunedeck gate`.

A run's profile is frozen at launch (run.toml), but its gate's rules are a decision about the
results, not about training, so they may change afterwards. Overrides are validated like any
profile key, recorded in evals/gate.json as {"key", "value", "was"} and stay in force for later
`tunedeck gate` calls and the app (a review label rebuilding the verdict) until set again or
dropped with --reset. Only [gate] keys may change; keys that change what the models generate
(prompts, sets, generation settings) need `tunedeck eval`, which generates again.
"""

from __future__ import annotations

import copy

from tunedeck.engine.config.profile_loading import ProfileError, parse_override, profile_from_dict
from tunedeck.engine.config.profile_schema import ALL_KEYS

# keys whose change means new generations; `tunedeck gate` (no model) cannot honour them
GENERATION_KEYS = frozenset(
    {
        "golden",
        "safety",
        "general",
        "base_system_prompt",
        "base_prompts",
        "base_few_shot",
        "max_new_tokens",
        "batch_size",
        "temperature",
        "top_p",
        "judge_url",
        "judge_model",
        "when",
    }
)


def parse(items: list[str]) -> list[tuple[str, object]]:
    """[(gate key name, value)] from KEY=VALUE items; ProfileError for anything else."""
    out = []
    for item in items:
        key, value = parse_override(item)
        if not key.startswith("gate."):
            raise ProfileError(
                f"--set {key}: only [gate] keys can change after training "
                f"(e.g. gate.min_task_gain=5); the run's other settings are fixed in its run.toml"
            )
        if key not in ALL_KEYS:
            from tunedeck.engine.config.profile_loading import suggest_key

            raise ProfileError(f"--set {key}: unknown key{suggest_key(key, 'gate')}", key=key)
        out.append((key.split(".", 1)[1], value))
    return out


def merge(previous: list[dict] | None, new: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The overrides in force: the recorded ones, then the new ones (a key set again replaces its value)."""
    merged = {o["key"].split(".", 1)[1]: o["value"] for o in previous or [] if isinstance(o, dict) and "key" in o}
    for name, value in new:
        merged[name] = value
    return list(merged.items())


def apply(profile, overrides: list[tuple[str, object]]):
    """(a copy of the profile with the overrides applied and validated, [{"key", "value", "was"}])."""
    if not overrides:
        return profile, []
    data = copy.deepcopy(profile.to_dict())
    changes = []
    for name, value in overrides:
        changes.append({"key": f"gate.{name}", "value": value, "was": data["gate"].get(name)})
        data["gate"][name] = value
    try:
        new = profile_from_dict(data, file="--set")
    except ProfileError as e:
        raise ProfileError(str(e).replace("--set: ", "--set ", 1)) from None
    for c in changes:  # the value as validated (an int given for a float key becomes a float)
        c["value"] = getattr(new.gate, c["key"].split(".", 1)[1])
    return new, changes


def generation_changes(new: list[tuple[str, object]]) -> list[str]:
    return [f"gate.{name}" for name, _ in new if name in GENERATION_KEYS]
