"""Webhook receipts on Table Storage: PartitionKey = SHA-256 of the ``webhook-id`` (hex), RowKey ``receipt``.

The hash keeps any sender's id a valid key (no ``/``, ``#``, ``?`` or control characters) and spreads receipts
over partitions; the id itself is a property. An insert is atomic per key, so of two concurrent deliveries of
one id exactly one processes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.adapters.tables.base import (
    TableStore,
    delete,
    etag_of,
    from_text,
    insert,
    merge,
    read,
    required_time,
    to_text,
    to_time,
)
from shared.domain.errors import ConcurrentUpdate, PreconditionFailed
from shared.service.hr.events import Outcome, Receipt

ROW = "receipt"


def receipt_key(webhook_id: str) -> str:
    return hashlib.sha256(webhook_id.encode("utf-8")).hexdigest()


def receipt_entity(r: Receipt) -> dict[str, Any]:
    return {
        "PartitionKey": receipt_key(r.webhook_id),
        "RowKey": ROW,
        "WebhookId": r.webhook_id,
        "EventType": r.event_type,
        "EmployeeId": r.employee_id,
        "State": r.state,
        "At": to_time(r.at),
        "Outcome": to_text(r.outcome),
        "UserId": to_text(r.user_id),
    }


def receipt_from(e: Any) -> Receipt:
    return Receipt(
        webhook_id=str(e["WebhookId"]),
        event_type=str(e.get("EventType", "")),
        employee_id=str(e.get("EmployeeId", "")),
        state="done" if e.get("State") == "done" else "received",
        at=required_time(e.get("At")),
        etag=etag_of(e),
        outcome=from_text(e.get("Outcome")),
        user_id=from_text(e.get("UserId")),
    )


class TableReceipts:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def insert(self, receipt: Receipt) -> Receipt | None:
        table = await self.store.table("receipts")
        entity = receipt_entity(receipt)
        for _ in range(3):  # a receipt released between our insert and read: insert again
            if await insert(table, entity) is not None:
                return None
            existing = await read(table, entity["PartitionKey"], ROW)
            if existing is not None:
                return receipt_from(existing)
        raise ConcurrentUpdate(f"the receipt of webhook-id '{receipt.webhook_id}' keeps changing; retry")

    async def take_over(self, receipt: Receipt, at: dt.datetime) -> bool:
        table = await self.store.table("receipts")
        entity = {"PartitionKey": receipt_key(receipt.webhook_id), "RowKey": ROW, "At": to_time(at)}
        try:
            await merge(table, entity, receipt.etag)
        except (PreconditionFailed, ResourceNotFoundError):
            return False
        return True

    async def finish(self, webhook_id: str, outcome: Outcome, user_id: str | None, at: dt.datetime) -> None:
        table = await self.store.table("receipts")
        entity = {
            "PartitionKey": receipt_key(webhook_id),
            "RowKey": ROW,
            "State": "done",
            "Outcome": outcome,
            "UserId": to_text(user_id),
            "DoneAt": to_time(at),
        }
        await merge(table, entity, None)

    async def release(self, webhook_id: str) -> None:
        table = await self.store.table("receipts")
        await delete(table, receipt_key(webhook_id), ROW)
