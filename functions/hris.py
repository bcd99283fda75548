"""Doors of the operations tagged ``hris``. HR input: the built-in webhook (``POST /api/hris/events``) and the rotation of its secret, HR sources as a
resource (``/api/hris/sources``), and each source's own webhook (``POST /api/hris/sources/{id}/events``).

The webhooks are anonymous to the admin-token check and signed instead, so these doors read the raw body
themselves, in an order that spends nothing on what will be refused: size (413), content type (415), the source
and its signature (404, 401, 403), then JSON (400) and the event's fields (400, naming each).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from functions.http import Call, Result, validation_problem
from shared.api import schemas as s
from shared.api.problems import Problem
from shared.api.sources import bamboo_changes, hr_event, source_created, source_out
from shared.domain.sources import BUILT_IN_ID
from shared.logs import log_event
from shared.service.hr.events import Accepted, DeliveryInProgress, SignatureRefused
from shared.service.hr.sources import Authenticated, SourceRefused

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from shared.bootstrap import Container

log = logging.getLogger("warden.hris")

MAX_EVENT_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = 5
M = TypeVar("M", bound=BaseModel)


def _check_size(call: Call[None, None]) -> None:
    declared = call.headers.get("content-length", "").strip()
    size = max(len(call.raw), int(declared) if declared.isdigit() else 0)
    if size > MAX_EVENT_BYTES:
        raise Problem(413, f"the body is {size} bytes; at most {MAX_EVENT_BYTES} (256 KiB) are accepted")


def _check_content_type(call: Call[None, None]) -> None:
    ctype = (call.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Problem(
            415, "the body must be JSON: send Content-Type: application/json (BambooHR: format JSON)"
        )
    try:
        call.raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "the body must be UTF-8 JSON", title="Invalid request") from None


async def _authenticate(app: Container, source_id: str, call: Call[None, None], scheme: str) -> Authenticated:
    try:
        return await app.sources.authenticate(source_id, call.raw, call.headers)
    except SignatureRefused as exc:
        # why, for whoever connects the HR system; the ids are the sender's (and bounded), never a secret
        log_event(
            log,
            "hris.refused",
            level=logging.WARNING,
            reason=exc.reason,
            source=source_id,
            webhookId=call.headers.get("webhook-id", "")[:256],
        )
        raise Problem(401, exc.reason, headers={"WWW-Authenticate": f'{scheme} realm="hris"'}) from None
    except SourceRefused as exc:
        raise Problem(exc.status, exc.reason) from None


def _json(call: Call[None, None]) -> Any:
    try:
        return json.loads(call.raw)
    except ValueError as exc:
        raise Problem(
            400, f"the body is not valid JSON ({type(exc).__name__})", title="Invalid request"
        ) from None


def _validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None


async def _accept(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except DeliveryInProgress as exc:
        raise Problem(409, exc.detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None


# ---------------------------------------------------------------------------------- the built-in webhook
async def hris_event(app: Container, call: Call[None, None]) -> Result:
    _check_size(call)
    _check_content_type(call)
    auth = await _authenticate(app, BUILT_IN_ID, call, "StandardWebhooks")
    body = _validated(s.HrisEvent, _json(call))
    accepted: Accepted = await _accept(app.intake.standard(auth, hr_event(body), call.actor.correlation_id))
    return Result(202, s.HrisAccepted(status=accepted.outcome, userId=accepted.user_id))


async def rotate_hris_secret(app: Container, call: Call[None, None]) -> Result:
    rotated = await app.sources.rotate(BUILT_IN_ID, call.actor)
    return Result(201, s.HrisSecret(secret=rotated.credential))


# ------------------------------------------------------------------------------------------ sources
async def create_hr_source(app: Container, call: Call[s.HrSourceCreate, None]) -> Result:
    b = call.body
    created = await app.sources.create(b.name, b.kind, b.mapping, b.quietAfterHours, call.actor)
    view = created.view
    location = {"Location": f"/api/hris/sources/{view.source.id}"}
    return Result(201, source_created(view, created.credential), view.etag or None, location)


async def list_hr_sources(app: Container, call: Call[None, s.ListQuery]) -> Result:
    page = await app.sources.page(call.query.cursor, call.query.limit)
    return Result(200, s.HrSourceList(items=[source_out(v) for v in page.items], next=page.next))


async def get_hr_source(app: Container, call: Call[None, None]) -> Result:
    view = await app.sources.get(call.params["sourceId"])
    return Result(200, source_out(view), view.etag or None)


async def update_hr_source(app: Container, call: Call[s.HrSourcePatch, None]) -> Result:
    names = {"mapping": "mapping", "enabled": "enabled", "quietAfterHours": "quiet_after_hours"}
    changes = {names[k]: getattr(call.body, k) for k in call.body.model_fields_set}
    view = await app.sources.update(call.params["sourceId"], changes, call.if_match, call.actor)
    return Result(200, source_out(view), view.etag or None)


async def delete_hr_source(app: Container, call: Call[None, None]) -> Result:
    await app.sources.delete(call.params["sourceId"], call.if_match, call.actor)
    return Result(204)


async def rotate_hr_source(app: Container, call: Call[None, None]) -> Result:
    rotated = await app.sources.rotate(call.params["sourceId"], call.actor)
    return Result(
        201, s.HrSourceRotated(credential=rotated.credential, previousValidUntil=rotated.previous_valid_until)
    )


async def set_hr_source_secret(app: Container, call: Call[s.HrSourceSecretIn, None]) -> Result:
    secret = call.body.secret.get_secret_value()
    view = await app.sources.set_secret(call.params["sourceId"], secret, call.actor)
    return Result(200 if view.source.previous_valid_until else 201, source_out(view), view.etag or None)


async def hr_source_events(app: Container, call: Call[None, None]) -> Result:
    _check_size(call)
    _check_content_type(call)
    auth = await _authenticate(app, call.params["sourceId"], call, "Signature")
    data = _json(call)
    correlation_id = call.actor.correlation_id
    if auth.source.kind == "bamboohr":
        if isinstance(data, dict) and "employees" not in data and {"type", "data"} <= set(data):
            raise Problem(
                422,
                "an event-based BambooHR webhook carries no field values: make the webhook Field-Based, posting "
                "the fields the source maps",
            )
        changes = bamboo_changes(auth.source, _validated(s.BambooHrDelivery, data), auth.delivery.sent_at)
        done = await _accept(app.intake.bamboohr(auth, changes, correlation_id))
        results = [
            s.SourceEventResult(status=c.accepted.outcome, userId=c.accepted.user_id, bambooId=c.bamboo_id)
            for c in done
        ]
        return Result(202, s.SourceEventsAccepted(results=results))
    event = hr_event(_validated(s.HrisEvent, data))
    accepted: Accepted = await _accept(app.intake.standard(auth, event, correlation_id))
    return Result(
        202,
        s.SourceEventsAccepted(
            results=[s.SourceEventResult(status=accepted.outcome, userId=accepted.user_id)]
        ),
    )
