"""GPU and engine readings with short history graphs, coloured by threshold.

Sources, best first: live NVML on this machine; the GPU readings the engine recorded in its
"sample" events (a run recorded on a GPU machine); otherwise a plain statement that no GPU is
available, with CPU and RAM instead. The engine process's CPU and memory are always shown: live
when it runs here, else as last recorded.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tunedeck.engine.run.formatting import fmt_bytes, fmt_clock, fmt_percent, is_number

from ..formatting import sparkline
from ..telemetry_history import TelemetryHistory

OK, WARN, CRIT = "green", "yellow", "bold red"
LABEL_W, VALUE_W = 7, 14


def level(value, warn: float, crit: float, low_is_bad: bool = False) -> str:
    """A style for a reading: crit/warn thresholds on the high side, or on the low side."""
    if not is_number(value):
        return "dim"
    if low_is_bad:
        return CRIT if value < crit else WARN if value < warn else OK
    return CRIT if value >= crit else WARN if value >= warn else OK


def metric_line(label: str, value: str, style: str, history, width: int, lo=None, hi=None) -> Text:
    mark = "!" if style == CRIT else " "  # colour is never the only signal (NO_COLOR)
    spark_w = max(0, width - LABEL_W - VALUE_W - 2)
    return Text.assemble(
        (f"{label:<{LABEL_W}}", "bold"),
        (f"{value:>{VALUE_W}}", style),
        mark,
        " ",
        (sparkline(list(history), spark_w, lo, hi), style if style != "dim" else ""),
    )


def wrap_words(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return lines


def gpu_pane_lines(live: TelemetryHistory, recorded: TelemetryHistory, width: int) -> list[Text]:
    width = max(24, width)
    lines: list[Text] = []
    # -- the engine process --
    if live.latest and live.latest.process:
        src, note = live, ""
    elif recorded.latest and recorded.latest.process:
        src, note = recorded, f" (recorded {fmt_clock(recorded.latest.t, '%H:%M:%S')})"
    else:
        src, note = None, ""
    lines.append(Text("Engine" + note, style="bold"))
    if src is not None:
        p = src.latest.process  # type: ignore[union-attr]
        cpu = p.get("cpu_percent")
        lines.append(metric_line("CPU", fmt_percent(cpu), level(cpu, 400, 1600), src.engine_cpu, width))
        lines.append(metric_line("RSS", fmt_bytes(p.get("rss_bytes")), "", src.engine_rss, width))
    else:
        lines.append(Text("  not running on this machine", style="dim"))
    # -- GPUs --
    gsrc = (
        live
        if live.has_gpus and live.latest and live.latest.gpus is not None
        else recorded
        if recorded.has_gpus
        else None
    )
    if gsrc is not None:
        if gsrc is recorded:
            lines.append(
                Text(f"GPUs (recorded {fmt_clock(gsrc.latest.t if gsrc.latest else None, '%H:%M:%S')})", style="bold")
            )
        for idx in sorted(gsrc.gpu):
            g = gsrc.gpu_latest.get(idx, {})
            hist = gsrc.gpu[idx]
            name = str(g.get("name") or "GPU")
            lines.append(Text(f"GPU {idx} {name}"[:width], style="bold"))
            util = g.get("util_percent")
            lines.append(
                metric_line(
                    "util", fmt_percent(util), level(util, 70, 30, low_is_bad=True), hist["util"], width, 0, 100
                )
            )
            used, total = g.get("mem_used"), g.get("mem_total")
            frac = 100.0 * used / total if is_number(used) and is_number(total) and total else None
            lines.append(
                metric_line(
                    "memory", f"{fmt_bytes(used)}/{fmt_bytes(total)}", level(frac, 85, 95), hist["mem"], width, 0, 100
                )
            )
            temp = g.get("temperature_c")
            lines.append(
                metric_line(
                    "temp", f"{temp:.0f}°C" if is_number(temp) else "n/a", level(temp, 75, 85), hist["temp"], width
                )
            )
            power, limit = g.get("power_w"), g.get("power_limit_w")
            pfrac = 100.0 * power / limit if is_number(power) and is_number(limit) and limit else None
            pval = (f"{power:.0f}/{limit:.0f}W" if is_number(limit) else f"{power:.0f}W") if is_number(power) else "n/a"
            lines.append(metric_line("power", pval, level(pfrac, 90, 98), hist["power"], width, lo=0))
            own = g.get("own_mem")
            lines.append(
                Text.assemble(
                    (f"{'engine':<{LABEL_W}}", "bold"),
                    f"{fmt_bytes(own) if is_number(own) else 'n/a':>{VALUE_W}}",
                    " on this GPU",
                )
            )
        return lines
    reason = ""
    for h in (recorded, live):  # why the run's own machine had none, first
        if h.latest and h.latest.gpu_reason:
            reason = h.latest.gpu_reason
            break
    lines.append(Text("GPU   not available", style="bold yellow"))
    for part in wrap_words(reason or "NVML reported no GPU readings", width - 2):
        lines.append(Text("  " + part, style="dim"))
    ssrc = (
        live if live.latest and live.latest.system else recorded if recorded.latest and recorded.latest.system else None
    )
    if ssrc is not None:
        s = ssrc.latest.system  # type: ignore[union-attr]
        note = "" if ssrc is live else " (recorded)"
        lines.append(Text("System" + note, style="bold"))
        cpu = s.get("sys_cpu_percent")
        lines.append(metric_line("CPU", fmt_percent(cpu), level(cpu, 85, 95), ssrc.cpu, width, 0, 100))
        used, total = s.get("sys_mem_used"), s.get("sys_mem_total")
        frac = 100.0 * used / total if is_number(used) and is_number(total) and total else None
        lines.append(
            metric_line("RAM", f"{fmt_bytes(used)}/{fmt_bytes(total)}", level(frac, 80, 92), ssrc.ram, width, 0, 100)
        )
    return lines


class GpuPane(Widget):
    DEFAULT_CSS = """
    GpuPane { height: auto; width: 1fr; }
    """

    def __init__(self, live: TelemetryHistory, recorded: TelemetryHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.live = live
        self.recorded = recorded

    def lines(self) -> list[Text]:
        return gpu_pane_lines(self.live, self.recorded, self.size.width or 36)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(gpu_pane_lines(self.live, self.recorded, width))

    def render(self) -> RenderResult:
        return Text("\n").join(self.lines())
