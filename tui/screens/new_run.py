"""The new-run screen: profile picker, hyperparameter form, dataset pane; pre-flight, then launch.

Picking a profile fills the form; the form validates as you type (errors block the launch, hints
do not). The dataset pane inspects data.path in a worker thread. ctrl+l (or L) gathers one summary
of blocking errors and warnings (form, dataset problems, truncation, memory estimate against the
detected GPU) and, once confirmed, runs the engine's pre-flight, creates the run directory and
spawns the detached engine; then `on_launched(run_id)` is called (by default the app opens the
run's monitor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Label, Static

from tunedeck.engine.config.profile_loading import ProfileError, load_profile
from tunedeck.engine.config.profile_schema import Profile, data_paths

from ..profile_saving import is_user_profile, save_profile, user_profile_dir
from ..widgets.dataset_pane import DatasetPane, InspectRequest
from ..widgets.hyperparam_form import HyperparamForm
from ..widgets.profile_picker import ProfileEntry, ProfilePicker
from ..worker_failures import RoutesWorkerFailures
from .confirm import ConfirmScreen


class AskName(ModalScreen[str | None]):
    """One line of text: enter accepts, esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask_name.cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(self.question)
            yield Input(self.value, id="ask-name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LaunchChoice(ConfirmScreen):
    """Launch now, or queue: the run waits (detached) until the GPUs it asks for are free."""

    BINDINGS = [
        Binding("y", "confirm", "Launch now", tooltip="Start the run now", id="launch.now"),
        Binding(
            "q",
            "queue",
            "Queue",
            tooltip="Queue the run: it starts when its GPUs are free, in the order queued",
            id="launch.queue",
        ),
        Binding("n,escape", "cancel", "Cancel", tooltip="Do not launch", id="launch.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self.question, id="confirm-question", markup=False)
            if self.detail:
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Launch now (y)", id="yes", variant="primary")
                yield Button("Queue (q)", id="queue")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss({"yes": "now", "queue": "queue"}.get(event.button.id or ""))

    def action_confirm(self) -> None:
        self.dismiss("now")

    def action_queue(self) -> None:
        self.dismiss("queue")

    def action_cancel(self) -> None:
        self.dismiss(None)


class NewRunScreen(RoutesWorkerFailures, Screen):
    TITLE = "New run"
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", tooltip="Pre-flight summary, then launch the run", id="new_run.launch"),
        Binding(
            "L",
            "launch",
            "Launch",
            show=False,
            tooltip="Pre-flight summary, then launch the run",
            id="new_run.launch_l",
        ),
        Binding("ctrl+s", "save_profile", "Save profile", tooltip="Save the form as a profile TOML", id="new_run.save"),
        Binding("ctrl+r", "inspect", "Inspect data", tooltip="Inspect data.path again", id="new_run.inspect"),
        Binding("escape", "back", "Back", tooltip="Back to the runs", id="new_run.back"),
    ]

    @dataclass(eq=False)
    class PreflightReady(Message):
        blocking: list[str] = field(default_factory=list)
        warnings: list[str] = field(default_factory=list)
        memory: str = ""

    @dataclass(eq=False)
    class Launched(Message):
        run_dir: Path | None
        pid: int | None = None
        error: str | None = None
        queued: bool = False

    def __init__(
        self,
        workspace: Path,
        on_launched: Callable[[str], None] | None = None,
        profile: str = "lora",
        data: str | None = None,
        run_name: str | None = None,
        parent=None,
    ) -> None:
        super().__init__()
        self.parent_run = (
            parent  # tunedeck.engine.config.next_run.NextRun when opened with N on a run: the next run from it
        )
        self.workspace = Path(workspace)
        self.on_launched = on_launched
        self.initial_profile = profile
        self.initial_data = data
        self.run_name = run_name
        self.picked: ProfileEntry | None = None
        self.launched: Path | None = None
        self.launching = False
        self._inspected_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="new-run-body"):
            with Vertical(id="new-run-left"):
                yield ProfilePicker(self.workspace, id="profile-picker")
                yield DatasetPane(id="dataset-pane")
            yield HyperparamForm(id="form")
        yield Static("", id="new-run-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = str(self.workspace)
        picker = self.query_one(ProfilePicker)
        if picker.entry(self.initial_profile):
            picker.pick(self.initial_profile)
        self.query_one("#profile-list").focus()
        for w in self.parent_run.warnings if self.parent_run is not None else []:
            self.notify(w, title="Fixes", severity="warning", timeout=10)

    def _from_parent(self) -> bool:
        """The form still holds the next-run profile (picking another profile starts afresh)."""
        return (
            self.parent_run is not None
            and self.picked is not None
            and Path(self.picked.path).resolve() == Path(self.parent_run.profile_path).resolve()
        )

    def parent_changes(self) -> list[str]:
        """What this run changes against the run it comes from, as the form stands."""
        from tunedeck.engine.config.profile_diff import difference_lines

        p = self.form.profile
        return difference_lines(self.parent_run.parent_profile, p) if p is not None and self._from_parent() else []

    def _show_parent_changes(self) -> None:
        nxt = self.parent_run
        self.sub_title = f"next run from {nxt.parent}"
        self._status(
            f"next run from [b]{nxt.parent}[/]: "
            + escape("; ".join(self.parent_changes()) or "no changes yet (same data, same settings)")
        )

    @property
    def form(self) -> HyperparamForm:
        return self.query_one(HyperparamForm)

    @property
    def dataset(self) -> DatasetPane:
        return self.query_one(DatasetPane)

    # ---- profile -> form -> dataset ---------------------------------------------------------

    @on(ProfilePicker.Picked)
    def _picked(self, event: ProfilePicker.Picked) -> None:
        try:
            profile = load_profile(event.entry.path, workspace=self.workspace)
        except ProfileError as e:
            self.notify(str(e), title="Broken profile", severity="error")
            return
        old = self.form.profile if self.picked is not None else None
        self.picked = event.entry
        # what the user set for this run is kept: the dataset and (for demo-style profiles) the model
        if old is not None and old.data.path and not profile.data.path:
            profile.data.path = old.data.path
        if self.initial_data and not profile.data.path:
            profile.data.path = self.initial_data
        if old is not None and old.model.base and not profile.model.base:
            profile.model.base = old.model.base
        self.form.set_profile(profile)
        self._status(f"profile [b]{event.entry.name}[/] ({event.entry.path})")
        if self._from_parent():
            self._show_parent_changes()

    @on(HyperparamForm.Changed)
    def _form_changed(self, event: HyperparamForm.Changed) -> None:
        p = event.profile
        if p is None:
            return
        if self._from_parent():
            self._show_parent_changes()
        self.dataset.set_max_seq_len(p.data.max_seq_len)
        key = (
            str(p.data.path),
            p.data.format,
            p.method.method,
            p.data.val_fraction,
            p.optim.seed,
            p.model.base,
            p.data.eval_file,
            p.model.chat_template,
            p.data.assistant_only_loss,
        )
        first = (data_paths(p.data) or [""])[0]
        if first and key != self._inspected_key and Path(first).expanduser().exists():
            self._inspected_key = key
            self.dataset.inspect(InspectRequest.from_profile(p))

    @on(DatasetPane.Inspected)
    def _inspected(self, event: DatasetPane.Inspected) -> None:
        if event.report is not None:
            self.form.set_train_rows(event.report["split"]["train"])

    def action_inspect(self) -> None:
        p = self.form.profile
        if p is None or not p.data.path:
            self.notify("Set data.path (and fix form errors) first.", severity="warning")
            return
        self._inspected_key = None
        self._form_changed(HyperparamForm.Changed(self.form, p, {}))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1 and self.app.screen is self:
            self.app.pop_screen()

    def _status(self, text: str) -> None:
        self.query_one("#new-run-status", Static).update(text)

    # ---- save as profile --------------------------------------------------------------------

    def action_save_profile(self) -> None:
        profile = self.form.profile
        if profile is None:
            self.notify("Fix the form's errors before saving.", severity="error")
            return
        entry = self.picked
        if entry is not None and is_user_profile(entry.path):
            lines = save_profile(profile, entry.path, edit_existing=True, workspace=self.workspace)
            self._saved(entry.path, lines)
            return

        def named(name: str | None) -> None:
            if not name:
                return
            path = (
                Path(name).expanduser() if name.endswith(".toml") else user_profile_dir(self.workspace) / f"{name}.toml"
            )
            lines = save_profile(profile, path, extends=entry.name if entry else None, workspace=self.workspace)
            self._saved(path, lines)
            self.query_one(ProfilePicker).reload()

        self.app.push_screen(
            AskName("Save as profile (name or path.toml):", f"{entry.name}-custom" if entry else "my-profile"), named
        )

    def _saved(self, path: Path, lines: list[str]) -> None:
        body = "\n".join(lines) or "no changes"
        self.notify(f"Saved {path}\n{body}", title="Profile saved")
        self._status(f"saved {path}: " + ("; ".join(lines) or "no changes"))

    # ---- pre-flight and launch --------------------------------------------------------------

    def blocking_and_warnings(self) -> tuple[list[str], list[str]]:
        """What the screen knows without loading anything: form errors, dataset problems, truncation."""
        blocking = list(self.form.errors.values())
        warnings = [f"hint {h}" for h in self.form.hint_list()]
        p = self.form.profile
        if p is not None and not p.data.path:
            blocking.append("data.path: no training data")
        if p is not None and p.model.trust_remote_code:
            warnings.append("model.trust_remote_code is on: the model's own Python code will run")
        if p is not None and p.model.base:
            from tunedeck.engine.models.gguf_base import cached_gguf, gguf_notice, is_gguf_ref

            frozen = cached_gguf(p.model.base)  # N on a run whose base was a GGUF file
            if frozen or is_gguf_ref(p.model.base, p.model.gguf_file):
                warnings.append(gguf_notice(frozen.source if frozen else p.model.gguf_file or p.model.base))
        ds = self.dataset
        r = ds.report
        if ds.inspecting:
            warnings.append("the dataset inspection has not finished")
        if r is not None:
            if r["errors"]:
                msg = f"dataset: {r['errors']} rows with errors (first at line {r['problems'][0]['line']})"
                if p is not None and p.data.on_invalid == "skip":
                    warnings.append(msg + "; skipped (data.on_invalid = 'skip')")
                else:
                    blocking.append(msg + "; fix them or set data.on_invalid = 'skip'")
            if r["warnings"]:
                warnings.append(f"dataset: {r['warnings']} warnings")
            if r["leakage"]:
                warnings.append(f"dataset: {len(r['leakage'])} eval rows duplicate training rows (leakage)")
        t = ds.truncation
        if t is not None and t.truncated:
            warnings.append(
                f"max_seq_len {t.max_seq_len}: {t.truncated} examples ({t.example_share:.1%}) truncated, "
                f"{'' if t.exact else '≈'}{t.trainable_cut_share:.1%} of trainable tokens cut"
            )
        return blocking, warnings

    def action_launch(self) -> None:
        if self.launching:
            return
        blocking, warnings = self.blocking_and_warnings()
        if self.form.profile is None:
            self._show_preflight(self.PreflightReady(blocking, warnings, "memory estimate: fix the form first"))
            return
        self._status("pre-flight: estimating memory ...")
        self._estimate(self.form.profile, blocking, warnings)

    @work(thread=True, exclusive=True, exit_on_error=False, group="preflight", name="pre-flight estimate")
    def _estimate(self, profile: Profile, blocking: list[str], warnings: list[str]) -> None:
        try:
            from tunedeck.engine.observe.telemetry import gpu_total_memory
            from tunedeck.engine.scheduling.memory_estimate import estimate_for_profile

            est = estimate_for_profile(profile, gpu_total_memory())
            memory = f"memory: {est.summary()}"
            if est.verdict == "will not fit":
                warnings = warnings + [f"memory: will not fit ({est.summary()})"]
            elif est.verdict == "unknown":
                memory = f"memory: no GPU detected; {est.summary()}"
        except Exception as e:  # no config for the model, offline hub id ...: say so, never crash
            memory = f"memory: cannot estimate ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        self.post_message(self.PreflightReady(blocking, warnings, memory))

    @on(PreflightReady)
    def _preflight_ready(self, message: PreflightReady) -> None:
        self._show_preflight(message)

    def _show_preflight(self, m: PreflightReady) -> None:
        lines = [f"BLOCKING: {b}" for b in m.blocking] + [f"warning: {w}" for w in m.warnings] + [m.memory]
        if self._from_parent():
            lines += [f"changed from {self.parent_run.parent}: {c}" for c in self.parent_changes()] or [
                f"same settings and data as {self.parent_run.parent}"
            ]
        self.preflight_text = "\n".join(lines)
        if m.blocking:
            self._status(f"[red]cannot launch: {len(m.blocking)} blocking problem(s)[/]")
            self.app.push_screen(
                ConfirmScreen("Cannot launch: fix these first", self.preflight_text + "\n\n(esc closes)", danger=True)
            )
            return

        def go(choice: str | None) -> None:
            if choice:
                self.launching = True
                self._status("launching: pre-flight checks ...")
                self._launch(self.form.profile, queue=choice == "queue")

        self.app.push_screen(
            LaunchChoice(
                "Launch this run?", self.preflight_text + "\n\nQueue (q): it waits, detached, until its GPUs are free."
            ),
            go,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch", name="launch run")
    def _launch(self, profile: Profile, queue: bool = False) -> None:
        from ..engine_client import LaunchRefused, launch

        try:
            run_dir, pid = launch(
                self.workspace,
                profile,
                self.picked.name if self.picked else "form",
                self.run_name,
                queue=queue,
                parent=self.parent_run.parent if self._from_parent() else None,
            )
        except LaunchRefused as e:
            self.post_message(self.Launched(None, error=str(e)))
            return
        self.post_message(self.Launched(run_dir, pid, queued=queue))

    @on(Launched)
    def _launched(self, message: Launched) -> None:
        self.launching = False
        if message.error or message.run_dir is None:
            self._status("[red]pre-flight failed[/]")
            self.notify(message.error or "launch failed", title="Pre-flight failed", severity="error", timeout=10)
            return
        self.launched = message.run_dir
        verb = "queued" if message.queued else "launched"
        self._status(f"{verb} {message.run_dir.name} (engine pid {message.pid})")
        self.notify(
            f"{verb.capitalize()} {message.run_dir.name} (engine pid {message.pid})"
            + (": it starts when its GPUs are free." if message.queued else ".")
        )
        if self.on_launched is not None:
            self.on_launched(message.run_dir.name)
        else:
            open_monitor = getattr(self.app, "open_monitor", None)
            if open_monitor is not None:
                open_monitor(message.run_dir)
