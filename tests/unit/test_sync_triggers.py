"""Every admin change that can change what a user should have in M365 queues that user's sync (rule 8)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "shared" / "service"
MUST_ENQUEUE = {
    "store/users.py": {"create", "update", "delete", "bind", "unbind"},
    "store/groups.py": {"delete", "add_member", "remove_member", "bind", "unbind"},
}


def enqueuing_methods(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.AsyncFunctionDef):
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr == "enqueue"]
            if calls:
                found.add(node.name)
    return found


def test_each_changing_use_case_queues_the_users_it_affects() -> None:
    for module, methods in MUST_ENQUEUE.items():
        assert methods <= enqueuing_methods(SERVICE / module), module
