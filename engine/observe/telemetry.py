"""GPU (NVML) and CPU/RAM (psutil) readings that never raise.

Every NVML call goes through `_nv`, which returns None instead of raising, so a machine without an
NVIDIA GPU or driver (or a field a driver lacks) reads as "not available". The app imports this
module too: it is light (pynvml and psutil only).
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


class _NVML:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: bool | None = None
        self.reason = ""
        self.pynvml: Any = None

    def init(self) -> bool:
        with self._lock:
            if self._ready is None:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self.pynvml, self._ready = pynvml, True
                except Exception as e:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded...
                    self._ready = False
                    self.reason = _nvml_reason(e)
            return self._ready


def _nvml_reason(e: Exception) -> str:
    name = type(e).__name__
    if isinstance(e, ImportError):
        return "nvidia-ml-py is not installed"
    if "LibraryNotFound" in name:
        return "no NVIDIA driver found (NVML library missing): this machine has no usable NVIDIA GPU"
    if "DriverNotLoaded" in name:
        return "the NVIDIA driver is not loaded"
    return f"NVML unavailable ({name})"


NVML = _NVML()


def _nv(fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


@dataclass
class GpuReading:
    index: int
    name: str | None
    util_percent: float | None
    mem_used: int | None
    mem_total: int | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    process_mem: dict[int, int] = field(default_factory=dict)  # pid -> bytes used on this GPU


def gpu_readings() -> list[GpuReading] | None:
    """One reading per GPU, or None when NVML is not available (see gpu_unavailable_reason())."""
    if not NVML.init():
        return None
    nv = NVML.pynvml
    count = _nv(nv.nvmlDeviceGetCount) or 0
    out = []
    for i in range(count):
        h = _nv(nv.nvmlDeviceGetHandleByIndex, i)
        if h is None:
            continue
        name = _nv(nv.nvmlDeviceGetName, h)
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        util = _nv(nv.nvmlDeviceGetUtilizationRates, h)
        mem = _nv(nv.nvmlDeviceGetMemoryInfo, h)
        temp = _nv(nv.nvmlDeviceGetTemperature, h, 0)  # NVML_TEMPERATURE_GPU
        power = _nv(nv.nvmlDeviceGetPowerUsage, h)
        limit = _nv(nv.nvmlDeviceGetEnforcedPowerLimit, h)
        procs = _nv(nv.nvmlDeviceGetComputeRunningProcesses, h) or []
        out.append(
            GpuReading(
                index=i,
                name=name,
                util_percent=float(util.gpu) if util is not None else None,
                mem_used=int(mem.used) if mem is not None else None,
                mem_total=int(mem.total) if mem is not None else None,
                temperature_c=float(temp) if temp is not None else None,
                power_w=power / 1000.0 if power is not None else None,
                power_limit_w=limit / 1000.0 if limit is not None else None,
                process_mem={
                    int(p.pid): int(p.usedGpuMemory or 0) for p in procs if getattr(p, "pid", None) is not None
                },
            )
        )
    return out


def gpu_unavailable_reason() -> str:
    NVML.init()
    return NVML.reason


def gpu_total_memory() -> int | None:
    """Memory of the smallest visible GPU in bytes, for pre-flight estimates; None without a GPU."""
    readings = gpu_readings()
    totals = [g.mem_total for g in readings or [] if g.mem_total]
    return min(totals) if totals else None


def process_tree_usage(pid: int) -> dict[str, Any] | None:
    """CPU percent (since the previous call for this pid) and RSS of a process and its children."""
    try:
        import psutil

        proc = _PROCS.get(pid)
        if proc is None or not proc.is_running():
            proc = _PROCS[pid] = psutil.Process(pid)
            proc.cpu_percent(None)
        procs = [proc] + proc.children(recursive=True)
        cpu = 0.0
        rss = 0
        for p in procs:
            try:
                cpu += p.cpu_percent(None) if p is proc else 0.0
                rss += p.memory_info().rss
            except psutil.Error:
                pass
        return {"pid": pid, "cpu_percent": cpu, "rss_bytes": rss}
    except Exception:
        return None


_PROCS: dict[int, Any] = {}


def system_usage() -> dict[str, Any]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {
            "sys_cpu_percent": psutil.cpu_percent(None),
            "sys_mem_used": int(vm.total - vm.available),
            "sys_mem_total": int(vm.total),
            "cpu_count": os.cpu_count(),
        }
    except Exception:
        return {}


def sample(pid: int | None = None) -> dict[str, Any]:
    """One telemetry sample as a plain dict (the payload of a 'sample' event)."""
    pid = pid or os.getpid()
    out: dict[str, Any] = dict(system_usage())
    own = process_tree_usage(pid)
    if own:
        out["cpu_percent"] = own["cpu_percent"]
        out["rss_bytes"] = own["rss_bytes"]
    gpus = gpu_readings()
    if gpus is None:
        out["gpus"] = None
        out["gpu_unavailable"] = NVML.reason
    else:
        out["gpus"] = [dict(asdict(g), process_mem=None, own_mem=g.process_mem.get(pid)) for g in gpus]
    return out
