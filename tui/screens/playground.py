"""The playground: type a prompt, read the base model's and a checkpoint's answers side by side.

The models live in an engine process (tunedeck.engine.gate.playground), driven by a PlaygroundClient from
thread workers, so the app never imports torch and never blocks while a model loads or
generates. One prompt is in flight at a time; each exchange stays on screen, newest at the
bottom. The base answers with the gate's base system prompt, as in the gate; the checkpoint
gets the system prompt set here (none by default). Leaving the screen closes the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, Label, Static

from tunedeck.engine.gate.playground import PlaygroundClient, PlaygroundError

from ..engine_client import open_playground
from ..widgets.exchange import Exchange
from ..worker_failures import RoutesWorkerFailures

CLOSE_GRACE_S = 1.0  # after EOF on stdin, how long the engine may take to exit before it is terminated


class AskLine(ModalScreen[str | None]):
    """One line of text: enter gives it (possibly empty), esc gives None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Leave it as it was", id="playground.ask_cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, id="ask-line")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class PlaygroundScreen(RoutesWorkerFailures, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back (closes the playground's model process)", id="playground.back"),
        Binding(
            "ctrl+o",
            "switch_checkpoint",
            "Checkpoint",
            tooltip="Compare another checkpoint (or restart after a failure)",
            id="playground.checkpoint",
        ),
        Binding(
            "ctrl+n",
            "new_conversation",
            "New chat",
            tooltip="Start a new conversation: the next prompt has no earlier turns",
            id="playground.new_conversation",
        ),
        Binding(
            "ctrl+s",
            "system_prompt",
            "System prompt",
            tooltip="Set the system prompt the checkpoint gets (the base keeps the gate's)",
            id="playground.system",
        ),
    ]

    @dataclass(eq=False)
    class Ready(Message):
        client: PlaygroundClient

    @dataclass(eq=False)
    class Failed(Message):
        """The engine did not start or died; `error` is PlaygroundError's one line."""

        error: str

    @dataclass(eq=False)
    class AnswersArrived(Message):
        exchange: "Exchange"
        reply: dict

    @dataclass(eq=False)
    class CheckpointSwitched(Message):
        step: int | None
        error: str | None = None

    def __init__(self, run_dir: Path, checkpoint: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.requested = checkpoint
        self.client: PlaygroundClient | None = None  # set once the engine process is ready
        self.system_prompt = ""
        # the conversation so far: (prompt, base's answer, checkpoint's answer) per turn; each model
        # continues its own conversation, since their earlier answers differ
        self.turns: list[tuple[str, str, str]] = []
        self.busy = False  # loading, generating or switching: one request at a time
        self.failed: str | None = None  # why the engine is not there, once it failed to start or died
        self._leaving = threading.Event()  # set on unmount: a worker that finishes late closes what it started

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="playground-exchanges"):
            yield Static(
                "Type a prompt below; the base model and the checkpoint answer it side by side.", id="playground-empty"
            )
        yield Static("", id="playground-status", markup=False)
        yield Input(placeholder="a prompt for both models (enter sends)", id="playground-prompt")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Playground"
        self.sub_title = self.run_dir.name
        self.query_one(Input).focus()
        self._start(self.requested)

    def on_unmount(self) -> None:
        self._leaving.set()
        self._close_client()

    def action_back(self) -> None:
        self.app.pop_screen()

    # ---- status line ------------------------------------------------------------------------

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#playground-status", Static)
        status.set_class(error, "error")
        status.update(text)

    @property
    def status_text(self) -> str:
        return str(self.query_one("#playground-status", Static).content)

    def _ready_status(self, problem: str = "") -> None:
        info = self.client.info if self.client else {}
        parts = [
            f"checkpoint-{self.client.checkpoint} vs base {info.get('base_model', '')}".rstrip(),
            info.get("adapter"),
            info.get("precision"),
            info.get("device"),
        ]
        line = " · ".join(str(p) for p in parts if p)
        if self.system_prompt:
            short = self.system_prompt if len(self.system_prompt) <= 40 else self.system_prompt[:39] + "…"
            line += f" · system prompt: {short}"
        if problem:
            self._status(f"✗ {problem}  —  still {line}", error=True)
        else:
            self._status(f"{line}  —  enter sends the prompt")

    @staticmethod
    def _which(step) -> str:
        if step is None:
            return "the run's checkpoint (chosen, else best, else latest)"
        return f"checkpoint-{step}" if str(step).isdigit() else f"the {step} checkpoint"

    # ---- the engine process -----------------------------------------------------------------

    def _start(self, checkpoint) -> None:
        self.busy, self.failed = True, None
        self._status(f"loading the base model and {self._which(checkpoint)}…")
        self.start_engine(checkpoint)

    @work(thread=True, exit_on_error=False, group="playground-start", exclusive=True, name="start playground")
    def start_engine(self, checkpoint) -> None:
        client = open_playground(self.run_dir, checkpoint)
        try:
            client.start()
        except PlaygroundError as e:
            self.post_message(self.Failed(str(e)))
            return
        if self._leaving.is_set():  # the screen went away while the models loaded
            client.close(CLOSE_GRACE_S)
            return
        self.post_message(self.Ready(client))

    @on(Ready)
    def _ready(self, message: Ready) -> None:
        self.client = message.client
        if self._leaving.is_set():
            self._close_client()
            return
        self.busy = False
        self._ready_status()

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self._close_client()  # reap a process that died
        self.busy = False
        self.failed = message.error
        self._status(f"✗ {message.error}  —  ctrl+o starts it again on a checkpoint", error=True)

    def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            # close() waits for the process: a plain (non-daemon) thread keeps the UI free and outlives the app
            threading.Thread(target=client.close, args=(CLOSE_GRACE_S,), name="close playground").start()

    # ---- asking -----------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.client is None or self.busy:
            if not self.failed:
                self.notify("wait for the models: one prompt at a time", timeout=3)
            return
        event.input.value = ""
        messages, base_messages = self.conversation(prompt)
        for hint in self.query("#playground-empty"):
            hint.remove()
        # the base answers with the gate's system prompt in place of ours (as the gate scored it)
        base_title = "base · gate's system prompt" if self.client.info.get("base_system_prompt") else "base"
        exchange = Exchange(prompt, self.client.checkpoint, self.system_prompt, base_title, turn=len(self.turns) + 1)
        scroll = self.query_one("#playground-exchanges", VerticalScroll)
        scroll.mount(exchange)
        scroll.scroll_end(animate=False)
        self.busy = True
        self._status(f"generating: base and checkpoint-{self.client.checkpoint}…")
        self.ask(self.client, exchange, messages, base_messages)

    def conversation(self, prompt: str) -> tuple[list[dict], list[dict]]:
        """(the checkpoint's messages, the base's) with the earlier turns and `prompt` as the new user turn."""
        start = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        mine, base = list(start), list(start)
        for user, base_answer, answer in self.turns:
            mine += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            base += [{"role": "user", "content": user}, {"role": "assistant", "content": base_answer}]
        turn = {"role": "user", "content": prompt}
        return mine + [turn], base + [turn]

    def action_new_conversation(self) -> None:
        if self.busy:
            self.notify("wait for the models first", timeout=3)
            return
        self._new_conversation("new conversation")

    def _new_conversation(self, why: str) -> None:
        if not self.turns:
            return
        self.turns = []
        scroll = self.query_one("#playground-exchanges", VerticalScroll)
        scroll.mount(
            Static(Text(f"── {why}: the next prompt starts afresh ──", style="dim"), classes="conversation-break")
        )
        scroll.scroll_end(animate=False)

    @work(thread=True, exit_on_error=False, group="playground-ask", name="ask playground")
    def ask(
        self, client: PlaygroundClient, exchange: Exchange, messages: list[dict], base_messages: list[dict]
    ) -> None:
        try:
            reply = client.ask(messages, base_messages=base_messages)
        except PlaygroundError as e:
            self.post_message(self.AnswersArrived(exchange, {"error": "no answer: the model process stopped"}))
            self.post_message(self.Failed(str(e)))
            return
        self.post_message(self.AnswersArrived(exchange, reply))

    @on(AnswersArrived)
    def _answers_arrived(self, message: AnswersArrived) -> None:
        message.exchange.show(message.reply)
        reply = message.reply
        if "error" not in reply:  # a failed turn is not part of the conversation
            self.turns.append((message.exchange.prompt, reply["base"]["text"], reply["checkpoint"]["text"]))
        self.query_one("#playground-exchanges", VerticalScroll).scroll_end(animate=False)
        if self.client is None:
            return
        self.busy = False
        self._ready_status(message.reply.get("error", ""))

    # ---- another checkpoint, the system prompt -------------------------------------------------

    def action_switch_checkpoint(self) -> None:
        if self.busy:
            self.notify("wait for the models first", timeout=3)
            return
        current = f" (now checkpoint-{self.client.checkpoint})" if self.client else ""
        self.app.push_screen(
            AskLine(f"Compare which checkpoint{current}? A step, or best, chosen, latest"), self._switch_to
        )

    def _switch_to(self, answer: str | None) -> None:
        if not answer:
            return
        bare = answer.removeprefix("checkpoint-")
        step: int | str = int(bare) if bare.isdigit() else answer
        if self.client is None:  # nothing running (it failed to start, or died): start afresh on that step
            self._start(step)
            return
        self.busy = True
        self._status(f"loading {self._which(step)}…")
        self.switch(self.client, step)

    @work(thread=True, exit_on_error=False, group="playground-switch", exclusive=True, name="switch checkpoint")
    def switch(self, client: PlaygroundClient, step) -> None:
        try:
            self.post_message(self.CheckpointSwitched(client.switch(step)))
        except PlaygroundError as e:
            if client.alive:  # a step that does not exist: the old checkpoint still answers
                self.post_message(self.CheckpointSwitched(None, str(e)))
            else:
                self.post_message(self.Failed(str(e)))

    @on(CheckpointSwitched)
    def _checkpoint_switched(self, message: CheckpointSwitched) -> None:
        if self.client is None:
            return
        if not message.error:  # another checkpoint did not write the earlier answers
            self._new_conversation(f"now checkpoint-{self.client.checkpoint}")
        self.busy = False
        self._ready_status(message.error or "")

    def action_system_prompt(self) -> None:
        self.app.push_screen(
            AskLine("System prompt for the checkpoint (empty: none; the base keeps the gate's)", self.system_prompt),
            self._set_system_prompt,
        )

    def _set_system_prompt(self, text: str | None) -> None:
        if text is None:
            return
        if text != self.system_prompt:
            self._new_conversation("new system prompt")
        self.system_prompt = text
        if self.client is not None and not self.busy:
            self._ready_status()
