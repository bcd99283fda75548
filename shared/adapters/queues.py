"""Storage queues: the per-user sync queue (``user-sync``) and its poison queue.

Messages are base64-encoded JSON, as ``host.json`` (``messageEncoding: base64``) tells the Functions host to
decode them: ``{"userId": "...", "correlationId": "..."}``. Queue names are fixed because the function bindings
name them (``functions/sync.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient, QueueServiceClient

USER_SYNC_QUEUE = "user-sync"
POISON_SUFFIX = "-poison"
ENQUEUE_CONCURRENCY = 32


def sync_message(user_id: str, correlation_id: str | None) -> str:
    return json.dumps({"userId": user_id, "correlationId": correlation_id}, separators=(",", ":"))


class StorageSyncQueue:
    def __init__(self, service: QueueServiceClient, name: str = USER_SYNC_QUEUE) -> None:
        from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

        self.client: QueueClient = service.get_queue_client(
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )
        self.poison: QueueClient = service.get_queue_client(name + POISON_SUFFIX)
        self._ready: asyncio.Task[None] | None = None

    async def _ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self.client.create_queue()

    async def enqueue(
        self, user_ids: Sequence[str], correlation_id: str | None, *, delay_seconds: int = 0
    ) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._ensure())
        await asyncio.shield(self._ready)
        gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

        async def put(user_id: str) -> None:
            async with gate:
                await self.client.send_message(
                    sync_message(user_id, correlation_id), visibility_timeout=delay_seconds or None
                )

        await asyncio.gather(*(put(u) for u in dict.fromkeys(user_ids)))

    async def poisoned(self) -> int:
        """Messages waiting in the poison queue (health shows them)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            properties = await self.poison.get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)
