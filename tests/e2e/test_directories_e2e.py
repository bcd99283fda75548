"""Connecting M365 tenants through the admin API (SPEC rules 10, 12, 17, 18), end to end through the local
host, Azurite, Key Vault and the simulated cloud."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from tests.conftest import remember_secret
from tests.e2e.conftest import WardenHost, new_user
from tests.e2e.sync_support import wait_link
from tools import demo


def _tenant(warden: WardenHost, domain: str, *, sync: bool | None) -> tuple[str, str, str]:
    """A fresh M365 tenant in the simulator with one app; (tenant id, client id, secret)."""
    tenant_id, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), remember_secret(uuid.uuid4().hex)
    body = {
        "tenantId": tenant_id,
        "displayName": f"Tenant {domain}",
        "domains": [{"id": domain, "isDefault": True, "isVerified": True}],
        "onPremisesSyncEnabled": sync,
        "clients": [{"clientId": client_id, "clientSecret": secret, "roles": demo.DEMO_ROLES}],
    }
    warden.stack.sim.control("POST", "/_sim/tenants", json=body).raise_for_status()
    return tenant_id, client_id, secret


def _connect(warden: WardenHost, tenant_id: str, client_id: str, secret: str, name: str = "T") -> Any:
    body = {
        "name": name,
        "tenantId": tenant_id,
        "auth": {"mode": "app", "clientId": client_id, "clientSecret": secret},
    }
    return warden.call("POST", "/directories", json=body)


def test_connecting_the_demo_tenant_reads_its_domains_from_graph(
    warden: WardenHost, demo_directory: Any
) -> None:
    d = demo_directory
    assert d["tenantId"] == demo.DEMO_TENANT_ID and d["status"] == "active" and d["reason"] is None
    assert d["organizationName"] == "Contoso (demo)"
    domains = {x["id"]: x for x in d["domains"]}
    assert domains[demo.DEMO_DOMAIN] == {
        "id": demo.DEMO_DOMAIN,
        "isVerified": True,
        "isDefault": True,
        "authenticationType": "Managed",
        "isInitial": False,
        "passwordValidityPeriodInDays": 2147483647,
    }
    initial = [x for x in domains if x.endswith(".onmicrosoft.com")]
    assert len(initial) == 1 and domains[initial[0]]["isDefault"] is False, (
        "the tenant's initial domain, read too"
    )
    auth = d["auth"]
    assert (auth["mode"], auth["clientId"], auth["credential"]) == ("app", demo.DEMO_CLIENT_ID, "secret")
    assert auth["credentialExpirySource"] == "graph", (
        "the secret's endDateTime, read from the app registration"
    )
    expires = dt.datetime.fromisoformat(auth["credentialExpiresAt"])
    assert dt.timedelta(days=700) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(days=731)
    assert d["options"]["createMissingUsers"] is True and d["options"]["massChangeGuard"] == {
        "percent": 10.0,
        "count": 10,
    }
    fetched = warden.ok("GET", f"/directories/{d['id']}", role="reader")
    assert fetched["domains"] == d["domains"]
    counts = fetched["counts"]
    assert set(counts) == {"linked", "blocked", "error", "needsAttention", "pending", "synced", "skipped"}
    assert all(isinstance(n, int) and n >= 0 for n in counts.values())
    listed = warden.ok("GET", "/directories", role="reader")
    assert d["id"] in [x["id"] for x in listed["items"]]
    assert warden.stack.world.demo_client_secret not in str(listed)


def test_a_second_directory_with_an_overlapping_verified_domain_is_refused(
    warden: WardenHost, demo_directory: Any
) -> None:
    response = _connect(
        warden, demo.DEMO_TENANT_ID, demo.DEMO_CLIENT_ID, warden.stack.world.demo_client_secret
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert demo.DEMO_DOMAIN in problem["detail"] and demo_directory["id"] in problem["detail"]


def test_a_tenant_synced_from_on_premises_is_blocked(warden: WardenHost) -> None:
    domain = f"onprem{uuid.uuid4().hex[:8]}.example"
    tenant_id, client_id, secret = _tenant(warden, domain, sync=True)
    response = _connect(warden, tenant_id, client_id, secret, "On-prem")
    assert response.status_code == 201, response.text
    d = response.json()
    assert (d["status"], d["reason"]) == ("blocked", "directory synchronization from on-premises is enabled")
    assert d["warnings"] == ["blocked: directory synchronization from on-premises is enabled"]
    warden.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": "On-prem"})


def test_a_tenant_never_synced_from_on_premises_is_active(warden: WardenHost) -> None:
    domain = f"cloud{uuid.uuid4().hex[:8]}.example"
    tenant_id, client_id, secret = _tenant(warden, domain, sync=None)
    d = warden.ok(
        "POST",
        "/directories",
        201,
        json={
            "name": "Cloud",
            "tenantId": tenant_id,
            "auth": {"mode": "app", "clientId": client_id, "clientSecret": secret},
        },
    )
    assert d["status"] == "active"
    warden.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": "Cloud"})


def test_a_wrong_client_secret_is_refused_naming_entras_error_without_the_secret(warden: WardenHost) -> None:
    wrong = remember_secret("Wr0ng-" + uuid.uuid4().hex)
    response = _connect(warden, demo.DEMO_TENANT_ID, demo.DEMO_CLIENT_ID, wrong)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert "AADSTS7000215" in problem["detail"] and problem["entraError"] == "AADSTS7000215"
    assert wrong not in response.text


def test_reactivate_revalidates_and_rereads_and_a_new_secret_replaces_the_old(warden: WardenHost) -> None:
    domain = f"react{uuid.uuid4().hex[:8]}.example"
    tenant_id, client_id, secret = _tenant(warden, domain, sync=None)
    d = _connect(warden, tenant_id, client_id, secret, "R").json()
    again = warden.ok("POST", f"/directories/{d['id']}/reactivate", json={})
    assert again["domains"] == d["domains"] and again["status"] == "active"
    wrong = warden.call(
        "POST",
        f"/directories/{d['id']}/reactivate",
        json={"clientSecret": remember_secret("nope-" + uuid.uuid4().hex)},
    )
    assert wrong.status_code == 422 and "AADSTS7000215" in wrong.json()["detail"]
    still = warden.ok("POST", f"/directories/{d['id']}/reactivate", json={})
    assert still["status"] == "active", "a refused new secret did not replace the stored one"
    warden.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": "R"})


def test_deactivation_needs_the_name_and_removes_bindings_and_frees_the_domains(warden: WardenHost) -> None:
    domain = f"gone{uuid.uuid4().hex[:8]}.example"
    tenant_id, client_id, secret = _tenant(warden, domain, sync=None)
    d = _connect(warden, tenant_id, client_id, secret, "Gone").json()
    user = new_user(warden)
    warden.ok("PUT", f"/users/{user['id']}/directories/{d['id']}", 201)
    # A sync of the user may still be under way: the deactivation waits for it (it holds the user's sync lease).
    wait_link(warden, user["id"], d["id"], "error")
    refused = warden.call("DELETE", f"/directories/{d['id']}", params={"confirm": "gone"})
    assert refused.status_code == 422 and "'Gone'" in refused.json()["detail"]
    warden.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": "Gone"})
    assert warden.call("GET", f"/directories/{d['id']}").status_code == 404
    assert warden.ok("GET", f"/users/{user['id']}")["directories"] == []
    again = _connect(warden, tenant_id, client_id, secret, "Back")
    assert again.status_code == 201, "the domains were released"
    warden.ok("DELETE", f"/directories/{again.json()['id']}", 204, params={"confirm": "Back"})


def test_health_probes_each_connected_directory(warden: WardenHost, demo_directory: Any) -> None:
    body = warden.http.get("/api/health").json()
    graphs = [c for c in body["components"] if c["name"] == "graph"]
    assert {"directory": demo_directory["id"], "tenantId": demo.DEMO_TENANT_ID} == {
        k: v
        for k, v in next(c for c in graphs if c["directory"] == demo_directory["id"]).items()
        if k in ("directory", "tenantId")
    }
    assert all(c["status"] == "up" for c in graphs)


def test_counts_follow_the_links_of_the_directorys_users(warden: WardenHost) -> None:
    domain = f"count{uuid.uuid4().hex[:8]}.example"
    tenant_id, client_id, secret = _tenant(warden, domain, sync=None)
    d = _connect(warden, tenant_id, client_id, secret, "Counted").json()
    users = [new_user(warden, email=f"{uuid.uuid4().hex[:8]}@{domain}") for _ in range(3)]
    stranger = new_user(warden, email=f"{uuid.uuid4().hex[:8]}@nowhere-{uuid.uuid4().hex[:6]}.example")
    for u in [*users, stranger]:
        warden.ok("PUT", f"/users/{u['id']}/directories/{d['id']}", 201)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        counts = warden.ok("GET", f"/directories/{d['id']}")["counts"]
        if counts["synced"] == 3 and counts["error"] == 1:
            break
        time.sleep(0.2)
    assert (counts["linked"], counts["synced"], counts["error"], counts["pending"]) == (3, 3, 1, 0)
    warden.ok("DELETE", f"/users/{users[0]['id']}/directories/{d['id']}", 204)
    while time.monotonic() < deadline + 20:
        counts = warden.ok("GET", f"/directories/{d['id']}")["counts"]
        if counts["blocked"] == 1:
            break
        time.sleep(0.2)
    assert (counts["linked"], counts["synced"], counts["blocked"]) == (3, 2, 1), (
        "a blocked account stays linked"
    )
    warden.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": "Counted"})
