"""A tenant's own settings through the local host and the simulated cloud: ``passwordNeverExpires`` (rule 16) sets
and restores each managed domain's password validity, federated domains untouched, and drift and reconcile keep it;
the Entra Connect guard (rule 17) is re-checked at every reconcile, blocking the directory and releasing it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost
from tools import demo

NEVER = 2147483647


def tenant_with(
    warden: WardenHost, roles: list[str], *, options: dict[str, Any] | None = None, connect_status: int = 201
) -> tuple[ss.Graph, dict[str, str], dict[str, Any] | None, str]:
    """A tenant with a default domain at 90 days, another at 45 and a federated one at 90, each as Graph has it;
    then connected (with ``options``). (graph, domains by role, the directory or None, its name)."""
    sim = warden.stack.sim
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    secret = remember_secret(f"sec-{uuid.uuid4().hex}")
    x = uuid.uuid4().hex[:8]
    names = {"main": f"pw{x}.example", "other": f"pw2{x}.example", "fed": f"pwfed{x}.example"}
    body = {
        "tenantId": tenant_id,
        "displayName": f"Passwords {x}",
        "domains": [
            {"id": names["main"], "isDefault": True, "isVerified": True},
            {"id": names["other"], "isVerified": True},
            {"id": names["fed"], "isVerified": True, "authenticationType": "Federated"},
        ],
        "clients": [{"clientId": client_id, "clientSecret": secret, "roles": demo.DEMO_ROLES}],
    }
    made = sim.control("POST", "/_sim/tenants", json=body)
    assert made.status_code == 201, made.text
    admin = ss.Graph(sim, tenant_id, client_id, secret)
    for key, days in (("main", 90), ("other", 45), ("fed", 90)):
        admin.call("PATCH", f"/domains/{names[key]}", json={"passwordValidityPeriodInDays": days})
    if roles != demo.DEMO_ROLES:
        changed = sim.control("PUT", f"/_sim/tenants/{tenant_id}/clients/{client_id}", json={"roles": roles})
        assert changed.status_code == 200, changed.text
    connect = {
        "name": f"Passwords {x}",
        "tenantId": tenant_id,
        "auth": {"mode": "app", "clientId": client_id, "clientSecret": secret},
        **({"options": options} if options else {}),
    }
    response = warden.call("POST", "/directories", json=connect)
    assert response.status_code == connect_status, response.text
    return admin, names, response.json() if response.status_code == 201 else None, f"Passwords {x}"


def validity(graph: ss.Graph, domain: str) -> int:
    return int(graph.call("GET", f"/domains/{domain}")["passwordValidityPeriodInDays"])


def reconcile(warden: WardenHost, directory_id: str) -> dict[str, Any]:
    started = warden.call("POST", f"/directories/{directory_id}/reconcile", json={"dryRun": False})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = warden.ok("GET", f"/directories/{directory_id}/runs/{started.json()['runId']}")
        if run["status"] in ("done", "failed") or time.monotonic() > deadline:
            assert run["status"] == "done", run
            return run
        time.sleep(0.2)


def test_password_never_expires_sets_managed_domains_keeps_them_and_puts_each_previous_value_back(
    warden: WardenHost,
) -> None:
    graph, d, directory, name = tenant_with(warden, demo.DEMO_ROLES)
    assert directory is not None
    path = f"/directories/{directory['id']}"
    try:
        on = warden.ok("PATCH", path, 200, json={"options": {"passwordNeverExpires": True}})
        assert on["options"]["passwordNeverExpires"] is True
        assert (validity(graph, d["main"]), validity(graph, d["other"])) == (NEVER, NEVER)
        assert validity(graph, d["fed"]) == 90, "a federated domain's passwords are the IdP's business"
        shown = {x["id"]: x["passwordValidityPeriodInDays"] for x in on["domains"]}
        assert (shown[d["main"]], shown[d["other"]], shown[d["fed"]]) == (NEVER, NEVER, 90)

        graph.call("PATCH", f"/domains/{d['main']}", json={"passwordValidityPeriodInDays": 60})
        warden.run_timer("drift_enforcement")
        assert validity(graph, d["main"]) == NEVER, "the drift round puts it back"
        graph.call("PATCH", f"/domains/{d['other']}", json={"passwordValidityPeriodInDays": 30})
        run = reconcile(warden, directory["id"])
        assert run["counts"]["settings.passwordPolicy"] == 1 and validity(graph, d["other"]) == NEVER
        audit = warden.ok("GET", "/audit", params={"directoryId": directory["id"], "limit": "100"})["items"]
        restored = [e for e in audit if e["action"] == "directory.password_policy"]
        assert {(e["before"]["domain"], e["before"]["passwordValidityPeriodInDays"]) for e in restored} >= {
            (d["main"], 60),
            (d["other"], 30),
        }

        off = warden.ok("PATCH", path, 200, json={"options": {"passwordNeverExpires": False}})
        assert off["options"]["passwordNeverExpires"] is False
        assert (validity(graph, d["main"]), validity(graph, d["other"])) == (90, 45), "the values from before"
        assert validity(graph, d["fed"]) == 90
        graph.call("PATCH", f"/domains/{d['main']}", json={"passwordValidityPeriodInDays": 120})
        reconcile(warden, directory["id"])
        assert validity(graph, d["main"]) == 120, "with the option off Warden leaves the policy alone"
    finally:
        warden.call("DELETE", path, params={"confirm": name})


def test_connecting_with_the_option_applies_it_and_an_app_that_may_not_change_domains_is_refused_whole(
    warden: WardenHost,
) -> None:
    graph, d, directory, name = tenant_with(warden, demo.DEMO_ROLES, options={"passwordNeverExpires": True})
    assert directory is not None
    try:
        assert (validity(graph, d["main"]), validity(graph, d["other"])) == (NEVER, NEVER)
    finally:
        warden.call("DELETE", f"/directories/{directory['id']}", params={"confirm": name})
    read_only = [r for r in demo.DEMO_ROLES if r != "Domain.ReadWrite.All"] + ["Domain.Read.All"]
    graph, d, refused, name = tenant_with(
        warden, read_only, options={"passwordNeverExpires": True}, connect_status=502
    )
    assert refused is None and validity(graph, d["main"]) == 90
    listed = warden.ok("GET", "/directories")["items"]
    assert not any(x["name"] == name for x in listed), "nothing of the refused connection is kept"


def test_on_premises_sync_blocks_the_directory_at_the_next_reconcile_and_turning_it_off_releases_it(
    warden: WardenHost,
) -> None:
    tenant = ss.make_tenant(warden, [f"op{uuid.uuid4().hex[:8]}.example"])
    sim, tid = warden.stack.sim, tenant.graph.tenant_id
    try:
        assert (
            sim.control("PATCH", f"/_sim/tenants/{tid}", json={"onPremisesSyncEnabled": True}).status_code
            == 200
        )
        run = reconcile(warden, tenant.id)
        assert "directory synchronization from on-premises is enabled" in (run["error"] or "")
        shown = warden.ok("GET", f"/directories/{tenant.id}")
        assert (shown["status"], shown["reason"]) == (
            "blocked",
            "directory synchronization from on-premises is enabled",
        )
        assert (
            sim.control("PATCH", f"/_sim/tenants/{tid}", json={"onPremisesSyncEnabled": False}).status_code
            == 200
        )
        run = reconcile(warden, tenant.id)
        assert run["error"] is None
        assert warden.ok("GET", f"/directories/{tenant.id}")["status"] == "active"
        audit = warden.ok("GET", "/audit", params={"directoryId": tenant.id, "limit": "50"})["items"]
        assert [e["after"]["status"] for e in audit if e["action"] == "directory.status"] == [
            "active",
            "blocked",
        ]
    finally:
        ss.drop_tenant(warden, tenant)
