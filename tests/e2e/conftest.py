"""The local functions host running Warden's function_app.py against Azurite and the demo stack, and an
admin API client holding the dev clients' tokens."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import DemoStack
from tools import demo, procs

QUIET_TIMERS = {
    "WARDEN_DRIFT_SCHEDULE": "0 0 0 1 1 *",
    "WARDEN_RECONCILE_SCHEDULE": "0 0 0 1 1 *",
    "WARDEN_DATES_SCHEDULE": "0 0 0 1 1 *",
    "WARDEN_TOKEN_REFRESH_SCHEDULE": "0 0 0 1 1 *",
}
"""Timers fire only when a test runs them (``POST /admin/functions/<name>``), never in the middle of another test."""


def triggers_off(warden: WardenHost) -> dict[str, str]:
    """App settings that disable every queue and timer trigger of the app (``AzureWebJobs.<name>.Disabled``):
    a helper host started on the same storage then consumes no queue message and fires no timer; the admin API
    (``run_timer``) still runs its timers. Only the session's host works the queues."""
    listed = warden.http.get("/admin/functions")
    listed.raise_for_status()
    return {
        f"AzureWebJobs.{f['name']}.Disabled": "true"
        for f in listed.json()
        if f["trigger"] in ("queueTrigger", "timerTrigger")
    }


@dataclass
class WardenHost:
    url: str
    stack: DemoStack
    http: httpx.Client
    log: Any = None
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: str = "admin") -> str:
        if role not in self.tokens:
            self.tokens[role] = self.stack.world.token(role)
        return self.tokens[role]

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """``path`` below ``/api``; with the ``role`` client's bearer token (``None``: no token)."""
        h = dict(headers or {})
        if role is not None:
            h.setdefault("Authorization", f"Bearer {self.token(role)}")
        return self.http.request(method, f"/api{path}", headers=h, **kw)

    def run_timer(self, name: str, timeout: float = 30.0) -> None:
        """Run a timer function now, as Core Tools' admin API does (202: started), and wait until this run has
        finished (the host logs ``Executed 'Functions.<name>' (Succeeded|Failed, …)``); a failed run fails."""
        marker = f"Executed 'Functions.{name}' ("
        before = self.log.read_text(errors="replace").count(marker)
        response = self.http.post(f"/admin/functions/{name}", json={"input": ""})
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if text.count(marker) > before:
                last = text[text.rindex(marker) :].split("\n", 1)[0]
                assert "(Succeeded" in last, last
                return
            time.sleep(0.05)
        mine = [line for line in text.splitlines() if f"Functions.{name}'" in line]
        raise AssertionError(
            f"timer {name} did not finish within {timeout} s; its last log lines: {mine[-3:]}"
        )

    def ok(self, method: str, path: str, status: int | tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        response = self.call(method, path, **kw)
        expected = (status,) if isinstance(status, int) else status
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


@pytest.fixture(scope="session")
def warden(demo_stack: DemoStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenHost]:
    port = procs.free_port()
    log = tmp_path_factory.mktemp("funchost") / "funchost.log"
    public = {"WARDEN_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    child = procs.start_funchost(
        port, env={**os.environ, **demo_stack.settings, **QUIET_TIMERS, **public}, log=log
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        yield WardenHost(f"http://127.0.0.1:{port}", demo_stack, http, log)
    finally:
        http.close()
        child.stop()


@pytest.fixture(scope="session")
def demo_directory(warden: WardenHost) -> dict[str, Any]:
    """The demo tenant, connected once for the session with its app's real credentials."""
    body = {
        "name": "Contoso",
        "tenantId": demo.DEMO_TENANT_ID,
        "auth": {
            "mode": "app",
            "clientId": demo.DEMO_CLIENT_ID,
            "clientSecret": warden.stack.world.demo_client_secret,
        },
    }
    connected: dict[str, Any] = warden.ok("POST", "/directories", 201, json=body)
    return connected


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_user(warden: WardenHost, **fields: Any) -> dict[str, Any]:
    name = unique()
    body = {
        "username": name,
        "email": f"{name}@{demo.DEMO_DOMAIN}",
        "firstName": "Ada",
        "lastName": "Lovelace",
    }
    body.update(fields)
    created: dict[str, Any] = warden.ok("POST", "/users", 201, json=body)
    return created
