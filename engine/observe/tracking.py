"""Experiment trackers ([tracking] report_to): TensorBoard, Weights & Biases, MLflow and trackio.

The run directory stays the source of truth; a tracker gets a copy.

- During training the Trainer's own integration callbacks (transformers.integrations) send its
  logs. Each is wrapped (GuardedTracker) so a tracker that fails (offline, not logged in, a full
  disk) becomes one warning event and is switched off for the rest of the run, never a failed run.
- tunedeck's own results go to the same tracker runs: the dataset fingerprint and the loss
  masking when training starts, each checkpoint's gate scores and verdict, the final verdict and
  best checkpoint whenever the gate writes its summary, also after training has ended or from
  `tunedeck eval` in another process. What is needed to find a tracker's run again (wandb id,
  MLflow store and run id) is kept in <run>/tracking.json, written by the engine only.
- Local logs live inside the run directory: TensorBoard under <run>/tensorboard/, wandb's files
  under <run>/wandb/. MLflow and trackio write where their own settings say (MLFLOW_TRACKING_URI,
  TRACKIO_DIR); without them MLflow's default store is in the engine's working directory, the run.

This module checks the packages, runs one run's trackers (TrackerSession) and guards the Trainer's
integration callbacks; tracker_backends.py has one adapter per tracker, tracker_payloads.py what is
sent, tracking_state.py the <run>/tracking.json file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.observe.tracker_backends import ADAPTERS
from tunedeck.engine.observe.tracker_payloads import GateItem, gate_items, run_info
from tunedeck.engine.observe.tracking_state import TENSORBOARD_DIR, TrackingState
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.gate_result import GateSummary

# report_to name -> (modules that satisfy it, pip package to install)
PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "trackio": (("trackio",), "trackio"),
}
TRACKER_NAMES = tuple(PACKAGES)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(names: list[str], installed: Callable[[str], bool] | None = None) -> list[str]:
    """pip packages that the named trackers need and this environment lacks, in report_to order."""
    installed = installed or _installed
    out = []
    for name in dict.fromkeys(names):
        modules, package = PACKAGES[name]
        if not any(installed(m) for m in modules) and package not in out:
            out.append(package)
    return out


def missing_message(names: list[str], installed: Callable[[str], bool] | None = None) -> str | None:
    """The launch-blocking message for trackers whose package is missing, with the command to run."""
    missing = missing_packages(names, installed)
    if not missing:
        return None
    which = ", ".join(repr(n) for n in names if PACKAGES[n][1] in missing)
    return (
        f"tracking.report_to names {which} but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not installed in this environment: "
        f"pip install {' '.join(missing)}"
    )


def run_name(profile, run_dir: Path) -> str:
    return profile.tracking.run_name or Path(run_dir).name


def trainer_args(profile, run_dir: Path) -> dict:
    """TrainingArguments fields: report_to, run_name, project (trackio reads it; the others get it from us)."""
    names = list(dict.fromkeys(profile.tracking.report_to))
    return {"report_to": names or "none", "run_name": run_name(profile, run_dir), "project": profile.tracking.project}


# ---- a run's trackers in one process ------------------------------------------------------------

_OFF: dict[str, set[str]] = {}  # run directory -> trackers switched off in this process


class TrackerSession:
    """The trackers of one run in this process; every failure is a warning, never an exception."""

    def __init__(self, run_dir: Path, profile, events=None):
        self.run_dir = Path(run_dir)
        self.profile = profile
        self.events = events
        self.names = list(dict.fromkeys(profile.tracking.report_to))
        self.state = TrackingState.load(self.run_dir)
        self.state.project = self.state.project or profile.tracking.project
        self.state.run_name = self.state.run_name or run_name(profile, self.run_dir)
        self.adapters = {n: ADAPTERS[n](self) for n in self.names}
        # shared by every session of this run in this process: an unreachable server costs its
        # timeout once, not again at each checkpoint's gate
        self.off: set[str] = _OFF.setdefault(str(self.run_dir.resolve()), set())

    def save_state(self) -> None:
        self.state.save(self.run_dir)

    def warn(self, name: str, what: str, exc: BaseException) -> None:
        self.off.add(name)
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        message = (
            f"tracker {name}: {what} failed ({type(exc).__name__}: {detail}); it is off for the rest of this "
            f"process, the run goes on and its results are in the run directory"
        )
        if self.events is not None:
            self.events.emit(C.EV_WARNING, code="tracker", tracker=name, message=message)
        else:
            print(f"tunedeck: warning: {message}", file=sys.stderr)

    def guarded(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        if name in self.off:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a tracker never takes a run down
            self.warn(name, what, exc)
            return None

    def _send(self, name: str, items: list[GateItem]) -> None:
        sent = self.state.sent.setdefault(name, {})
        new = [it for it in items if sent.get(it.key) != it.digest()]
        if not new:
            return
        self.adapters[name].log_gate(new)
        sent.update({it.key: it.digest() for it in new})
        self.save_state()

    def log_gate(self, summary: GateSummary) -> None:
        """Each checkpoint's scores and verdict, the final verdict and best checkpoint; only what changed."""
        items = gate_items(summary)
        for name in self.names:
            if name not in self.off and self._package_or_warn(name):
                self.guarded(name, "logging the gate results", lambda n=name: self._send(n, items))

    def _package_or_warn(self, name: str) -> bool:
        msg = missing_message([name])
        if msg:
            self.warn(name, "opening", ModuleNotFoundError(msg))
            return False
        return True


