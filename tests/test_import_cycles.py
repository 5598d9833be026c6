"""Imports go one way: no cycle among vetllm's modules, lazy (function-level) imports included.

A cycle hidden behind a lazy import still runs both modules' top levels in an order that depends
on who imports first, and two threads importing the two halves at once can deadlock on Python's
module locks; so every `import` statement anywhere in a module counts as an edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vetllm

PACKAGE = Path(vetllm.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """Every vetllm module named by an import statement anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_walker_sees_lazy_imports():
    graph = import_graph()
    assert "vetllm.engine.training" in graph["vetllm.cli.engine_commands"]  # inside _train()


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


CONCURRENT_IMPORTS = """
import importlib, random, sys, threading
from vetllm.ui.app import warm_imports
warm_imports()  # what build_app does before the first request
names, errors = sys.argv[1:], []
def first_requests(seed):
    order = names[:]
    random.Random(seed).shuffle(order)
    for name in order:
        try:
            importlib.import_module(name)
        except Exception as error:
            errors.append(f"{name}: {type(error).__name__}: {error}")
threads = [threading.Thread(target=first_requests, args=(seed,)) for seed in range(6)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(len(errors), *errors[:3], sep="\\n")
"""


def reachable_from(graph: dict[str, set[str]], prefix: str) -> set[str]:
    """Every module that the modules named `prefix*` import, directly or not."""
    seen: set[str] = set()
    todo = [name for name in graph if name.startswith(prefix)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


@pytest.mark.slow
def test_app_handlers_can_import_lazily_from_many_threads_at_once():
    """After the app's warm-up, concurrent first requests may import anything the UI reaches."""
    names = sorted(reachable_from(import_graph(), "vetllm.ui"))
    assert {"vetllm.engine.predict", "vetllm.runs.launcher"} <= set(names)
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_IMPORTS, *names],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "0", done.stdout
