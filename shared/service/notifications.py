"""Notifications (SPEC §3): a directory with ``options.notify.url`` hears of its connection and its held runs.

Events: ``directory.credential_expiring``, ``directory.needs_reactivation``, ``directory.reactivated``,
``run.held``. Each is signed per Standard Webhooks (https://www.standardwebhooks.com/, the ``standardwebhooks``
package): ``webhook-id`` (the event's id, the same on every retry, so a receiver can drop duplicates),
``webhook-timestamp``, ``webhook-signature`` with the notification secret (``POST /api/notifications/secret``,
shown once; the previous one signs too for 24 hours, so a receiver can switch over), body
``{"type", "timestamp", "data"}``.

Raising an event only queues it (``Notifier``): whatever failed to reach the receiver never blocks or fails the
work that raised it. Delivery (``Deliveries``) retries on the schedule of Svix, who wrote Standard Webhooks
(https://docs.svix.com/retries: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each retry a new queue
message made visible that much later; the last failure is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.domain.connections import NotificationType
from shared.domain.errors import Invalid
from shared.domain.model import Directory
from shared.domain.runs import Run
from shared.service.connections.ports import Alerts, Notification, NotificationQueue
from shared.service.context import Actor, Auditor
from shared.service.hr.events import SigningKeys, SigningKeyStore, new_signing_secret, rotated
from shared.service.ports import Clock, DirectoryRepository, Ids

RETRY_SCHEDULE_SECONDS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
"""The delay before each attempt (https://docs.svix.com/retries)."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_URL = 2048
NOTIFY_ACTOR = Actor("system")


def check_notify_url(url: str, *, allow_loopback_http: bool) -> str:
    """An https URL; plain http only to this machine (``127.0.0.1``/``localhost``), and only where Warden does
    not run in Azure (a notification carries directory names and reasons: never in clear over a network)."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or not parts.hostname or parts.username or parts.password:
        raise Invalid(
            "options.notify.url: an absolute URL without credentials is needed", field="options.notify.url"
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        if allow_loopback_http:
            return url
        raise Invalid(
            "options.notify.url: Warden runs in Azure, where notifications go over https only",
            field="options.notify.url",
        )
    raise Invalid(
        "options.notify.url: must be https (http only to 127.0.0.1 or localhost, and only outside Azure)",
        field="options.notify.url",
    )


class Notifier:
    """Raises events: a queue message each, never a failure for the caller."""

    def __init__(self, queue: NotificationQueue, clock: Clock, ids: Ids, alerts: Alerts) -> None:
        self.queue = queue
        self.clock = clock
        self.ids = ids
        self.alerts = alerts

    async def notify(self, kind: NotificationType, directory: Directory, data: dict[str, Any]) -> None:
        if not directory.options.notify_url:
            return
        event = Notification(
            self.ids(),
            kind,
            directory.id,
            self.clock(),
            {"directoryId": directory.id, "name": directory.name, **data},
        )
        try:
            await self.queue.enqueue(event)
        except (
            Exception
        ) as exc:  # the work that raised the event goes on; the operator's log says what was lost
            self.alerts.warning(
                "notification.not_queued", directoryId=directory.id, type=kind, error=type(exc).__name__
            )

    async def held(self, directory: Directory, run: Run) -> None:
        """``HeldRuns``: a plan waits for an admin's approval (rule 19)."""
        guard = run.guard or {}
        await self.notify(
            "run.held",
            directory,
            {
                "runId": run.id,
                "kind": run.kind,
                "reason": guard.get("reason"),
                "blocking": guard.get("blocking"),
            },
        )


@dataclass(frozen=True)
class Sent:
    ok: bool
    status: int | None = None
    detail: str | None = None


class WebhookSender(Protocol):
    async def post(
        self, url: str, message_id: str, at: dt.datetime, body: bytes, secrets: tuple[str, ...]
    ) -> Sent:
        """POST ``body`` signed with each of ``secrets`` (Standard Webhooks); what the receiver answered."""


@dataclass(frozen=True)
class Delivery:
    outcome: str
    """``sent``, ``retrying``, ``failed`` (the last attempt failed) or ``dropped`` (no directory or URL now)."""
    status: int | None = None
    detail: str | None = None


def payload(event: Notification) -> bytes:
    body = {
        "type": event.type,
        "timestamp": event.at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class Deliveries:
    def __init__(
        self,
        directories: DirectoryRepository,
        keys: SigningKeyStore,
        sender: WebhookSender,
        queue: NotificationQueue,
        auditor: Auditor,
        clock: Clock,
        alerts: Alerts,
    ) -> None:
        self.directories = directories
        self.keys = keys
        self.sender = sender
        self.queue = queue
        self.auditor = auditor
        self.clock = clock
        self.alerts = alerts

    async def deliver(self, event: Notification, attempt: int) -> Delivery:
        found = await self.directories.get(event.directory_id)
        url = found[0].options.notify_url if found else None
        if url is None:
            return Delivery("dropped", detail="the directory no longer has a notify URL")
        keys = await self.keys.read()
        if keys is None:
            sent = Sent(
                False, None, "no notification secret yet: make one with POST /api/notifications/secret"
            )
        else:
            now = self.clock()
            sent = await self.sender.post(url, event.id, now, payload(event), keys.valid(now))
        if sent.ok:
            await self.auditor.record(
                NOTIFY_ACTOR,
                "notification.sent",
                directory_id=event.directory_id,
                after={"type": event.type, "id": event.id, "attempt": attempt + 1, "status": sent.status},
            )
            return Delivery("sent", sent.status)
        if attempt + 1 < len(RETRY_SCHEDULE_SECONDS):
            await self.queue.enqueue(
                event, attempt=attempt + 1, delay_seconds=RETRY_SCHEDULE_SECONDS[attempt + 1]
            )
            return Delivery("retrying", sent.status, sent.detail)
        self.alerts.warning(
            "notification.failed", directoryId=event.directory_id, type=event.type, detail=sent.detail
        )
        await self.auditor.record(
            NOTIFY_ACTOR,
            "notification.failed",
            result=f"failed: {sent.detail or sent.status}",
            directory_id=event.directory_id,
            after={"type": event.type, "id": event.id, "attempts": attempt + 1},
        )
        return Delivery("failed", sent.status, sent.detail)

    async def rotate_secret(self, actor: Actor) -> str:
        """A new signing secret, returned once; the one it replaces keeps signing for 24 hours."""
        keys: SigningKeys = rotated(await self.keys.read(fresh=True), new_signing_secret(), self.clock())
        await self.keys.write(keys)
        until = keys.previous_until.isoformat() if keys.previous_until else None
        await self.auditor.record(actor, "notifications.secret.rotate", after={"previousValidUntil": until})
        return keys.current
