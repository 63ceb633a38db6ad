"""The events of events.jsonl: one typed definition per kind.

Each line is one JSON object with "t" (unix time) and "kind" (run/contract.py EV_*), then the kind's
fields below. A float that is not finite is written as its string ("nan", "inf"), so a loss may be
either. The engine writes events with EventWriter.emit(kind, **fields) (run/event_log.py); readers take
them as dicts, since they come from another process and perhaps another version of it, and may rely on
a kind's required fields. tests/engine/run/test_event_types.py checks every event that real runs
write (SFT, DPO, GRPO, a queued run, a gate from the command line) against these definitions.

Two kinds carry open-ended metrics besides their fields: "train" the GRPO metrics TRL names per check
(`rewards/<check>/mean`, `completions/...`) and "eval" the Trainer's own `eval_*` figures
(OPEN_FIELDS).
"""

from __future__ import annotations

from typing import Literal, Union

from typing_extensions import NotRequired, TypedDict

from tunedeck.engine.run import contract as C

Figure = Union[int, float, str]  # a number, or its string when not finite ("nan")


class StateEvent(TypedDict):
    """The engine's life: "starting", "resuming", a queued run's "queued"."""

    t: float
    kind: Literal["state"]
    state: str
    message: str
    pid: NotRequired[int]
    host: NotRequired[str]


class RunStartedEvent(TypedDict):
    t: float
    kind: Literal["run_started"]
    total_steps: int
    step: int
    resumed_from: int | None
    pid: int


class ResumedEvent(TypedDict):
    """Readers drop the metrics logged after `from_step`: training repeats them."""

    t: float
    kind: Literal["resumed"]
    from_step: int


class TrainEvent(TypedDict):
    t: float
    kind: Literal["train"]
    step: int
    epoch: float | None
    loss: Figure | None
    learning_rate: Figure | None
    grad_norm: Figure | None
    tokens_per_s: float | None
    tokens_seen: int | None
    # GRPO (engine/training/grpo.py reward_log_fields), besides the open rewards/ and completions/ figures
    reward: NotRequired[Figure]
    reward_std: NotRequired[Figure]
    frac_reward_zero_std: NotRequired[Figure]
    kl: NotRequired[Figure]
    entropy: NotRequired[Figure]


class EvalEvent(TypedDict):
    t: float
    kind: Literal["eval"]
    step: int
    epoch: float | None
    eval_loss: Figure


class TrainEndEvent(TypedDict):
    t: float
    kind: Literal["train_end"]
    step: int
    train_runtime: float | None
    train_cpu_s: float
    train_loss: Figure | None
    tokens_seen: int | None


class CheckpointEvent(TypedDict):
    t: float
    kind: Literal["checkpoint"]
    step: int
    path: str
    eval_loss: Figure | None
    complete: bool


class CheckpointPrunedEvent(TypedDict):
    t: float
    kind: Literal["checkpoint_pruned"]
    step: int
    path: str
    best_step: NotRequired[int | None]  # removed by the keep-best rule
    reason: NotRequired[str]  # removed by a person


class WarningEvent(TypedDict):
    """`code` names the warning (the reward guard's: contract.REWARD_ALERTS, with `summary`: its figures)."""

    t: float
    kind: Literal["warning"]
    code: str
    message: str
    step: NotRequired[int | None]
    summary: NotRequired[str]
    tracker: NotRequired[str]


class ErrorEvent(TypedDict):
    t: float
    kind: Literal["error"]
    code: str
    message: str
    step: NotRequired[int | None]
    traceback: NotRequired[str]  # the last frames, for an error that is not the user's


class GpuSample(TypedDict):
    index: int
    name: str | None
    util_percent: float | None
    mem_used: int | None
    mem_total: int | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    process_mem: None
    own_mem: int | None  # what the engine's own process holds on this GPU


class SampleEvent(TypedDict):
    """Telemetry (engine/observe/telemetry.py sample), every few seconds while the engine runs."""

    t: float
    kind: Literal["sample"]
    sys_cpu_percent: NotRequired[float]
    sys_mem_used: NotRequired[int]
    sys_mem_total: NotRequired[int]
    cpu_count: NotRequired[int | None]
    cpu_percent: NotRequired[float]  # the engine and its children
    rss_bytes: NotRequired[int]
    gpus: list[GpuSample] | None
    gpu_unavailable: NotRequired[str | None]  # why there are no GPU readings


class ControlEvent(TypedDict):
    t: float
    kind: Literal["control"]
    request: str
    step: int


class GateStartEvent(TypedDict):
    t: float
    kind: Literal["gate"]
    phase: Literal["start"]
    checkpoints: list[int]
    examples: int
    sets: list[str]


