"""The `tunedeck` console script: no arguments opens the app; anything else is the headless CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("app", "open"):
        from .app import run_app

        return run_app(argv[1:])
    from engine.cli import main as engine_main

    return engine_main(argv)


if __name__ == "__main__":
    sys.exit(main())
