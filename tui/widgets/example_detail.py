"""One eval example on screen: the prompt and reference above, two models' outputs and checks side by side.

Shared by the per-example details (tui/screens/examples.py) and review mode (tui/screens/review.py).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from tunedeck.engine.gate.example_records import BASE

from ..example_filters import BUCKET_NAMES, MISSING, ExamplePair, prompt_text

BUCKET_STYLE = {
    "regressed": "bold red",
    "fixed": "green",
    "still_failing": "yellow",
    "still_passing": "dim",
    "unscored": "dim italic",
    MISSING: "magenta",
}


def pass_mark(passed: bool | None, present: bool = True) -> Text:
    if not present:
        return Text("absent", style="magenta")
    if passed is None:
        return Text("skipped", style="dim")
    return Text("✓", style="green") if passed else Text("✗", style="bold red")


def side_title(checkpoint: int | str) -> str:
    return "base" if checkpoint == BASE else f"checkpoint-{checkpoint}"


def render_side(rec: dict | None, title: str) -> Text:
    """One model's answer: output, each check (mark, type, reason), latency and new tokens."""
    out = Text()
    out.append(title, style="bold")
    if rec is None:
        out.append("\n\nno result for this example on this side (it was not in the eval sets then)", style="magenta")
        return out
    out.append("  ")
    out.append_text(pass_mark(rec.get("pass")))
    if rec.get("system_prompt"):
        out.append("\nsystem prompt used: ", style="dim")
        out.append(str(rec["system_prompt"]), style="dim")
    out.append("\n\noutput\n", style="bold underline")
    output = rec.get("output")
    out.append(str(output) if output not in (None, "") else "(empty output)")
    out.append("\n\nchecks\n", style="bold underline")
    for check in rec.get("checks") or []:
        out.append_text(pass_mark(check.get("pass")))
        out.append(f" {check.get('type', '?')}", style="bold")
        if check.get("reason"):
            out.append(f"  {check['reason']}")
        out.append("\n")
    if not rec.get("checks"):
        out.append("(no checks)\n", style="dim")
    latency, tokens = rec.get("latency_ms"), rec.get("new_tokens")
    facts = []
    if isinstance(latency, (int, float)):
        facts.append(f"latency {latency:.0f} ms")
    if isinstance(tokens, int):
        facts.append(f"{tokens} new tokens")
    if facts:
        out.append("\n" + " · ".join(facts), style="dim")
    return out


def render_example_head(pair: ExamplePair) -> Text:
    """What the example asks: id, set, tags, bucket, the prompt (role: content) and the reference."""
    rec = pair.shown
    out = Text()
    out.append(pair.id, style="bold")
    out.append(f"  {BUCKET_NAMES.get(pair.bucket, pair.bucket)}", style=BUCKET_STYLE.get(pair.bucket, ""))
    if pair.tags:
        out.append(f"  tags: {', '.join(pair.tags)}", style="dim")
    out.append("\n\nprompt\n", style="bold underline")
    prompt = rec.get("prompt")
    if isinstance(prompt, list):
        for m in prompt:
            if isinstance(m, dict):
                out.append(f"{m.get('role', '?')}: ", style="bold cyan")
                out.append(f"{m.get('content', '')}\n")
            else:
                out.append(f"{m}\n")
    else:
        out.append(prompt_text(prompt) + "\n")
    out.append("\nreference\n", style="bold underline")
    ref = rec.get("reference")
    out.append(
        str(ref) if ref not in (None, "") else "(none: judged by its checks alone)",
        style="" if ref not in (None, "") else "dim",
    )
    return out


class ExampleDetail(VerticalScroll):
    """The prompt and reference above, the two sides' outputs and checks side by side below."""

    DEFAULT_CSS = """
    ExampleDetail { height: 1fr; padding: 0 1; }
    ExampleDetail #example-head { height: auto; margin-bottom: 1; }
    ExampleDetail #example-sides { height: auto; }
    ExampleDetail .example-side { width: 1fr; height: auto; padding: 0 1 0 0; }
    ExampleDetail #example-right { padding: 0 0 0 1; border-left: solid $panel; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="example-head")
        with Horizontal(id="example-sides"):
            yield Static("", id="example-left", classes="example-side")
            yield Static("", id="example-right", classes="example-side")

    def show(self, pair: ExamplePair | None, left: int | str, right: int | str) -> None:
        self.query_one("#example-sides").display = pair is not None
        if pair is None:
            self.query_one("#example-head", Static).update(Text("No example selected.", style="dim"))
            return
        self.query_one("#example-head", Static).update(render_example_head(pair))
        self.query_one("#example-left", Static).update(render_side(pair.left, side_title(left)))
        self.query_one("#example-right", Static).update(render_side(pair.right, side_title(right)))
        self.scroll_home(animate=False)