class GateProgressEvent(TypedDict):
    t: float
    kind: Literal["gate"]
    phase: Literal["progress"]
    stage: str
    done: int
    total: int


class GateRowEvent(TypedDict):
    """One row of gate.json as it is judged (run/gate_result.py GateRow), the base model's first."""

    t: float
    kind: Literal["gate"]
    phase: Literal["row"]
    checkpoint: int | str
    verdict: str
    task: float | None
    format: float | None
    safety: float | None
    general: float | None
    latency_p95_ms: float | None
    reasons: list[str]
    warnings: list[str]
    task_delta: float | None
    vs_base: dict[str, float | None]
    p_value: float | None
    n: dict[str, int]  # examples counted per category


class GateSummaryEvent(TypedDict):
    t: float
    kind: Literal["gate"]
    phase: Literal["summary"]
    summary: Literal[True]
    checkpoint: int | None  # the best step, as `best`
    best: int | None
    verdict: str
    sentence: str
    rows: int  # checkpoint rows in gate.json


GateEvent = Union[GateStartEvent, GateProgressEvent, GateRowEvent, GateSummaryEvent]
GATE_PHASES = {"start": GateStartEvent, "progress": GateProgressEvent, "row": GateRowEvent, "summary": GateSummaryEvent}


class DoneEvent(TypedDict):
    t: float
    kind: Literal["done"]
    state: str
    message: str


class LiveSample(TypedDict):
    prompt: str
    reference: str | None
    output: str
    new_tokens: int
    # GRPO: the completion's rewards per check, its total and its group's totals
    rewards: NotRequired[dict[str, float]]
    reward: NotRequired[float]
    group_rewards: NotRequired[list[float]]


class LiveSamplesEvent(TypedDict):
    """After each evaluation (GRPO: at each train log), what the model answers a few fixed prompts."""

    t: float
    kind: Literal["live_samples"]
    step: int
    samples: list[LiveSample]


EVENT_TYPES = {
    C.EV_STATE: StateEvent,
    C.EV_RUN_STARTED: RunStartedEvent,
    C.EV_RESUMED: ResumedEvent,
    C.EV_TRAIN: TrainEvent,
    C.EV_EVAL: EvalEvent,
    C.EV_TRAIN_END: TrainEndEvent,
    C.EV_CHECKPOINT: CheckpointEvent,
    C.EV_CHECKPOINT_PRUNED: CheckpointPrunedEvent,
    C.EV_WARNING: WarningEvent,
    C.EV_ERROR: ErrorEvent,
    C.EV_SAMPLE: SampleEvent,
    C.EV_CONTROL: ControlEvent,
    C.EV_GATE: GateEvent,
    C.EV_DONE: DoneEvent,
    C.EV_LIVE_SAMPLES: LiveSamplesEvent,
}

# Figures a kind may carry besides its fields, by the prefix of their names.
OPEN_FIELDS = {C.EV_TRAIN: ("rewards/", "completions/"), C.EV_EVAL: ("eval_",)}

# ---- checking ---------------------------------------------------------------------------------------

CHECK_EVENTS = "TUNEDECK_CHECK_EVENTS"  # set (the tests set it): the writer checks every event against its kind
_adapters: dict = {}


class EventMismatch(ValueError):
    """An event that its kind's definition does not describe (raised only by a checking writer)."""


def event_problem(event: dict) -> str | None:
    """What is wrong with an event against its kind's definition: a missing or unknown field, a value of
    the wrong type, a kind without a definition; None when nothing is. Uses pydantic (a dependency of
    the tests, not of tunedeck), so only a writer that checks (CHECK_EVENTS) imports it."""
    kind = event.get("kind")
    if kind not in EVENT_TYPES:
        return f"unknown kind {kind!r}"
    definition = GATE_PHASES.get(event.get("phase")) if kind == C.EV_GATE else EVENT_TYPES[kind]
    if definition is None:
        return f"gate event: unknown phase {event.get('phase')!r}"
    fields = dict(event)
    named = definition.__required_keys__ | definition.__optional_keys__
    for name in [k for k in fields if k not in named and k.startswith(OPEN_FIELDS.get(kind, ()))]:
        value = fields.pop(name)
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            return f"{kind} event: {name} is {value!r}, not a figure"
    from pydantic import ValidationError

    try:
        _adapter(definition).validate_python(fields)
    except ValidationError as e:
        return f"{kind} event: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
    return None


def _adapter(definition):
    if definition not in _adapters:
        from pydantic import ConfigDict, TypeAdapter, with_config

        for closed in (GpuSample, LiveSample, definition):  # no field the definition does not name
            with_config(ConfigDict(extra="forbid", strict=True))(closed)
        _adapters[definition] = TypeAdapter(definition)
    return _adapters[definition]
