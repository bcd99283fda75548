"""Security groups mirrored into M365 (rule 14), end to end: created with exactly the linked members, kept in
step with members, names and bindings, restored by drift, never touching groups Warden does not manage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, new_user, unique

DRIFT = "drift_enforcement"


@pytest.fixture
def tenant(warden: WardenHost) -> Iterator[ss.Tenant]:
    t = ss.make_tenant(warden, [f"gm{uuid.uuid4().hex[:8]}.example"])
    yield t
    warden.stack.clear_faults()
    ss.drop_tenant(warden, t)


def linked_users(warden: WardenHost, t: ss.Tenant, n: int) -> list[tuple[dict[str, Any], str]]:
    users = [new_user(warden, email=f"{uuid.uuid4().hex[:10]}@{t.domains[0]}") for _ in range(n)]
    for u in users:
        warden.ok("PUT", f"/users/{u['id']}/directories/{t.id}", 201)
    return [(u, str(ss.wait_link(warden, u["id"], t.id, "synced")["m365UserId"])) for u in users]


def mirror(warden: WardenHost, group_id: str, t: ss.Tenant, **check: Any) -> dict[str, Any]:
    """The group's binding once its mirror is in step (status synced)."""

    def binding() -> dict[str, Any] | None:
        g = warden.ok("GET", f"/groups/{group_id}")
        return next((x for x in g["directories"] if x["directoryId"] == t.id), None)

    status = check.get("status", "synced")
    found = ss.wait_for(
        binding, lambda b: b is not None and b["status"] == status, what=f"group {group_id} to be {status}"
    )
    assert found is not None
    return found


def members_of(t: ss.Tenant, m365_group: str) -> set[str]:
    body = t.graph.call("GET", f"/groups/{m365_group}/members", params={"$select": "id", "$top": "999"})
    return {m["id"] for m in body["value"]}


