"""The house rules of the code itself: no module-level import cycles, and no module past 450 lines."""

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
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


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
    code = ("import importlib, pkgutil, sys\n"
            f"import {package} as p\n"
            "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
            "    importlib.import_module(m.name)\n"
            f"print(' '.join(m for m in {watched!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.split()


def test_the_app_starts_without_the_training_libraries():
    """DESIGN: the app never imports torch, transformers, trl, peft or datasets at start-up (work that needs
    them runs in an engine subprocess or imports lazily), so it starts fast. Every tui module counts."""
    assert _modules_loaded_after_importing("tunedeck.tui", ("torch", "transformers", "trl", "peft", "datasets")) == []


def test_the_engine_never_imports_textual():
    """DESIGN: everything the engine does is reachable headless; no engine module imports the app's toolkit."""
    assert _modules_loaded_after_importing("tunedeck.engine", ("textual", "tunedeck.tui")) == []
