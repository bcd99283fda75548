"""The local functions host running Warden's function_app.py against Azurite and the demo stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import DemoStack
from tools import procs


@dataclass
class WardenHost:
    url: str
    stack: DemoStack
    http: httpx.Client


@pytest.fixture(scope="session")
def warden(demo_stack: DemoStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenHost]:
    port = procs.free_port()
    log = tmp_path_factory.mktemp("funchost") / "funchost.log"
    child = procs.start_funchost(port, env={**os.environ, **demo_stack.settings}, log=log)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        yield WardenHost(f"http://127.0.0.1:{port}", demo_stack, http)
    finally:
        http.close()
        child.stop()
