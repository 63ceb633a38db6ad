"""The first minute: every command from a folder of the user's own, with relative paths everywhere.

The engine, the queue's waiter and detached evaluations run from the run directory, so any path
handed to them must be absolute; and a run that cannot start must say why at once. Each test works
in `u/`, a folder holding the model, data, eval set and template as a user's would, and runs the real
command line there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tunedeck, wait_for

from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import read_written_status

pytestmark = pytest.mark.slow

FEW_STEPS = [
    "--set",
    "optim.max_steps=4",
    "--set",
    "checkpoints.save_steps=2",
    "--set",
    "checkpoints.eval_steps=2",
    "--set",
    "gate.max_new_tokens=8",
]


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory, tiny_model_dir, sft_data) -> Path:
    from tunedeck.engine.data.demo_data import make_eval_set

    u = tmp_path_factory.mktemp("user")
    shutil.copytree(tiny_model_dir, u / "models" / "tiny")
    (u / "data").mkdir()
    shutil.copy(sft_data, u / "data" / "t.jsonl")
    make_eval_set(u / "sets" / "golden.jsonl", 6, seed=3) if (u / "sets").mkdir() is None else None
    template = json.loads((tiny_model_dir / "tokenizer_config.json").read_text()).get("chat_template")
    if not template:
        template = (tiny_model_dir / "chat_template.jinja").read_text()
    (u / "tmpl.jinja").write_text(template)
    (u / "other").mkdir()
    return u


def run_args(*more: str) -> list[str]:
    return [
        "--data",
        "data/t.jsonl",
        "--set",
        "model.base=models/tiny",
        "--set",
        "model.chat_template=tmpl.jinja",
        "--set",
        "gate.golden=sets/golden.jsonl",
        *FEW_STEPS,
        *more,
    ]


def ls(u: Path, *args: str, env: dict | None = None) -> list[dict]:
    return json.loads(tunedeck("ls", "--json", *args, cwd=u, env=env, check=True).stdout)


def test_a_run_with_relative_paths_trains_is_gated_evaluated_and_exported(user_dir):
    u = user_dir
    proc = tunedeck("run", "demo-cpu", *run_args(), "--workspace", "ws", cwd=u)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_id = proc.stdout.splitlines()[0]
    assert "run completed" in proc.stdout
    [row] = ls(u, "--workspace", "ws")
    assert (row["state"], row["step"], row["total_steps"]) == (C.COMPLETED, 4, 4)
    run_dir = u / "ws" / "runs" / run_id
    assert row["dir"] == str(run_dir)  # the workspace is absolute from the start
    record = (run_dir / "run.toml").read_text()
    for rel in ("models/tiny", "tmpl.jinja", "sets/golden.jsonl", "data/t.jsonl"):
        assert f'"{u / rel}"' in record, rel  # frozen as absolute paths: the run reads the same files from anywhere
    assert json.loads((run_dir / "evals" / "gate.json").read_text())["rows"]

    # eval with a relative extra set; gate from another folder reads what eval recorded
    assert (
        tunedeck(
            "eval", run_id, "--checkpoint", "4", "--eval-set", "sets/golden.jsonl", "--workspace", "ws", cwd=u
        ).returncode
        == 0
    )
    sets = json.dumps(json.loads((run_dir / "evals" / "gate.json").read_text()).get("sets"))
    assert str(u / "sets" / "golden.jsonl") in sets
    elsewhere = tunedeck("gate", run_id, "--rebuild", "--workspace", "../ws", cwd=u / "other")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert tunedeck("gate", run_id, "--workspace", "ws", cwd=u).returncode == 0

    # export to a relative folder, inspect relative files
    out = tunedeck("export", run_id, "exported", "--workspace", "ws", cwd=u)
    assert out.returncode == 0, out.stderr
    assert (u / "exported" / "adapter_config.json").is_file() and (u / "exported" / "tunedeck-export.json").is_file()
    inspect = tunedeck("inspect", "data/t.jsonl", "--model", "models/tiny", "--json", cwd=u)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["rows"] > 0


def test_the_workspace_variable_a_profile_file_detach_stop_and_queued_resume(user_dir):
    u = user_dir
    (u / "mine.toml").write_text('extends = "demo-cpu"\n[data]\npath = "data/t.jsonl"\n[model]\nbase = "models/tiny"\n')
    env = {"TUNEDECK_WORKSPACE": "ws-var", "TUNEDECK_TEST_SLOW_STEP_S": "0.5", "TUNEDECK_QUEUE_POLL_S": "0.2"}
    proc = tunedeck("run", "mine.toml", *FEW_STEPS, "--set", "optim.max_steps=12", "--detach", cwd=u, env=env)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.splitlines()[0]
    assert str(u / "ws-var" / "runs" / run_id / C.ENGINE_LOG) in proc.stderr  # --detach says where the log is
    wait_for(
        lambda: (read_written_status(u / "ws-var" / "runs" / run_id).step or 0) >= 2, timeout=180, what="training steps"
    )
    assert tunedeck("stop", run_id, "--wait", cwd=u, env=env).returncode == 0
    assert ls(u, env=env)[0]["state"] == C.STOPPED
    resumed = tunedeck("resume", run_id, "--queue", cwd=u, env={**env, "TUNEDECK_TEST_SLOW_STEP_S": "0"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    [row] = ls(u, env=env)
    assert (row["state"], row["step"]) == (C.COMPLETED, 12)


def test_a_sweep_with_relative_paths(user_dir):
    u = user_dir
    proc = tunedeck(
        "sweep",
        "demo-cpu",
        *run_args(),
        "--set",
        "gate.when=never",
        "--grid",
        "optim.seed=1",
        "--name",
        "rel",
        "--workspace",
        "ws-sweep",
        cwd=u,
        env={"TUNEDECK_QUEUE_POLL_S": "0.2"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = ls(u, "--workspace", "ws-sweep")
    assert row["state"] == C.COMPLETED and row["sweep"] == "rel"


def test_the_apps_launch_with_relative_paths(user_dir, monkeypatch):
    from fixtures.app_harness import make_app, run, wait_until

    from tunedeck.tui.screens.confirm import ConfirmScreen
    from tunedeck.tui.screens.new_run import NewRunScreen

    u = user_dir
    monkeypatch.chdir(u)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(u / "cfg"))
    launched: list[str] = []

    async def scenario():
        app = make_app(Path("ws-app"))
        async with app.run_test(size=(160, 50)) as pilot:
            screen = NewRunScreen(Path("ws-app"), profile="demo-cpu", data="data/t.jsonl", on_launched=launched.append)
            app.push_screen(screen)
            await wait_until(pilot, lambda: app.screen is screen and screen.form.profile is not None, what="form")
            for key, value in (("model.base", "models/tiny"), ("gate.when", "never"), ("optim.max_steps", 2)):
                screen.form.set_value(key, value)
            await pilot.pause()
            await wait_until(pilot, lambda: screen.dataset.report is not None, timeout=120, what="inspection")
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=60, what="summary")
            await pilot.press("y")
            await wait_until(pilot, lambda: launched, timeout=120, what="launch")

    run(scenario())
    run_dir = u / "ws-app" / "runs" / launched[0]
    wait_for(lambda: read_written_status(run_dir).state in C.FINAL_STATES, timeout=180, what="the run to end")
    assert read_written_status(run_dir).state == C.COMPLETED, (run_dir / C.ENGINE_LOG).read_text()[-2000:]


@pytest.fixture
def dies_at_start(tmp_path) -> dict:
    """An environment in which the engine's process dies the moment it starts, before it writes a thing
    (as the kernel's OOM killer or a broken interpreter would): no hook in tunedeck's code."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if sys.argv[:1] == ['-m'] and '--' in sys.argv[1:]:  # the queue's door: python -m ...run_queue RUN -- ...\n"
        "    print('planted: the engine died at start', file=sys.stderr, flush=True)\n"
        "    os._exit(9)\n"
    )
    return {"PYTHONPATH": str(site)}


