"""Doors of the operations tagged ``hris``: the HRIS webhook (``POST /api/hris/events``) and the rotation of its
signing secret.

The webhook is anonymous to the admin-token check and signed instead, so this door reads the raw body itself,
in an order that spends nothing on what will be refused: size (413), content type (415), signature (401),
then JSON (400) and the event's fields (400, naming each).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from functions.http import Call, Result, _validation_problem
from shared.api import schemas as s
from shared.api.problems import Problem
from shared.domain.hr import Employee, HrEvent
from shared.logs import log_event
from shared.service.hr.events import DeliveryInProgress, SignatureRefused

if TYPE_CHECKING:
    from shared.bootstrap import Container

log = logging.getLogger("warden.hris")

MAX_EVENT_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = 5
_OPTIONAL = {
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "managerEmployeeId": "manager_employee_id",
    "startAt": "start_at",
    "endAt": "end_at",
    "timeZone": "time_zone",
}


def _check_size(call: Call[None, None]) -> None:
    declared = call.headers.get("content-length", "").strip()
    size = max(len(call.raw), int(declared) if declared.isdigit() else 0)
    if size > MAX_EVENT_BYTES:
        raise Problem(413, f"the body is {size} bytes; at most {MAX_EVENT_BYTES} (256 KiB) are accepted")


def _check_content_type(call: Call[None, None]) -> None:
    ctype = (call.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Problem(415, "the body must be JSON: send Content-Type: application/json")
    try:
        call.raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "the body must be UTF-8 JSON", title="Invalid request") from None


def _event(body: s.HrisEvent) -> HrEvent:
    d = body.data
    return HrEvent(
        body.type,
        Employee(
            employee_id=d.employeeId,
            email=d.email,
            first_name=d.firstName,
            last_name=d.lastName,
            optional={_OPTIONAL[k]: getattr(d, k) for k in d.model_fields_set if k in _OPTIONAL},
            occurred_at=d.occurredAt or body.timestamp,
            directories=tuple(d.directories or ()),
            groups=tuple(d.groups or ()),
        ),
    )


async def hris_event(app: Container, call: Call[None, None]) -> Result:
    _check_size(call)
    _check_content_type(call)
    try:
        delivery = await app.hris.authenticate(call.raw, call.headers)
    except SignatureRefused as exc:
        # why, for whoever connects the HR system; the webhook-id is the sender's (and bounded), never a secret
        log_event(
            log,
            "hris.refused",
            level=logging.WARNING,
            reason=exc.reason,
            webhookId=call.headers.get("webhook-id", "")[:256],
        )
        raise Problem(
            401, exc.reason, headers={"WWW-Authenticate": 'StandardWebhooks realm="hris"'}
        ) from None
    try:
        data = json.loads(call.raw)
    except ValueError as exc:
        raise Problem(
            400, f"the body is not valid JSON ({type(exc).__name__})", title="Invalid request"
        ) from None
    try:
        body = s.HrisEvent.model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(exc, "body") from None
    try:
        accepted = await app.hris.accept(_event(body), delivery, call.actor.correlation_id)
    except DeliveryInProgress as exc:
        raise Problem(409, exc.detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    return Result(202, s.HrisAccepted(status=accepted.outcome, userId=accepted.user_id))


async def rotate_hris_secret(app: Container, call: Call[None, None]) -> Result:
    secret = await app.hris.rotate_secret(call.actor)
    return Result(201, s.HrisSecret(secret=secret))
