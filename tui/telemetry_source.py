"""Where the GPU pane's readings come from: live NVML/psutil on this machine, or nothing.

Live readings go through tunedeck.engine.observe.telemetry, whose every NVML call returns "not available" instead of
raising. A reading has the same shape as the payload of the engine's "sample" events, so the pane
draws a recorded run and a live one with the same code. Tests pass NoTelemetry (or a fixed
reading) so nothing about the test machine leaks into what they assert.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class TelemetryReading:
    t: float
    gpus: list[dict] | None  # None: no GPU readings (see gpu_reason)
    gpu_reason: str = ""
    system: dict[str, Any] = field(default_factory=dict)  # sys_cpu_percent, sys_mem_used, sys_mem_total
    process: dict[str, Any] | None = None  # the engine's process tree: cpu_percent, rss_bytes
    recorded: bool = False  # from a "sample" event rather than read here and now


def reading_from_sample(ev: dict) -> TelemetryReading:
    gpus = ev.get("gpus")
    process = None
    if ev.get("cpu_percent") is not None or ev.get("rss_bytes") is not None:
        process = {"cpu_percent": ev.get("cpu_percent"), "rss_bytes": ev.get("rss_bytes")}
    return TelemetryReading(
        t=ev.get("t") or 0.0,
        gpus=[g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else None,
        gpu_reason=str(ev.get("gpu_unavailable") or ""),
        system={k: ev.get(k) for k in ("sys_cpu_percent", "sys_mem_used", "sys_mem_total") if ev.get(k) is not None},
        process=process,
        recorded=True,
    )


class TelemetrySource(Protocol):
    def read(self, pid: int | None) -> TelemetryReading: ...


class LiveTelemetry:
    """NVML and psutil on this machine. `pid` is the engine's, when it runs here."""

    def read(self, pid: int | None) -> TelemetryReading:
        from tunedeck.engine.observe import telemetry

        readings = telemetry.gpu_readings()
        process = telemetry.process_tree_usage(pid) if pid else None
        tree = _tree_pids(pid) if pid and process else set()
        gpus = None
        if readings is not None:
            gpus = []
            for g in readings:
                d = asdict(g)
                own = [mem for p, mem in g.process_mem.items() if p in tree]
                d["own_mem"] = sum(own) if own else None
                d.pop("process_mem", None)
                gpus.append(d)
        return TelemetryReading(
            t=time.time(),
            gpus=gpus,
            gpu_reason="" if gpus is not None else telemetry.gpu_unavailable_reason(),
            system=telemetry.system_usage(),
            process=process,
        )


def _tree_pids(pid: int) -> set[int]:
    try:
        import psutil

        proc = psutil.Process(pid)
        return {pid} | {c.pid for c in proc.children(recursive=True)}
    except Exception:
        return {pid}


class NoTelemetry:
    """Reads nothing: the pane shows what the run recorded. For tests and `--no-telemetry`."""

    def __init__(self, reason: str = "live readings are off") -> None:
        self.reason = reason

    def read(self, pid: int | None) -> TelemetryReading:
        return TelemetryReading(t=time.time(), gpus=None, gpu_reason=self.reason)
