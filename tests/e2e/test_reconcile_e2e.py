"""Full reconcile through the local host (rules 9, 19, 20): a dry run writes nothing, drift is corrected, a
plan over the mass-change guard is held until approved or discarded, unmanaged accounts are never touched."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost

WAIT = 30.0


@pytest.fixture
def tenant(warden: WardenHost) -> Iterator[ss.Tenant]:
    t = ss.make_tenant(warden, [f"rc{uuid.uuid4().hex[:8]}.example"])
    yield t
    warden.stack.clear_faults()
    ss.drop_tenant(warden, t)


def provision(warden: WardenHost, t: ss.Tenant, n: int) -> list[dict[str, Any]]:
    """``n`` users bound to the tenant's directory, each synced (linked to a new account): their links."""
    return [link for _, link in ss.provision(warden, t, n)]


def guard(warden: WardenHost, t: ss.Tenant, percent: float, count: int) -> None:
    body = {"options": {"massChangeGuard": {"percent": percent, "count": count}}}
    warden.ok("PATCH", f"/directories/{t.id}", json=body)


def run_until(warden: WardenHost, t: ss.Tenant, run_id: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        run: dict[str, Any] = warden.ok("GET", f"/directories/{t.id}/runs/{run_id}", params={"limit": "200"})
        if run["status"] in statuses or time.monotonic() > deadline:
            assert run["status"] in statuses, run
            return run
        time.sleep(0.2)


def reconcile(warden: WardenHost, t: ss.Tenant, *, dry_run: bool = False) -> str:
    response = warden.call("POST", f"/directories/{t.id}/reconcile", json={"dryRun": dry_run})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(response.json()["runId"])
    return str(response.json()["runId"])


def test_a_dry_run_returns_the_plan_and_writes_nothing(warden: WardenHost, tenant: ss.Tenant) -> None:
    links = provision(warden, tenant, 3)
    tenant.graph.patch_user(links[0]["m365UserId"], {"jobTitle": "Edited in M365"})
    stranger = tenant.graph.create_user(f"stranger{uuid.uuid4().hex[:6]}@{tenant.domains[0]}")
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    run = run_until(warden, tenant, reconcile(warden, tenant, dry_run=True), {"done"})
    assert run["dryRun"] is True and run["counts"]["update"] == 1 and run["counts"]["none"] == 2
    assert run["counts"]["unmanaged"] >= 1, "the stranger (and nothing of it) is counted"
    (item,) = run["plan"]["items"]
    assert (item["action"], item["m365UserId"], item["state"]) == (
        "update",
        links[0]["m365UserId"],
        "planned",
    )
    assert item["changes"]["jobTitle"][0] == "Edited in M365"
    assert rlog.writes(mark, tenant.graph.tenant_id) == [], "a dry run writes nothing to M365"
    listed = [e for e in rlog.entries(mark, tenant.graph.tenant_id) if e["method"] == "GET"]
    assert listed, "the tenant was read"
    assert tenant.graph.get_user(stranger["id"]) is not None


def test_a_reconcile_restores_drifted_attributes_and_reblocks_and_leaves_unmanaged_accounts(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    links = provision(warden, tenant, 4)
    blocked_user = ss.user(warden, links[3]["userId"]) if "userId" in links[3] else None
    del blocked_user
    users = warden.ok("GET", "/users", params={"directoryId": tenant.id, "limit": "50"})["items"]
    by_m365 = {ss.link_of(u, tenant.id)["m365UserId"]: u for u in users}  # type: ignore[index]
    unbind_me = by_m365[links[3]["m365UserId"]]
    warden.ok("DELETE", f"/users/{unbind_me['id']}/directories/{tenant.id}", 204)
    ss.wait_link(warden, unbind_me["id"], tenant.id, "blocked")
    tenant.graph.patch_user(links[0]["m365UserId"], {"department": "Renamed by hand"})
    tenant.graph.patch_user(links[3]["m365UserId"], {"accountEnabled": True})
    stranger = tenant.graph.create_user(f"other{uuid.uuid4().hex[:6]}@{tenant.domains[0]}", jobTitle="Theirs")
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    run = run_until(warden, tenant, reconcile(warden, tenant), {"done"})
    assert (run["counts"]["update"], run["counts"]["block"]) == (1, 1)
    assert run["progress"]["applied"] == 2 and run["progress"]["chunksDone"] == 1
    assert tenant.graph.get_user(links[0]["m365UserId"])["department"] is None
    assert tenant.graph.get_user(links[3]["m365UserId"])["accountEnabled"] is False
    paths = [e["path"] for e in rlog.writes(mark, tenant.graph.tenant_id)]
    assert any(p.endswith("/revokeSignInSessions") for p in paths), "the re-blocked account is signed out"
    assert not any(stranger["id"] in p for p in paths), "an unmanaged account is never written"
    assert tenant.graph.get_user(stranger["id"])["jobTitle"] == "Theirs"
    lists = [
        e
        for e in rlog.entries(mark, tenant.graph.tenant_id)
        if e["method"] == "GET" and e["path"].split("?")[0] == "/v1.0/users" and "top=999" in e["path"]
    ]
    assert len(lists) == 1, "the tenant is read once per run ($top=999, one page here)"


def test_a_plan_over_the_guard_is_held_applied_after_approve_and_nothing_after_discard(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    links = provision(warden, tenant, 20)
    users = warden.ok("GET", "/users", params={"directoryId": tenant.id, "limit": "50"})["items"]
    leavers = users[:12]
    guard(warden, tenant, 100, 1000)  # the test's own mass leave is deliberate: the admin raises the guard
    for u in leavers:
        warden.ok("DELETE", f"/users/{u['id']}/directories/{tenant.id}", 204)
    for u in leavers:
        ss.wait_link(warden, u["id"], tenant.id, "blocked")
    ids = [ss.link_of(u, tenant.id)["m365UserId"] for u in leavers]  # type: ignore[index]

    def reenable() -> None:
        for m in ids:
            tenant.graph.patch_user(m, {"accountEnabled": True})

    guard(warden, tenant, 10, 10)  # back to the default for the reconcile
    reenable()  # 12 of 20 re-enabled behind Warden's back: blocking them all is 60 % of the linked users
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    held = run_until(warden, tenant, reconcile(warden, tenant), {"held"})
    assert held["counts"]["block"] == 12 and held["guard"]["blocking"] == 12 and held["guard"]["linked"] == 20
    assert rlog.writes(mark, tenant.graph.tenant_id) == [], "a held run writes nothing"
    directory = warden.ok("GET", f"/directories/{tenant.id}")
    assert any("held awaiting approval" in w for w in directory["warnings"]), (
        directory["warnings"],
        directory["lastRuns"],
    )
    assert directory["lastRuns"][0]["status"] == "held"
    assert (
        warden.call("POST", f"/directories/{tenant.id}/runs/{held['id']}/approve", role="reader").status_code
        == 403
    )
    approved = warden.ok("POST", f"/directories/{tenant.id}/runs/{held['id']}/approve")
    assert approved["status"] in ("applying", "done")
    done = run_until(warden, tenant, held["id"], {"done"})
    assert done["progress"]["applied"] == 12
    assert all(tenant.graph.get_user(m)["accountEnabled"] is False for m in ids)
    assert warden.call("POST", f"/directories/{tenant.id}/runs/{held['id']}/approve").status_code == 409

    reenable()
    mark = rlog.mark()
    again = run_until(warden, tenant, reconcile(warden, tenant), {"held"})
    discarded = warden.ok("POST", f"/directories/{tenant.id}/runs/{again['id']}/discard")
    assert discarded["status"] == "discarded"
    ss.drained(warden)  # nothing is queued for a discarded run; a stray chunk would have run by now
    assert rlog.writes(mark, tenant.graph.tenant_id) == []
    assert all(tenant.graph.get_user(m)["accountEnabled"] is True for m in ids)
    del links


def test_a_raised_guard_lets_the_same_plan_through(warden: WardenHost, tenant: ss.Tenant) -> None:
    provision(warden, tenant, 12)
    users = warden.ok("GET", "/users", params={"directoryId": tenant.id, "limit": "50"})["items"]
    guard(warden, tenant, 100, 1000)
    for u in users[:11]:
        warden.ok("DELETE", f"/users/{u['id']}/directories/{tenant.id}", 204)
    for u in users[:11]:
        ss.wait_link(warden, u["id"], tenant.id, "blocked")
        tenant.graph.patch_user(ss.link_of(u, tenant.id)["m365UserId"], {"accountEnabled": True})  # type: ignore[index]
    warden.ok(
        "PATCH",
        f"/directories/{tenant.id}",
        json={"options": {"massChangeGuard": {"percent": 100, "count": 1000}}},
    )
    run = run_until(warden, tenant, reconcile(warden, tenant), {"done"})
    assert run["guard"] is None and run["progress"]["applied"] == 11


def test_a_burst_of_per_user_blocks_over_the_guard_is_held_until_approved(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    provision(warden, tenant, 15)
    users = warden.ok("GET", "/users", params={"directoryId": tenant.id, "limit": "50"})["items"]
    for u in users[:13]:  # a broken HR export: 13 of 15 leave at once
        warden.ok("PATCH", f"/users/{u['id']}", json={"state": "suspended"})
    deadline = time.monotonic() + WAIT
    while True:
        links = [ss.link_of(ss.user(warden, u["id"]), tenant.id) for u in users[:13]]
        statuses = sorted(str(x["status"]) for x in links if x)
        if statuses.count("blocked") + statuses.count("needs_attention") == 13 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    # More than 10 blocks and more than 10 % within the hour is over the guard: at most ten get through. (Two
    # syncs deciding at the same instant may both be held: the guard errs on holding.)
    blocked, held = statuses.count("blocked"), statuses.count("needs_attention")
    assert blocked <= 10 and held >= 3 and blocked + held == 13, statuses
    held_links = [x for x in links if x and x["status"] == "needs_attention"]
    assert all("held by the mass-change guard" in x["reason"] for x in held_links)
    assert all(tenant.graph.get_user(x["m365UserId"])["accountEnabled"] is True for x in held_links), (
        "held: not written"
    )
    run = next(r for r in warden.ok("GET", f"/directories/{tenant.id}")["lastRuns"] if r["kind"] == "user")
    assert run["status"] == "held"
    detail = warden.ok("GET", f"/directories/{tenant.id}/runs/{run['id']}")
    assert detail["counts"]["block"] == held and {i["action"] for i in detail["plan"]["items"]} == {"block"}
    warden.ok("POST", f"/directories/{tenant.id}/runs/{run['id']}/approve")
    for x in held_links:
        ss.wait_for(
            lambda x=x: tenant.graph.get_user(x["m365UserId"]),
            lambda account: account is not None and account["accountEnabled"] is False,
            what="approved block",
        )
