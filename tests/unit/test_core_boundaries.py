"""``shared/`` never imports the Functions worker: the doors in ``functions/`` are its only users.

(import-linter, run by ``make test``, checks the layer direction; it cannot single out ``azure.functions``
among the ``azure`` namespace packages, so this check does.)
"""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_shared_never_imports_azure_functions() -> None:
    offenders = {
        str(p.relative_to(SHARED)): sorted(m for m in imported_modules(p) if m.startswith("azure.functions"))
        for p in SHARED.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(offenders) > 5, "the walk found shared/'s modules"
