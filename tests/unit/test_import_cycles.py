"""No import cycle in ``shared/`` or ``functions/``: every import counts, at module level, inside a function (where
a cycle could hide until the function runs) or under ``TYPE_CHECKING``.

grimp (the graph import-linter is built on) reads every ``import`` statement of every module; a cycle is a strongly
connected group of modules, found with Tarjan's algorithm and named with the shortest chain that closes it.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("shared", "functions")


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of two or more modules that import each other, directly or through one another."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges.get(module, ()):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(modules)))
    try:
        for module in modules:
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


def chain(graph: grimp.ImportGraph, group: list[str]) -> str:
    first, second = group[0], next(m for m in group[1:] if graph.find_shortest_chain(group[0], m))
    there = graph.find_shortest_chain(first, second) or ()
    back = graph.find_shortest_chain(second, first) or ()
    return " -> ".join([*there, *back[1:]])


def test_shared_and_functions_have_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    assert any(m.startswith("shared.service.") for m in graph.modules), "the graph holds the service layer"
    # ``functions.admin`` imports the composition root inside its handler (lazily, for cold start): such
    # function-level imports are edges of the graph like any other.
    details = graph.get_import_details(importer="functions.admin", imported="shared.bootstrap")
    assert details and details[0]["line_contents"].startswith("from shared.bootstrap"), details
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(chain(graph, g) for g in found)


def test_the_check_sees_a_cycle_hidden_in_a_function() -> None:
    """The detector finds a cycle only a function-level import closes (as ``guard → reconcile`` once did)."""
    graph = grimp.ImportGraph()
    for module in ("shared", "shared.a", "shared.b", "shared.c"):
        graph.add_module(module)
    graph.add_import(importer="shared.a", imported="shared.b", line_number=1, line_contents="import shared.b")
    graph.add_import(importer="shared.b", imported="shared.c", line_number=1, line_contents="import shared.c")
    graph.add_import(
        importer="shared.c", imported="shared.a", line_number=9, line_contents="    from shared.a import x"
    )
    assert cycles(graph) == [["shared.a", "shared.b", "shared.c"]]
    assert (
        chain(graph, ["shared.a", "shared.b", "shared.c"]) == "shared.a -> shared.b -> shared.c -> shared.a"
    )
