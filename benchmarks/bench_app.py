"""App speed: start-up against a bare Textual app, loss-plot refresh on a million-step run, and the
CPU the app uses while it follows a live run. Prints figures (medians); not a test.

    python benchmarks/bench_app.py [--rounds 7] [--cpu-seconds 20]

1. Time to the first drawn screen: a fresh interpreter is started and timed until the app's Ready
   event (the first frame is on screen), for a bare Textual app (Header, DataTable, Footer) and for
   tunedeck's runs screen over the recorded fixture runs, alternated, headless. Goal: <= 1.5x bare,
   under a second. Also: until the runs are listed (the first scan applied), and `--open RUN`.
2. Loss plot refresh with 1,000,000 logged train steps (and 20,000 evals) in a 120x30 terminal:
   the widget's full render (downsample, plotext build, ANSI to text), raw and with EMA + log scale.
   Goal: <= 50 ms. For scale, plotext drawing 100,000 points without downsampling.
3. CPU of the app following a live run (a stand-in engine logging 10 steps/s, a sample every 5 s)
   in a real terminal (tmux, 100x30), measured with psutil over --cpu-seconds; a bare Textual app in
   the same terminal for reference. Goal: <= 3% of one core. Without tmux: headless, in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

BARE = r"""
from textual.app import App
from textual.widgets import DataTable, Footer, Header
class Bare(App):
    def compose(self):
        yield Header(); yield DataTable(); yield Footer()
    def on_ready(self):
        print("READY", flush=True); self.exit()
Bare().run(headless=True)
"""

TUNEDECK = r"""
import sys
from pathlib import Path
from tui.app import TunedeckApp
from tui.telemetry_source import NoTelemetry
open_run = sys.argv[2] if len(sys.argv) > 2 else None
class Bench(TunedeckApp):
    def on_ready(self):
        print("READY", flush=True)
        if open_run:
            self.exit()
    def on_runs_scanned_for_bench(self):
        print("LISTED", flush=True); self.exit()
from tui.screens import runs as runs_screen
original = runs_screen.RunsScreen.on_runs_scanned
def scanned(self, message):
    original(self, message)
    if not open_run:
        self.call_after_refresh(self.app.on_runs_scanned_for_bench)
