"""A cold start loads only what registers the functions: importing ``function_app`` and indexing its functions (what
the Python worker does on every new instance before anything is served) loads no third-party package beyond what
``azure.functions`` loads itself, and none of Warden's request-serving modules — pydantic and the API's models, the
service layer, the adapters and their SDKs load with the first invocation that needs them.

Which modules load, not how long it takes: ``make bench`` measures the time (cold start (a)).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.api.operations import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "pydantic",
    "pydantic_core",
    "azure.core",
    "azure.data",
    "azure.storage",
    "azure.identity",
    "azure.keyvault",
    "msgraph",
    "msgraph_core",
    "kiota_abstractions",
    "kiota_http",
    "msal",
    "httpx",
    "aiohttp",
    "requests",
    "jwt",
    "cryptography",
    "standardwebhooks",
)
"""Third-party packages a request may need and the registration never does."""
WARDEN_LAZY = (
    "shared.domain",
    "shared.service",
    "shared.adapters",
    "shared.bootstrap",
    "shared.api.schemas",
    "shared.api.views",
    "shared.api.openapi",
    "functions.http",
)
"""Warden's modules that serve requests (with every door module, below)."""

PROBE = """
import json, sys
before = set(sys.modules)
import azure.functions
library = set(sys.modules)
import function_app
functions = function_app.app.get_functions()
print(json.dumps({
    "library": sorted(library - before),
    "app": sorted(set(sys.modules) - library),
    "functions": sorted(f.get_function_name() for f in functions),
}))
"""


def loaded() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_indexing_the_app_registers_every_function_and_loads_nothing_that_serves_them() -> None:
    found = loaded()
    assert {op.name for op in OPERATIONS} <= set(found["functions"]), "every operation is registered"
    assert {"health", "openapi", "sync_user", "drift_enforcement", "reconcile_job", "import_job"} <= set(
        found["functions"]
    )
    app = found["app"]
    assert "function_app" in app, "the probe ran in a fresh interpreter"
    assert [m for m in app if under(m, HEAVY)] == []
    doors = tuple(f"functions.{op.module}" for op in OPERATIONS)
    assert [m for m in app if under(m, WARDEN_LAZY + doors)] == []


def test_beyond_azure_functions_the_app_loads_only_the_standard_library_and_its_own_registration() -> None:
    found = loaded()
    top = {m.split(".")[0] for m in found["app"]}
    others = sorted(
        t for t in top - {"function_app", "functions", "shared"} if t not in sys.stdlib_module_names
    )
    assert others == [], "third-party packages loaded by function_app itself"
