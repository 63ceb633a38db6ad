"""The export dialog: ship one checkpoint as a PEFT adapter, a merged standalone model, or a GGUF file.

A GGUF export takes a type (f16, bf16, q8_0 from llama.cpp's converter; the K-quants need llama-quantize)
and writes an Ollama Modelfile beside the file. Every export ends with the artifact gate (the exported
artifact answers the gate's task examples): the dialog shows the CLI's last lines as they are, and a
failed export (exit 1: kept, marked failed) shows those lines with the CLI's error under them.

The export runs `tunedeck export` in its own session (start_new_session), writing its stdout and
stderr to files rather than pipes, so neither a dropped SSH link nor a closed app stops it half
way. A thread worker tails the stderr file into the dialog (the CLI's progress lines), then shows
the stdout (where it went and how to load it) or the CLI's one-line error, never a traceback.
The engine publishes OUT atomically, so a stopped export leaves OUT as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Log, RadioButton, RadioSet, Select, Static
from textual.worker import get_current_worker

from tunedeck.engine.config.workspace import exports_dir, in_a_workspace, workspace_of
from tunedeck.engine.export.gguf_convert import GGUF_TYPES, QUANTIZE_TYPES
from tunedeck.engine.run.run_record import load_run_record
from tunedeck.engine.run.store import sanitize_name

from ..engine_client import start_export
from ..worker_failures import RoutesWorkerFailures
from .confirm import ConfirmScreen

POLL_S = 0.1
STOP_GRACE_S = 10.0  # after SIGTERM (the export removes its temp folder), how long before SIGKILL
TRACEBACK_START = "Traceback (most recent call last):"


def cli_errors(stderr_lines: list[str], returncode: int) -> list[str]:
    """What the CLI said went wrong: its `tunedeck: error:` lines, else a crash's exception line."""
    said = [
        line.split(": error: ", 1)[1] for line in stderr_lines if line.startswith("tunedeck") and ": error: " in line
    ]
    if said:
        return said
    for line in reversed(stderr_lines):  # a traceback ends with "SomeError: what happened"
        if line.strip() and not line.startswith((" ", "\t")):
            return [line.strip()]
    return [f"the export exited with code {returncode}"]


DEFAULT_GGUF = "q8_0"
GGUF_OPTIONS = [(t + ("  (needs llama-quantize)" if t in QUANTIZE_TYPES else ""), t) for t in GGUF_TYPES]


def default_output(workspace: Path, run_name: str, step: int, merged: bool = False, gguf: str | None = None) -> Path:
    """<workspace>/exports/<run name>-checkpoint-<N>[-merged|-<gguf type>], numbered on when that is taken."""
    stem = f"{sanitize_name(run_name)}-checkpoint-{step}{f'-{gguf}' if gguf else '-merged' if merged else ''}"
    out = exports_dir(workspace) / stem
    n = 2
    while out.exists() and (not out.is_dir() or any(out.iterdir())):
        out, n = exports_dir(workspace) / f"{stem}-{n}", n + 1
    return out


