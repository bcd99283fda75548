"""The HRIS webhook end to end, through the local host: Standard Webhooks signatures with a secret rotated
through the admin API, joiners/movers/leavers/rehires applied to the store once, in event order, and every
malformed or unauthentic delivery refused with a 4xx that says why."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared.service.hr.events import new_signing_secret
from tests.conftest import remember_secret
from tests.e2e.conftest import WardenHost, new_user, unique
from tools import demo


@dataclass
class Hr:
    """The HR system: signs and sends events with the secret Warden gave it."""

    warden: WardenHost
    secret: str
    seen: list[str]
    """Every response text, to check none carries a secret."""

    def rotate(self) -> str:
        self.secret = remember_secret(self.warden.ok("POST", "/hris/secret", 201)["secret"])
        return self.secret

    def post(
        self,
        raw: bytes,
        *,
        msg_id: str | None = None,
        secret: str | None = None,
        sent: dt.datetime | None = None,
        content_type: str = "application/json",
        signed: bool = True,
    ) -> httpx.Response:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        sent = sent or dt.datetime.now(dt.UTC)
        headers = {"content-type": content_type}
        if signed:
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(sent.timestamp())),
                "webhook-signature": Webhook(secret or self.secret).sign(msg_id, sent, raw.decode()),
            }
        response = self.warden.call("POST", "/hris/events", role=None, content=raw, headers=headers)
        self.seen.append(response.text)
        return response

    def send(self, kind: str, data: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.post(json.dumps({"type": f"employee.{kind}", "data": data}).encode(), **kw)

    def ok(self, kind: str, data: dict[str, Any], status: str = "accepted", **kw: Any) -> dict[str, Any]:
        response = self.send(kind, data, **kw)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == status, body
        return body


@pytest.fixture(scope="module")
def hr(warden: WardenHost) -> Iterator[Hr]:
    client = Hr(warden, "", [])
    client.rotate()
    yield client
    for text in client.seen:
        assert not any(secret in text for secret in (client.secret,)), "a response carried the secret"


def person(**extra: Any) -> dict[str, Any]:
    name = unique("h")
    return {
        "employeeId": unique("E"),
        "email": f"{name}@{demo.DEMO_DOMAIN}",
        "firstName": "Grace",
        "lastName": "Hopper",
        **extra,
    }


def by_employee(warden: WardenHost, employee_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = warden.ok("GET", "/users", params={"employeeId": employee_id})["items"]
    return items


def one(warden: WardenHost, employee_id: str) -> dict[str, Any]:
    found = by_employee(warden, employee_id)
    assert len(found) == 1, found
    return found[0]


def actions(warden: WardenHost, user_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = warden.ok("GET", "/audit", params={"userId": user_id, "limit": "200"})[
        "items"
    ]
    return items


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------- joiners
def test_a_hire_creates_the_user_with_the_hr_source(hr: Hr, warden: WardenHost) -> None:
    p = person(jobTitle="Rear Admiral", department="Navy")
    accepted = hr.ok("hired", p)
    user = one(warden, p["employeeId"])
    assert accepted["userId"] == user["id"]
    assert user["source"] == "hris:webhook" and user["state"] == "active"
    assert user["username"] == p["email"].split("@")[0] and user["displayName"] == "Grace Hopper"
    assert (user["jobTitle"], user["department"]) == ("Rear Admiral", "Navy")
    audit = actions(warden, user["id"])
    assert {(a["action"], a["actor"]) for a in audit} >= {
        ("user.create", "hris:webhook"),
        ("hris.event.applied", "hris:webhook"),
    }


def test_a_replayed_webhook_id_has_no_second_effect(hr: Hr, warden: WardenHost) -> None:
    p = person(jobTitle="From HR")
    msg = f"msg_{uuid.uuid4().hex}"
    user_id = hr.ok("hired", p, msg_id=msg)["userId"]
    warden.ok("PATCH", f"/users/{user_id}", json={"jobTitle": "Set by an admin"})
    again = hr.ok("hired", p, "duplicate", msg_id=msg)
    assert again["userId"] == user_id
    assert one(warden, p["employeeId"])["jobTitle"] == "Set by an admin"
    audit = [a["action"] for a in actions(warden, user_id)]
    assert audit.count("hris.event.applied") == 1 and audit.count("hris.event.duplicate") == 1


def test_updates_delivered_in_reverse_order_leave_the_newer_one(hr: Hr, warden: WardenHost) -> None:
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    p = person(occurredAt=iso(t0))
    user_id = hr.ok("hired", p)["userId"]
    hr.ok("updated", {**p, "jobTitle": "Newer", "occurredAt": iso(t0 + dt.timedelta(minutes=2))})
    hr.ok("updated", {**p, "jobTitle": "Older", "occurredAt": iso(t0 + dt.timedelta(minutes=1))}, "stale")
    assert one(warden, p["employeeId"])["jobTitle"] == "Newer"
    stale = [a for a in actions(warden, user_id) if a["action"] == "hris.event.stale"]
    assert len(stale) == 1 and stale[0]["actor"] == "hris:webhook"


def test_an_email_change_keeps_the_person(hr: Hr, warden: WardenHost) -> None:
    p = person()
    user_id = hr.ok("hired", p)["userId"]
    moved = f"{unique('m')}@{demo.DEMO_DOMAIN}"
    assert hr.ok("updated", {**p, "email": moved})["userId"] == user_id
    user = one(warden, p["employeeId"])
    assert user["id"] == user_id and user["email"] == moved
    assert user["username"] == p["email"].split("@")[0], "the username stays"


def test_an_update_of_an_unknown_employee_creates_them(hr: Hr, warden: WardenHost) -> None:
    p = person()
    hr.ok("updated", p)
    assert one(warden, p["employeeId"])["state"] == "active"


def test_a_future_start_in_berlin_is_staged(hr: Hr, warden: WardenHost) -> None:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
    p = person(startAt=start, timeZone="Europe/Berlin")
    hr.ok("hired", p)
    user = one(warden, p["employeeId"])
    assert (user["state"], user["startAt"], user["timeZone"]) == ("staged", start, "Europe/Berlin")


# ----------------------------------------------------------------------------------- leavers, rehires
def test_terminated_suspends_and_rehired_reactivates(hr: Hr, warden: WardenHost) -> None:
    p = person()
    hr.ok("hired", p)
    hr.ok("terminated", p)
    assert one(warden, p["employeeId"])["state"] == "suspended"
    hr.ok("updated", {**p, "jobTitle": "Alumna"})
    assert one(warden, p["employeeId"])["state"] == "suspended", "only a rehire reactivates"
    hr.ok("rehired", p)
    assert one(warden, p["employeeId"])["state"] == "active"


def test_a_termination_with_a_future_end_keeps_the_user_active_until_then(hr: Hr, warden: WardenHost) -> None:
    p = person()
    hr.ok("hired", p)
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=14)).date().isoformat()
    hr.ok("terminated", {**p, "endAt": end, "timeZone": "Europe/Berlin"})
    user = one(warden, p["employeeId"])
    assert (user["state"], user["endAt"], user["timeZone"]) == ("active", end, "Europe/Berlin")


def test_a_termination_of_an_unknown_employee_creates_nobody(hr: Hr, warden: WardenHost) -> None:
    p = person()
    hr.ok("terminated", p, "ignored")
    assert by_employee(warden, p["employeeId"]) == []


# ------------------------------------------------------------------------------ matching and naming
def test_a_user_created_before_the_hr_feed_is_adopted_by_email(hr: Hr, warden: WardenHost) -> None:
    existing = new_user(warden)
    p = person(email=existing["email"])
    assert hr.ok("hired", p)["userId"] == existing["id"]
    adopted = one(warden, p["employeeId"])
    assert adopted["id"] == existing["id"] and adopted["source"] == "admin"


def test_a_taken_username_gets_the_employee_ids_last_four(hr: Hr, warden: WardenHost) -> None:
    local = unique("clash")
    new_user(warden, username=local)
    p = person(email=f"{local}@{demo.DEMO_DOMAIN}", employeeId=unique("E")[:8] + "4321")
    user_id = hr.ok("hired", p)["userId"]
    assert one(warden, p["employeeId"])["username"] == f"{local}.4321"
    applied = next(a for a in actions(warden, user_id) if a["action"] == "hris.event.applied")
    assert applied["after"]["username"] == f"{local}.4321" and applied["after"]["warnings"]


def test_the_manager_is_resolved_by_employee_id_and_an_unknown_one_is_ignored(
    hr: Hr, warden: WardenHost
) -> None:
    boss = person()
    boss_id = hr.ok("hired", boss)["userId"]
    p = person(managerEmployeeId=boss["employeeId"])
    hr.ok("hired", p)
    assert one(warden, p["employeeId"])["managerId"] == boss_id
    user_id = hr.ok("updated", {**p, "managerEmployeeId": "NOBODY1"})["userId"]
    assert one(warden, p["employeeId"])["managerId"] == boss_id, "an unknown manager changes nothing"
    applied = [a for a in actions(warden, user_id) if a["action"] == "hris.event.applied"]
    assert any("NOBODY1" in w for w in applied[0]["after"]["warnings"])


# ----------------------------------------------------------------------------- directories, groups
def test_directories_bind_and_groups_join_by_name(hr: Hr, warden: WardenHost, demo_directory: Any) -> None:
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Engineering ")})
    p = person(directories=[demo_directory["id"].upper()], groups=[group["name"].upper()])
    hr.ok("hired", p)
    user = one(warden, p["employeeId"])
    assert user["groups"] == [group["id"]]
    bound = {d["directoryId"]: d["via"] for d in user["directories"]}
    assert bound[demo_directory["id"]] == ["direct"]


def test_auto_bind_verified_domains_binds_a_hire(hr: Hr, warden: WardenHost, demo_directory: Any) -> None:
    path = f"/directories/{demo_directory['id']}"
    before = warden.ok("GET", path)["options"]
    warden.ok("PATCH", path, json={"options": {**before, "autoBindVerifiedDomains": True}})
    try:
        p = person()
        hr.ok("hired", p)
        bound = {d["directoryId"]: d["via"] for d in one(warden, p["employeeId"])["directories"]}
        assert bound.get(demo_directory["id"]) == ["direct"]
    finally:
        warden.ok("PATCH", path, json={"options": before})
    assert warden.ok("GET", path)["options"] == before


@pytest.mark.parametrize("field", ["directories", "groups"])
def test_an_unknown_directory_or_group_is_422_naming_it_and_writes_nothing(
    hr: Hr, warden: WardenHost, field: str
) -> None:
    unknown = str(uuid.uuid4()) if field == "directories" else unique("No such group ")
    p = person(**{field: [unknown]})
    msg = f"msg_{uuid.uuid4().hex}"
    refused = hr.send("hired", p, msg_id=msg)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert unknown in refused.json()["detail"] and f"data.{field}" in refused.json()["detail"]
    assert by_employee(warden, p["employeeId"]) == []
    del p[field]
    assert hr.ok("hired", p, msg_id=msg)["status"] == "accepted", "the refused delivery left no receipt"


# ------------------------------------------------------------------------------------ authenticity
def test_missing_signature_headers_are_401(hr: Hr) -> None:
    refused = hr.post(json.dumps({"type": "employee.hired", "data": person()}).encode(), signed=False)
    assert refused.status_code == 401 and "webhook-signature" in refused.json()["detail"]


def test_a_wrong_signature_is_401(hr: Hr, warden: WardenHost) -> None:
    p = person()
    refused = hr.send("hired", p, secret=new_signing_secret())
    assert refused.status_code == 401 and "does not match" in refused.json()["detail"]
    assert by_employee(warden, p["employeeId"]) == []


def test_a_timestamp_six_minutes_old_is_401(hr: Hr) -> None:
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    refused = hr.send("hired", person(), sent=sent)
    assert refused.status_code == 401 and "5 minutes old" in refused.json()["detail"]


def test_a_timestamp_six_minutes_ahead_is_401(hr: Hr) -> None:
    sent = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    refused = hr.send("hired", person(), sent=sent)
    assert refused.status_code == 401 and "future" in refused.json()["detail"]


def test_after_a_rotation_the_previous_secret_still_verifies_and_others_do_not(
    hr: Hr, warden: WardenHost
) -> None:
    assert warden.call("POST", "/hris/secret", role="reader").status_code == 403
    old = hr.secret
    new = hr.rotate()
    assert new != old and new.startswith("whsec_")
    hr.ok("hired", person(), secret=old)
    hr.ok("hired", person(), secret=new)
    assert hr.send("hired", person(), secret=new_signing_secret()).status_code == 401
    rotations = [
        a
        for a in warden.ok("GET", "/audit", params={"limit": "50"})["items"]
        if a["action"] == "hris.secret.rotate"
    ]
    assert rotations and rotations[0]["actor"].startswith("admin:")
    assert old not in json.dumps(rotations) and new not in json.dumps(rotations)


# ------------------------------------------------------------------------------------- malformed
def test_a_body_over_256_kib_is_413_before_any_signature(hr: Hr) -> None:
    raw = json.dumps({"type": "employee.hired", "data": person(jobTitle="x" * (256 * 1024))}).encode()
    assert hr.post(raw, signed=False).status_code == 413


def test_malformed_json_is_400_even_when_signed(hr: Hr) -> None:
    refused = hr.post(b'{"type": "employee.hired", "data": ')
    assert refused.status_code == 400 and "not valid JSON" in refused.json()["detail"]


def test_an_unknown_type_is_400_naming_type(hr: Hr) -> None:
    refused = hr.send("promoted", person())
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["type"]


def test_a_missing_email_is_400_naming_data_email(hr: Hr) -> None:
    p = person()
    del p["email"]
    refused = hr.send("hired", p)
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["data.email"]


def test_an_unknown_data_field_is_400_naming_it(hr: Hr) -> None:
    refused = hr.send("hired", person(salary=100))
    assert refused.status_code == 400 and [e["field"] for e in refused.json()["errors"]] == ["data.salary"]


def test_a_wrong_content_type_is_415(hr: Hr) -> None:
    raw = json.dumps({"type": "employee.hired", "data": person()}).encode()
    assert hr.post(raw, content_type="text/plain").status_code == 415


def test_the_host_log_never_carries_a_signing_secret(hr: Hr, warden: WardenHost) -> None:
    hr.ok("hired", person())
    log = warden.log.read_text(errors="replace")
    assert hr.secret not in log and "whsec_" not in log
