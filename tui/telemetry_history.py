"""Short histories of telemetry readings (bounded deques) for the GPU pane's graphs."""

from __future__ import annotations

from collections import deque
from typing import Any

from tunedeck.engine.run.formatting import is_number

from .telemetry_source import TelemetryReading

HISTORY = 60


class TelemetryHistory:
    def __init__(self, maxlen: int = HISTORY) -> None:
        self.maxlen = maxlen
        self.latest: TelemetryReading | None = None
        self.gpu: dict[int, dict[str, deque]] = {}
        self.cpu: deque = deque(maxlen=maxlen)
        self.ram: deque = deque(maxlen=maxlen)
        self.engine_cpu: deque = deque(maxlen=maxlen)
        self.engine_rss: deque = deque(maxlen=maxlen)
        self.has_gpus = False
        self.gpu_latest: dict[int, dict] = {}  # the newest reading of each GPU

    def add(self, r: TelemetryReading) -> None:
        self.latest = r
        for i, g in enumerate(r.gpus or []):
            self.has_gpus = True
            idx = g.get("index", i)
            self.gpu_latest[idx] = g
            h = self.gpu.setdefault(idx, {k: deque(maxlen=self.maxlen) for k in ("util", "mem", "temp", "power")})
            h["util"].append(g.get("util_percent"))
            h["mem"].append(_ratio(g.get("mem_used"), g.get("mem_total")))
            h["temp"].append(g.get("temperature_c"))
            h["power"].append(g.get("power_w"))
        s = r.system
        if s:
            self.cpu.append(s.get("sys_cpu_percent"))
            self.ram.append(_ratio(s.get("sys_mem_used"), s.get("sys_mem_total")))
        if r.process:
            self.engine_cpu.append(r.process.get("cpu_percent"))
            self.engine_rss.append(r.process.get("rss_bytes"))


def _ratio(a: Any, b: Any) -> float | None:
    return 100.0 * a / b if is_number(a) and is_number(b) and b else None
