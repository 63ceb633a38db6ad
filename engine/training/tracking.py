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
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.atomic_io import write_json_atomic

TRACKING_FILE = "tracking.json"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"

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
    return (f"tracking.report_to names {which} but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed in this environment: "
            f"pip install {' '.join(missing)}")


def run_name(profile, run_dir: Path) -> str:
    return profile.tracking.run_name or Path(run_dir).name


def trainer_args(profile, run_dir: Path) -> dict:
    """TrainingArguments fields: report_to, run_name, project (trackio reads it; the others get it from us)."""
    names = list(dict.fromkeys(profile.tracking.report_to))
    return {"report_to": names or "none", "run_name": run_name(profile, run_dir), "project": profile.tracking.project}


# ---- tracking.json -----------------------------------------------------------------------------

@dataclass
class TrackingState:
    """<run>/tracking.json: how to reach this run's tracker runs again, and what was already sent."""

    project: str = ""
    run_name: str = ""
    wandb_id: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_run_id: str = ""
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # tracker -> item key -> content hash

    @classmethod
    def load(cls, run_dir: Path) -> "TrackingState":
        try:
            data = json.loads((Path(run_dir) / TRACKING_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return cls()

    def save(self, run_dir: Path) -> None:
        write_json_atomic(Path(run_dir) / TRACKING_FILE, asdict(self))


def wandb_run_id(run_dir: Path) -> str:
    """Stable and unique per run directory (two workspaces may hold the same run id)."""
    run_dir = Path(run_dir).resolve()
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name)[:48]
    return f"{slug}-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]}"


# ---- what tunedeck sends ---------------------------------------------------------------------------

def run_info(run_dir: Path, args=None) -> dict[str, Any]:
    """The dataset fingerprint and the loss masking this run trains with (flat, tracker-friendly values)."""
    from tunedeck.engine.run.record import load_run_record

    info: dict[str, Any] = {"tunedeck/run_id": Path(run_dir).name}
    try:
        record = load_run_record(run_dir)
        profile = record.profile
        info.update({"tunedeck/dataset_fingerprint": record.dataset_fingerprint or "",
                     "tunedeck/dataset_path": record.dataset_path or "", "tunedeck/train_rows": record.train_rows,
                     "tunedeck/eval_rows": record.eval_rows, "tunedeck/method": profile.method.method,
                     "tunedeck/adapter": profile.method.adapter, "tunedeck/base_model": record.base_model or "",
                     # what the loss covers, in words, as pre-flight computed it from the rendered template
                     "tunedeck/masking": getattr(record, "loss_masking", "") or "not recorded"})
    except Exception:  # noqa: BLE001 - the info is a courtesy; the run record stays the source of truth
        pass
    if args is not None:
        info["tunedeck/packing"] = bool(getattr(args, "packing", False))
        info["tunedeck/padding_free"] = bool(getattr(args, "padding_free", False))
    return {k: v for k, v in info.items() if v is not None}


@dataclass
class GateItem:
    """One thing the gate decided: a checkpoint's row (step set) or the run's verdict (step None)."""

    key: str
    step: int | None
    metrics: dict[str, float]
    texts: dict[str, str]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.metrics, self.texts], sort_keys=True, default=str).encode()).hexdigest()[:16]


_SCORES = ("task", "format", "safety", "general", "latency_p95_ms")


def gate_items(summary: dict) -> list[GateItem]:
    items = []
    for row in summary.get("rows") or []:
        ckpt = row.get("checkpoint")
        metrics = {f"gate/{k}": float(row[k]) for k in _SCORES if isinstance(row.get(k), (int, float))}
        if ckpt == "base":
            items.append(GateItem("base", None, {k.replace("gate/", "gate/base_"): v for k, v in metrics.items()}, {}))
            continue
        if not isinstance(ckpt, int):
            continue
        delta = (row.get("vs_base") or {}).get("task")
        if isinstance(delta, (int, float)):
            metrics["gate/task_vs_base"] = float(delta)
        metrics["gate/passed"] = 1.0 if row.get("verdict") == "pass" else 0.0
        reasons = "; ".join(str(r) for r in row.get("reasons") or [])
        items.append(GateItem(f"checkpoint-{ckpt}", ckpt, metrics,
                              {"gate/verdict": str(row.get("verdict") or ""), "gate/reasons": reasons}))
    best = (summary.get("best") or {}).get("checkpoint")
    final = {"gate/final_verdict": str(summary.get("verdict") or "none"),
             "gate/best_checkpoint": "none" if best in (None, "base") else f"checkpoint-{best}",
             "gate/sentence": str(summary.get("sentence") or "")}
    metrics = {"gate/best_step": float(best)} if isinstance(best, int) else {}
    items.append(GateItem("final", None, metrics, final))
    return items


# ---- one adapter per tracker -------------------------------------------------------------------

class _Tracker:
    name = ""

    def __init__(self, session: "TrackerSession"):
        self.s = session

    def before_train(self, args) -> None:
        """Open (or reopen) the tracker's run so the integration callback logs into it."""

    def after_train(self) -> None:
        """Flush and close what before_train opened."""

    def log_info(self, info: dict) -> None:
        raise NotImplementedError

    def log_gate(self, items: list[GateItem]) -> None:
        raise NotImplementedError


class _TensorBoard(_Tracker):
    name = "tensorboard"

    def writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from tensorboardX import SummaryWriter
        return SummaryWriter(log_dir=str(self.s.run_dir / TENSORBOARD_DIR))

    def log_info(self, info: dict) -> None:
        w = self.writer()
        try:
            w.add_text("tunedeck/run", "\n\n".join(f"**{k}**: {v}" for k, v in info.items()), 0)
        finally:
            w.close()

    def log_gate(self, items: list[GateItem]) -> None:
        w = self.writer()
        try:
            for it in items:
                step = it.step or 0
                for k, v in it.metrics.items():
                    w.add_scalar(k, v, step)
                for k, v in it.texts.items():
                    if v:
                        w.add_text(k, v, step)
        finally:
            w.close()


