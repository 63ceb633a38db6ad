"""The contract between the engine and the app: run-directory layout, run states, event kinds.

The engine writes every file of a run directory; the app reads them through engine/run's readers and
asks for changes with the control requests below or short engine commands (tunedeck gate --rebuild).
The app imports only engine modules that load no training library at import time, and the engine never
imports textual (tests/test_house.py checks both). Keep this module free of heavy imports.
"""

from __future__ import annotations

RUN_TOML = "run.toml"
STATUS_JSON = "status.json"
EVENTS_JSONL = "events.jsonl"
ENGINE_LOG = "engine.log"
ENGINE_SAYS = "tunedeck engine:"  # how the engine prefixes, in its log, the one line that says why it ended
EVAL_LOG = "eval.log"  # output of an evaluation started from the app (tunedeck eval, detached)
ENGINE_LOCK = "engine.lock"
STATUS_LOCK = ".status.lock"  # serialises status.json's read-update-replace between the launcher and the engine
CONTROL_DIR = "control"
CHECKPOINTS_DIR = "checkpoints"
EVALS_DIR = "evals"
REVIEWS_JSONL = "reviews.jsonl"
# Written inside a checkpoint folder after every other file: without it a checkpoint is partial.
CHECKPOINT_MARKER = "tunedeck-complete.json"
CHECKPOINT_PREFIX = "checkpoint-"

# Run states. "crashed" is never written by the engine: readers derive it when status says a
# live state but the process is gone or its heartbeat is stale.
QUEUED = "queued"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"
COMPLETED = "completed"
FAILED = "failed"
CRASHED = "crashed"
LIVE_STATES = frozenset({QUEUED, RUNNING, STOPPING})
FINAL_STATES = frozenset({STOPPED, COMPLETED, FAILED, CRASHED})
RESUMABLE_STATES = frozenset({STOPPED, CRASHED, FAILED})

# A heartbeat older than this (seconds) means the engine is gone, when its pid cannot be checked
# (another host on a shared filesystem).
HEARTBEAT_STALE_S = 60.0
HEARTBEAT_INTERVAL_S = 2.0

# Event kinds (the "kind" field of each events.jsonl line); each kind's fields: run/events.py.
EV_STATE = "state"
EV_RUN_STARTED = "run_started"
EV_RESUMED = "resumed"
EV_TRAIN = "train"
EV_EVAL = "eval"
EV_TRAIN_END = "train_end"
EV_CHECKPOINT = "checkpoint"
EV_CHECKPOINT_PRUNED = "checkpoint_pruned"
EV_WARNING = "warning"
EV_ERROR = "error"
EV_SAMPLE = "sample"
EV_CONTROL = "control"
EV_GATE = "gate"  # by "phase": start, progress, row, summary (engine/gate/runner.py, tunedeck gate)
EV_DONE = "done"
EV_LIVE_SAMPLES = "live_samples"
REWARD_HACKING = "reward_hacking"  # the training reward rose while the held-out task score did not
COMPLETION_COLLAPSE = "completion_collapse"  # completions went to the length limit, to nothing, or to one text
REWARD_ALERTS = (REWARD_HACKING, COMPLETION_COLLAPSE)

# Control requests: one file per request in control/, named <kind>-<time>-<pid>.json
CTL_STOP = "stop"
CTL_CHECKPOINT = "checkpoint"
CTL_EVAL = "eval"
CTL_REBUILD_GATE = (
    "rebuild_gate"  # rebuild evals/gate.json after a review label; "choose": a step or null (a person's choice)
)
CONTROL_KINDS = (CTL_STOP, CTL_CHECKPOINT, CTL_EVAL, CTL_REBUILD_GATE)
