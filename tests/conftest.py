"""Shared fixtures: a tiny model and datasets built locally (no downloads), and a workspace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests live by room (tests/engine/<room>/, tests/tui/, ...) as plain modules named by their file (unique
# names, no __init__.py); what several of them share is in tests/fixtures/ (`from fixtures.small_runs import`).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Every event written in a test, by an engine it starts or in this process, is checked against its kind's
# definition (engine/run/events.py): a field the definition does not name fails the test that wrote it.
os.environ.setdefault("TUNEDECK_CHECK_EVENTS", "1")
# On pytest-xdist workers (the README's command runs two on two cores) torch, here and in every engine a test
# starts, uses one thread: two workers each with torch's default of one thread per core oversubscribe the
# cores, and OpenMP threads that wait for each other then stall both.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# The README's test command runs the suite on two pytest-xdist workers: most tests wait on an engine process or
# the app, and one process used less than one of two cores. The tiny model, the small runs, llama.cpp's
# converter and the GGUF run are built once for both workers (fixtures/once.py); the tests that share the
# SmolLM2 tier's session fixtures (its run, gate and exports: minutes) run on one worker, and so do the GGUF
# tests, so that the other worker does not wait on the lock while the first trains. (xdist's own xdist_group
# mark does not group under pytest 9.2: it edits a node id that pytest no longer reads; these groups are by
# node id prefix.)
WORKER_GROUPS = {
    "tests/real/": "smollm2",
    "tests/engine/export/test_export_gguf.py::": "gguf",
    "tests/tui/test_app_export.py::test_a_gguf_export": "gguf",
    "tests/tui/test_app_export.py::test_a_failed_artifact_gate": "gguf",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Load scheduling, one test at a time, except that each group in WORKER_GROUPS goes to one worker whole
    (largest groups first: xdist's loadscope sorts the units by their number of tests)."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((group for prefix, group in WORKER_GROUPS.items() if nodeid.startswith(prefix)), nodeid)

    return GroupScheduling(config, log)


@pytest.fixture(scope="session")
def demo_rows():
    from tunedeck.engine.data.demo_data import make_rows

    return make_rows(240, seed=0)


# The session's model, data and small trained runs are built once for both xdist workers (fixtures/once.py)
# and shared by every module that reads them. A test that writes into a run (the gate, a changed template)
# copies it first (shutil.copytree).


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, demo_rows) -> Path:
    from fixtures.once import built_once

    from tunedeck.engine.data.demo_data import corpus
    from tunedeck.engine.models.tiny_model import build_tiny_model

    return built_once(tmp_path_factory, "tiny-model", lambda path: build_tiny_model(path, corpus(demo_rows)))


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory, demo_rows) -> Path:
    from fixtures.once import built_once

    from tunedeck.engine.data.demo_data import write_jsonl

    folder = built_once(tmp_path_factory, "data", lambda path: write_jsonl(path / "train.jsonl", demo_rows))
    return folder / "train.jsonl"


@pytest.fixture(scope="session")
def dpo_data(tmp_path_factory, demo_rows) -> Path:
    from tunedeck.engine.data.demo_data import write_jsonl

    rows = []
    for r in demo_rows[:64]:
        good = r["messages"][-1]["content"]
        rows.append(
            {
                "prompt": r["messages"][:-1],
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": good.replace('"age"', '"years"')}],
            }
        )
    return write_jsonl(tmp_path_factory.mktemp("dpo") / "pairs.jsonl", rows)


@pytest.fixture(scope="session")
def small_lora_run(tmp_path_factory, tiny_model_dir, sft_data) -> Path:
    """LoRA on the tiny model: 6 steps, checkpoints 3 and 6, no gate (fixtures/small_runs.py SMALL_RUN)."""
    from fixtures.once import run_built_once
    from fixtures.small_runs import train_small

    return run_built_once(
        tmp_path_factory, "small-lora-run", lambda folder: train_small(folder / "ws", tiny_model_dir, sft_data)
    )


@pytest.fixture(scope="session")
def small_full_run(tmp_path_factory, small_lora_run, tiny_model_dir, sft_data) -> Path:
    """The same run with full fine-tuning, in the same workspace."""
    from fixtures.once import run_built_once
    from fixtures.small_runs import train_small

    ws = small_lora_run.parent.parent
    return run_built_once(
        tmp_path_factory,
        "small-full-run",
        lambda _: train_small(ws, tiny_model_dir, sft_data, "--set", "method.adapter=none"),
    )


@pytest.fixture(scope="session")
def tiny_lora_run(tmp_path_factory, tiny_model_dir, sft_data) -> Path:
    """The app's tests' LoRA run: 4 steps, checkpoints 2 and 4, no eval or gate (fixtures/small_runs.py)."""
    from fixtures.once import run_built_once
    from fixtures.small_runs import train_tiny_lora

    return run_built_once(
        tmp_path_factory, "tiny-lora-run", lambda folder: train_tiny_lora(folder / "ws", tiny_model_dir, sft_data)
    )


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "ws"
    monkeypatch.setenv("TUNEDECK_WORKSPACE", str(ws))
    yield ws
    kill_engines(ws)  # a failed test must not leave a detached engine training behind


def kill_engines(ws: Path) -> None:
    import signal

    from tunedeck.engine.run.store import list_runs, pid_alive, read_written_status

    for run in list_runs(ws):
        pid = read_written_status(run).pid
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def tunedeck(
    *args: str, env: dict | None = None, timeout: float = 300, check: bool = False, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (from the repository, or from `cwd`)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(cwd or ROOT),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tunedeck {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float = 120, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() is truthy; a slow machine makes the test slower, not red."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_events(run_dir: Path) -> list[dict]:
    from tunedeck.engine.run.event_log import read_events as _read

    return _read(run_dir / "events.jsonl")


def _engines_started_under(folder: Path, since: float) -> list[str]:
    """Run directories under `folder` where an engine worked after `since`: it began training ("run_started") or
    failed ("error"). The app tests' fake engine writes neither; the fixture runs' events are from 2025."""
    import json

    found = []
    for events in folder.rglob("events.jsonl"):
        for line in events.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):  # the bad-input tests write such lines on purpose
                continue
            if isinstance(event, dict) and event.get("kind") in ("run_started", "error") and event.get("t", 0) >= since:
                found.append(events.parent.name)
                break
    return found


@pytest.fixture(autouse=True)
def _slow_mark_is_honest(request):
    """A test that starts an engine (in its tmp_path or workspace) is marked slow: `-m "not slow"` means no
    model trained and no engine started (the README says so)."""
    since = time.time() - 1
    yield
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("real"):
        return
    folders = {request.node.funcargs[name] for name in ("tmp_path", "workspace") if name in request.node.funcargs}
    started = {run for folder in folders if isinstance(folder, Path) for run in _engines_started_under(folder, since)}
    assert not started, f"{request.node.nodeid} starts an engine ({', '.join(sorted(started))}) but is not marked slow"
