"""`GET /api/health` through the local functions host: anonymous, all components, 200 or 503, no leaks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import WardenHost
from tools import demo, procs


@pytest.fixture
def host(warden: WardenHost) -> Iterator[WardenHost]:
    yield warden
    warden.stack.clear_faults()


def test_health_is_anonymous_and_reports_every_component_up(host: WardenHost) -> None:
    response = host.http.get("/api/health")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "up"
    names = {c["name"] for c in body["components"]}
    poison = {"userSyncPoison", "groupSyncPoison", "reconcilePoison", "importPoison", "notificationsPoison"}
    assert names - {"hrSource"} == {"tableStorage", "queueStorage", "keyVault", "graph", *poison}, (
        "every queue's poison counted; an hrSource component per HR source expected to send, once other tests "
        "on this host made some"
    )
    # One graph component per connected directory (other tests on this host may have connected some), and the
    # demo directory's while it is not connected.
    graphs = [c for c in body["components"] if c["name"] == "graph"]
    assert demo.DEMO_TENANT_ID in {c["tenantId"] for c in graphs}
    assert all(c["status"] == "up" and c["latencyMs"] >= 0 for c in body["components"])


def test_health_answers_503_when_key_vault_fails_and_leaks_nothing(host: WardenHost) -> None:
    """Key Vault is one of Warden's own dependencies (SPEC §3): its failure is 503, Graph's alone would not be."""
    assert host.http.get("/api/health").status_code == 200
    host.stack.set_faults(errorRate=1.0, errorKinds=["500"])
    response = host.http.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    down = {c["name"] for c in body["components"] if c["status"] == "down"}
    assert {"keyVault", "graph"} <= down
    assert {"tableStorage", "queueStorage"}.isdisjoint(down)
    text = response.text
    world = host.stack.world
    for secret in (world.local_identity_secret, world.demo_client_secret):
        assert secret not in text
    assert "Traceback" not in text and 'File "' not in text


def test_health_only_answers_get(host: WardenHost) -> None:
    assert host.http.post("/api/health").status_code == 404


def test_openapi_document_is_served(host: WardenHost) -> None:
    response = host.http.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"] == "3.1.0" and "/health" in doc["paths"]


def test_misconfigured_app_answers_problem_json_naming_each_setting(
    warden: WardenHost, tmp_path: Path
) -> None:
    """Settings are validated at the first request; every problem names its setting, no value is echoed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}
    # Malformed rather than absent: a developer's local.settings.json must not be able to fill the gap.
    env |= warden.stack.settings | {
        "WARDEN_KEY_VAULT_URL": "http://vault.invalid/",
        "WARDEN_HEALTH_TIMEOUT_SECONDS": "soon",
    }
    port = procs.free_port()
    child = procs.start_funchost(port, env=env, log=tmp_path / "funchost.log")
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30)
    finally:
        child.stop()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 503 and problem["title"] == "Configuration invalid"
    assert "WARDEN_KEY_VAULT_URL is malformed: expected an https:// Key Vault URL" in problem["detail"]
    assert "WARDEN_HEALTH_TIMEOUT_SECONDS is malformed" in problem["detail"]
    assert "soon" not in problem["detail"] and "vault.invalid" not in problem["detail"]
