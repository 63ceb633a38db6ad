"""One adapter per tracker (TensorBoard, Weights & Biases, MLflow, trackio): how each opens its run and
logs tunedeck's run info and gate results. Every call may raise; the TrackerSession guards them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunedeck.engine.observe.tracker_payloads import GateItem
from tunedeck.engine.observe.tracking_state import TENSORBOARD_DIR, WANDB_DIR, wandb_run_id

if TYPE_CHECKING:
    from tunedeck.engine.observe.tracking import TrackerSession


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
        run = wandb.init(project=st.project, name=st.run_name, id=st.wandb_id, resume="allow", dir=str(self.s.run_dir))
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
        client.log_batch(
            run_id, params=[Param(k.replace("tunedeck/", "tunedeck."), str(v)[:500]) for k, v in info.items()]
        )

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
        if (
            current is not None
            and getattr(current, "name", None) == st.run_name
            and getattr(current, "project", st.project) == st.project
        ):
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
                tr.log(
                    {**it.metrics, **it.texts, **({"gate/checkpoint": it.step} if it.step is not None else {})},
                    step=it.step,
                )
        finally:
            if opened:
                tr.finish()


ADAPTERS: dict[str, type[_Tracker]] = {
    "tensorboard": _TensorBoard,
    "wandb": _Wandb,
    "mlflow": _MLflow,
    "trackio": _Trackio,
}
