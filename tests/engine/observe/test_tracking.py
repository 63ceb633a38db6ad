"""[tracking] report_to with the real tracker libraries in their local modes.

TensorBoard event files, MLflow's local SQLite store, trackio's local store and wandb offline:
no test touches the network (WANDB_MODE=offline; no tracking server). Each tracker's checks skip
with a reason when its package is not installed (pip install -e '.[test]' installs all four).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, read_events, tunedeck
from fixtures.tracker_files import tensorboard_scalars

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
INSTALLED = [t for t in TRACKERS if importlib.util.find_spec(t) is not None]


def needs(name: str):
    return pytest.mark.skipif(name not in INSTALLED, reason=f"{name} is not installed (pip install {name})")


def local_env(root: Path) -> dict[str, str]:
    """Every tracker in its local, offline mode, writing under `root`."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONFIG_DIR": str(root / "wandb-config"),
        "WANDB_CACHE_DIR": str(root / "wandb-cache"),
        "WANDB_DATA_DIR": str(root / "wandb-data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "TRACKIO_DIR": str(root / "trackio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }


def listed(names) -> str:
    return "tracking.report_to=[" + ",".join(f'"{n}"' for n in names) + "]"


# ---- readers of each tracker's local files -------------------------------------------------------


def wandb_records(run_dir: Path) -> list:
    """Every record of every offline run file under <run>/wandb (LevelDB log blocks of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/*.wandb")):
        data, pos, buf, block = path.read_bytes(), 7, b"", 32768
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            left = block - pos % block
            if left < 7:
                pos += left
                continue
            _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
            if kind in (1, 4):
                r = pb.Record()
                r.ParseFromString(buf + chunk)
                records.append(r)
                buf = b""
            elif kind in (2, 3):
                buf += chunk
            else:
                break
    return records


def wandb_history(run_dir: Path) -> list[dict]:
    return [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
        for r in wandb_records(run_dir)
        if r.WhichOneof("record_type") == "history"
    ]


def wandb_merged(run_dir: Path, kind: str) -> dict:
    out: dict = {}
    for r in wandb_records(run_dir):
        if r.WhichOneof("record_type") == kind:
            updates = r.config.update if kind == "config" else r.summary.update
            out.update({i.key: json.loads(i.value_json) for i in updates})
    return out


def mlflow_run(root: Path, run_dir: Path):
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "tracking.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return client, client.get_run(state["mlflow_run_id"])


def trackio_logs(root: Path, project: str, run: str) -> list[dict]:
    code = (
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
        "print(json.dumps(S.get_logs(sys.argv[1], sys.argv[2]), default=str))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, project, run],
        capture_output=True,
        text=True,
        env={**os.environ, "TRACKIO_DIR": str(root / "trackio")},
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- one real tracked run, shared by the per-tracker checks -------------------------------------


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model_dir, sft_data):
    """Train 6 steps with every installed tracker on, gate at the end on the held-out split."""
    if not INSTALLED:
        pytest.skip("no tracker package is installed")
    root = tmp_path_factory.mktemp("trackers")
    ws = root / "ws"
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--workspace",
        str(ws),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=6",
        "--set",
        "checkpoints.save_steps=3",
        "--set",
        "checkpoints.eval_steps=3",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.learning_rate=3e-3",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        "gate.max_new_tokens=8",
        "--set",
        "gate.min_task_gain=0",
        "--set",
        listed(INSTALLED),
        "--set",
        "tracking.project=tunedeck-tests",
        env=local_env(root),
        timeout=600,
        check=True,
    )
    run = find_run(ws, proc.stdout.strip().splitlines()[0])
    return root, run


@pytest.mark.slow
def test_a_tracked_run_completes_without_tracker_warnings(tracked):
    root, run = tracked
    events = read_events(run)
    assert [e for e in events if e["kind"] == C.EV_WARNING and e.get("code") == "tracker"] == []
    assert events[-1]["kind"] == C.EV_DONE and events[-1]["state"] == C.COMPLETED
    state = json.loads((run / "tracking.json").read_text())
    assert state["project"] == "tunedeck-tests" and state["run_name"] == run.name
    gate = json.loads((run / "evals" / "gate.json").read_text())
    for name in INSTALLED:  # every tracker got every gate row and the final verdict
        assert set(state["sent"][name]) == {"base", "final"} | {
            f"checkpoint-{r['checkpoint']}" for r in gate["rows"] if r["checkpoint"] != "base"
        }


def _masking(run: Path) -> str:
    from tunedeck.engine.run.run_record import load_run_record

    return load_run_record(run).loss_masking


def _train_losses(run: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(run) if e["kind"] == C.EV_TRAIN}


@pytest.mark.slow
@needs("tensorboard")
def test_tensorboard_gets_losses_gate_scores_and_the_run_info(tracked):
    root, run = tracked
    tb = tensorboard_scalars(run / "tensorboard")
    losses = _train_losses(run)
    assert {s: round(v, 4) for s, v in tb["train/loss"].items()} == {s: round(v, 4) for s, v in losses.items()}
    assert set(tb["eval/loss"]) == {3, 6}
    gate = json.loads((run / "evals" / "gate.json").read_text())
    rows = {r["checkpoint"]: r for r in gate["rows"] if r["checkpoint"] != "base"}
    assert tb["gate/task"] == {s: pytest.approx(r["task"]) for s, r in rows.items()}
    assert tb["gate/verdict/text_summary"] == {s: r["verdict"] for s, r in rows.items()}
    assert tb["gate/final_verdict/text_summary"][0] == gate["verdict"]
    info = tb["tunedeck/run/text_summary"][0]
    from tunedeck.engine.run.run_record import load_run_record

    record = load_run_record(run)
    assert record.dataset_fingerprint in info and record.loss_masking and record.loss_masking in info


@pytest.mark.slow
@needs("wandb")
def test_wandb_offline_gets_losses_gate_scores_and_the_run_info(tracked):
    root, run = tracked
    history = wandb_history(run)
    losses = {h["train/global_step"]: h["train/loss"] for h in history if "train/loss" in h}
    assert losses == pytest.approx(_train_losses(run))
    gate = json.loads((run / "evals" / "gate.json").read_text())
    rows = {r["checkpoint"]: r for r in gate["rows"] if r["checkpoint"] != "base"}
    logged = {h["gate/checkpoint"]: h for h in history if "gate/checkpoint" in h}
    assert set(logged) == set(rows)
    assert all(
        logged[s]["gate/task"] == pytest.approx(r["task"]) and logged[s]["gate/verdict"] == r["verdict"]
        for s, r in rows.items()
    )
    summary = wandb_merged(run, "summary")
    assert summary["gate/final_verdict"] == gate["verdict"]
    assert summary["gate/best_checkpoint"] == f"checkpoint-{gate['best']['checkpoint']}"
    config = wandb_merged(run, "config")
    assert config["tunedeck/dataset_fingerprint"].startswith("sha256:")
    assert config["tunedeck/masking"] == _masking(run)
    runs = {r.run.run_id for r in wandb_records(run) if r.WhichOneof("record_type") == "run"}
    assert runs == {json.loads((run / "tracking.json").read_text())["wandb_id"]}  # the gate reopened the same run


@pytest.mark.slow
@needs("mlflow")
def test_mlflow_gets_losses_gate_scores_and_the_run_info(tracked):
    root, run = tracked
    client, mrun = mlflow_run(root, run)
    assert mrun.info.run_name == run.name
    assert client.get_experiment(mrun.info.experiment_id).name == "tunedeck-tests"
    history = {m.step: m.value for m in client.get_metric_history(mrun.info.run_id, "loss")}
    assert history == pytest.approx(_train_losses(run))
    gate = json.loads((run / "evals" / "gate.json").read_text())
    rows = {r["checkpoint"]: r for r in gate["rows"] if r["checkpoint"] != "base"}
    task = {m.step: m.value for m in client.get_metric_history(mrun.info.run_id, "gate/task")}
    assert task == {s: pytest.approx(r["task"]) for s, r in rows.items()}
    tags = mrun.data.tags
    assert tags["gate.final_verdict"] == gate["verdict"]
    assert all(tags[f"checkpoint-{s}.gate.verdict"] == r["verdict"] for s, r in rows.items())
    assert mrun.data.params["tunedeck.dataset_fingerprint"].startswith("sha256:")
    assert mrun.data.params["tunedeck.masking"] == _masking(run)
    assert mrun.info.status == "FINISHED"


@pytest.mark.slow
@needs("trackio")
def test_trackio_local_store_gets_losses_and_gate_scores(tracked):
    root, run = tracked
    logs = trackio_logs(root, "tunedeck-tests", run.name)
    losses = {
        r["train/global_step"]: r["train/loss"] for r in logs if "train/loss" in r
    }  # trackio counts its own steps
    assert losses == pytest.approx(_train_losses(run))
    gate = json.loads((run / "evals" / "gate.json").read_text())
    rows = {r["checkpoint"]: r for r in gate["rows"] if r["checkpoint"] != "base"}
    logged = {r["gate/checkpoint"]: r for r in logs if "gate/checkpoint" in r}
    assert {s: (r["gate/task"], r["gate/verdict"]) for s, r in logged.items()} == {
        s: (pytest.approx(r["task"]), r["verdict"]) for s, r in rows.items()
    }
    final = [r for r in logs if "gate/final_verdict" in r]
    assert final and final[-1]["gate/final_verdict"] == gate["verdict"]
    assert any(str(r.get("tunedeck/dataset_fingerprint", "")).startswith("sha256:") for r in logs)


# ---- failures and mistakes ----------------------------------------------------------------------


@pytest.mark.slow
@needs("mlflow")
@needs("tensorboard")
def test_a_failing_tracker_is_a_warning_and_the_run_completes(tmp_path, tiny_model_dir, sft_data):
    env = {**local_env(tmp_path), "MLFLOW_TRACKING_URI": "sqlite:////proc/no-such-dir/mlflow.db"}
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--workspace",
        str(tmp_path / "ws"),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=4",
        "--set",
        "checkpoints.save_steps=4",
        "--set",
        "checkpoints.eval_steps=4",
        "--set",
        "checkpoints.logging_steps=1",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        listed(["mlflow", "tensorboard"]),
        env=env,
        timeout=600,
        check=True,
    )
    run = find_run(tmp_path / "ws", proc.stdout.strip().splitlines()[0])
    events = read_events(run)
    warnings = [e for e in events if e["kind"] == C.EV_WARNING and e.get("code") == "tracker"]
    assert [w["tracker"] for w in warnings] == ["mlflow"]  # once, then it stays off
    assert "the run goes on" in warnings[0]["message"] and "warning: tracker mlflow" in proc.stdout + proc.stderr
    assert events[-1]["state"] == C.COMPLETED
    assert set(tensorboard_scalars(run / "tensorboard")["train/loss"]) == {1, 2, 3, 4}  # the others carry on


def test_a_missing_tracker_package_stops_the_launch_with_the_pip_command(
    tmp_path, monkeypatch, sft_data, tiny_model_dir
):
    from tunedeck.engine.observe import tracking
    from tunedeck.engine.scheduling.preflight import PreflightError, run_preflight

    monkeypatch.setattr(tracking, "_installed", lambda module: module not in ("wandb", "trackio"))
    with pytest.raises(PreflightError) as err:
        run_preflight(
            "lora",
            str(sft_data),
            [f"model.base={tiny_model_dir}", listed(["tensorboard", "wandb", "trackio"])],
            workspace=tmp_path,
            check_model=False,
        )
    assert "tracking.report_to names 'wandb', 'trackio' but wandb and trackio are not installed" in str(err.value)
    assert str(err.value).endswith("pip install wandb trackio")


def test_an_unknown_tracker_names_the_file_line_and_key(tmp_path, sft_data):
    from tunedeck.engine.config.profile_loading import ProfileError, load_profile

    profile = tmp_path / "p.toml"
    profile.write_text('extends = "lora"\n\n[tracking]\nreport_to = ["tensorboard", "comet"]\n')
    with pytest.raises(ProfileError) as err:
        load_profile(str(profile))
    assert str(err.value) == (
        f"{profile}:4: 'tracking.report_to' may hold 'tensorboard', 'wandb', 'mlflow', 'trackio', not 'comet'"
    )
    assert load_profile("lora").tracking.report_to == []  # default: none


# ---- the gate run later, in another process -----------------------------------------------------


def _copy_fixture_run(tmp_path: Path, names) -> Path:
    src = ROOT / "tests" / "fixtures" / "runs" / "20250301-090000-extract-c0a1"
    run = tmp_path / "runs" / src.name
    shutil.copytree(src, run)
    with open(run / "run.toml", "a", encoding="utf-8") as f:
        f.write("\n[tracking]\nreport_to = [" + ", ".join(f'"{n}"' for n in names) + ']\nproject = "later"\n')
    return run


def _send_gate(run: Path, env: dict) -> subprocess.CompletedProcess:
    code = (
        "import sys; from pathlib import Path; from tunedeck.engine.run.gate_result import read_gate_summary; "
        "from tunedeck.engine.observe.tracking import log_gate_summary; run = Path(sys.argv[1]); "
        "log_gate_summary(run, read_gate_summary(run))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(run)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


@pytest.mark.slow
@needs("tensorboard")
@needs("mlflow")
def test_a_gate_run_after_training_reaches_the_trackers_once_and_again_when_results_change(tmp_path):
    """`tunedeck eval` on a finished run: a new process finds (or opens) the tracker runs; unchanged
    results are not sent twice; a changed verdict is."""
    run = _copy_fixture_run(tmp_path, ["tensorboard", "mlflow"])
    env = local_env(tmp_path)
    first = _send_gate(run, env)
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr
    gate = json.loads((run / "evals" / "gate.json").read_text())
    steps = [r["checkpoint"] for r in gate["rows"] if r["checkpoint"] != "base"]
    tb = tensorboard_scalars(run / "tensorboard")
    assert sorted(tb["gate/task"]) == steps and tb["gate/best_step"] == {0: gate["best"]["checkpoint"]}
    client, mrun = mlflow_run(tmp_path, run)
    assert client.get_experiment(mrun.info.experiment_id).name == "later"
    assert mrun.data.tags["gate.final_verdict"] == gate["verdict"]
    assert len(client.get_metric_history(mrun.info.run_id, "gate/task")) == len(steps)

    assert _send_gate(run, env).returncode == 0  # nothing changed: nothing new sent
    assert len(client.get_metric_history(mrun.info.run_id, "gate/task")) == len(steps)

    gate["verdict"] = "fail"
    (run / "evals" / "gate.json").write_text(json.dumps(gate))
    assert _send_gate(run, env).returncode == 0
    _, mrun = mlflow_run(tmp_path, run)
    assert mrun.data.tags["gate.final_verdict"] == "fail"
    assert len(client.get_metric_history(mrun.info.run_id, "gate/task")) == len(steps)  # rows unchanged


# ---- pure parts -----------------------------------------------------------------------------------


def test_gate_items_carry_scores_verdicts_and_the_final_choice():
    from tunedeck.engine.observe.tracker_payloads import gate_items
    from tunedeck.engine.run.gate_result import GateSummary

    summary = json.loads((ROOT / "tests/fixtures/runs/20250301-090000-extract-c0a1/evals/gate.json").read_text())
    items = {it.key: it for it in gate_items(GateSummary.from_dict(summary))}
    rows = {r["checkpoint"]: r for r in summary["rows"]}
    assert set(items) == {"base", "final"} | {f"checkpoint-{c}" for c in rows if c != "base"}
    assert items["base"].step is None and items["base"].metrics["gate/base_task"] == rows["base"]["task"]
    for c, r in rows.items():
        if c == "base":
            continue
        it = items[f"checkpoint-{c}"]
        assert it.step == c and it.metrics["gate/task"] == r["task"] and it.texts["gate/verdict"] == r["verdict"]
        assert it.metrics["gate/passed"] == (1.0 if r["verdict"] == "pass" else 0.0)
    assert items["final"].texts["gate/final_verdict"] == summary["verdict"]
    assert items["final"].texts["gate/best_checkpoint"] == f"checkpoint-{summary['best']['checkpoint']}"
    changed = gate_items(GateSummary.from_dict({**summary, "verdict": "fail"}))
    assert [it.digest() for it in changed][:-1] == [it.digest() for it in gate_items(GateSummary.from_dict(summary))][
        :-1
    ]
    assert changed[-1].digest() != items["final"].digest()  # only the final verdict is sent again


def test_tracking_state_survives_a_torn_or_foreign_file(tmp_path):
    from tunedeck.engine.observe.tracking_state import TRACKING_FILE, TrackingState, wandb_run_id

    assert TrackingState.load(tmp_path) == TrackingState()
    (tmp_path / TRACKING_FILE).write_text('{"wandb_id": "abc", "mlflow_run_id": "r1", "unknown": 1}')
    state = TrackingState.load(tmp_path)
    assert (state.wandb_id, state.mlflow_run_id) == ("abc", "r1")
    (tmp_path / TRACKING_FILE).write_text('{"wandb_id": ')
    assert TrackingState.load(tmp_path) == TrackingState()
    a, b = tmp_path / "ws1" / "run-x", tmp_path / "ws2" / "run-x"
    assert wandb_run_id(a) != wandb_run_id(b) and wandb_run_id(a).startswith("run-x-")
    assert len(wandb_run_id(tmp_path / ("r" * 200))) <= 64


def test_acceptance_script_arithmetic():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_acceptance as g

    shape = g._shape_of(
        {
            "hidden_size": 896,
            "num_hidden_layers": 24,
            "intermediate_size": 4864,
            "vocab_size": 151936,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "tie_word_embeddings": True,
        }
    )
    assert round(shape["params"] / 1e6) == 494  # Qwen2.5-0.5B's published count
    lora, full = g.flops_per_token(shape, 300, full=False), g.flops_per_token(shape, 300, full=True)
    assert full - lora == 2 * shape["matmul_params"]
    assert g.peak_tflops("NVIDIA H100 PCIe") == 756.0 and g.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert g.peak_tflops("NVIDIA GH200 480GB") == 989.0 and g.peak_tflops("Some New GPU") is None
    samples = [
        {
            "gpus": [
                {
                    "name": "G",
                    "util_percent": 40.0,
                    "mem_used": 2**30,
                    "mem_total": 2**34,
                    "temperature_c": 50.0,
                    "power_w": 200.0,
                    "power_limit_w": 700.0,
                    "own_mem": None,
                }
            ]
        }
    ]
    t = g.telemetry_result(samples, gpu=True)
    assert t["status"] == "ok" and t["missing_fields"] == ["own_mem"]
    assert g.telemetry_result([{"gpus": None, "gpu_unavailable": "no driver"}], gpu=True)["status"] == "failed"
