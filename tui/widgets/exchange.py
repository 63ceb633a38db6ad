"""One exchange in the playground: a prompt, then the base's and the checkpoint's answers side by side."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

# control characters as their Unicode pictures (VT -> ␋): the terminal would drop them, hiding what the model wrote
_CONTROL_PICTURES = {c: 0x2400 + c for c in range(0x20) if chr(c) not in "\n\t"} | {0x7F: 0x2421}


def visible_text(text: str) -> str:
    """A model's answer as shown: newlines and tabs kept, other control characters made visible."""
    return text.translate(_CONTROL_PICTURES)


def _answer_footer(answer: dict) -> str:
    return f"{answer.get('latency_ms', 0):,.0f} ms · {answer.get('new_tokens', 0)} new tokens"


class Exchange(Vertical):
    """One prompt and the two answers to it, base on the left, checkpoint on the right."""

    def __init__(
        self, prompt: str, step: int | None, system_prompt: str = "", base_title: str = "base", turn: int = 1
    ) -> None:
        super().__init__(classes="exchange")
        self.prompt = prompt
        self.turn = turn
        self.step = step
        self.system_prompt = system_prompt
        self.base_title = base_title

    def compose(self) -> ComposeResult:
        prompt = Text.assemble(("› ", "bold"), self.prompt)
        if self.turn > 1:  # both models see the earlier turns of this conversation
            prompt.append(f"  (turn {self.turn})", style="dim")
        if self.system_prompt:  # it changes what the checkpoint says: keep it with the exchange
            prompt.append(f"\n  system: {self.system_prompt}", style="dim")
        yield Static(prompt, classes="exchange-prompt")
        with Horizontal(classes="exchange-answers"):
            yield Static(Text("…", style="dim"), classes="answer answer-base")
            yield Static(Text("…", style="dim"), classes="answer answer-checkpoint")

    def on_mount(self) -> None:
        self.query_one(".answer-base").border_title = self.base_title
        self.query_one(".answer-checkpoint").border_title = f"checkpoint-{self.step}"

    def show(self, reply: dict) -> None:
        """Fill both columns from a reply; a failed request shows its error in both."""
        base, ckpt = self.query_one(".answer-base", Static), self.query_one(".answer-checkpoint", Static)
        if "error" in reply:
            for side in (base, ckpt):
                side.update(Text(f"✗ {reply['error']}", style="red"))
            return
        self.step = reply.get("step", self.step)
        ckpt.border_title = f"checkpoint-{self.step}"
        for side, answer in ((base, reply["base"]), (ckpt, reply["checkpoint"])):
            side.update(Text(visible_text(answer["text"])) if answer["text"] else Text("(empty answer)", style="dim"))
            side.border_subtitle = _answer_footer(answer)

    def texts(self) -> tuple[str, str]:
        """(base, checkpoint) as shown."""
        return (
            str(self.query_one(".answer-base", Static).content),
            str(self.query_one(".answer-checkpoint", Static).content),
        )
