"""Accounts Warden must never touch (rule 23) through the local host and the simulated cloud: a Warden user matching
a Global Administrator needs attention and its account gets no write; a linked user made Global Administrator, then
terminated, is frozen and reported, not blocked; an account an admin marks, the same; where role holders cannot be
read, take-overs wait, and Graph's own 403 on a privileged user fails that user alone."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, new_user
from tools import demo

GA = "Global Administrator"


def connect(warden: WardenHost, roles: list[str], seed: Any = None) -> ss.Tenant:
    """A new tenant (one verified domain) connected to Warden with ``roles``; ``seed(graph, domain)`` runs in the
    tenant before it is connected."""
    sim = warden.stack.sim
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    secret = remember_secret(f"sec-{uuid.uuid4().hex}")
    domain, name = f"pa{uuid.uuid4().hex[:8]}.example", f"Tenant {ss.unique('p')}"
    body = {
        "tenantId": tenant_id,
        "displayName": name,
        "domains": [{"id": domain, "isDefault": True, "isVerified": True}],
        "clients": [{"clientId": client_id, "clientSecret": secret, "roles": roles}],
    }
    made = sim.control("POST", "/_sim/tenants", json=body)
    assert made.status_code == 201, made.text
    graph = ss.Graph(sim, tenant_id, client_id, secret)
    if seed is not None:
        seed(graph, domain)
    auth = {"mode": "app", "clientId": client_id, "clientSecret": secret}
    directory = warden.ok(
        "POST", "/directories", 201, json={"name": name, "tenantId": tenant_id, "auth": auth}
    )
    return ss.Tenant(graph, [domain], directory, name)


def assign(warden: WardenHost, tenant: ss.Tenant, principal: str, role: str = GA) -> None:
    body = {"principal": principal, "role": role}
    made = warden.stack.sim.control(
        "POST", f"/_sim/tenants/{tenant.graph.tenant_id}/roleAssignments", json=body
    )
    assert made.status_code == 201, made.text


def touching(rlog: ss.RequestLog, mark: int, tenant: ss.Tenant, m365_id: str) -> list[dict[str, Any]]:
    """Graph writes since ``mark`` that name the account."""
    return [e for e in rlog.writes(mark, tenant.graph.tenant_id) if m365_id in e["path"]]


def linked_user(warden: WardenHost, tenant: ss.Tenant) -> tuple[dict[str, Any], str]:
    u = new_user(warden, email=f"{ss.unique('e')}@{tenant.domains[0]}")
    warden.ok("PUT", f"/users/{u['id']}/directories/{tenant.id}", 201)
    link = ss.wait_link(warden, u["id"], tenant.id, "synced")
    ss.drained(warden)
    return u, str(link["m365UserId"])


def reconcile(warden: WardenHost, tenant: ss.Tenant, *, dry_run: bool) -> dict[str, Any]:
    started = warden.call("POST", f"/directories/{tenant.id}/reconcile", json={"dryRun": dry_run})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = warden.ok("GET", f"/directories/{tenant.id}/runs/{started.json()['runId']}")
        if run["status"] in ("done", "failed", "held") or time.monotonic() > deadline:
            assert run["status"] == "done", run
            return run
        time.sleep(0.2)


def test_a_warden_user_matching_a_global_administrator_needs_attention_and_the_account_gets_no_write(
    warden: WardenHost,
) -> None:
    boss: dict[str, Any] = {}

    def seed(graph: ss.Graph, domain: str) -> None:
        boss.update(graph.create_user(f"boss@{domain}", jobTitle="Chief"))
        assign(warden, ss.Tenant(graph, [domain], {}, ""), boss["id"])

    tenant = connect(warden, demo.DEMO_ROLES, seed)
    try:
        listed = warden.ok("GET", f"/directories/{tenant.id}/protected-accounts")
        assert listed["rolesReadable"] is True, "read at connect"
        assert [(i["m365UserId"], i["why"]) for i in listed["items"]] == [(boss["id"], [GA])]
        rlog = ss.requests_log(warden)
        mark = rlog.mark()
        u = new_user(warden, email=f"boss@{tenant.domains[0]}", username=ss.unique("boss"), jobTitle="Intern")
        warden.ok("PUT", f"/users/{u['id']}/directories/{tenant.id}", 201)
        link = ss.wait_link(warden, u["id"], tenant.id, "needs_attention")
        assert link["reason"] == f"protected account ({GA})" and link["candidates"] == [boss["id"]]
        assert link["m365UserId"] is None, "never linked"
        ss.drained(warden)
        assert touching(rlog, mark, tenant, boss["id"]) == [], "zero writes to the administrator"
        assert rlog.writes(mark, tenant.graph.tenant_id) == [], (
            "nor anything else: no account was created over it"
        )
        assert tenant.graph.get_user(boss["id"])["jobTitle"] == "Chief"
        pushed = warden.call("POST", f"/users/{u['id']}/password", json={"password": "Correct-Horse-9"})
        assert pushed.status_code == 409, "not linked anywhere: no password goes to the administrator"
    finally:
        ss.drop_tenant(warden, tenant)


def test_a_linked_user_made_global_administrator_then_terminated_is_frozen_and_reported_not_blocked(
    warden: WardenHost,
) -> None:
    tenant = connect(warden, demo.DEMO_ROLES)
    try:
        u, m365_id = linked_user(warden, tenant)
        other, other_id = linked_user(warden, tenant)
        assign(warden, tenant, m365_id)
        run = reconcile(warden, tenant, dry_run=True)  # every reconcile re-reads the role holders
        items = {i["userId"]: i for i in run["plan"]["items"]}
        assert items[u["id"]]["action"] == "needs_attention"
        assert items[u["id"]]["reason"] == f"protected account ({GA})"
        frozen = ss.wait_link(warden, u["id"], tenant.id, "needs_attention")
        assert frozen["reason"] == f"protected account ({GA})" and frozen["m365UserId"] == m365_id
        audit = warden.ok("GET", "/audit", params={"directoryId": tenant.id, "limit": "100"})["items"]
        assert any(
            e["action"] == "directory.roles.refresh" and m365_id in e["after"]["nowProtected"] for e in audit
        )
        rlog = ss.requests_log(warden)
        mark = rlog.mark()
        ss.act(warden, "PATCH", f"/users/{u['id']}", u["id"], json={"state": "suspended"})
        ss.act(warden, "PATCH", f"/users/{other['id']}", other["id"], json={"state": "suspended"})
        ss.wait_link(warden, other["id"], tenant.id, "blocked")
        link = ss.wait_link(warden, u["id"], tenant.id, "needs_attention")
        assert link["reason"] == f"protected account ({GA})"
        assert tenant.graph.get_user(m365_id)["accountEnabled"] is True, "the administrator is not blocked"
        assert tenant.graph.get_user(other_id)["accountEnabled"] is False, "the others are"
        assert touching(rlog, mark, tenant, m365_id) == [], "zero writes to the administrator"
        reported = warden.ok("GET", f"/directories/{tenant.id}")
        assert reported["counts"]["needsAttention"] >= 1
    finally:
        ss.drop_tenant(warden, tenant)


def test_an_account_an_admin_marks_is_frozen_the_same_and_unmarking_lets_warden_act_again(
    warden: WardenHost,
) -> None:
    tenant = connect(warden, demo.DEMO_ROLES)
    try:
        u, m365_id = linked_user(warden, tenant)
        path = f"/directories/{tenant.id}/protected-accounts/{m365_id}"
        assert (
            warden.call("PUT", f"/directories/{tenant.id}/protected-accounts/{uuid.uuid4()}").status_code
            == 404
        )
        marked = warden.ok("PUT", path, 201)
        assert marked["markedBy"].startswith("admin:") and marked["why"] == [
            f"marked by {marked['markedBy']}"
        ]
        assert warden.ok("PUT", path, 200)["markedAt"] == marked["markedAt"], "marking again changes nothing"
        ss.wait_link(warden, u["id"], tenant.id, "needs_attention")
        rlog = ss.requests_log(warden)
        mark = rlog.mark()
        ss.act(warden, "PATCH", f"/users/{u['id']}", u["id"], json={"state": "suspended"})
        link = ss.wait_link(warden, u["id"], tenant.id, "needs_attention")
        assert link["reason"] == f"protected account (marked by {marked['markedBy']})"
        pushed = warden.call("POST", f"/users/{u['id']}/password", json={"password": "Correct-Horse-9"})
        assert pushed.status_code in (409, 422), pushed.text
        assert (
            touching(rlog, mark, tenant, m365_id) == [] and tenant.graph.get_user(m365_id)["accountEnabled"]
        )

        assert warden.call("DELETE", path).status_code == 204
        assert warden.call("DELETE", path).status_code == 404, "not marked any more"
        ss.wait_link(warden, u["id"], tenant.id, "blocked")
        assert tenant.graph.get_user(m365_id)["accountEnabled"] is False, "Warden acts on it again"
        assert warden.ok("GET", f"/directories/{tenant.id}/protected-accounts")["items"] == []
    finally:
        ss.drop_tenant(warden, tenant)


def test_without_the_role_holders_take_overs_wait_and_one_403_on_a_privileged_user_fails_that_user_alone(
    warden: WardenHost,
) -> None:
    roles = [r for r in demo.DEMO_ROLES if r != "RoleManagement.Read.Directory"]
    tenant = connect(warden, roles)
    try:
        shown = warden.ok("GET", f"/directories/{tenant.id}")
        assert any("role holders cannot be read" in w for w in shown["warnings"]), shown["warnings"]
        existing = tenant.graph.create_user(f"{ss.unique('x')}@{tenant.domains[0]}")
        taker = new_user(warden, email=existing["userPrincipalName"], username=ss.unique("t"))
        warden.ok("PUT", f"/users/{taker['id']}/directories/{tenant.id}", 201)
        held = ss.wait_link(warden, taker["id"], tenant.id, "needs_attention")
        assert held["reason"] == "cannot verify this account holds no admin role"

        admin, admin_id = linked_user(warden, tenant)  # created: a new account is nobody's admin account
        other, other_id = linked_user(warden, tenant)
        assign(warden, tenant, admin_id)  # Warden cannot see it; Graph will refuse to disable the admin
        ss.act(warden, "PATCH", f"/users/{admin['id']}", admin["id"], json={"state": "suspended"})
        ss.act(warden, "PATCH", f"/users/{other['id']}", other["id"], json={"state": "suspended"})
        failed = ss.wait_link(warden, admin["id"], tenant.id, "error")
        assert "403" in failed["reason"] and "Authorization_RequestDenied" in failed["reason"], failed
        ss.wait_link(warden, other["id"], tenant.id, "blocked")
        assert tenant.graph.get_user(other_id)["accountEnabled"] is False, "the other user's sync went on"
        assert tenant.graph.get_user(admin_id)["accountEnabled"] is True
        assert warden.ok("GET", f"/directories/{tenant.id}")["status"] == "active", (
            "the directory is not stopped"
        )
    finally:
        ss.drop_tenant(warden, tenant)