def log_gate_summary(run_dir: Path, summary: GateSummary | None, events=None) -> None:
    """Send a gate summary (evals/gate.json) to the run's trackers. Never raises."""
    if summary is None:
        return
    try:
        from tunedeck.engine.run.run_record import load_run_record

        profile = load_run_record(run_dir).profile
    except Exception:  # noqa: BLE001 - no readable run record: nothing to send, and the gate already wrote its files
        return
    if not profile.tracking.report_to:
        return
    try:
        TrackerSession(run_dir, profile, events).log_gate(summary)
    except Exception as exc:  # noqa: BLE001
        print(f"tunedeck: warning: sending the gate results to the trackers failed: {exc}", file=sys.stderr)


# ---- during training -------------------------------------------------------------------------------

_EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
    "on_push_begin",
)


def _guarded_callback_class():
    from transformers import TrainerCallback

    class GuardedTracker(TrainerCallback):
        """A transformers integration callback whose failures become one warning event, then silence."""

        def __init__(self, name: str, inner, session: TrackerSession):
            self.name, self.inner, self.session = name, inner, session

        def _call(self, event: str, args, state, control, **kw):
            if self.name in self.session.off:
                return None
            main = state.is_world_process_zero
            what = event.removeprefix("on_").replace("_", " ")
            adapter = self.session.adapters[self.name]
            try:
                if event == "on_train_begin" and main:
                    adapter.before_train(args)
                out = getattr(self.inner, event)(args, state, control, **kw)
            except Exception as exc:  # noqa: BLE001
                self.session.warn(self.name, f"{what}", exc)
                return None
            if event == "on_train_begin" and main:
                info = run_info(self.session.run_dir, args)
                self.session.guarded(self.name, "logging the run's dataset and masking", lambda: adapter.log_info(info))
            if event == "on_train_end" and main:
                self.session.guarded(self.name, "closing its run", adapter.after_train)
            return out

    def make(event):
        def method(self, args, state, control, **kw):
            return self._call(event, args, state, control, **kw)

        method.__name__ = event
        return method

    for ev in _EVENTS:
        setattr(GuardedTracker, ev, make(ev))
    return GuardedTracker


def guard_trackers(trainer, run_dir: Path, profile, events) -> TrackerSession | None:
    """Wrap the Trainer's integration callbacks for [tracking] report_to; TensorBoard logs into <run>/tensorboard."""
    names = list(dict.fromkeys(profile.tracking.report_to))
    if not names:
        return None
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    session = TrackerSession(run_dir, profile, events)
    guarded_cls = _guarded_callback_class()
    by_class = {INTEGRATION_TO_CALLBACK[n]: n for n in names}
    handler = trainer.callback_handler
    for i, cb in enumerate(handler.callbacks):
        name = by_class.get(type(cb))
        if name is None:
            continue
        if name == "tensorboard":
            cb.logging_dir = str(Path(run_dir) / TENSORBOARD_DIR)
        handler.callbacks[i] = guarded_cls(name, cb, session)
    return session