def test_a_run_that_dies_at_start_says_why_at_once(user_dir, dies_at_start):
    u = user_dir
    proc = tunedeck("run", "demo-cpu", *run_args(), "--workspace", "ws-dead", cwd=u, env=dies_at_start, timeout=120)
    assert proc.returncode != 0
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "run crashed: the engine ended before it finished (exit code 9): planted: the engine died at start"
    first, again = ls(u, "--workspace", "ws-dead"), ls(u, "--workspace", "ws-dead")
    assert first[0]["state"] == C.CRASHED and first[0]["at_start"] is True
    assert first[0]["message"] == "planted: the engine died at start"
    assert first[0]["duration_s"] == again[0]["duration_s"]  # how long it ran, not a clock that keeps going
    table = tunedeck("ls", "--workspace", "ws-dead", cwd=u, check=True).stdout
    assert "crashed at start" in table

    detached = tunedeck("run", "demo-cpu", *run_args(), "--workspace", "ws-dead", "--detach", cwd=u, env=dies_at_start)
    assert detached.returncode == 0
    run_id = detached.stdout.splitlines()[0]
    row = wait_for(
        lambda: next(
            (r for r in ls(u, "--workspace", "ws-dead") if r["id"] == run_id and r["state"] == C.CRASHED), None
        ),
        timeout=30,
        what="the detached run to read as crashed",
    )
    assert row["at_start"] and row["message"] == "planted: the engine died at start"

    from fixtures.app_harness import make_app, run, wait_for_text  # the app's runs list says the same, at 80x24

    async def runs_list():
        async with make_app(u / "ws-dead").run_test(size=(80, 24)) as pilot:
            await wait_for_text(pilot, "crashed at start", "crashed: planted: the engine died at start")

    run(runs_list())


def test_the_queues_door_ends_a_run_it_cannot_start_with_the_reason(user_dir):
    u = user_dir
    proc = tunedeck("run", "demo-cpu", *run_args(), "--workspace", "ws-door", "--set", "gate.when=never", cwd=u)
    assert proc.returncode == 0, proc.stderr
    run_dir = u / "ws-door" / "runs" / proc.stdout.splitlines()[0]
    (run_dir / "run.toml").write_text("[model\n")  # a record broken by hand after the run
    door = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunedeck.engine.scheduling.run_queue",
            str(run_dir),
            "--",
            sys.executable,
            "-c",
            "pass",
        ],
        capture_output=True,
        text=True,
        cwd=str(run_dir),
        timeout=60,
        env={**os.environ},
    )
    assert door.returncode == 1
    assert "Traceback" not in door.stderr  # a broken record is a message, not a traceback
    status = read_written_status(run_dir)
    assert status.state == C.FAILED and status.message.startswith("could not start: ")
    assert "run.toml" in status.message
