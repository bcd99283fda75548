"""Drift enforcement through the local host (rule 9): Graph's user delta from the stored deltaLink, the managed
users among the changes synced back, unmanaged accounts and attributes left alone, cheap when nothing changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, new_user

DRIFT = "drift_enforcement"


@pytest.fixture
def tenant(warden: WardenHost) -> Iterator[ss.Tenant]:
    t = ss.make_tenant(warden, [f"dr{uuid.uuid4().hex[:8]}.example"])
    warden.run_timer(DRIFT)  # a first round: the tests start from a directory drift has seen
    yield t
    warden.stack.clear_faults()
    ss.drop_tenant(warden, t)


def provisioned(warden: WardenHost, t: ss.Tenant, **fields: Any) -> tuple[dict[str, Any], str]:
    u = new_user(warden, email=f"{uuid.uuid4().hex[:10]}@{t.domains[0]}", **fields)
    warden.ok("PUT", f"/users/{u['id']}/directories/{t.id}", 201)
    link = ss.wait_link(warden, u["id"], t.id, "synced")
    ss.wait_for(
        lambda: [e for e in ss.sync_events(warden, u["id"]) if e["event"] == "sync.done"],
        lambda done: len(done) >= 2,
        what="both runs",
    )
    return u, str(link["m365UserId"])


def drift_runs(warden: WardenHost, user_id: str, after: int) -> dict[str, Any]:
    """Wait for the sync a drift round queued (audited as timer:drift) to finish."""
    return ss.wait_sync_done(warden, user_id, after)


def test_a_blocked_account_reenabled_in_m365_is_blocked_again_and_signed_out(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    u, m365 = provisioned(warden, tenant)
    warden.ok("DELETE", f"/users/{u['id']}/directories/{tenant.id}", 204)
    ss.wait_link(warden, u["id"], tenant.id, "blocked")
    warden.run_timer(DRIFT)  # the block itself shows in the delta; nothing to correct
    tenant.graph.patch_user(m365, {"accountEnabled": True})
    rlog = ss.requests_log(warden)
    mark, seen = rlog.mark(), len(ss.sync_events(warden, u["id"]))
    warden.run_timer(DRIFT)
    drift_runs(warden, u["id"], seen)
    assert tenant.graph.get_user(m365)["accountEnabled"] is False
    paths = [e["path"] for e in rlog.writes(mark, tenant.graph.tenant_id)]
    assert f"/v1.0/users/{m365}/revokeSignInSessions" in paths
    (again,) = [e for e in ss.audit_actions(warden, u["id"], "m365.block") if e["actor"] == "timer:drift"]
    assert again["before"]["accountEnabled"] is True, "the audit shows the drifted value"


def test_an_edited_managed_attribute_is_restored_and_an_unmanaged_one_left(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    u, m365 = provisioned(warden, tenant, jobTitle="Engineer")
    tenant.graph.patch_user(m365, {"jobTitle": "Chief of Everything", "city": "Springfield"})
    seen = len(ss.sync_events(warden, u["id"]))
    warden.run_timer(DRIFT)
    drift_runs(warden, u["id"], seen)
    account = tenant.graph.get_user(m365, select="jobTitle,city")
    assert (account["jobTitle"], account["city"]) == ("Engineer", "Springfield")
    (update,) = [e for e in ss.audit_actions(warden, u["id"], "m365.update") if e["actor"] == "timer:drift"]
    assert (
        update["before"] == {"jobTitle": "Chief of Everything"} and update["after"]["jobTitle"] == "Engineer"
    )


def test_an_unmanaged_account_changing_is_ignored(warden: WardenHost, tenant: ss.Tenant) -> None:
    stranger = tenant.graph.create_user(f"x{uuid.uuid4().hex[:6]}@{tenant.domains[0]}")
    warden.run_timer(DRIFT)
    tenant.graph.patch_user(stranger["id"], {"jobTitle": "Not Warden's"})
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.run_timer(DRIFT)
    ss.drained(warden)  # a sync queued by mistake has run by now
    assert rlog.writes(mark, tenant.graph.tenant_id) == []
    assert tenant.graph.get_user(stranger["id"])["jobTitle"] == "Not Warden's"


def test_an_account_deleted_in_m365_is_recreated_with_create_missing_users(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    u, m365 = provisioned(warden, tenant)
    tenant.graph.request("DELETE", f"/users/{m365}")
    seen = len(ss.sync_events(warden, u["id"]))
    warden.run_timer(DRIFT)
    drift_runs(warden, u["id"], seen)
    link = ss.wait_link(warden, u["id"], tenant.id, "synced", check=lambda x: x["m365UserId"] != m365)
    assert tenant.graph.get_user(link["m365UserId"])["userPrincipalName"] == u["email"]


def test_an_account_deleted_in_m365_needs_attention_without_create_missing_users(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    warden.ok("PATCH", f"/directories/{tenant.id}", json={"options": {"createMissingUsers": False}})
    # Without createMissingUsers, a user is provisioned by taking over an account that exists.
    email = f"{uuid.uuid4().hex[:10]}@{tenant.domains[0]}"
    made = tenant.graph.create_user(email)
    user = new_user(warden, email=email)
    warden.ok("PUT", f"/users/{user['id']}/directories/{tenant.id}", 201)
    ss.wait_link(warden, user["id"], tenant.id, "synced")
    ss.wait_for(
        lambda: [e for e in ss.sync_events(warden, user["id"]) if e["event"] == "sync.done"],
        lambda done: len(done) >= 2,
        what="both runs",
    )
    tenant.graph.request("DELETE", f"/users/{made['id']}")
    seen = len(ss.sync_events(warden, user["id"]))
    warden.run_timer(DRIFT)
    drift_runs(warden, user["id"], seen)
    link = ss.wait_link(warden, user["id"], tenant.id, "needs_attention")
    assert "createMissingUsers" in link["reason"]
    assert tenant.graph.users_by_upn(email) == [], "nothing was created"


def test_a_round_with_nothing_changed_costs_at_most_two_graph_requests(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    provisioned(warden, tenant)
    warden.run_timer(DRIFT)  # absorbs the changes the provisioning made
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.run_timer(DRIFT)
    graph = [e for e in rlog.entries(mark, tenant.graph.tenant_id) if e["kind"] in ("graph", "batch-item")]
    assert 1 <= len(graph) <= 2, graph
    runs = warden.ok("GET", f"/directories/{tenant.id}")["lastRuns"]
    assert runs[0]["kind"] == "drift" and runs[0]["status"] == "done"


def last_drift_run(warden: WardenHost, directory_id: str) -> dict[str, Any]:
    runs = warden.ok("GET", f"/directories/{directory_id}")["lastRuns"]
    newest = next(r for r in runs if r["kind"] == "drift")
    run: dict[str, Any] = warden.ok("GET", f"/directories/{directory_id}/runs/{newest['id']}")
    return run


def test_the_round_after_a_correction_round_costs_one_graph_request_and_syncs_nobody(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    u, m365 = provisioned(warden, tenant, jobTitle="Engineer")
    warden.run_timer(DRIFT)  # the provisioning's own writes come back: echoes
    tenant.graph.patch_user(m365, {"jobTitle": "Chief of Everything"})
    seen = len(ss.sync_events(warden, u["id"]))
    warden.run_timer(DRIFT)  # the correction round
    drift_runs(warden, u["id"], seen)
    assert tenant.graph.get_user(m365)["jobTitle"] == "Engineer"
    seen = len(ss.sync_events(warden, u["id"]))
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.run_timer(DRIFT)  # Warden's correction comes back in this delta
    graph = [e for e in rlog.entries(mark, tenant.graph.tenant_id) if e["kind"] in ("graph", "batch-item")]
    assert [e["path"].split("?")[0] for e in graph] == ["/v1.0/users/delta"], graph
    run = last_drift_run(warden, tenant.id)
    assert run["counts"] == {"changed": 1, "corrections": 0, "echoes": 1}, run["counts"]
    ss.drained(warden)
    assert len(ss.sync_events(warden, u["id"])) == seen, "no sync was queued for the echo"


def test_a_change_made_between_connecting_and_the_first_round_is_corrected_by_that_round(
    warden: WardenHost,
) -> None:
    t = ss.make_tenant(warden, [f"dr{uuid.uuid4().hex[:8]}.example"])  # connecting takes the baselines
    try:
        audit = warden.ok("GET", "/audit", params={"directoryId": t.id})["items"]
        (connect,) = [e for e in audit if e["action"] == "directory.connect"]
        assert "deltaBaseline" not in connect["after"], connect["after"]
        u, m365 = provisioned(warden, t, jobTitle="Engineer")
        t.graph.patch_user(m365, {"jobTitle": "Edited before any drift round"})
        seen = len(ss.sync_events(warden, u["id"]))
        warden.run_timer(DRIFT)  # the directory's first round
        drift_runs(warden, u["id"], seen)
        assert t.graph.get_user(m365)["jobTitle"] == "Engineer"
        (update,) = [
            e for e in ss.audit_actions(warden, u["id"], "m365.update") if e["actor"] == "timer:drift"
        ]
        assert update["before"] == {"jobTitle": "Edited before any drift round"}
    finally:
        warden.stack.clear_faults()
        ss.drop_tenant(warden, t)


def age_delta_link(warden: WardenHost, directory_id: str, days: float) -> None:
    """Make the directory's stored deltaLink ``days`` older. (The simulator's delta tokens carry their issue
    time; moving the simulator's clock instead would also expire every access token Warden holds.)"""
    import base64
    import json as _json
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from azure.data.tables import TableClient

    conn = warden.stack.settings["AzureWebJobsStorage"]
    with TableClient.from_connection_string(conn, "wardendirectories") as table:
        row = table.get_entity(directory_id, "state|users.deltaLink")
        parts = urlsplit(row["Value"])
        query = dict(parse_qsl(parts.query))
        token = query["$deltatoken"]
        state = _json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        state["ts"] -= days * 86400
        raw = _json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        query["$deltatoken"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        row["Value"] = urlunsplit(parts._replace(query=urlencode(query)))
        table.upsert_entity(row)


def test_an_expired_delta_token_falls_back_to_a_full_read_and_a_fresh_delta_link(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    _, m365 = provisioned(warden, tenant, jobTitle="Engineer")
    warden.run_timer(DRIFT)
    age_delta_link(warden, tenant.id, 8)  # delta tokens last 7 days
    tenant.graph.patch_user(m365, {"jobTitle": "Drifted"})
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.run_timer(DRIFT)
    gone = [e for e in rlog.entries(mark, tenant.graph.tenant_id) if e["status"] == 410]
    assert gone, "Graph answered 410 to the stale deltaLink"
    runs = warden.ok("GET", f"/directories/{tenant.id}")["lastRuns"]
    reconcile = next(r for r in runs if r["kind"] == "reconcile")
    ss.wait_for(
        lambda: warden.ok("GET", f"/directories/{tenant.id}/runs/{reconcile['id']}"),
        lambda run: run["status"] in ("done", "failed"),
        what="the reconcile the stale deltaLink started",
    )
    assert tenant.graph.get_user(m365)["jobTitle"] == "Engineer", "the full read found and fixed the drift"
    mark = rlog.mark()
    warden.run_timer(DRIFT)
    assert not [e for e in rlog.entries(mark, tenant.graph.tenant_id) if e["status"] == 410], (
        "a fresh deltaLink"
    )
