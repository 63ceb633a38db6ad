"""The `tunedeck` console script: no arguments opens the app; anything else is the headless CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("app", "open") or (argv[0].startswith("--") and argv[0] not in ("--help", "--version")):
        from .app import run_app  # `tunedeck`, `tunedeck app ...`, `tunedeck --workspace DIR`

        return run_app(argv[1:] if argv and argv[0] in ("app", "open") else argv)
    if argv[0] == "demo" and "--headless" not in argv and not {"-h", "--help"} & set(argv):
        return demo_in_app(argv[1:])
    from tunedeck.engine.commands.cli import main as engine_main

    return engine_main(argv)


def demo_in_app(argv: list[str]) -> int:
    """`tunedeck demo`: start the demo run detached, then open the app on its monitor."""
    import argparse

    from tunedeck.engine.commands.demo import start_demo_run
    from tunedeck.engine.config.workspace import demo_dir, resolve_workspace

    ap = argparse.ArgumentParser(prog="tunedeck demo")
    ap.add_argument("--workspace")
    ap.add_argument("--real", action="store_true")
    args = ap.parse_args(argv)
    workspace = resolve_workspace(args.workspace)
    if args.real:
        run_dir = real_demo_runs(workspace)
        if run_dir is None:
            return 2
    else:
        print(f"tunedeck demo: preparing a tiny model and dataset in {demo_dir(workspace)} ...", flush=True)
        run_dir = start_demo_run(workspace)
    from .app import run_app

    return run_app(["--workspace", str(workspace), "--open", run_dir.name])


def real_demo_runs(workspace):
    """`tunedeck demo --real` in the app: its first run starts now and a detached driver starts the next one
    when the first ends (the runs screen shows it); the first run's directory, or None after a printed error."""
    from tunedeck.engine.commands.demo_real import spawn_driver, start_first_run
    from tunedeck.engine.commands.errors import user_errors
    from tunedeck.engine.config.workspace import demo_real_dir

    print(f"tunedeck demo --real: preparing SmolLM2 and the triage data in {demo_real_dir(workspace)} ...", flush=True)
    try:
        run_dir = start_first_run(workspace)
    except user_errors() as e:
        print(f"tunedeck: error: {e}", file=sys.stderr)
        return None
    spawn_driver(workspace, run_dir)
    return run_dir


if __name__ == "__main__":
    sys.exit(main())
