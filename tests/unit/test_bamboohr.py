"""BambooHR's webhooks as BambooHR documents them, and what Warden makes of them.

Signature (documentation.bamboohr.com/docs/webhooks, "Security"): "X-BambooHR-Timestamp: The timestamp when the
request was sent. X-BambooHR-Signature: The SHA-256 HMAC signature calculated using the payload, the timestamp, and
your private key" — the raw body followed by the timestamp, as hex. Payload (.../docs/field-based-webhooks, "JSON
Format"): ``{"employees": [{"action": "Updated", "changedFields": ["First Name"], "fields": {"First Name":
"Bryony"}, "id": "12345", "timestamp": "2026-01-31T18:42:00+0000"}]}``; "For Created and Deleted actions the
payload will always contain empty changedFields and fields objects" (.../docs/global-webhooks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from shared.adapters.bamboohr import parse_timestamp, verify_bamboohr
from shared.api import schemas as s
from shared.api.problems import Problem
from shared.api.sources import bamboo_changes
from shared.domain.bamboohr import event_type
from shared.domain.sources import DEFAULT_MAPPINGS, HrSource
from shared.service.hr.events import SignatureMismatch, SignatureRefused

KEY = "3c1a7f0e6b2d4c58a9e1f0b7d6c5a4e3"
NOW = dt.datetime(2026, 1, 31, 18, 42, 30, tzinfo=dt.UTC)
DOCUMENTED = {
    "employees": [
        {
            "action": "Updated",
            "changedFields": ["First Name"],
            "fields": {"First Name": "Bryony"},
            "id": "12345",
            "timestamp": "2026-01-31T18:42:00+0000",
        }
    ]
}
SOURCE = HrSource(
    "0f0e0d0c-0b0a-4908-8706-050403020100",
    "bamboo",
    "bamboohr",
    tuple(sorted(DEFAULT_MAPPINGS["bamboohr"].items())),
    "enabled",
    NOW,
    NOW,
)


def signed(body: bytes, timestamp: str, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
    return {"x-bamboohr-timestamp": timestamp, "x-bamboohr-signature": digest}


# ------------------------------------------------------------------------------------------------- signature
def test_the_documented_signature_verifies_with_unix_or_iso_timestamps() -> None:
    body = json.dumps(DOCUMENTED).encode()
    for stamp in (str(int(NOW.timestamp())), "2026-01-31T18:42:00+0000", "2026-01-31T18:42:00Z"):
        assert verify_bamboohr(KEY, body, signed(body, stamp), NOW) == parse_timestamp(stamp)


def test_another_key_a_changed_body_or_a_bad_signature_is_a_mismatch() -> None:
    body = json.dumps(DOCUMENTED).encode()
    stamp = str(int(NOW.timestamp()))
    with pytest.raises(SignatureMismatch):
        verify_bamboohr("another", body, signed(body, stamp), NOW)
    with pytest.raises(SignatureMismatch):
        verify_bamboohr(KEY, body + b" ", signed(body, stamp), NOW)
    with pytest.raises(SignatureMismatch):
        verify_bamboohr(KEY, body, {**signed(body, stamp), "x-bamboohr-signature": "zz" * 32}, NOW)
    upper = {**signed(body, stamp)}
    upper["x-bamboohr-signature"] = upper["x-bamboohr-signature"].upper()
    assert verify_bamboohr(KEY, body, upper, NOW), "hex is hex, either case"


@pytest.mark.parametrize(
    ("sent", "says"),
    [(NOW - dt.timedelta(minutes=6), "5 minutes old"), (NOW + dt.timedelta(minutes=6), "future")],
)
def test_a_timestamp_more_than_five_minutes_off_is_refused(sent: dt.datetime, says: str) -> None:
    body = b"{}"
    with pytest.raises(SignatureRefused, match=says):
        verify_bamboohr(KEY, body, signed(body, str(int(sent.timestamp()))), NOW)


def test_missing_or_unreadable_headers_are_refused() -> None:
    with pytest.raises(SignatureRefused, match="required"):
        verify_bamboohr(KEY, b"{}", {}, NOW)
    with pytest.raises(SignatureRefused, match="time of sending"):
        verify_bamboohr(KEY, b"{}", signed(b"{}", "yesterday"), NOW)


# ------------------------------------------------------------------------------------------------- mapping
def fields(**extra: str) -> dict[str, str]:
    return {
        "Employee #": "E77",
        "Work Email": "bryony@contoso.example",
        "First Name": "Bryony",
        "Last Name": "Adams",
        "Job Title": "Analyst",
        "Department": "People",
        "Hire Date": "2025-01-06",
        "Termination Date": "0000-00-00",
        "Status": "Active",
        **extra,
    }


def changes(*entries: dict[str, object]) -> list[object]:
    delivery = s.BambooHrDelivery.model_validate({"employees": list(entries)})
    return list(bamboo_changes(SOURCE, delivery, NOW))


def entry(
    action: str = "Updated", f: dict[str, str] | None = None, bamboo_id: object = "12345"
) -> dict[str, object]:
    return {
        "id": bamboo_id,
        "action": action,
        "timestamp": "2026-01-31T18:42:00+0000",
        "changedFields": list(f or {}),
        "fields": f or {},
    }


def test_an_updated_entry_becomes_an_hr_event_with_the_mapped_fields_and_its_time() -> None:
    [change] = changes(entry(f=fields()))
    assert change.bamboo_id == "12345" and change.at == dt.datetime(2026, 1, 31, 18, 42, tzinfo=dt.UTC)
    assert change.event is not None and change.event.type == "employee.rehired"
    e = change.event.employee
    assert (e.employee_id, e.email, e.first_name, e.last_name) == (
        "E77",
        "bryony@contoso.example",
        "Bryony",
        "Adams",
    )
    assert e.optional["job_title"] == "Analyst" and e.optional["start_at"] == "2025-01-06"
    assert e.optional["end_at"] is None, "BambooHR's empty date 0000-00-00 clears it"


@pytest.mark.parametrize(
    ("status", "end", "kind"),
    [
        ("Inactive", None, "employee.terminated"),
        ("Active", "2026-03-31", "employee.terminated"),
        ("Active", None, "employee.rehired"),
        (None, None, "employee.updated"),
    ],
)
def test_status_and_termination_date_decide_the_event(status: str | None, end: str | None, kind: str) -> None:
    assert event_type(status, end) == kind


def test_created_and_deleted_carry_no_event_and_a_redelivery_keeps_its_receipt() -> None:
    created, deleted = changes(entry("Created", bamboo_id=12345), entry("Deleted"))
    assert (created.action, created.event, created.bamboo_id) == ("Created", None, "12345")
    assert deleted.action == "Deleted" and deleted.event is None
    [first], [again] = changes(entry(f=fields())), changes(entry(f=fields()))
    assert first.receipt == again.receipt
    [other] = changes(entry(f=fields(**{"Job Title": "Lead"})))
    assert other.receipt != first.receipt


def test_every_bad_or_missing_field_is_named_by_the_name_bamboohr_posts_it_under() -> None:
    missing = {k: v for k, v in fields().items() if k != "Work Email"}
    with pytest.raises(Problem) as refused:
        changes(entry(f=missing), entry(f=fields(**{"Hire Date": "someday"})))
    named = [e["field"] for e in refused.value.extensions["errors"]]
    assert named == ["employees[0].fields.Work Email", "employees[1].fields.Hire Date"]