runs_screen.RunsScreen.on_runs_scanned = scanned
Bench(Path(sys.argv[1]), open_run=open_run).run(headless=True)
"""


def time_to(lines: tuple[str, ...], args: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    seen: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key = line.strip()
        if key in lines:
            seen[key] = time.perf_counter() - t0
    proc.wait(timeout=60)
    if set(lines) - set(seen):
        raise RuntimeError(f"{args[:2]} never printed {set(lines) - set(seen)}: {proc.stderr.read()[-2000:]}")
    return seen


def bench_startup(rounds: int, workspace: Path, run_id: str) -> dict[str, float]:
    bare, ready, listed, monitor = [], [], [], []
    for _ in range(rounds):
        bare.append(time_to(("READY",), ["-c", BARE])["READY"])
        t = time_to(("READY", "LISTED"), ["-c", TUNEDECK, str(workspace)])
        ready.append(t["READY"])
        listed.append(t["LISTED"])
        monitor.append(time_to(("READY",), ["-c", TUNEDECK, str(workspace), run_id])["READY"])
    return {
        "bare": statistics.median(bare),
        "ready": statistics.median(ready),
        "listed": statistics.median(listed),
        "monitor": statistics.median(monitor),
    }


def bench_plot(steps: int = 1_000_000, evals: int = 20_000, repeats: int = 30) -> dict[str, float]:
    import asyncio
    import math
    import random

    from textual.app import App

    from tunedeck.tui.run_history import RunHistory
    from tunedeck.tui.widgets.loss_plot import LossPlot

    history = RunHistory(Path("bench"))
    rng = random.Random(0)
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        history.train_loss.append(s, 0.5 + 2.0 * math.exp(-s / 150_000) + 0.1 * rng.random())
    every = steps // evals
    for s in range(every, steps + 1, every):
        history.eval_loss.append(s, 0.6 + 2.0 * math.exp(-s / 150_000) + (s / steps) ** 4)
    load_s = time.perf_counter() - t0
    out: dict[str, float] = {"append_us": load_s / (steps + evals) * 1e6}

    class PlotApp(App):
        def compose(self):
            yield LossPlot(history)

    async def measure():
        for size, suffix in (((240, 60), "_large"), ((120, 30), "")):
            app = PlotApp()
            async with app.run_test(size=size) as pilot:
                await pilot.pause(0.2)
                plot = app.query_one(LossPlot)
                for label, smooth, log in (("raw", False, False), ("ema_log", True, True)):
                    plot.smoothing, plot.log_scale = smooth, log
                    times = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        rendered = plot.render()
                        times.append(time.perf_counter() - t)
                    assert plot.failed is None and "┤" in rendered.plain
                    out[label + suffix] = statistics.median(times) * 1000
            # for scale: plotext on 100,000 raw points, no downsampling
            xs = list(history.train_loss.xs[:100_000])
            ys = list(history.train_loss.ys[:100_000])
            plot.plt.clear_figure()
            plot.plt.plotsize(120, 28)
            t = time.perf_counter()
            plot.plt.plot(xs, ys, marker="hd")
            plot.plt.build()
            out["raw_100k"] = (time.perf_counter() - t) * 1000

    asyncio.run(measure())
    return out


def bench_cpu(seconds: float, workspace: Path, run_id: str) -> dict[str, float | str]:
    import psutil

    run_dir = workspace / "runs" / run_id
    engine = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fixtures" / "fake_engine.py"), str(run_dir), "--rate", "10"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    tmux = shutil.which("tmux")
    results: dict[str, float | str] = {}
    try:
        time.sleep(1.0)
        if tmux:
            sock = f"tunedeck-bench-{os.getpid()}"
            env = f"env TERM=xterm-256color PYTHONPATH={ROOT}"
            commands = {
                "app": f"{sys.executable} -m tunedeck.tui.cli app --workspace {workspace} --open {run_id}",
                "bare": f"{sys.executable} -c '{BARE.replace('self.exit()', 'pass').replace('headless=True', '')}'",
            }
            for name, cmd in commands.items():
                subprocess.run(
                    [
                        tmux,
                        "-L",
                        sock,
                        "new-session",
                        "-d",
                        "-s",
                        name,
                        "-x",
                        "100",
                        "-y",
                        "30",
                        f"sleep 0.3; exec {env} {cmd}",
                    ],
                    check=True,
                )
                time.sleep(4.0)  # start-up and history load are not part of the steady state
                pid = int(
                    subprocess.run(
                        [tmux, "-L", sock, "display", "-p", "-t", name, "#{pane_pid}"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.strip()
                )
                proc = psutil.Process(pid)
                c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
                time.sleep(seconds)
                c1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
                results[name] = 100.0 * (c1 - c0) / (t1 - t0)
                subprocess.run([tmux, "-L", sock, "kill-session", "-t", name], check=False)
            subprocess.run([tmux, "-L", sock, "kill-server"], check=False)
            results["how"] = "tmux 100x30, psutil"
        else:
            script = (
                f"import sys,time,asyncio; sys.path[:0]={[str(ROOT), str(ROOT / 'tests')]!r}\n"
                "from fixtures.app_harness import make_app\nfrom pathlib import Path\n"
                "async def main():\n"
                f"    app = make_app(Path({str(workspace)!r}), open_run={run_id!r}, poll_interval=0.25,"
                " status_interval=1.0,"
                " scan_interval=1.0, telemetry_interval=1.0, plot_interval=1.0)\n"
                "    async with app.run_test(size=(100, 30)) as pilot:\n"
                "        await pilot.pause(4)\n"
                "        c0, t0 = time.process_time(), time.monotonic()\n"
                f"        await pilot.pause({seconds})\n"
                "        print(100 * (time.process_time() - c0) / (time.monotonic() - t0))\n"
                "asyncio.run(main())\n"
            )
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
            results["app"] = float(out.stdout.strip().splitlines()[-1])
            results["how"] = "headless (no tmux), process CPU time"
    finally:
        engine.terminate()
        engine.wait(timeout=10)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cpu-seconds", type=float, default=20.0)
    args = ap.parse_args()

    from fixtures.app_harness import ALL, RUNNING, copy_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = copy_workspace(Path(tmp) / "ws", runs=ALL)
        print(f"start-up ({args.rounds} rounds, medians, headless, fresh interpreter each) ...", flush=True)
        s = bench_startup(args.rounds, ws, RUNNING)
        print(f"  bare Textual app, first frame       {s['bare'] * 1000:7.0f} ms")
        print(
            f"  tunedeck runs screen, first frame   {s['ready'] * 1000:7.0f} ms"
            f"   ratio {s['ready'] / s['bare']:.2f}x (goal <= 1.5x)"
        )
        print(
            f"  tunedeck runs listed (5 runs)       {s['listed'] * 1000:7.0f} ms   ratio {s['listed'] / s['bare']:.2f}x"
        )
        print(
            f"  tunedeck --open RUN, first frame    {s['monitor'] * 1000:7.0f} ms"
            f"   ratio {s['monitor'] / s['bare']:.2f}x"
        )

        print("loss plot, 1,000,000 train steps + 20,000 evals, 120x30 ...", flush=True)
        p = bench_plot()
        print(f"  appending a point                   {p['append_us']:7.2f} us")
        print(f"  refresh, raw                        {p['raw']:7.1f} ms (goal <= 50 ms)")
        print(f"  refresh, EMA + log scale            {p['ema_log']:7.1f} ms")
        print(f"  refresh at 240x60, raw / EMA + log  {p['raw_large']:7.1f} / {p['ema_log_large']:.1f} ms")
        print(f"  (plotext on 100,000 raw points      {p['raw_100k']:7.0f} ms, without downsampling)")

    with tempfile.TemporaryDirectory() as tmp:
        ws = copy_workspace(Path(tmp) / "ws", runs=(RUNNING,))
        print(f"CPU while following a live run (10 steps/s), {args.cpu_seconds:.0f} s ...", flush=True)
        c = bench_cpu(args.cpu_seconds, ws, RUNNING)
        print(f"  tunedeck monitor                    {c['app']:7.2f} % of one core (goal <= 3%)  [{c['how']}]")
        if "bare" in c:
            print(f"  bare Textual app, idle              {c['bare']:7.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
