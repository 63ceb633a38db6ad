"""The events worth a line in the monitor's log tail: warnings, errors, checkpoints, gate results,
state changes and control requests. Train, eval and sample events are drawn, not listed."""

from __future__ import annotations

from dataclasses import dataclass

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import BASELINE

from .formatting import fmt_clock, fmt_loss, is_number
from .gate_results import FAILING, PASSING, verdict_word

INFO, GOOD, WARNING, ERROR = "info", "good", "warning", "error"


@dataclass(frozen=True)
class EventLine:
    t: float | None
    severity: str
    text: str

    def clock(self) -> str:
        return fmt_clock(self.t, "%H:%M:%S")


def _num(x, spec: str) -> str:
    return format(x, spec) if is_number(x) else "-"


def describe(ev: dict) -> EventLine | None:
    kind = ev.get("kind")
    t = ev.get("t") if is_number(ev.get("t")) else None
    if kind == C.EV_WARNING:
        return EventLine(t, WARNING, f"warning: {ev.get('message')}")
    if kind == C.EV_ERROR:
        step = f" at step {ev['step']}" if ev.get("step") is not None else ""
        return EventLine(t, ERROR, f"error{step}: {ev.get('message')}")
    if kind == C.EV_CHECKPOINT:
        ev_loss = f" (eval loss {fmt_loss(ev.get('eval_loss'))})" if is_number(ev.get("eval_loss")) else ""
        return EventLine(t, GOOD, f"checkpoint-{ev.get('step')} saved{ev_loss}")
    if kind == C.EV_CHECKPOINT_PRUNED:
        return EventLine(t, INFO, f"checkpoint-{ev.get('step')} pruned")
    if kind == C.EV_GATE:
        if ev.get("sentence"):
            return EventLine(t, _gate_severity(ev.get("verdict")), f"gate: {ev['sentence']}")
        if ev.get("phase") == "start":
            ckpts = ev.get("checkpoints") or []
            return EventLine(t, INFO, f"gate started: {len(ckpts)} checkpoint(s) against the base model"
                             + (f" on {ev['examples']} examples" if ev.get("examples") else ""))
        if ev.get("checkpoint") is None:
            return None
        scores = ", ".join(f"{k} {_num(ev.get(k), '.1f')}%" for k in ("task", "format", "safety") if ev.get(k) is not None)
        if ev.get("latency_p95_ms") is not None:
            scores += (", " if scores else "") + f"p95 {_num(ev.get('latency_p95_ms'), '.0f')} ms"
        reasons = ev.get("reasons") or []
        why = f" — {'; '.join(map(str, reasons))}" if reasons else ""
        who = "base model" if ev["checkpoint"] == "base" else f"checkpoint-{ev['checkpoint']}"
        return EventLine(t, _gate_severity(ev.get("verdict")),
                         f"gate {who}: {verdict_word(ev.get('verdict'))}" + (f" ({scores})" if scores else "") + why)
    if kind == C.EV_STATE:
        msg = f": {ev['message']}" if ev.get("message") else ""
        return EventLine(t, INFO, f"engine {ev.get('state')}{msg}")
    if kind == C.EV_RUN_STARTED:
        resumed = f", resumed from step {ev['resumed_from']}" if ev.get("resumed_from") is not None else ""
        return EventLine(t, INFO, f"training {ev.get('total_steps')} steps{resumed}")
    if kind == C.EV_RESUMED:
        return EventLine(t, INFO, f"resumed from step {ev.get('from_step')}: later points are superseded")
    if kind == C.EV_CONTROL:
        return EventLine(t, INFO, f"{ev.get('request')} request handled at step {ev.get('step')}")
    if kind == C.EV_DONE:
        state = ev.get("state")
        sev = GOOD if state == C.COMPLETED else ERROR if state == C.FAILED else INFO
        msg = f": {ev['message']}" if ev.get("message") else ""
        return EventLine(t, sev, f"run {state}{msg}")
    return None


def _gate_severity(verdict) -> str:
    v = str(verdict or "").lower()
    return GOOD if v in PASSING else ERROR if v in FAILING else INFO if v == BASELINE else WARNING
