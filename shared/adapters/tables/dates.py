"""Lifecycle dates on Table Storage: PartitionKey ``start`` or ``end``, RowKey ``<UTC instant>|<userId>``.

"Whose start or end date has come?" is one range query per kind (RowKey up to now), however many users there
are, and a date missed while Warden was down is still there for the next run.
"""

from __future__ import annotations

import datetime as dt

from shared.adapters.tables.base import TableStore, delete, quote, stream, to_time


def _key(at: dt.datetime, user_id: str) -> str:
    return f"{to_time(at)}|{user_id}"


class TableDates:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def track(self, kind: str, user_id: str, old: dt.datetime | None, new: dt.datetime | None) -> None:
        if old == new:
            return
        table = await self.store.table("dates")
        if new is not None:
            await table.upsert_entity({"PartitionKey": kind, "RowKey": _key(new, user_id), "UserId": user_id})
        if old is not None:
            await delete(table, kind, _key(old, user_id))

    async def due(self, kind: str, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
        """(user id, instant) of every date of ``kind`` at or before ``now``, oldest first."""
        table = await self.store.table("dates")
        flt = f"PartitionKey eq {quote(kind)} and RowKey le {quote(to_time(now) + '|~')}"
        out = []
        async for r in stream(table, flt, select=["RowKey", "UserId"]):
            at, _, _ = str(r["RowKey"]).partition("|")
            out.append((str(r["UserId"]), dt.datetime.fromisoformat(at.replace("Z", "+00:00"))))
        return out

    async def done(self, kind: str, user_id: str, at: dt.datetime) -> None:
        table = await self.store.table("dates")
        await delete(table, kind, _key(at, user_id))
