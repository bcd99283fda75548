"""HR sources as the API shows them, and what a source's webhook body means: BambooHR's field-based delivery
mapped into HR events with the source's mapping, each value held to the rules an HR event's is held to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from shared.api import schemas as s
from shared.api.problems import Problem
from shared.domain.bamboohr import EMPTY_DATES, BambooChange, event_type, receipt_id
from shared.domain.hr import Employee, HrEvent
from shared.domain.sources import HrSource
from shared.service.hr.sources import SourceView

OPTIONAL = {
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "managerEmployeeId": "manager_employee_id",
    "startAt": "start_at",
    "endAt": "end_at",
    "timeZone": "time_zone",
}


def endpoint(source: HrSource) -> str:
    if source.built_in:
        return "/api/hris/events"
    if source.kind == "scim":
        return "/api/scim/v2"
    return f"/api/hris/sources/{source.id}/events"


def warnings(view: SourceView) -> list[str]:
    out = []
    source = view.source
    if not source.enabled:
        out.append("disabled: what it sends is refused (403)")
    if source.credential_set_at is None:
        if source.kind == "bamboohr":
            out.append(
                f"no private key yet: store the BambooHR webhook's key with PUT /api/hris/sources/{source.id}/secret"
            )
        else:
            out.append(f"no credential yet: make one with POST /api/hris/sources/{source.id}/rotate")
    if view.quiet is not None:
        since = view.quiet.since.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        out.append(
            f"quiet: nothing accepted from it for {view.quiet.hours:.0f} h (since {since}; warns after "
            f"{source.quiet_after_hours} h): check the HR system's side of the integration"
        )
    return out


def source_out(view: SourceView) -> s.HrSourceOut:
    return s.HrSourceOut(**_fields(view))


def source_created(view: SourceView, credential: str | None) -> s.HrSourceCreated:
    return s.HrSourceCreated(**_fields(view), credential=credential)


def _fields(view: SourceView) -> dict[str, Any]:
    src, a = view.source, view.activity
    return {
        "id": src.id,
        "name": src.name,
        "kind": src.kind,
        "builtIn": src.built_in,
        "enabled": src.enabled,
        "actor": src.actor,
        "mapping": dict(src.mapping),
        "quietAfterHours": src.quiet_after_hours,
        "endpoint": endpoint(src),
        "credentialSetAt": src.credential_set_at,
        "previousCredentialValidUntil": src.previous_valid_until,
        "activity": s.HrSourceActivityOut(
            lastEventAt=a.last_event_at, lastFailureAt=a.last_failure_at, lastFailure=a.last_failure
        ),
        "warnings": warnings(view),
        "createdAt": src.created_at,
        "updatedAt": src.updated_at,
    }


# ------------------------------------------------------------------------------------------------ standard
def hr_event(body: s.HrisEvent) -> HrEvent:
    """A standard HR event (``POST /api/hris/events`` and standard sources) in the domain's terms."""
    d = body.data
    return HrEvent(
        body.type,
        Employee(
            employee_id=d.employeeId,
            email=d.email,
            first_name=d.firstName,
            last_name=d.lastName,
            optional={OPTIONAL[k]: getattr(d, k) for k in d.model_fields_set if k in OPTIONAL},
            occurred_at=d.occurredAt or body.timestamp,
            directories=tuple(d.directories or ()),
            groups=tuple(d.groups or ()),
        ),
    )


# ------------------------------------------------------------------------------------------------ bamboohr
def _text(value: s.BambooValue) -> str | None:
    if value is None or isinstance(value, bool):
        return None if value is None else ("true" if value else "false")
    text = str(value).strip()
    return None if text in EMPTY_DATES else text


def bamboo_changes(
    source: HrSource, delivery: s.BambooHrDelivery, sent_at: dt.datetime
) -> list[BambooChange]:
    """Each employee entry as a change; 400 naming every entry's bad or missing field (by the name BambooHR posts
    it under), so that nothing of a delivery applies unless all of it can."""
    mapping = source.fields()
    by_target = {target: name for name, target in mapping.items()}
    errors: list[dict[str, str]] = []
    out: list[BambooChange] = []
    for i, entry in enumerate(delivery.employees):
        bamboo_id = str(entry.id)
        fields: Mapping[str, s.BambooValue] = entry.fields if isinstance(entry.fields, dict) else {}
        at = _occurred(entry.timestamp, sent_at)
        receipt = receipt_id(source.id, bamboo_id, entry.action, entry.timestamp, fields)
        if entry.action != "Updated":
            out.append(BambooChange(bamboo_id, entry.action, None, receipt, at))
            continue
        data: dict[str, Any] = {}
        for name, target in mapping.items():
            if name in fields and target != "status":
                data[target] = _text(fields[name])
        status = _text(fields.get(by_target.get("status", ""), None)) if "status" in by_target else None
        missing = [t for t in ("employeeId", "email", "firstName", "lastName") if not data.get(t)]
        for target in missing:
            errors.append(
                {
                    "field": f"employees[{i}].fields.{by_target[target]}",
                    "in": "body",
                    "message": f"missing or empty (it feeds Warden's {target}: add it to the webhook's post fields)",
                }
            )
        if missing:
            continue
        required = {k: data.pop(k) for k in ("employeeId", "email", "firstName", "lastName")}
        try:  # a posted field left empty in BambooHR clears the Warden field (null)
            valid = s.HrisEventData.model_validate({**required, **data})
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                target = str(e["loc"][0]) if e["loc"] else ""
                name = by_target.get(target, target)
                errors.append({"field": f"employees[{i}].fields.{name}", "in": "body", "message": e["msg"]})
            continue
        kind = event_type(status, valid.endAt)
        employee = Employee(
            employee_id=valid.employeeId,
            email=valid.email,
            first_name=valid.firstName,
            last_name=valid.lastName,
            optional={OPTIONAL[k]: getattr(valid, k) for k in valid.model_fields_set if k in OPTIONAL},
            occurred_at=at,
        )
        out.append(BambooChange(bamboo_id, entry.action, HrEvent(kind, employee), receipt, at))
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(400, detail, title="Invalid request", extensions={"errors": errors})
    return out


def _occurred(timestamp: str | None, fallback: dt.datetime) -> dt.datetime:
    """When BambooHR says the change happened (``2026-01-31T18:42:00+0000``); the delivery's time otherwise."""
    if not timestamp:
        return fallback
    text = timestamp.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return fallback
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else fallback
