"""The tmux smoke test's first half under GNU screen: the real app in a real terminal multiplexer,
on a run a live engine writes; the panes are drawn, new steps appear, q quits and the engine runs on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest
from fixtures.app_harness import RUNNING, copy_workspace
from fixtures.fake_engine import start_detached
from fixtures.tmux import a_step_after, step_on_screen, wait_for_screen

SCREEN = shutil.which("screen")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    SCREEN is None,
    reason="GNU screen is not installed: this smoke test needs it (CI installs it; apt-get install screen)",
)


class Screen:
    """Sessions under a private SCREENDIR, so the test never touches the user's own. The SCREENDIR is a short
    folder of its own in /tmp, not under tmp_path: a session's socket path (SCREENDIR/PID.NAME) must fit in
    107 bytes, and a pytest-xdist worker's tmp_path with a five-digit pid came to 108."""

    def __init__(self, dumps: Path, env: dict[str, str]):
        self.screendir = Path(tempfile.mkdtemp(prefix="tdscreen-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.env = {**os.environ, "SCREENDIR": str(self.screendir), **env}
        self.dumps = dumps

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([SCREEN, *args], capture_output=True, text=True, check=check, timeout=20, env=self.env)

    def start(self, session: str, command: str) -> None:
        # -U: UTF-8, so the panes' box and block characters reach the app and the hardcopy as drawn
        self("-U", "-dmS", session, "sh", "-c", f"sleep 0.3; exec {command}")

    def alive(self, session: str) -> bool:
        return session in self("-ls", check=False).stdout

    def capture(self, session: str) -> str:
        """The session's screen as text. `-X hardcopy` returns before screen has written the file, and screen
        creates it empty and fills it later (CI once read it empty): wait for content that has stopped growing.
        A copy can still be cut short on a busy machine, so callers wait for the text they need, not one copy."""
        out = self.dumps / f"{session}.txt"
        out.unlink(missing_ok=True)
        self("-U", "-S", session, "-X", "hardcopy", str(out), check=False)
        deadline = time.monotonic() + 5
        size = -1
        while time.monotonic() < deadline:
            now = out.stat().st_size if out.exists() else 0
            if now and now == size:
                break
            size = now
            time.sleep(0.05)
        return out.read_text(errors="replace") if out.exists() else ""

    def wait_until(self, session: str, done: Callable[[str], bool], what: str, timeout: float = 40) -> str:
        return wait_for_screen(lambda: self.capture(session), lambda: self.alive(session), done, what, timeout)

    def wait_for(self, session: str, *needles: str, timeout: float = 40) -> str:
        return self.wait_until(session, lambda text: all(n in text for n in needles), repr(needles), timeout)


def test_app_in_gnu_screen_follows_a_live_engine_and_leaves_it_running(tmp_path):
    ws = copy_workspace(tmp_path / "ws", runs=(RUNNING,))
    run_dir = ws / "runs" / RUNNING
    engine = start_detached(run_dir)
    screen = Screen(
        tmp_path,
        {"TZ": "UTC", "TERM": "screen-256color", "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "cfg")},
    )
    session = f"tunedeck-test-{os.getpid()}"
    try:
        screen.start(session, f"{sys.executable} -m tunedeck.tui.cli app --workspace {ws} --open {RUNNING}")
        # hardcopy keeps ASCII only (no "▶ running"): the step counter shows once the run's status is read
        text = screen.wait_for(session, "Loss", "running", "Events", "esc Back", "/1000 ")
        first = step_on_screen(text)
        screen.wait_until(session, a_step_after(first), f"a step after {first}", timeout=20)  # new events appear
        screen("-S", session, "-X", "stuff", "q")
        deadline = time.monotonic() + 10
        while screen.alive(session):
            assert time.monotonic() < deadline, "the app did not quit on q"
            time.sleep(0.1)
        assert engine.poll() is None, "quitting the app stopped the engine"
    finally:
        screen("-S", session, "-X", "quit", check=False)
        shutil.rmtree(screen.screendir, ignore_errors=True)
        if engine.poll() is None:
            engine.terminate()
            engine.wait(timeout=10)
