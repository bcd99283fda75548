"""The simulator's control API (/_sim): tenants, reset, faults, clock and the request log."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Sim
from tests.sim.conftest import (
    CLIENT_ID,
    SECRET,
    TENANT_ID,
    SimTenant,
    client_credentials,
    tenant_body,
)


def test_health(clean_sim: Sim) -> None:
    resp = clean_sim.control("GET", "/_sim/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_create_tenant_answers_201_without_secrets_and_409_on_repeat(clean_sim: Sim) -> None:
    resp = clean_sim.control("POST", "/_sim/tenants", json=tenant_body())
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["tenantId"] == TENANT_ID and body["userCount"] == 12 and body["keyVault"] is True
    assert body["vaultUrl"] == f"{clean_sim.url}/"
    assert SECRET not in resp.text
    again = clean_sim.control("POST", "/_sim/tenants", json=tenant_body())
    assert again.status_code == 409
    clash = clean_sim.control(
        "POST", "/_sim/tenants", json=tenant_body(tenant_id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    )
    assert clash.status_code == 409 and "domain" in clash.json()["error"]["message"]
    second_vault = clean_sim.control(
        "POST",
        "/_sim/tenants",
        json=tenant_body(tenant_id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", domain="fabrikam.example"),
    )
    assert second_vault.status_code == 409 and "Key Vault" in second_vault.json()["error"]["message"]
    listed = clean_sim.control("GET", "/_sim/tenants").json()["value"]
    assert [t["tenantId"] for t in listed] == [TENANT_ID]


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"tenantId": "not-a-guid"}, "tenantId"),
        ({"displayName": ""}, "displayName"),
        ({"domains": []}, "domains"),
        ({"domains": [{"id": "a.example", "isDefault": False}]}, "isDefault"),
        ({"domains": [{"id": "bad domain", "isDefault": True}]}, "domain name"),
        ({"clients": [{"clientId": "x"}]}, "clientId"),
        ({"clients": [{"clientId": CLIENT_ID, "roles": "User.Read.All"}]}, "roles"),
        ({"seedUsers": -1}, "seedUsers"),
        ({"seedUsers": True}, "seedUsers"),
        ({"keyVault": "yes"}, "keyVault"),
        ({"onPremisesSyncEnabled": "yes"}, "onPremisesSyncEnabled"),
        ({"onPremisesSyncEnabled": 0}, "onPremisesSyncEnabled"),
        ({"bogus": 1}, "unknown keys"),
    ],
)
def test_create_tenant_validates_input(clean_sim: Sim, override: dict[str, Any], needle: str) -> None:
    resp = clean_sim.control("POST", "/_sim/tenants", json=tenant_body(**override))
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]


@pytest.mark.parametrize("given", [True, False, None, "absent"])
def test_on_premises_sync_enabled_is_true_false_or_null(clean_sim: Sim, given: bool | str | None) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/organization : onPremisesSyncEnabled is true (synced
    from on-premises), false (was synced, no longer is) or null (never synced, the default). The control API
    takes all three (absent = null), describes the stored value and Graph's GET /organization returns it as it
    is - false stays false."""
    body = tenant_body()
    if given == "absent":
        del body["onPremisesSyncEnabled"]
    else:
        body["onPremisesSyncEnabled"] = given
    expected = None if given == "absent" else given
    created = clean_sim.control("POST", "/_sim/tenants", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["onPremisesSyncEnabled"] is expected
    listed = clean_sim.control("GET", "/_sim/tenants").json()["value"][0]
    assert "onPremisesSyncEnabled" in listed and listed["onPremisesSyncEnabled"] is expected
    tenant = SimTenant(clean_sim)
    org = tenant.graph("GET", "/organization")
    assert org.status_code == 200, org.text
    assert org.json()["value"][0]["onPremisesSyncEnabled"] is expected
    single = tenant.graph("GET", f"/organization/{TENANT_ID}").json()
    assert "onPremisesSyncEnabled" in single and single["onPremisesSyncEnabled"] is expected


def test_faults_partial_update_and_validation(clean_sim: Sim) -> None:
    defaults = clean_sim.control("GET", "/_sim/faults").json()
    assert defaults["errorRate"] == 0 and defaults["resourceUnitsPer10s"] is None
    clean_sim.control("PUT", "/_sim/faults", json={"latencyMs": 5, "errorKinds": ["503"]}).raise_for_status()
    updated = clean_sim.control("PUT", "/_sim/faults", json={"seed": 7}).json()
    assert updated["latencyMs"] == 5 and updated["errorKinds"] == ["503"] and updated["seed"] == 7
    for bad in (
        {"errorRate": 2},
        {"errorKinds": ["418"]},
        {"latencyMs": "slow"},
        {"resourceUnitsPer10s": 0},
        {"nope": 1},
        [1],
    ):
        resp = clean_sim.control("PUT", "/_sim/faults", json=bad)
        assert resp.status_code == 400, bad
    assert clean_sim.control("GET", "/_sim/faults").json() == updated


def test_clock_offset(clean_sim: Sim) -> None:
    resp = clean_sim.control("PUT", "/_sim/clock", json={"offsetSeconds": 3600})
    assert resp.status_code == 200 and resp.json()["offsetSeconds"] == 3600
    assert clean_sim.control("GET", "/_sim/clock").json()["offsetSeconds"] == 3600
    assert clean_sim.control("PUT", "/_sim/clock", json={"offsetSeconds": "1h"}).status_code == 400
    clean_sim.reset()
    assert clean_sim.control("GET", "/_sim/clock").json()["offsetSeconds"] == 0


def test_request_log_records_kinds_and_since_and_never_secrets(tenant: SimTenant) -> None:
    token = tenant.token()
    tenant.graph("GET", "/users?$top=1", token=token)
    log = tenant.requests()
    assert [e["kind"] for e in log] == ["openid", "token", "graph"], (
        "MSAL read the OpenID configuration first"
    )
    assert log[0]["path"] == f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"
    assert log[2]["path"] == "/v1.0/users?$top=1" and log[2]["resourceUnits"] == 1
    assert log[2]["tenantId"] == TENANT_ID and log[2]["clientId"] == CLIENT_ID
    assert tenant.requests(since=log[1]["seq"]) == log[2:]
    text = tenant.sim.control("GET", "/_sim/requests").text
    assert SECRET not in text and token not in text
    assert tenant.sim.control("DELETE", "/_sim/requests").status_code == 204
    assert tenant.requests() == []
    assert tenant.sim.control("GET", "/_sim/requests?since=x").status_code == 400


def test_reset_forgets_tenants(tenant: SimTenant) -> None:
    token = tenant.token()
    tenant.sim.reset()
    resp = tenant.token_request(client_credentials())
    assert resp.json()["error_codes"] == [90002]
    assert tenant.graph("GET", "/users", token=token).status_code == 401