class StderrTail:
    """Complete lines appended to a file since the last read (a torn last line waits for its end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        parts = data.split(b"\n")
        self.partial = b"" if final else parts.pop()
        return [p.decode("utf-8", errors="replace").rstrip("\r") for p in parts if p.strip()]


class ExportScreen(RoutesWorkerFailures, ModalScreen[Path | None]):
    BINDINGS = [
        Binding(
            "escape",
            "close",
            "Close",
            tooltip="Close the export dialog; while an export runs, ask, then stop it",
            id="export.close",
        ),
    ]

    @dataclass(eq=False)
    class Started(Message):
        process: subprocess.Popen

    @dataclass(eq=False)
    class Progress(Message):
        line: str

    @dataclass(eq=False)
    class Finished(Message):
        returncode: int
        stdout: str
        errors: list[str] = field(default_factory=list)
        cancelled: bool = False

    def __init__(self, run_dir: Path, checkpoint: int, workspace: Path | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.workspace = (
            Path(workspace)
            if workspace
            else (workspace_of(self.run_dir) if in_a_workspace(self.run_dir) else self.run_dir.parent)
        )
        self.run_name = self.run_dir.name
        self.full = False  # a full fine-tuning run: the export is the whole model, no adapter choice
        self.problem = ""  # the run record could not be read: nothing to export
        try:
            record = load_run_record(self.run_dir)
            self.run_name = record.name or record.id
            self.full = record.profile.method.adapter == "none"
        except (OSError, ValueError) as e:
            self.problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        self.running = False
        self.exported: Path | None = None  # where the export went, once it succeeded
        self.out: Path | None = None  # the directory being exported to
        self.process: subprocess.Popen | None = None  # the latest `tunedeck export`
        self._stop = threading.Event()  # set when the user confirmed stopping a running export

    # ---- layout -----------------------------------------------------------------------------

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("full", "gguf") if self.full else ("adapter", "merged", "gguf")

    @property
    def kind(self) -> str:
        """What the user chose: "adapter", "merged", "full" (a full fine-tuning run's model) or "gguf"."""
        index = self.query_one("#export-kind", RadioSet).pressed_index
        return self.kinds[index] if 0 <= index < len(self.kinds) else self.kinds[0]

    @property
    def merge(self) -> bool:
        """The user chose a merged model over the adapter (a full run has no adapter to choose)."""
        return self.kind == "merged"

    @property
    def gguf(self) -> str | None:
        """The GGUF type when the user chose a GGUF file, else None."""
        if self.kind != "gguf":
            return None
        value = self.query_one("#export-gguf-type", Select).value
        return value if isinstance(value, str) else DEFAULT_GGUF

    def _default(self) -> Path:
        return default_output(self.workspace, self.run_name, self.checkpoint, self.merge, self.gguf)

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static(Text(f"Export checkpoint-{self.checkpoint} of {self.run_name}"), id="export-title")
            if self.full:
                yield Static(
                    "Full fine-tuning run: there is no adapter; the whole model is exported, with its "
                    "tokenizer and chat template.",
                    id="export-full-note",
                )
            with RadioSet(id="export-kind"):
                if self.full:
                    yield RadioButton("Full model (safetensors)", value=True, id="export-full")
                else:
                    yield RadioButton(
                        "Adapter only (PEFT format): small, loads on top of the base model",
                        value=True,
                        id="export-adapter",
                    )
                    yield RadioButton(
                        "Merged standalone model (safetensors): the adapter merged into the base", id="export-merged"
                    )
                yield RadioButton(
                    "GGUF file for llama.cpp, Ollama, LM Studio (llama.cpp's converter), with a Modelfile",
                    id="export-gguf",
                )
            yield Select(GGUF_OPTIONS, value=DEFAULT_GGUF, allow_blank=False, id="export-gguf-type")
            yield Label("Output directory (must not exist yet, or be empty)")
            with Horizontal(id="export-out-row"):
                yield Input(str(default_output(self.workspace, self.run_name, self.checkpoint)), id="export-out")
                yield Button("Export", id="export-start", variant="primary")
            yield Log(id="export-progress", auto_scroll=True)
            yield Static("", id="export-result", markup=False)
            yield Static("enter exports · tab moves between fields · esc closes", id="export-hint")

    def on_mount(self) -> None:
        self.query_one("#export-gguf-type").display = False
        self.query_one("#export-progress").display = False
        self.query_one("#export-result").display = False
        if self.problem:
            self._result(f"✗ {self.problem}", error=True)
            self.query_one("#export-out", Input).disabled = True
            self.query_one("#export-start", Button).disabled = True
            return
        self.query_one("#export-out", Input).focus()

    @on(RadioSet.Changed, "#export-kind")
    @on(Select.Changed, "#export-gguf-type")
    def _kind_changed(self) -> None:
        """Show the GGUF types for a GGUF export; follow the choice in the default output name, unless the user
        typed their own."""
        self.query_one("#export-gguf-type").display = self.kind == "gguf"
        box = self.query_one("#export-out", Input)
        defaults = {
            str(default_output(self.workspace, self.run_name, self.checkpoint, merged, gguf))
            for merged, gguf in [(False, None), (True, None), *((False, t) for t in GGUF_TYPES)]
        }
        if box.value in defaults:
            box.value = str(self._default())

    def _result(self, text: str, error: bool = False) -> None:
        result = self.query_one("#export-result", Static)
        result.set_class(error, "error")
        result.display = bool(text)
        result.update(text)

    def _hint(self, text: str) -> None:
        self.query_one("#export-hint", Static).update(text)

    @property
    def result_text(self) -> str:
        return str(self.query_one("#export-result", Static).content)

    # ---- exporting --------------------------------------------------------------------------

    @on(Input.Submitted, "#export-out")
    @on(Button.Pressed, "#export-start")
    def start_export(self) -> None:
        if self.running or self.exported or self.problem:
            return
        text = self.query_one("#export-out", Input).value.strip()
        if not text:
            self._result("✗ choose an output directory", error=True)
            return
        out = Path(text).expanduser()
        self.out = out if out.is_absolute() else Path.cwd() / out
        self.running = True
        for widget in self.query("#export-out, #export-start, #export-kind, #export-gguf-type"):
            widget.disabled = True
        progress = self.query_one("#export-progress", Log)
        progress.clear()
        progress.display = True
        self._result(f"exporting to {self.out}…")
        self._hint("esc stops the export (asks first)")
        self.run_export()

    @work(thread=True, exit_on_error=False, group="export", exclusive=True, name="export checkpoint")
    def run_export(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="tunedeck-export-"))
        try:
            proc = start_export(
                self.run_dir,
                self.out,
                self.checkpoint,
                merge=self.merge,
                gguf=self.gguf,
                stdout=scratch / "stdout",
                stderr=scratch / "stderr",
            )
            self.post_message(self.Started(proc))
            tail = StderrTail(scratch / "stderr")
            stderr_lines: list[str] = []  # everything the CLI printed on stderr, traceback lines included
            in_traceback = False
            interrupted_at: float | None = None
            worker = get_current_worker()
            while True:
                if worker.is_cancelled and not self._stop.is_set():
                    return  # the app is closing: the export goes on in its own session, and publishes atomically
                done = proc.poll() is not None
                for line in tail.read(final=done):
                    stderr_lines.append(line)
                    in_traceback = in_traceback or line.startswith(TRACEBACK_START)
                    if not in_traceback and ": error: " not in line:
                        self.post_message(self.Progress(line))
                if done:
                    break
                if self._stop.is_set():
                    interrupted_at = self._signal(proc, interrupted_at)
                time.sleep(POLL_S)
            stdout = (scratch / "stdout").read_text(encoding="utf-8", errors="replace")
            errors = [] if proc.returncode == 0 else cli_errors(stderr_lines, proc.returncode)
            # a stop that came too late to stop anything is no stop: the export is there
            cancelled = self._stop.is_set() and proc.returncode != 0
            self.post_message(self.Finished(proc.returncode, stdout, errors, cancelled=cancelled))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _signal(proc: subprocess.Popen, interrupted_at: float | None) -> float:
        """SIGTERM first (the export removes its half-written temp folder), SIGKILL if it lingers. Not SIGINT: an
        app started in the background of a script hands its children SIGINT ignored."""
        now = time.monotonic()
        try:
            if interrupted_at is None:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is the export alone
                return now
            if now - interrupted_at > STOP_GRACE_S:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return interrupted_at if interrupted_at is not None else now

    @on(Started)
    def _started(self, message: Started) -> None:
        self.process = message.process

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        self.query_one("#export-progress", Log).write_line(message.line)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.running = False
        if message.cancelled:
            self.dismiss(None)
            return
        if message.returncode == 0:
            self.exported = self.out
            self._result(message.stdout.rstrip())
            self._hint("esc closes")
            return
        # a failed artifact gate (exit 1) wrote its lines and kept the output: show them as the CLI does, error last
        said = message.stdout.rstrip()
        self._result((said + "\n" if said else "") + "\n".join(f"✗ {e}" for e in message.errors), error=True)
        self._hint("enter exports again · tab moves between fields · esc closes")
        for widget in self.query("#export-out, #export-start, #export-kind, #export-gguf-type"):
            widget.disabled = False
        box = self.query_one("#export-out", Input)
        if self.out is not None and self.out.exists() and box.value == str(self.out):
            box.value = str(self._default())  # the kept, failed export took that name
        box.focus()

    # ---- closing ----------------------------------------------------------------------------

    def action_close(self) -> None:
        if not self.running:
            self.dismiss(self.exported)
            return
        self.app.push_screen(
            ConfirmScreen("Stop the export?", f"Nothing is written to {self.out}; it stays as it was.", danger=True),
            self._stop_confirmed,
        )

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes and self.running:
            self._stop.set()
            self._result("stopping the export…")
