"""Being told: the app's bell when a run ends or gets its verdict, and [notify] command from the engine."""

from __future__ import annotations

import json

import pytest
from conftest import read_events, tunedeck
from fixtures.app_harness import RUNNING, copy_workspace, make_app, run, wait_until

from tunedeck.engine.observe.notify import run_notify_command
from tunedeck.engine.run import contract as C
from tunedeck.tui.run_bell import RunBell


class Events:
    def __init__(self) -> None:
        self.emitted: list[dict] = []

    def emit(self, kind: str, **fields) -> None:
        self.emitted.append({"kind": kind, **fields})


def test_the_bell_rings_for_an_end_or_a_verdict_never_for_what_was_there_at_start():
    bell = RunBell()
    assert bell.update({"a": ("completed", "pass"), "b": ("running", None)}) == []
    assert bell.update({"a": ("completed", "pass"), "b": ("running", None), "c": ("queued", None)}) == []
    assert bell.update({"a": ("completed", "pass"), "b": ("failed", None), "c": ("running", None)}) == ["b failed"]
    assert bell.update({"a": ("completed", "fail"), "b": ("failed", None), "c": ("running", None)}) == [
        "a: gate verdict fail"
    ]
    assert bell.update({"a": ("completed", "fail"), "b": ("failed", None), "c": ("completed", "pass")}) == [
        "c completed, gate: pass"
    ]
    assert bell.update({"a": ("running", "fail"), "b": ("failed", None), "c": ("completed", "pass")}) == []  # resumed
    assert bell.update({"a": ("stopped", "fail"), "b": ("failed", None), "c": ("completed", "pass")}) == [
        "a stopped, gate: fail"
    ]


def test_the_notify_command_gets_the_run_in_its_environment(tmp_path):
    events = Events()
    out = tmp_path / "env.txt"
    assert (
        run_notify_command(f"env | grep ^TUNEDECK_ | sort > {out}", tmp_path, "completed", "pass", "done", events)
        is None
    )
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["TUNEDECK_RUN_ID"] == tmp_path.name and env["TUNEDECK_STATE"] == "completed"
    assert env["TUNEDECK_VERDICT"] == "pass" and env["TUNEDECK_MESSAGE"] == "done" and not events.emitted


def test_a_failing_or_hanging_command_is_a_warning(tmp_path):
    events = Events()
    warning = run_notify_command("echo no route to host >&2; exit 7", tmp_path, "failed", None, "", events)
    assert warning == "notify.command exited with status 7: no route to host"
    assert events.emitted == [{"kind": C.EV_WARNING, "code": "notify_failed", "message": warning}]
    assert "still running after 0.5 s" in run_notify_command("sleep 5", tmp_path, "failed", None, "", timeout=0.5)


def test_the_app_rings_when_a_run_it_watches_ends(tmp_path):
    from tunedeck.engine.run.status_writer import write_status

    ws = copy_workspace(tmp_path / "ws", live=(RUNNING,))

    async def go():
        app = make_app(ws)
        rings = []
        app.bell = lambda: rings.append(1)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(pilot, lambda: app.run_bell.seen is not None, what="the first look")
            assert rings == []  # finished runs at start-up ring nothing
            from fixtures.app_harness import COMPLETED

            app.open_run_by_id(COMPLETED)  # the bell rings on any screen, not only the runs list
            write_status(ws / "runs" / RUNNING, state=C.COMPLETED, gate_verdict="pass")
            await wait_until(pilot, lambda: rings, what="the bell")
            assert any(f"{RUNNING} completed, gate: pass" in n for n in app.notices)

    run(go())


@pytest.mark.slow
def test_the_engine_runs_the_notify_command_when_the_run_ends(workspace, tiny_model_dir, sft_data, tmp_path):
    out = tmp_path / "told.txt"
    command = f"echo $TUNEDECK_RUN_ID $TUNEDECK_STATE verdict=$TUNEDECK_VERDICT > {out}; exit 5"
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=1",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--set",
        "optim.batch_size=8",
        "--set",
        "optim.grad_accum=1",
        "--set",
        f"notify.command={json.dumps(command)}",
        check=True,
    )
    run_id = proc.stdout.strip().splitlines()[0]
    assert out.read_text().split() == [run_id, "completed", "verdict="]
    events = read_events(workspace / "runs" / run_id)
    warning = next(e for e in events if e.get("code") == "notify_failed")
    assert warning["message"] == "notify.command exited with status 5" and events[-1]["kind"] == C.EV_DONE
    assert "warning: notify.command exited with status 5" in proc.stdout


def test_a_new_gate_verdict_from_tunedeck_eval_runs_the_command(tmp_path):
    from tunedeck.engine.config.profile_loading import build_profile
    from tunedeck.engine.observe.notify import notify_gate_verdict
    from tunedeck.engine.run.gate_result import GateSummary
    from tunedeck.engine.run.run_record import RunRecord, write_run_record
    from tunedeck.engine.run.status_writer import write_status

    run_dir = tmp_path / "runs" / "20250101-000000-r-0001"
    run_dir.mkdir(parents=True)
    out = tmp_path / "told.txt"
    profile = build_profile({"notify": {"command": f"echo $TUNEDECK_STATE $TUNEDECK_VERDICT > {out}"}})
    write_run_record(run_dir, RunRecord(id=run_dir.name, name="r", profile=profile))
    write_status(run_dir, state=C.COMPLETED)
    notify_gate_verdict(run_dir, GateSummary(verdict="fail", sentence="no checkpoint passed"))
    assert out.read_text().split() == ["completed", "fail"]
