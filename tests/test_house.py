"""The house rules of the code itself: rooms that depend one way, no module-level import cycles, no module past 450
lines, every request of the app to the engine in one module."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import tunedeck.engine
import tunedeck.tui

MAX_LINES = 450


def _modules() -> dict[str, Path]:
    """Every module of tunedeck.engine and tunedeck.tui by its dotted name (a package by its __init__.py)."""
    out = {}
    for package in (tunedeck.engine, tunedeck.tui):
        root = Path(package.__path__[0])
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package.__name__, *parts])] = path
    return out


def _is_type_checking(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _top_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported: not those in functions, classes or
    `if TYPE_CHECKING:` blocks, but those under a top-level if/try/with."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level_imports(block)
        elif isinstance(node, ast.With):
            yield from _top_level_imports(node.body)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of `modules` it imports at module level."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # `from package import module`
                    deps.add(f"{base}.{alias.name}")
                elif base in modules:
                    deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` (its modules in order, the first repeated at the end), or [] when there is none."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(reversed(e.args[1]))
    return []


def test_the_cycle_finder_finds_a_cycle():
    found = cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()})
    assert found[0] == found[-1] and sorted(found[:-1]) == ["a", "b", "c"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycles():
    found = cycle(import_graph(_modules()))
    assert found == [], "a module-level import cycle: " + " -> ".join(found)


def test_no_module_past_the_line_limit():
    modules = _modules()
    counts = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()}
    too_long = {name: n for name, n in counts.items() if n > MAX_LINES}
    assert too_long == {}, f"modules over {MAX_LINES} lines (split them by idea): {too_long}"


def _modules_loaded_after_importing(package: str, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter has loaded after importing every module of `package`."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package} as p\n"
        "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(' '.join(m for m in {watched!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.split()


def test_the_app_starts_without_the_training_libraries():
    """DESIGN: the app never imports torch, transformers, trl, peft or datasets at start-up (work that needs
    them runs in an engine subprocess or imports lazily), so it starts fast. Every tui module counts."""
    assert _modules_loaded_after_importing("tunedeck.tui", ("torch", "transformers", "trl", "peft", "datasets")) == []


def test_the_engine_never_imports_textual():
    """DESIGN: everything the engine does is reachable headless; no engine module imports the app's toolkit."""
    assert _modules_loaded_after_importing("tunedeck.engine", ("textual", "tunedeck.tui")) == []


# ---- rooms -------------------------------------------------------------------------------------

# The engine's rooms in the order they may depend on each other: a room imports only rooms of a lower
# rank (rooms of the same rank not each other), counting every import, those inside functions too.
ROOM_RANKS = {
    "config": 0,  # profiles: schema, loading, hints, the next run's profile
    "run": 1,  # the run directory's files, their definitions and readers
    "models": 2,  # base models and tokenizers
    "data": 3,  # any layout -> canonical rows, masks, tokens
    "observe": 3,  # telemetry, trackers, notify
    "gate": 4,  # eval sets, checks, generation, verdicts
    "training": 5,  # the training process
    "scheduling": 6,  # pre-flight, launch, queue, sweeps, Slurm
    "export": 6,  # what ships, and the gate on it
    "commands": 7,  # the command line
}


def _every_import(path: Path) -> set[str]:
    """The engine modules a module imports anywhere (module level, functions, TYPE_CHECKING blocks)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n for n in names if n.startswith("tunedeck.engine.")}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and parts[2] in ROOM_RANKS) else None


def test_every_room_has_a_rank():
    rooms = {p.name for p in Path(tunedeck.engine.__path__[0]).iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(ROOM_RANKS), "a room without a rank (or a rank without a room): add it to ROOM_RANKS"


def test_rooms_depend_one_way():
    wrong = []
    for name, path in _modules().items():
        here = room_of(name)
        if here is None or not name.startswith("tunedeck.engine."):
            continue
        for target in _every_import(path):
            there = room_of(target)
            if there and there != here and ROOM_RANKS[there] >= ROOM_RANKS[here]:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    assert sorted(set(wrong)) == [], "imports against the rooms' order:\n" + "\n".join(sorted(set(wrong)))


# ---- the app's requests ------------------------------------------------------------------------

# What changes a run or starts an engine process; the app asks for it only through tui/engine_client.py
# (tui/cli.py is the command line, not the app).
ENGINE_REQUESTS = {
    "request_control",  # a control file for the run's engine
    "spawn_detached",
    "spawn_eval_detached",
    "create_run",
    "stop_sweep_runs",
    "ask_owning_engine",
    "write_next_profile",
    "PlaygroundClient",  # constructing one starts the playground's engine process
}
ENGINE_COMMANDS = ("tunedeck.engine.commands.cli", "tunedeck.tui.cli")


def app_requests(path: Path) -> list[str]:
    """Where a module asks the engine for something itself: a request imported to be called, a
    PlaygroundClient constructed, an engine command line written out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tunedeck.engine."):
            found += [f"imports {a.name}" for a in node.names if a.name in ENGINE_REQUESTS - {"PlaygroundClient"}]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PlaygroundClient":
            found.append("constructs PlaygroundClient")
        elif isinstance(node, ast.Constant) and node.value in ENGINE_COMMANDS:
            found.append(f"runs {node.value}")
    return [f"{path.name}:{what}" for what in found]


def test_the_request_finder_finds_requests(tmp_path):
    module = tmp_path / "screen.py"
    module.write_text(
        "from tunedeck.engine.run.store import request_control, read_status\n"
        "def f(run):\n"
        "    from tunedeck.engine.gate.playground import PlaygroundClient\n"
        "    PlaygroundClient(run, 1)\n"
        "    return [sys.executable, '-m', 'tunedeck.engine.commands.cli', 'gate']\n"
    )
    assert app_requests(module) == [
        "screen.py:imports request_control",
        "screen.py:constructs PlaygroundClient",
        "screen.py:runs tunedeck.engine.commands.cli",
    ]


def test_every_app_request_to_the_engine_is_in_the_engine_client():
    tui = Path(tunedeck.tui.__path__[0])
    elsewhere = [
        found
        for path in sorted(tui.rglob("*.py"))
        if path.name not in ("engine_client.py", "cli.py")
        for found in app_requests(path)
    ]
    assert elsewhere == [], "the app asks the engine outside tui/engine_client.py:\n" + "\n".join(elsewhere)
    assert app_requests(tui / "engine_client.py"), "the engine client asks the engine nothing: the finder is blind"