class _Wandb(_Tracker):
    name = "wandb"

    def _run(self, for_training: bool = False):
        import wandb

        st = self.s.state
        if not st.wandb_id:
            st.wandb_id = wandb_run_id(self.s.run_dir)
            self.s.save_state()
        run = wandb.run
        if run is not None and run.id == st.wandb_id:
            return run, False
        (self.s.run_dir / WANDB_DIR).mkdir(exist_ok=True)
        run = wandb.init(project=st.project, name=st.run_name, id=st.wandb_id, resume="allow",
                         dir=str(self.s.run_dir))
        return run, not for_training

    def before_train(self, args) -> None:
        self._run(for_training=True)

    def after_train(self) -> None:
        import wandb

        if wandb.run is not None and wandb.run.id == self.s.state.wandb_id:
            wandb.finish()

    def log_info(self, info: dict) -> None:
        run, opened = self._run()
        run.config.update(info, allow_val_change=True)
        if opened:
            run.finish()

    def log_gate(self, items: list[GateItem]) -> None:
        run, opened = self._run()
        try:
            run.define_metric("gate/checkpoint")
            run.define_metric("gate/*", step_metric="gate/checkpoint")
            for it in items:
                if it.step is not None:
                    run.log({"gate/checkpoint": it.step, **it.metrics, **it.texts})
                else:
                    run.summary.update({**it.metrics, **it.texts})
        finally:
            if opened:
                run.finish()


class _MLflow(_Tracker):
    name = "mlflow"

    def before_train(self, args) -> None:
        import mlflow

        st = self.s.state
        active = mlflow.active_run()
        if active is not None and active.info.run_id == st.mlflow_run_id:
            return
        if st.mlflow_tracking_uri:
            mlflow.set_tracking_uri(st.mlflow_tracking_uri)  # a resumed run goes back to its own store
        if st.mlflow_run_id:
            run = mlflow.start_run(run_id=st.mlflow_run_id)
        else:
            mlflow.set_experiment(st.project)
            run = mlflow.start_run(run_name=st.run_name)
        st.mlflow_tracking_uri, st.mlflow_run_id = mlflow.get_tracking_uri(), run.info.run_id
        self.s.save_state()

    def after_train(self) -> None:
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.s.state.mlflow_run_id:
            mlflow.end_run()

    def _client(self):
        from mlflow.tracking import MlflowClient

        st = self.s.state
        if not st.mlflow_run_id:  # the gate ran on a run that never trained with MLflow on: start one now
            self.before_train(None)
            self.after_train()
        return MlflowClient(tracking_uri=st.mlflow_tracking_uri), st.mlflow_run_id

    def log_info(self, info: dict) -> None:
        from mlflow.entities import Param

        client, run_id = self._client()
        client.log_batch(run_id, params=[Param(k.replace("tunedeck/", "tunedeck."), str(v)[:500])
                                         for k, v in info.items()])

    def log_gate(self, items: list[GateItem]) -> None:
        import time

        from mlflow.entities import Metric, RunTag

        client, run_id = self._client()
        now = int(time.time() * 1000)
        metrics, tags = [], []
        for it in items:
            metrics += [Metric(k, v, now, it.step or 0) for k, v in it.metrics.items()]
            prefix = f"{it.key}." if it.step is not None else ""
            tags += [RunTag((prefix + k).replace("/", "."), v[:5000]) for k, v in it.texts.items()]
        client.log_batch(run_id, metrics=metrics, tags=tags)


class _Trackio(_Tracker):
    name = "trackio"

    def _run(self):
        import trackio

        st = self.s.state
        current = trackio.context_vars.current_run.get()
        if current is not None and getattr(current, "name", None) == st.run_name \
                and getattr(current, "project", st.project) == st.project:
            return trackio, False
        trackio.init(project=st.project, name=st.run_name, resume="allow")
        return trackio, True

    def log_info(self, info: dict) -> None:
        tr, opened = self._run()
        try:
            tr.config.update(info)
            tr.log({k: v for k, v in info.items() if isinstance(v, (int, float, str))})
        finally:
            if opened:
                tr.finish()

    def log_gate(self, items: list[GateItem]) -> None:
        tr, opened = self._run()
        try:
            for it in items:
                tr.log({**it.metrics, **it.texts, **({"gate/checkpoint": it.step} if it.step is not None else {})},
                       step=it.step)
        finally:
            if opened:
                tr.finish()


ADAPTERS: dict[str, type[_Tracker]] = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _MLflow,
                                       "trackio": _Trackio}


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
        message = (f"tracker {name}: {what} failed ({type(exc).__name__}: {detail}); it is off for the rest of this "
                   f"process, the run goes on and its results are in the run directory")
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

    def log_gate(self, summary: dict) -> None:
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


def log_gate_summary(run_dir: Path, summary: dict | None, events=None) -> None:
    """Send a gate summary (evals/gate.json) to the run's trackers. Never raises."""
    if not summary:
        return
    try:
        from tunedeck.engine.run.record import load_run_record

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

_EVENTS = ("on_init_end", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_step_begin",
           "on_pre_optimizer_step", "on_optimizer_step", "on_substep_end", "on_step_end", "on_evaluate",
           "on_predict", "on_save", "on_log", "on_prediction_step", "on_push_begin")


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
