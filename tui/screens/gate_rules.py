"""Edit a run's gate rules and re-judge its checkpoints from the recorded results (no model, no retraining).

One input per rule, filled with the values the current verdicts used. Saving returns the changed
ones as `gate.KEY=VALUE` overrides; the checkpoints screen applies them the way `tunedeck gate
--set` does (engine/commands/gate.py, rejudge), which validates them and records them in gate.json.
"""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

# the rules a verdict can be rebuilt with from recorded results (generation settings need `tunedeck eval`)
RULE_KEYS = (
    "task_metric",
    "min_task_gain",
    "significance",
    "max_format_drop",
    "max_safety_drop",
    "max_general_drop",
    "latency_p95_ms",
    "max_weird_share",
    "min_judge_agreement",
)


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def changed_overrides(current: dict, typed: dict[str, str]) -> list[str]:
    """gate.KEY=VALUE for each input whose text differs from the value in force."""
    out = []
    for key, text in typed.items():
        text = text.strip()
        if text and text != _shown(current.get(key)):
            out.append(f"gate.{key}={text}")
    return out


class GateRulesScreen(ModalScreen[list[str] | None]):
    BINDINGS = [
        Binding(
            "ctrl+s", "save", "Re-judge", tooltip="Re-judge every checkpoint with these rules", id="gate_rules.save"
        ),
        Binding("escape", "cancel", "Cancel", tooltip="Close without changing anything", id="gate_rules.cancel"),
    ]

    def __init__(self, rules: dict, overrides: list[dict] | None = None) -> None:
        super().__init__()
        self.rules = dict(rules)
        self.overrides = list(overrides or [])

    def compose(self) -> ComposeResult:
        with Vertical(id="gate-rules-dialog"):
            yield Static(
                "Gate rules: change any and press ctrl+s to re-judge every checkpoint from its recorded "
                "results (task_metric: pass_rate, chrf, bleu, rouge_l or token_f1).",
                markup=False,
            )
            if self.overrides:
                changed = ", ".join(f"{o['key']} (run.toml: {_shown(o.get('was'))})" for o in self.overrides)
                yield Static(f"Already changed after training: {changed}", markup=False, classes="dim")
            with VerticalScroll():
                for key in RULE_KEYS:
                    with Horizontal(classes="rule-row"):
                        yield Label(key)
                        yield Input(_shown(self.rules.get(key, "")), id=f"rule-{key}")
            with Horizontal(id="gate-rules-buttons"):
                yield Button("Re-judge (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def typed(self) -> dict[str, str]:
        return {key: self.query_one(f"#rule-{key}", Input).value for key in RULE_KEYS}

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def action_save(self) -> None:
        self.dismiss(changed_overrides(self.rules, self.typed()))

    def action_cancel(self) -> None:
        self.dismiss(None)
