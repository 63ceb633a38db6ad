"""Smoke test in a real terminal: the real `tunedeck app` inside tmux, on a run a live engine is
writing. Checks what only a terminal shows (the plot and panes drawn), that quitting leaves the
engine running, that a new session re-attaches to it live, and that the stop key reaches it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from fixtures.app_harness import RUNNING, copy_workspace
from fixtures.fake_engine import start_detached
from fixtures.tmux import TMUX, Tmux, a_step_after, step_on_screen

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    TMUX is None,
    reason="tmux is not installed: this smoke test needs a real terminal (CI installs tmux; apt-get install tmux)",
)


GREY_SGR = {30, 37, 40, 47, 90, 97, 100, 107}


def _grey_256(n: int) -> bool:
    if n >= 232 or n in (0, 7, 8, 15):
        return True
    if 16 <= n <= 231:
        n -= 16
        return n // 36 == n // 6 % 6 == n % 6
    return False


def chromatic_colours(escaped: str) -> set:
    """Colours in SGR escape sequences that are not black, white or grey."""
    found: set = set()
    for part in escaped.split("\x1b[")[1:]:
        head = part.split("m", 1)[0]
        if not head or not all(c.isdigit() or c == ";" for c in head):
            continue
        params = [int(x) if x else 0 for x in head.split(";")]
        j = 0
        while j < len(params):
            p = params[j]
            if p in (38, 48) and j + 1 < len(params) and params[j + 1] == 5 and j + 2 < len(params):
                if not _grey_256(params[j + 2]):
                    found.add(("256", params[j + 2]))
                j += 3
            elif p in (38, 48) and j + 1 < len(params) and params[j + 1] == 2 and j + 4 < len(params):
                r, g, b = params[j + 2 : j + 5]
                if not r == g == b:
                    found.add(("rgb", r, g, b))
                j += 5
            else:
                if (30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107) and p not in GREY_SGR:
                    found.add(("16", p))
                j += 1
    return found


def test_app_in_tmux_follows_a_live_engine_and_leaves_it_running(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,))
    run_dir = ws / "runs" / RUNNING
    engine = start_detached(run_dir)
    tmux = Tmux(f"tunedeck-test-{os.getpid()}")
    env = {"TZ": "UTC", "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    app = f"{sys.executable} -m tunedeck.tui.cli app --workspace {ws} --open {RUNNING}"
    try:
        tmux.start("first", app, env)
        screen = tmux.wait_for(
            "first", "Loss", "▶ running", "/1000 ", "Engine", "CPU", "Events", "Checkpoints", "┤", "esc Back"
        )
        first = step_on_screen(screen)
        tmux.wait_for("first", "ETA")
        tmux.wait_until("first", a_step_after(first), f"a step after {first}", timeout=20)  # new events appear

        tmux("send-keys", "-t", "first", "q")
        deadline = time.monotonic() + 10
        while tmux.alive("first"):
            assert time.monotonic() < deadline, "the app did not quit on q"
            time.sleep(0.1)
        assert engine.poll() is None, "quitting the app stopped the engine"

        tmux.start("second", app, env)  # another terminal, later: re-attaches live
        screen = tmux.wait_for("second", "▶ running", "/1000 ", "Loss", "┤")
        assert step_on_screen(screen) > first
        tmux("send-keys", "-t", "second", "s")
        tmux.wait_for("second", f"Stop run {RUNNING}?")
        tmux("send-keys", "-t", "second", "y")
        tmux.wait_for("second", "■ stopped", "r Resume")
        assert engine.wait(timeout=10) == 0
        tmux("send-keys", "-t", "second", "q")
    finally:
        tmux.kill_server()
        if engine.poll() is None:
            engine.terminate()
            engine.wait(timeout=10)


def test_app_in_tmux_respects_no_color(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,))
    tmux = Tmux(f"tunedeck-nocolor-{os.getpid()}")
    env = {
        "TZ": "UTC",
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    try:
        tmux.start(
            "mono", f"{sys.executable} -m tunedeck.tui.cli app --workspace {ws} --open {RUNNING} --no-telemetry", env
        )
        tmux.wait_for("mono", "Loss", "✗ crashed", "┤")
        time.sleep(0.5)
        escapes = tmux("capture-pane", "-p", "-e", "-t", "mono").stdout
        colours = chromatic_colours(escapes)
        assert not colours, f"NO_COLOR set but colours were drawn: {sorted(map(str, colours))[:10]}"
        tmux("send-keys", "-t", "mono", "q")
    finally:
        tmux.kill_server()
