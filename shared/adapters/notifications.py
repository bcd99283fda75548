"""Outgoing notifications: their queue (``notifications``) and their delivery, signed per Standard Webhooks.

A queue message is the event itself (id, type, directory, time, data: never a secret) and its attempt number;
``shared.service.notifications.Deliveries`` sends it and queues the next attempt on failure. Signing is the
``standardwebhooks`` package's (``Webhook.sign``: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``); with two
valid secrets (the 24 hours after a rotation) the header carries both signatures, space-separated, as the
specification allows, so a receiver holding either verifies.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import httpx

from shared.adapters.queues import JsonQueue
from shared.service.connections.ports import Notification
from shared.service.notifications import Sent

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueServiceClient

NOTIFICATIONS_QUEUE = "notifications"
TIMEOUT_SECONDS = 10.0


def notification_message(event: Notification, attempt: int) -> str:
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "directoryId": event.directory_id,
            "at": event.at.isoformat(),
            "data": event.data,
            "attempt": attempt,
        },
        separators=(",", ":"),
    )


def notification_from(body: dict[str, Any]) -> tuple[Notification, int]:
    event = Notification(
        id=str(body["id"]),
        type=body["type"],
        directory_id=str(body["directoryId"]),
        at=dt.datetime.fromisoformat(str(body["at"])),
        data=dict(body.get("data") or {}),
    )
    return event, int(body.get("attempt") or 0)


class StorageNotificationQueue(JsonQueue):
    def __init__(self, service: QueueServiceClient, name: str = NOTIFICATIONS_QUEUE) -> None:
        super().__init__(service, name)

    async def enqueue(self, notification: Notification, *, attempt: int = 0, delay_seconds: int = 0) -> None:
        await self.send([notification_message(notification, attempt)], delay_seconds=delay_seconds)


def signatures(secrets: tuple[str, ...], message_id: str, at: dt.datetime, body: bytes) -> str:
    from standardwebhooks.webhooks import Webhook

    return " ".join(Webhook(secret).sign(message_id, at, body.decode()) for secret in secrets)


class HttpWebhookSender:
    """``WebhookSender`` over httpx: one client for the process, no redirects followed (a redirect would carry
    the signed body somewhere the admin did not name), 10 s per attempt."""

    def __init__(self, verify: Any = True) -> None:
        self.verify = verify
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(TIMEOUT_SECONDS),
                follow_redirects=False,
                trust_env=False,
                verify=self.verify,
            )
        return self._client

    async def post(
        self, url: str, message_id: str, at: dt.datetime, body: bytes, secrets: tuple[str, ...]
    ) -> Sent:
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures(secrets, message_id, at, body),
            "user-agent": "Warden-Notifications",
        }
        try:
            response = await self.client().post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Sent(False, None, f"no answer within {TIMEOUT_SECONDS:g} s")
        except httpx.HTTPError as exc:
            return Sent(False, None, f"unreachable ({type(exc).__name__})")
        if 200 <= response.status_code < 300:
            return Sent(True, response.status_code)
        return Sent(False, response.status_code, f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
