"""The simulated cloud's shape (moto's split, STYLE.md section 1): backends apart from the HTTP layer, no import
cycle, small classes, one error family. Each test reads the code as it is, so it fails the day the shape erodes."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grimp

import tools.m365sim
from tools.m365sim.backends.errors import SimError

PACKAGE = "tools.m365sim"
MAX_METHODS = 30


def modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(tools.m365sim.__path__, prefix=f"{PACKAGE}."):
        yield importlib.import_module(info.name)


def own_classes() -> Iterator[type]:
    for module in modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of a directed graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_in_the_simulator() -> None:
    """grimp sees every import, function-level ones included; no module of tools.m365sim may reach itself."""
    graph = grimp.build_graph("tools", include_external_packages=True)
    sim_modules = {m for m in graph.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")}
    edges = {m: graph.find_modules_directly_imported_by(m) & sim_modules for m in sim_modules}
    cycles = [sorted(c) for c in strongly_connected(edges) if len(c) > 1]
    self_loops = [m for m, targets in edges.items() if m in targets]
    assert len(sim_modules) > 30, sim_modules  # the graph really holds the simulator
    assert cycles == [] and self_loops == [], cycles or self_loops


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above would see one: a two-module loop and a longer one are components of their own."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": set()}
    found = sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1)
    assert found == [["a", "b"], ["c", "d", "e"]]


def test_backends_never_reach_the_http_layer_or_aiohttp() -> None:
    """moto's models.py never imports its responses.py: no backend imports tools.m365sim.http or aiohttp, even
    through another module (the import-linter contract in pyproject.toml says the same to `make layers`)."""
    graph = grimp.build_graph("tools", include_external_packages=True)
    backends = {m for m in graph.modules if m.startswith(f"{PACKAGE}.backends")}
    http = {m for m in graph.modules if m.startswith(f"{PACKAGE}.http")}
    assert len(backends) > 15 and len(http) > 10
    leaks = [
        (b, target)
        for b in sorted(backends)
        for target in sorted(http | {"aiohttp"})
        if graph.chain_exists(importer=b, imported=target)
    ]
    assert leaks == []


def test_no_import_inside_a_function() -> None:
    """Imports sit at the top of each module: none hides a dependency (or a cycle) inside a function."""
    root = Path(tools.m365sim.__file__).parent
    nested: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                nested.append(f"{path.relative_to(root)}:{node.lineno}")
    assert nested == []


def methods_of(cls: type) -> list[str]:
    kinds = (staticmethod, classmethod, property)
    return [n for n, v in vars(cls).items() if inspect.isfunction(v) or isinstance(v, kinds)]


def test_no_class_has_more_than_thirty_methods() -> None:
    classes = list(own_classes())
    counts = sorted(((len(methods_of(c)), f"{c.__module__}.{c.__qualname__}") for c in classes), reverse=True)
    assert len(classes) > 40
    assert counts[0][0] <= MAX_METHODS, counts[:5]


def test_one_error_family() -> None:
    """Every exception the simulator defines is a SimError (status, code, message, its service's body shape)."""
    errors = [c for c in own_classes() if issubclass(c, BaseException)]
    assert SimError.__bases__ == (Exception,)
    strays = [f"{c.__module__}.{c.__qualname__}" for c in errors if not issubclass(c, SimError)]
    assert strays == []
    services = {c.__name__ for c in errors}
    assert {"GraphError", "EntraError", "VaultError", "ControlError"} <= services
