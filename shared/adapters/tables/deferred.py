"""Deferred per-user syncs (rule 18) on Table Storage: PartitionKey = directory id, RowKey = user id.

One row per user and directory while the directory is not active: a sync is level-triggered (rule 8), so the
user's latest state is what the replay writes, whatever number of events arrived meanwhile (``Times`` counts
them). Replayed oldest first (``FirstAt``); a row is forgotten only if unchanged since the replay read it, so a
deferral written during the replay stays for the next one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.adapters.tables.base import (
    TableStore,
    delete_partition,
    from_text,
    insert,
    quote,
    read,
    required_time,
    stream,
    to_text,
    to_time,
)
from shared.service.connections.ports import Deferred

UPDATE_ATTEMPTS = 5


def deferred_from(e: Any) -> Deferred:
    return Deferred(
        directory_id=e["PartitionKey"],
        user_id=e["RowKey"],
        first_at=required_time(e["FirstAt"]),
        last_at=required_time(e["LastAt"]),
        times=int(e.get("Times") or 1),
        correlation_id=from_text(e.get("CorrelationId")),
        etag=str(e.metadata["etag"]),
    )


class TableDeferrals:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def defer(
        self, directory_id: str, user_id: str, at: dt.datetime, correlation_id: str | None
    ) -> None:
        table = await self.store.table("deferred")
        entity = {
            "PartitionKey": directory_id,
            "RowKey": user_id,
            "FirstAt": to_time(at),
            "LastAt": to_time(at),
            "Times": 1,
            "CorrelationId": to_text(correlation_id),
        }
        for _ in range(UPDATE_ATTEMPTS):
            if await insert(table, entity) is not None:
                return
            row = await read(table, directory_id, user_id)
            if row is None:
                continue
            update = {
                "PartitionKey": directory_id,
                "RowKey": user_id,
                "LastAt": to_time(at),
                "Times": int(row.get("Times") or 1) + 1,
            }
            try:
                await table.update_entity(
                    update, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        # Contended every time: the row exists (someone else just wrote it), which is all a deferral needs.

    async def pending(self, directory_id: str) -> list[Deferred]:
        table = await self.store.table("deferred")
        rows = [deferred_from(e) async for e in stream(table, f"PartitionKey eq {quote(directory_id)}")]
        return sorted(rows, key=lambda d: (d.first_at, d.user_id))

    async def done(self, entries: Sequence[Deferred]) -> None:
        table = await self.store.table("deferred")
        for d in entries:
            try:
                await table.delete_entity(
                    d.directory_id, d.user_id, etag=d.etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # deferred again since it was read: it stays for the next replay

    async def count(self, directory_id: str) -> int:
        table = await self.store.table("deferred")
        flt = f"PartitionKey eq {quote(directory_id)}"
        return sum([1 async for _ in stream(table, flt, select=["RowKey"])])

    async def waiting(self) -> frozenset[str]:
        table = await self.store.table("deferred")
        return frozenset([r["PartitionKey"] async for r in table.list_entities(select=["PartitionKey"])])

    async def drop(self, directory_id: str) -> None:
        table = await self.store.table("deferred")
        keys = [
            r["RowKey"]
            async for r in stream(table, f"PartitionKey eq {quote(directory_id)}", select=["RowKey"])
        ]
        if keys:
            await delete_partition(table, directory_id, keys[-1])
