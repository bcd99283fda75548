"""What a SCIM resource means in Warden's fields and what a Warden user shows a SCIM client (pure: scim2-models and
the domain, no I/O), and Bulk requests read as RFC 7644 §3.7 writes them."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from scim2_models import InvalidSyntaxException, PayloadTooLargeException

from shared.api.scim import models as m
from shared.api.scim.answers import Response
from shared.api.scim.bulk import run_bulk
from shared.api.scim.mapping import check_paths, render_user, slots, wanted_user
from shared.domain.model import User
from shared.domain.sources import DEFAULT_MAPPINGS, PersonRecord
from shared.service.hr.scim import Sourced, applied
from shared.service.ports import UserRecord

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
MAPPING = tuple(sorted(DEFAULT_MAPPINGS["scim"].items()))
BASE = "https://warden.example/api/scim/v2"
DOC = {
    "schemas": [m.USER_SCHEMA, m.ENTERPRISE],
    "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [
        {"value": "babs@home.example", "type": "home"},
        {"value": "bjensen@contoso.example", "type": "work", "primary": True},
    ],
    "title": "Tour Guide",
    m.ENTERPRISE: {"employeeNumber": "701984", "department": "Tours"},
}


def model() -> Any:
    return m.user_model(MAPPING)


def resource(doc: dict[str, Any]) -> Any:
    from scim2_models import Context

    return model().model_validate(
        doc, scim_ctx=Context.RESOURCE_CREATION_REQUEST, scim_provider=m.provider(MAPPING)
    )


def sourced(user: User, doc: dict[str, Any], last: dict[str, Any]) -> Sourced:
    return Sourced(
        UserRecord(user, "e", frozenset(), frozenset()), PersonRecord("s", user.id, "701984", doc, last)
    )


def warden_user(wanted: Any, **changes: Any) -> User:
    f = dict(wanted.fields)
    base = User(
        id="2c2f7a3e-5b1a-4c8e-9a2f-0d1e2f3a4b5c",
        username=f["username"],
        email=f["email"],
        first_name=f["first_name"],
        last_name=f["last_name"],
        display_name=f["display_name"] or "Barbara Jensen",
        state="active",
        source="hris:feed",
        created_at=T0,
        updated_at=T0,
        employee_id=f["employee_id"],
        job_title=f["job_title"],
        department=f["department"],
    )
    from dataclasses import replace

    return replace(base, **changes)


def test_the_primary_email_feeds_email_and_each_mapped_attribute_its_field() -> None:
    wanted = wanted_user(resource(DOC), MAPPING, model(), None)
    assert wanted.fields == {
        "username": "bjensen",
        "email": "bjensen@contoso.example",
        "first_name": "Barbara",
        "last_name": "Jensen",
        "display_name": None,
        "job_title": "Tour Guide",
        "employee_id": "701984",
        "department": "Tours",
    }
    assert wanted.manager_given and wanted.manager_id is None and wanted.external_id is None
    assert "password" not in wanted.document


def test_a_resource_shows_what_its_client_wrote_until_someone_else_changes_the_user() -> None:
    wanted = wanted_user(resource(DOC), MAPPING, model(), None)
    user = warden_user(wanted)
    last = applied(user, wanted)
    shown = render_user(sourced(user, wanted.document, last), MAPPING, model(), BASE)
    assert [e.value for e in shown.emails] == ["babs@home.example", "bjensen@contoso.example"]
    assert shown.display_name is None, "the client sent none: the derived one stays Warden's"
    assert shown.meta.location == f"{BASE}/Users/{user.id}" and shown.meta.version.startswith('W/"')
    admin_changed = warden_user(
        wanted, job_title="Head Guide", state="suspended", email="barb@contoso.example"
    )
    shown = render_user(sourced(admin_changed, wanted.document, last), MAPPING, model(), BASE)
    assert (shown.title, shown.active) == ("Head Guide", False)
    assert [e.value for e in shown.emails] == ["babs@home.example", "barb@contoso.example"], "the primary one"


def test_an_email_slot_writes_the_primary_entry_or_makes_one() -> None:
    [email] = [s for s in slots(model(), MAPPING) if s.target == "email"]
    r = resource({**DOC, "emails": [{"value": "a@x.example"}, {"value": "b@x.example"}]})
    assert email.get(r) == "a@x.example", "no primary: the first"
    email.put(r, "c@x.example")
    assert [e.value for e in r.emails] == ["c@x.example", "b@x.example"]
    bare = resource({**DOC, "emails": [{"value": "a@x.example"}]})
    bare.emails = None
    email.put(bare, "d@x.example")
    assert [(e.value, e.primary) for e in bare.emails] == [("d@x.example", True)]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("active", "own"),
        ("externalId", "own"),
        (f"{m.ENTERPRISE}:manager", "own"),
        ("emails", "string"),
        ("nosuch", "attribute"),
        ("groups.value", "read-only"),
    ],
)
def test_a_mapping_key_must_be_a_writable_string_attribute(path: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_paths({path: "jobTitle"})


def test_bulk_refuses_a_request_it_cannot_read_before_running_anything() -> None:
    ran: list[str] = []

    async def execute(method: str, path: str, *a: Any, **kw: Any) -> Response:
        ran.append(path)
        return Response(201, {"id": "x", "meta": {"location": path}})

    def run(body: Any) -> Response:
        return asyncio.run(run_bulk(execute, body))

    bulk = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    for body, says in (
        ({"schemas": [bulk], "Operations": [{"method": "POST", "path": "/Users", "data": {}}]}, "bulkId"),
        (
            {
                "schemas": [bulk],
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": {}}] * 2,
            },
            "twice",
        ),
        (
            {"schemas": [bulk], "failOnErrors": 0, "Operations": [{"method": "DELETE", "path": "/Users/x"}]},
            "least",
        ),
        ({"schemas": ["nope"], "Operations": []}, "BulkRequest"),
    ):
        with pytest.raises(InvalidSyntaxException, match=says):
            run(body)
    with pytest.raises(PayloadTooLargeException):
        run(
            {
                "schemas": [bulk],
                "Operations": [{"method": "DELETE", "path": "/Users/x"}] * (m.MAX_OPERATIONS + 1),
            }
        )
    assert ran == []
    answer = run(
        {
            "schemas": [bulk],
            "Operations": [
                {"method": "PATCH", "path": "/Users/bulkId:a", "data": {}},
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"manager": "bulkId:b"}},
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": {}},
                {"method": "DELETE", "path": "/Users/bulkId:zz"},
            ],
        }
    )
    statuses = [(o["method"], o["status"]) for o in answer.body["Operations"]]  # type: ignore[index]
    assert statuses == [("PATCH", "201"), ("POST", "201"), ("POST", "201"), ("DELETE", "409")]
    assert ran == ["/Users", "/Users", "/Users/x"], "b before a (a names b), then a's PATCH at a's id"
