"""Storage queues: per-user syncs (``user-sync``) and reconcile jobs (``reconcile``), with their poison queues.

Messages are base64-encoded JSON, as ``host.json`` (``messageEncoding: base64``) tells the Functions host to
decode them. Queue names are fixed because the function bindings name them (``functions/sync.py``,
``functions/reconcile.py``). A message names what to work on (a user, a run and its chunk), never the values to
write (rule 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient, QueueServiceClient

USER_SYNC_QUEUE = "user-sync"
RECONCILE_QUEUE = "reconcile"
POISON_SUFFIX = "-poison"
ENQUEUE_CONCURRENCY = 32


def sync_message(
    user_id: str,
    correlation_id: str | None,
    actor: str | None = None,
    gone: bool = False,
    approved: bool = False,
) -> str:
    body: dict[str, Any] = {"userId": user_id, "correlationId": correlation_id}
    if actor:
        body["actor"] = actor
    if gone:
        body["gone"] = True
    if approved:
        body["approved"] = True
    return json.dumps(body, separators=(",", ":"))


class JsonQueue:
    """One storage queue of JSON messages, created on first use."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
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

    async def send(self, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._ensure())
        await asyncio.shield(self._ready)
        gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

        async def put(body: str) -> None:
            async with gate:
                await self.client.send_message(body, visibility_timeout=delay_seconds or None)

        await asyncio.gather(*(put(b) for b in bodies))

    async def poisoned(self) -> int:
        """Messages waiting in the poison queue (health shows them)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            properties = await self.poison.get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)


class StorageSyncQueue(JsonQueue):
    def __init__(self, service: QueueServiceClient, name: str = USER_SYNC_QUEUE) -> None:
        super().__init__(service, name)

    async def enqueue(
        self,
        user_ids: Sequence[str],
        correlation_id: str | None,
        *,
        delay_seconds: int = 0,
        actor: str | None = None,
        gone: bool = False,
        approved: bool = False,
    ) -> None:
        bodies = [sync_message(u, correlation_id, actor, gone, approved) for u in dict.fromkeys(user_ids)]
        await self.send(bodies, delay_seconds=delay_seconds)


def reconcile_message(kind: str, directory_id: str, run_id: str, chunk: int | None = None) -> str:
    body: dict[str, Any] = {"type": kind, "directoryId": directory_id, "runId": run_id}
    if chunk is not None:
        body["chunk"] = chunk
    return json.dumps(body, separators=(",", ":"))


class StorageReconcileQueue(JsonQueue):
    def __init__(self, service: QueueServiceClient, name: str = RECONCILE_QUEUE) -> None:
        super().__init__(service, name)

    async def plan(self, directory_id: str, run_id: str) -> None:
        await self.send([reconcile_message("plan", directory_id, run_id)])

    async def chunks(self, directory_id: str, run_id: str, count: int) -> None:
        await self.send([reconcile_message("chunk", directory_id, run_id, n) for n in range(count)])


GROUP_SYNC_QUEUE = "group-sync"


class StorageGroupQueue(JsonQueue):
    """Group mirroring jobs: ``{"groupId", "directoryId"}`` (mirror it now) or ``{"deleteM365Group",
    "directoryId"}`` (its Warden group is gone and Warden had created it)."""

    def __init__(self, service: QueueServiceClient, name: str = GROUP_SYNC_QUEUE) -> None:
        super().__init__(service, name)

    async def enqueue(
        self, pairs: Sequence[tuple[str, str]], correlation_id: str | None, *, delay_seconds: int = 0
    ) -> None:
        bodies = [
            json.dumps(
                {"groupId": g, "directoryId": d, "correlationId": correlation_id}, separators=(",", ":")
            )
            for g, d in dict.fromkeys(pairs)
        ]
        await self.send(bodies, delay_seconds=delay_seconds)

    async def delete_mirror(self, directory_id: str, m365_group_id: str, correlation_id: str | None) -> None:
        body = {
            "deleteM365Group": m365_group_id,
            "directoryId": directory_id,
            "correlationId": correlation_id,
        }
        await self.send([json.dumps(body, separators=(",", ":"))])


IMPORT_QUEUE = "import"


class StorageImportQueue(JsonQueue):
    """Import jobs: ``{"type": "plan", "jobId"}`` and ``{"type": "chunk", "jobId", "chunk"}``."""

    def __init__(self, service: QueueServiceClient, name: str = IMPORT_QUEUE) -> None:
        super().__init__(service, name)

    async def plan(self, job_id: str) -> None:
        await self.send([json.dumps({"type": "plan", "jobId": job_id}, separators=(",", ":"))])

    async def chunks(self, job_id: str, count: int) -> None:
        bodies = [
            json.dumps({"type": "chunk", "jobId": job_id, "chunk": n}, separators=(",", ":"))
            for n in range(count)
        ]
        await self.send(bodies)