def test_a_bound_group_appears_as_a_security_group_with_exactly_its_linked_members(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    linked = linked_users(warden, tenant, 3)
    unlinked = new_user(warden)  # at the demo domain: not in this tenant
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Finance "), "description": "money"})
    for u, _ in linked:
        warden.ok("PUT", f"/groups/{group['id']}/members/{u['id']}", 201)
    warden.ok("PUT", f"/groups/{group['id']}/members/{unlinked['id']}", 201)
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    b = mirror(warden, group["id"], tenant)
    assert b["origin"] == "created" and b["m365GroupId"]
    m365 = tenant.graph.call(
        "GET",
        f"/groups/{b['m365GroupId']}",
        params={"$select": "displayName,securityEnabled,mailEnabled,groupTypes"},
    )
    assert (m365["displayName"], m365["securityEnabled"], m365["mailEnabled"], m365["groupTypes"]) == (
        group["name"],
        True,
        False,
        [],
    )
    assert members_of(tenant, b["m365GroupId"]) == {m for _, m in linked}, "exactly the members linked here"


def test_members_names_unbinding_and_deleting_follow_the_warden_group(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    linked = linked_users(warden, tenant, 3)
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Ops ")})
    for u, _ in linked[:2]:
        warden.ok("PUT", f"/groups/{group['id']}/members/{u['id']}", 201)
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    m365 = mirror(warden, group["id"], tenant)["m365GroupId"]
    warden.ok("PUT", f"/groups/{group['id']}/members/{linked[2][0]['id']}", 201)
    warden.ok("DELETE", f"/groups/{group['id']}/members/{linked[0][0]['id']}", 204)
    ss.wait_for(lambda: members_of(tenant, m365), lambda m: m == {linked[1][1], linked[2][1]}, what="members")
    warden.ok("PATCH", f"/groups/{group['id']}", json={"name": group["name"] + " EU"})
    ss.wait_for(
        lambda: tenant.graph.call("GET", f"/groups/{m365}")["displayName"],
        lambda name: name == group["name"] + " EU",
        what="rename",
    )
    warden.ok("DELETE", f"/groups/{group['id']}/directories/{tenant.id}", 204)
    warden.ok("PUT", f"/groups/{group['id']}/members/{linked[0][0]['id']}", 201)
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.run_timer(DRIFT)
    assert [e for e in rlog.writes(mark, tenant.graph.tenant_id) if m365 in e["path"]] == [], (
        "unbound: left as it is"
    )
    assert tenant.graph.request("GET", f"/groups/{m365}").status_code == 200
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    mirror(warden, group["id"], tenant)
    warden.ok("DELETE", f"/groups/{group['id']}", 204)
    ss.wait_for(
        lambda: tenant.graph.request("GET", f"/groups/{m365}").status_code,
        lambda code: code == 404,
        what="deleted",
    )


def test_an_existing_group_of_the_same_name_is_taken_over_only_when_asked(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    name = unique("Legal ")
    theirs = tenant.graph.call(
        "POST",
        "/groups",
        json={
            "displayName": name,
            "mailNickname": unique("legal"),
            "securityEnabled": True,
            "mailEnabled": False,
        },
    )
    group = warden.ok("POST", "/groups", 201, json={"name": name})
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    b = mirror(warden, group["id"], tenant, status="needs_attention")
    assert "adopt" in b["reason"]
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 200, json={"adopt": True})
    b = mirror(warden, group["id"], tenant)
    assert (b["m365GroupId"], b["origin"]) == (theirs["id"], "adopted")
    warden.ok("DELETE", f"/groups/{group['id']}", 204)
    warden.run_timer(DRIFT)  # time for a deletion, were one wrongly queued, to run
    assert tenant.graph.request("GET", f"/groups/{theirs['id']}").status_code == 200, (
        "an adopted group is never deleted"
    )


def test_drift_removes_a_member_added_by_hand_and_readds_one_removed(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    linked = linked_users(warden, tenant, 3)
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Eng ")})
    for u, _ in linked[:2]:
        warden.ok("PUT", f"/groups/{group['id']}/members/{u['id']}", 201)
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    m365 = mirror(warden, group["id"], tenant)["m365GroupId"]
    warden.run_timer(DRIFT)  # deltaLinks taken
    ref = {"@odata.id": f"{warden.stack.sim.url}/v1.0/directoryObjects/{linked[2][1]}"}
    tenant.graph.call("POST", f"/groups/{m365}/members/$ref", json=ref)
    tenant.graph.call("DELETE", f"/groups/{m365}/members/{linked[0][1]}/$ref")
    warden.run_timer(DRIFT)
    ss.wait_for(
        lambda: members_of(tenant, m365), lambda m: m == {linked[0][1], linked[1][1]}, what="restored"
    )


def test_a_45_member_change_goes_out_in_at_most_3_membership_patches(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    linked = linked_users(warden, tenant, 45)
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Big ")})
    for u, _ in linked:  # not bound yet: no mirror runs while the members arrive
        warden.ok("PUT", f"/groups/{group['id']}/members/{u['id']}", 201)
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201)
    m365 = mirror(warden, group["id"], tenant)["m365GroupId"]
    assert members_of(tenant, m365) == {m for _, m in linked}
    writes = rlog.writes(mark, tenant.graph.tenant_id)
    patches = [e for e in writes if e["method"] == "PATCH" and e["path"] == f"/v1.0/groups/{m365}"]
    singles = [e for e in writes if m365 in e["path"] and e["path"].endswith("/members/$ref")]
    assert len(patches) <= 3 and singles == [], "45 members in PATCHes of 20 (members@odata.bind)"


def test_unmanaged_and_unified_groups_are_never_written(warden: WardenHost, tenant: ss.Tenant) -> None:
    linked = linked_users(warden, tenant, 2)
    unified_name = unique("Team ")
    unified = tenant.graph.call(
        "POST",
        "/groups",
        json={
            "displayName": unified_name,
            "mailNickname": unique("team"),
            "securityEnabled": False,
            "mailEnabled": True,
            "groupTypes": ["Unified"],
        },
    )
    other = tenant.graph.call(
        "POST",
        "/groups",
        json={
            "displayName": unique("Other "),
            "mailNickname": unique("other"),
            "securityEnabled": True,
            "mailEnabled": False,
        },
    )
    group = warden.ok("POST", "/groups", 201, json={"name": unified_name})
    warden.ok("PUT", f"/groups/{group['id']}/members/{linked[0][0]['id']}", 201)
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.ok("PUT", f"/groups/{group['id']}/directories/{tenant.id}", 201, json={"adopt": True})
    b = mirror(warden, group["id"], tenant, status="needs_attention")
    assert "not a plain security group" in b["reason"]
    warden.run_timer(DRIFT)
    writes = [e["path"] for e in rlog.writes(mark, tenant.graph.tenant_id)]
    assert not [p for p in writes if unified["id"] in p or other["id"] in p], writes
