"""Outgoing notifications (queue ``notifications``): each message is one event, delivered signed per Standard
Webhooks; a failed delivery is queued again later (the service's retry schedule), never raised, so the host's own
retries are left for a crash."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.poison import audit_poisoned
from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.notifications")


@bp.function_name("deliver_notification")
@bp.queue_trigger(arg_name="msg", queue_name="notifications", connection="AzureWebJobsStorage")
async def deliver_notification(msg: func.QueueMessage) -> None:
    from shared.adapters.notifications import notification_from
    from shared.bootstrap import get_container

    body = json.loads(msg.get_body())
    event, attempt = notification_from(body)
    with correlated(event.id) as correlation_id:
        try:
            delivery = await get_container().deliveries.deliver(event, attempt)
        except Exception as exc:
            await audit_poisoned(msg, "notifications", exc, correlation_id, directory_id=event.directory_id)
            raise
        log_event(
            log,
            "notification.delivery",
            level=logging.WARNING if delivery.outcome == "failed" else logging.INFO,
            notificationId=event.id,
            type=event.type,
            directoryId=event.directory_id,
            attempt=attempt + 1,
            outcome=delivery.outcome,
            status=delivery.status,
        )
