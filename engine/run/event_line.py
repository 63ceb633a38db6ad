"""One event of events.jsonl as one line of words, worded once: `tunedeck run` and `tunedeck logs -f`
print it, the app's monitor lists it in its log tail.

Each reader picks the kinds it shows (the terminal prints training steps and the gate's sentence; the
app draws training and lists the gate's rows, state changes and control requests instead); the words
of a kind, and how serious its line is, are the same wherever it appears."""

from __future__ import annotations

from dataclasses import dataclass

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.formatting import fmt_clock, fmt_loss, fmt_number, fmt_sci, is_number
from tunedeck.engine.run.gate_result import BASELINE, FAIL, PASS, VERDICT_WORDS

INFO, GOOD, WARNING, ERROR = "info", "good", "warning", "error"


@dataclass(frozen=True)
class EventLine:
    t: float | None  # the event's time, None when it has none
    severity: str  # INFO, GOOD, WARNING or ERROR: the app colours by it
    text: str

    def clock(self) -> str:
        return fmt_clock(self.t, "%H:%M:%S")


def event_line(ev: dict, total_steps: int | None = None) -> EventLine | None:
    """The line of one event, or None for a kind that has none (samples, live samples, the end of
    training) or a gate event that says nothing yet (progress). `total_steps` (from run_started) gives a
    training step its "/N"."""
    kind = ev.get("kind")
    t = ev.get("t") if is_number(ev.get("t")) else None
    text = _text(kind, ev, total_steps)
    return None if text is None else EventLine(t, _severity(kind, ev), text)


def _text(kind, ev: dict, total_steps: int | None) -> str | None:
    if kind == C.EV_TRAIN:
        tot = f"/{total_steps}" if total_steps else ""
        tps = f"  {ev['tokens_per_s']:.0f} tok/s" if is_number(ev.get("tokens_per_s")) else ""
        reward = f"  reward {ev['reward']:.3f}" if is_number(ev.get("reward")) else ""  # GRPO
        return (
            f"step {ev.get('step')}{tot}  loss {fmt_loss(ev.get('loss'))}  lr {fmt_sci(ev.get('learning_rate'))}"
            f"  grad {fmt_number(ev.get('grad_norm'), '.3f')}{tps}{reward}"
        )
    if kind == C.EV_EVAL:
        return f"step {ev.get('step')}  eval loss {fmt_loss(ev.get('eval_loss'))}"
    if kind == C.EV_WARNING:
        return f"warning: {ev.get('message')}"
    if kind == C.EV_ERROR:  # the engine's messages name their step or checkpoint themselves
        return f"error: {ev.get('message')}"
    if kind == C.EV_CHECKPOINT:
        ev_loss = f" (eval loss {fmt_loss(ev.get('eval_loss'))})" if is_number(ev.get("eval_loss")) else ""
        return f"checkpoint-{ev.get('step')} saved{ev_loss}"
    if kind == C.EV_CHECKPOINT_PRUNED:
        return f"checkpoint-{ev.get('step')} pruned"
    if kind == C.EV_GATE:
        return _gate_text(ev)
    if kind == C.EV_STATE:
        msg = f": {ev['message']}" if ev.get("message") else ""
        return f"engine {ev.get('state')}{msg}"
    if kind == C.EV_RUN_STARTED:
        resumed = f" (resumed from step {ev['resumed_from']})" if ev.get("resumed_from") is not None else ""
        return f"training: {ev.get('total_steps')} steps{resumed}"
    if kind == C.EV_RESUMED:
        return f"resumed from step {ev.get('from_step')}: later points are superseded"
    if kind == C.EV_CONTROL:
        return f"{ev.get('request')} request handled at step {ev.get('step')}"
    if kind == C.EV_DONE:
        msg = f": {ev['message']}" if ev.get("message") else ""
        return f"run {ev.get('state')}{msg}"
    return None


def _gate_text(ev: dict) -> str | None:
    """The gate's summary sentence, its start, or one row's verdict with its scores and reasons."""
    if ev.get("sentence"):
        return f"gate: {ev['sentence']}"
    if ev.get("phase") == "start":
        ckpts = ev.get("checkpoints") or []
        return f"gate started: {len(ckpts)} checkpoint(s) against the base model" + (
            f" on {ev['examples']} examples" if ev.get("examples") else ""
        )
    if ev.get("checkpoint") is None:
        return None
    scores = ", ".join(
        f"{k} {fmt_number(ev.get(k), '.1f')}%" for k in ("task", "format", "safety") if ev.get(k) is not None
    )
    if ev.get("latency_p95_ms") is not None:
        scores += (", " if scores else "") + f"p95 {fmt_number(ev.get('latency_p95_ms'), '.0f')} ms"
    reasons = ev.get("reasons") or []
    why = f" — {'; '.join(map(str, reasons))}" if reasons else ""
    who = "base model" if ev["checkpoint"] == "base" else f"checkpoint-{ev['checkpoint']}"
    verdict = ev.get("verdict") or ""
    return f"gate {who}: {VERDICT_WORDS.get(verdict, verdict)}" + (f" ({scores})" if scores else "") + why


def _severity(kind, ev: dict) -> str:
    if kind == C.EV_WARNING:
        return WARNING
    if kind == C.EV_ERROR:
        return ERROR
    if kind == C.EV_CHECKPOINT:
        return GOOD
    if kind == C.EV_GATE:
        if not ev.get("sentence") and ev.get("phase") == "start":
            return INFO
        v = str(ev.get("verdict") or "").lower()
        return GOOD if v == PASS else ERROR if v == FAIL else INFO if v == BASELINE else WARNING
    if kind == C.EV_DONE:
        state = ev.get("state")
        return GOOD if state == C.COMPLETED else ERROR if state == C.FAILED else INFO
    return INFO
