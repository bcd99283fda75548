"""HR sources as an admin manages them, and BambooHR's own signed webhooks, end to end through the local host.

BambooHR, as it documents its webhooks (documentation.bamboohr.com/docs/webhooks, "Security"; .../docs/
field-based-webhooks, "JSON Format"): a delivery is ``{"employees": [{"action": "Updated", "changedFields": [...],
"fields": {"First Name": "Bryony"}, "id": "12345", "timestamp": "2026-01-31T18:42:00+0000"}]}``, posted with
``X-BambooHR-Timestamp`` and ``X-BambooHR-Signature``, "the SHA-256 HMAC signature calculated using the payload, the
timestamp, and your private key" (the raw body followed by the timestamp); ``Created`` and ``Deleted`` carry "empty
changedFields and fields objects". The private key is generated in BambooHR and shown once; the admin stores it in
Warden (``PUT /api/hris/sources/{id}/secret``), which keeps it in Key Vault only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, unique
from tests.e2e.test_users_e2e import _has_secret, vault_client


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Bamboo:
    """BambooHR: signs and posts field-based deliveries with the webhook's private key."""

    warden: WardenHost
    source: dict[str, Any]
    key: str
    tenant: ss.Tenant
    clock: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))

    def fields(self, employee_id: str, local: str, **extra: str) -> dict[str, str]:
        return {
            "Employee #": employee_id,
            "Work Email": f"{local}@{self.tenant.domains[0]}",
            "First Name": "Bryony",
            "Last Name": "Adams",
            "Job Title": "HR Administrator",
            "Department": "People",
            "Hire Date": "2025-01-06",
            "Termination Date": "0000-00-00",
            "Status": "Active",
            **extra,
        }

    def change(
        self, bamboo_id: str, action: str = "Updated", fields: dict[str, str] | None = None
    ) -> dict[str, Any]:
        self.clock += dt.timedelta(seconds=1)
        return {
            "id": bamboo_id,
            "action": action,
            "timestamp": iso(self.clock),
            "changedFields": list(fields or {}),
            "fields": fields or {},
        }

    def post(
        self,
        raw: bytes,
        *,
        key: str | None = None,
        sent: dt.datetime | None = None,
        content_type: str = "application/json",
        source_id: str | None = None,
        correlation: str | None = None,
    ) -> httpx.Response:
        stamp = str(int((sent or dt.datetime.now(dt.UTC)).timestamp()))
        signature = hmac.new((key or self.key).encode(), raw + stamp.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": content_type,
            "X-BambooHR-Timestamp": stamp,
            "X-BambooHR-Signature": signature,
            "User-Agent": "BambooHR-WebHooks/1.0 (+https://www.bamboohr.com)",
        }
        if correlation:
            headers["x-correlation-id"] = correlation
        path = f"/hris/sources/{source_id or self.source['id']}/events"
        return self.warden.call("POST", path, role=None, content=raw, headers=headers)

    def send(self, *changes: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.post(json.dumps({"employees": list(changes)}).encode(), **kw)

    def ok(self, *changes: dict[str, Any], correlation: str | None = None) -> list[dict[str, Any]]:
        response = self.send(*changes, correlation=correlation)
        assert response.status_code == 202, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results


@pytest.fixture(scope="module")
def bamboo(warden: WardenHost) -> Iterator[Bamboo]:
    tenant = ss.make_tenant(warden, [f"bh{uuid.uuid4().hex[:8]}.example"])
    options = warden.ok("GET", f"/directories/{tenant.id}")["options"]
    warden.ok(
        "PATCH", f"/directories/{tenant.id}", json={"options": {**options, "autoBindVerifiedDomains": True}}
    )
    source = warden.ok("POST", "/hris/sources", 201, json={"name": unique("bamboo"), "kind": "bamboohr"})
    assert source["credential"] is None and any("private key" in w for w in source["warnings"])
    key = remember_secret(secrets.token_hex(32))
    stored = warden.ok("PUT", f"/hris/sources/{source['id']}/secret", 201, json={"secret": key})
    assert stored["credentialSetAt"] is not None and stored["warnings"] == []
    try:
        yield Bamboo(warden, source, key, tenant)
    finally:
        warden.call("DELETE", f"/hris/sources/{source['id']}")
        ss.drop_tenant(warden, tenant)


def by_employee(warden: WardenHost, employee_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = warden.ok("GET", "/users", params={"employeeId": employee_id})["items"]
    return items


def applied(bamboo: Bamboo, *changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Post the changes under a correlation id; their results once the syncs they queued have run."""
    correlation = ss.new_correlation()
    results = bamboo.ok(*changes, correlation=correlation)
    for user_id in {r["userId"] for r in results if r["userId"] and r["status"] == "accepted"}:
        ss.wait_sync_done(bamboo.warden, user_id, correlation_id=correlation)
    return results


# ------------------------------------------------------------------------------------- joiner, mover, leaver
def test_a_bamboohr_hire_title_change_and_termination_reach_graph(bamboo: Bamboo) -> None:
    employee_id, local, bamboo_id = unique("B")[:10], unique("bh"), str(uuid.uuid4().int)[:6]
    [hired] = applied(bamboo, bamboo.change(bamboo_id, fields=bamboo.fields(employee_id, local)))
    assert hired["status"] == "accepted" and hired["bambooId"] == bamboo_id
    user = ss.user(bamboo.warden, hired["userId"])
    assert user["source"] == f"hris:{bamboo.source['name']}" and user["state"] == "active"
    assert (user["employeeId"], user["jobTitle"], user["department"], user["startAt"]) == (
        employee_id,
        "HR Administrator",
        "People",
        "2025-01-06",
    )
    link = ss.wait_link(bamboo.warden, user["id"], bamboo.tenant.id, "synced")
    account = bamboo.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and (account["jobTitle"], account["employeeId"]) == (
        "HR Administrator",
        employee_id,
    )

    [moved] = applied(
        bamboo,
        bamboo.change(bamboo_id, fields=bamboo.fields(employee_id, local, **{"Job Title": "Head of People"})),
    )
    assert moved["userId"] == user["id"]
    account = bamboo.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["jobTitle"] == "Head of People"

    today = dt.datetime.now(dt.UTC).date().isoformat()
    leaver = bamboo.fields(employee_id, local, **{"Status": "Inactive", "Termination Date": today})
    [left] = applied(bamboo, bamboo.change(bamboo_id, fields=leaver))
    assert (left["status"], left["userId"]) == ("accepted", user["id"])
    assert ss.user(bamboo.warden, user["id"])["state"] == "suspended"
    account = bamboo.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["accountEnabled"] is False
    assert account["signInSessionsValidFromDateTime"] is not None, "signed out"
    actors = {a["actor"] for a in ss.audit(bamboo.warden, user["id"]) if a["action"] == "hris.event.applied"}
    assert actors == {f"hris:{bamboo.source['name']}"}


def test_a_redelivery_is_a_duplicate_and_created_and_deleted_notices_are_handled(bamboo: Bamboo) -> None:
    employee_id, local, bamboo_id = unique("B")[:10], unique("bh"), str(uuid.uuid4().int)[:6]
    created = bamboo.change(bamboo_id, "Created")
    hired = bamboo.change(bamboo_id, fields=bamboo.fields(employee_id, local))
    results = bamboo.ok(created, hired)
    assert [r["status"] for r in results] == ["ignored", "accepted"], "Created carries no fields"
    again = bamboo.ok(hired)  # BambooHR retries: the same change, signed anew
    assert [r["status"] for r in again] == ["duplicate"]
    assert len(by_employee(bamboo.warden, employee_id)) == 1
    [deleted] = bamboo.ok(bamboo.change(bamboo_id, "Deleted"))
    assert deleted["status"] == "accepted" and deleted["userId"] == results[1]["userId"]
    assert by_employee(bamboo.warden, employee_id)[0]["state"] == "suspended"
    [unknown] = bamboo.ok(bamboo.change("99999999", "Deleted"))
    assert unknown["status"] == "ignored"


# ---------------------------------------------------------------------------------------------- refusals
def test_bad_signatures_stale_timestamps_and_other_keys_are_401_and_store_nothing(bamboo: Bamboo) -> None:
    employee_id = unique("B")[:10]
    body = json.dumps(
        {"employees": [bamboo.change("1", fields=bamboo.fields(employee_id, unique("bh")))]}
    ).encode()
    cases = {
        "another key": bamboo.post(body, key=secrets.token_hex(32)),
        "stale": bamboo.post(body, sent=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)),
        "ahead": bamboo.post(body, sent=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)),
    }
    unsigned = bamboo.warden.call(
        "POST",
        f"/hris/sources/{bamboo.source['id']}/events",
        role=None,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    cases["unsigned"] = unsigned
    for what, response in cases.items():
        assert response.status_code == 401, (what, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "WWW-Authenticate" in response.headers, what
    assert "does not match" in cases["another key"].json()["detail"]
    assert "5 minutes old" in cases["stale"].json()["detail"]
    assert by_employee(bamboo.warden, employee_id) == []
    view = bamboo.warden.ok("GET", f"/hris/sources/{bamboo.source['id']}")
    assert view["activity"]["lastFailureAt"] is not None and view["activity"]["lastFailure"]
    refusals = [
        a
        for a in bamboo.warden.ok("GET", "/audit", params={"limit": "100"})["items"]
        if a["action"] == "hris.source.refused" and a["after"]["source"] == bamboo.source["name"]
    ]
    assert refusals and refusals[0]["result"] == "failed"


def test_oversize_malformed_unmapped_and_wrongly_typed_deliveries_are_refused_naming_why(
    bamboo: Bamboo,
) -> None:
    employee_id = unique("B")[:10]
    fields = bamboo.fields(employee_id, unique("bh"))
    big = json.dumps({"employees": [bamboo.change("1", fields={**fields, "Notes": "x" * 300_000})]}).encode()
    assert bamboo.post(big).status_code == 413
    assert bamboo.post(b'{"employees": [').status_code == 400
    missing = {k: v for k, v in fields.items() if k != "Work Email"}
    refused = bamboo.send(bamboo.change("1", fields=missing))
    assert refused.status_code == 400 and "employees[0].fields.Work Email" in refused.json()["detail"]
    bad_email = bamboo.send(bamboo.change("1", fields={**fields, "Work Email": "nobody"}))
    assert bad_email.status_code == 400 and "Work Email" in bad_email.json()["detail"]
    form = bamboo.post(b"employees[1][First+Name]=Bryony", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    event_based = {
        "type": "employee.updated",
        "timestamp": iso(bamboo.clock),
        "data": {"companyId": "1", "employeeId": "2"},
    }
    assert bamboo.post(json.dumps(event_based).encode()).status_code == 422
    assert bamboo.post(b"{}", source_id=str(uuid.uuid4())).status_code == 404
    assert by_employee(bamboo.warden, employee_id) == []


# ------------------------------------------------------------------------------------------ sources, admin
def test_sources_list_with_the_built_in_webhook_and_show_a_credential_only_once(warden: WardenHost) -> None:
    created = warden.ok("POST", "/hris/sources", 201, json={"name": unique("lst"), "kind": "scim"})
    token = remember_secret(created["credential"])
    assert token.startswith("wscim_") and created["endpoint"] == "/api/scim/v2"
    assert created["mapping"]["emails.value"] == "email", "the kind's default mapping"
    listed = warden.ok("GET", "/hris/sources", params={"limit": "200"}, role="reader")["items"]
    names = {s["name"]: s for s in listed}
    assert names["webhook"]["builtIn"] is True and names["webhook"]["endpoint"] == "/api/hris/events"
    shown = warden.ok("GET", f"/hris/sources/{created['id']}", role="reader")
    assert token not in json.dumps(listed) + json.dumps(shown) and "credential" not in shown
    assert _has_secret(vault_client(warden), f"hris-source-{created['id']}"), "the token lives in Key Vault"
    assert (
        warden.call(
            "POST", "/hris/sources", role="reader", json={"name": unique("r"), "kind": "scim"}
        ).status_code
        == 403
    )
    warden.ok("DELETE", f"/hris/sources/{created['id']}", 204)
    assert not _has_secret(vault_client(warden), f"hris-source-{created['id']}"), "and goes with the source"
    refused = warden.http.get("/api/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert warden.call("DELETE", f"/hris/sources/{names['webhook']['id']}").status_code == 409


@pytest.mark.parametrize(
    ("kind", "mapping", "named"),
    [
        (
            "scim",
            {"userName": "username", "name.givenName": "firstName", "name.familyName": "lastName"},
            "email",
        ),
        (
            "scim",
            {
                "userName": "username",
                "emails.value": "email",
                "name.givenName": "firstName",
                "nickName.nothing": "lastName",
            },
            "nickName.nothing",
        ),
        (
            "scim",
            {
                "userName": "username",
                "emails.value": "email",
                "name.givenName": "firstName",
                "name.familyName": "lastName",
                "active": "department",
            },
            "active",
        ),
        (
            "bamboohr",
            {
                "Employee #": "employeeId",
                "Work Email": "email",
                "First Name": "firstName",
                "Last Name": "lastName",
                "Nick": "username",
            },
            "username",
        ),
        ("standard", {"x": "email"}, "mapping"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused_naming_why(
    warden: WardenHost, kind: str, mapping: dict[str, str], named: str
) -> None:
    refused = warden.call(
        "POST", "/hris/sources", json={"name": unique("m"), "kind": kind, "mapping": mapping}
    )
    assert refused.status_code == 422 and named in refused.json()["detail"], refused.text


def test_rotation_keeps_the_previous_token_for_24_hours_and_disabling_refuses(warden: WardenHost) -> None:
    created = warden.ok("POST", "/hris/sources", 201, json={"name": unique("rot"), "kind": "scim"})
    old = remember_secret(created["credential"])
    rotated = warden.ok("POST", f"/hris/sources/{created['id']}/rotate", 201)
    new = remember_secret(rotated["credential"])
    until = dt.datetime.fromisoformat(rotated["previousValidUntil"])
    assert new != old and dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
    for token in (old, new):
        assert (
            warden.http.get("/api/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
    assert (
        warden.call("PUT", f"/hris/sources/{created['id']}/secret", json={"secret": "x"}).status_code == 422
    )
    warden.ok("PATCH", f"/hris/sources/{created['id']}", json={"enabled": False})
    assert (
        warden.http.get("/api/scim/v2/Users", headers={"Authorization": f"Bearer {new}"}).status_code == 403
    )
    view = warden.ok("PATCH", f"/hris/sources/{created['id']}", json={"enabled": True})
    assert view["enabled"] and view["activity"]["lastEventAt"] is not None
    updates = [
        a
        for a in warden.ok("GET", "/audit", params={"limit": "50"})["items"]
        if a["action"] == "hris.source.update"
    ]
    assert updates and updates[0]["actor"].startswith("admin:")
    warden.ok("DELETE", f"/hris/sources/{created['id']}", 204)


def test_a_standard_source_takes_hr_events_signed_with_its_own_secret(
    warden: WardenHost, demo_directory: Any
) -> None:
    created = warden.ok("POST", "/hris/sources", 201, json={"name": unique("std"), "kind": "standard"})
    secret = remember_secret(created["credential"])
    assert secret.startswith("whsec_") and created["endpoint"] == f"/api/hris/sources/{created['id']}/events"
    employee = {
        "employeeId": unique("S")[:10],
        "email": f"{unique('sd')}@contoso.example",
        "firstName": "Ada",
        "lastName": "Byron",
    }
    raw = json.dumps({"type": "employee.hired", "data": employee}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    sent = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, sent, raw.decode()),
    }
    path = f"/hris/sources/{created['id']}/events"
    answered = warden.call("POST", path, role=None, content=raw, headers=headers)
    assert answered.status_code == 202, answered.text
    [result] = answered.json()["results"]
    user = warden.ok("GET", f"/users/{result['userId']}")
    assert user["source"] == f"hris:{created['name']}"
    again = warden.call("POST", path, role=None, content=raw, headers=headers)
    assert again.json()["results"][0]["status"] == "duplicate"
    builtin = warden.call("POST", "/hris/events", role=None, content=raw, headers=headers)
    assert builtin.status_code == 401, "the built-in webhook's secret is another"
    scim = warden.ok("POST", "/hris/sources", 201, json={"name": unique("sc"), "kind": "scim"})
    remember_secret(scim["credential"])
    assert (
        warden.call(
            "POST", f"/hris/sources/{scim['id']}/events", role=None, content=raw, headers=headers
        ).status_code
        == 422
    )
    for source in (created, scim):
        warden.ok("DELETE", f"/hris/sources/{source['id']}", 204)
