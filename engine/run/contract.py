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

# Event kinds (the "kind" field of each events.jsonl line). Every event also has "t" (unix time).
EV_STATE = "state"  # state, message; the engine's "starting"/"resuming" also pid, host
EV_RUN_STARTED = "run_started"  # total_steps, step, resumed_from (step or null), pid
EV_RESUMED = "resumed"  # from_step: readers drop metrics logged after this step
EV_TRAIN = "train"  # step, epoch, loss, learning_rate, grad_norm, tokens_per_s, tokens_seen; GRPO also: reward,
# reward_std, rewards/<check>/mean and /std, completions/clipped_ratio, completions/mean_length,
# completions/near_empty_ratio, completions/identical_share, frac_reward_zero_std, kl (beta > 0), entropy
EV_EVAL = "eval"  # step, epoch, eval_loss
EV_TRAIN_END = "train_end"  # step, train_runtime, train_cpu_s, train_loss, tokens_seen
EV_CHECKPOINT = "checkpoint"  # step, path, eval_loss
EV_CHECKPOINT_PRUNED = "checkpoint_pruned"  # step, path
EV_WARNING = "warning"  # message, code (the reward guard's: REWARD_ALERTS, with step and summary: the figures alone)
EV_ERROR = "error"  # message, code, traceback (summary), step
EV_SAMPLE = "sample"  # cpu_percent, rss_bytes, sys_cpu_percent, sys_mem_used, sys_mem_total, gpus
EV_CONTROL = "control"  # request, handled at step
EV_GATE = "gate"  # engine/gate/runner.py, by "phase": "start" (not in memory) checkpoints, examples, sets;
# "row" (each row as it is judged) checkpoint, verdict, task, format, safety, general, latency_p95_ms, reasons,
# warnings, task_delta, vs_base, p_value, n; "summary" summary (true), checkpoint and best (both the best step),
# verdict, sentence, rows (checkpoint rows in gate.json)
EV_DONE = "done"  # state, step, message
EV_LIVE_SAMPLES = "live_samples"  # step, samples: [{prompt, reference, output, new_tokens}] after each evaluation;
# GRPO: at each train log, the latest completions with rewards {check: value}, reward, group_rewards
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
