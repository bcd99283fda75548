"""The audit trail on Table Storage: each entry written to every partition it can be asked for by.

In the ``audit`` table, PartitionKeys ``directory|<directoryId>``, ``group|<groupId>`` and ``day|<yyyymmdd>``; a
``days`` partition lists the days that have entries. An entry about a user is kept, for "by user", in that user's
own partition of the ``users`` table (RowKey ``audit|<inverted milliseconds>|<entry id>``), so that a change of
the user and the entry that audits it are written in one transaction (``user_rows``: the users repository writes
them with the change, then ``record_all(..., users_written=True)`` the rest). RowKey =
``<inverted milliseconds>|<entry id>``, so a partition reads newest first and ``since`` is a RowKey bound: the user
and directory filters never scan. Writes are idempotent (same keys for the same entry): a retried write leaves one
entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

from azure.data.tables import TableTransactionError

from shared.adapters.tables.base import (
    TableStore,
    from_json,
    from_text,
    insert,
    page,
    quote,
    required_time,
    stream,
    to_json,
    to_text,
    to_time,
)
from shared.domain.model import AuditEntry
from shared.service.paging import decode_cursor, encode_cursor
from shared.service.ports import AuditQuery, Page

_MAX_MS = 10**13 - 1
_MAX_DAY = 99999999


def _inverted(at: dt.datetime) -> int:
    return _MAX_MS - int(at.timestamp() * 1000)


def _day(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%d")


USER_ROW = "audit|"
"""The RowKey prefix of a user's audit entries in its partition of the ``users`` table."""


def _row_key(e: AuditEntry) -> str:
    return f"{_inverted(e.at):013d}|{e.id}"


def entry_entity(pk: str, e: AuditEntry, row_prefix: str = "") -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": row_prefix + _row_key(e),
        "Id": e.id,
        "At": to_time(e.at),
        "Actor": e.actor,
        "Action": e.action,
        "Result": e.result,
        "CorrelationId": to_text(e.correlation_id),
        "UserId": to_text(e.user_id),
        "DirectoryId": to_text(e.directory_id),
        "GroupId": to_text(e.group_id),
        "Before": to_json(e.before) if e.before is not None else "",
        "After": to_json(e.after) if e.after is not None else "",
    }


def user_rows(entries: Sequence[AuditEntry], user_id: str) -> list[dict[str, Any]]:
    """The rows of ``entries`` that belong in ``user_id``'s partition of the ``users`` table (its own entries)."""
    return [entry_entity(user_id, e, USER_ROW) for e in entries if e.user_id == user_id]


def entry_from(r: Any) -> AuditEntry:
    return AuditEntry(
        id=r["Id"],
        at=required_time(r["At"]),
        actor=r["Actor"],
        action=r["Action"],
        result=r["Result"],
        correlation_id=from_text(r.get("CorrelationId")),
        user_id=from_text(r.get("UserId")),
        directory_id=from_text(r.get("DirectoryId")),
        group_id=from_text(r.get("GroupId")),
        before=from_json(r.get("Before")),
        after=from_json(r.get("After")),
    )


WRITE_CONCURRENCY = 16


def _keys(entry: AuditEntry) -> list[str]:
    """The partitions of the ``audit`` table an entry is written to: its day's, its directory's and group's."""
    keys = [f"day|{_day(entry.at)}"]
    keys += [f"directory|{entry.directory_id}"] if entry.directory_id else []
    keys += [f"group|{entry.group_id}"] if entry.group_id else []
    return keys


async def _mark_day(table: Any, day: str) -> None:
    await table.upsert_entity({"PartitionKey": "days", "RowKey": f"{_MAX_DAY - int(day):08d}"})


class TableAuditLog:
    def __init__(self, store: TableStore) -> None:
        self.store = store
        self._days: set[str] = set()

    async def record(self, entry: AuditEntry) -> None:
        """One entry: each of its rows is alone in its partition, so ``record_all`` inserts them side by side."""
        await self.record_all([entry])

    async def record_all(self, entries: Sequence[AuditEntry], *, users_written: bool = False) -> None:
        """The rows of many entries, those sharing a partition (the day's, mostly) inserted 100 per transaction
        instead of one request each; a transaction that finds one of its rows (a retry) is redone row by row.
        ``users_written``: each entry's row in its user's partition went with the user's change already."""
        table = await self.store.table("audit")
        partitions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in entries:
            for key in _keys(entry):
                partitions.setdefault(("audit", key), []).append(entry_entity(key, entry))
            if entry.user_id and not users_written:
                row = entry_entity(entry.user_id, entry, USER_ROW)
                partitions.setdefault(("users", entry.user_id), []).append(row)
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)
        users = await self.store.table("users") if any(t == "users" for t, _ in partitions) else None

        async def write(name: str, rows: list[dict[str, Any]]) -> None:
            target = table if name == "audit" else users
            assert target is not None
            async with gate:
                if len(rows) > 1:
                    with contextlib.suppress(TableTransactionError):
                        await target.submit_transaction([("create", r) for r in rows])
                        return
                await asyncio.gather(*(insert(target, r) for r in rows))

        groups = [
            (name, rows[i : i + 100])
            for (name, _), rows in partitions.items()
            for i in range(0, len(rows), 100)
        ]
        # Once per day per process: the marker only says the day has entries.
        days = {_day(e.at) for e in entries} - self._days
        await asyncio.gather(*(write(n, g) for n, g in groups), *(_mark_day(table, d) for d in days))
        self._days |= days

    async def page(self, query: AuditQuery, cursor: str | None, limit: int) -> Page[AuditEntry]:
        table = await self.store.table("audit")
        bound = f" and RowKey lt {quote(f'{_inverted(query.since) + 1:013d}')}" if query.since else ""
        if query.correlation_id:
            # A property filter: Table Storage pages through the partitions and answers the matches only.
            bound += f" and CorrelationId eq {quote(query.correlation_id)}"
        scope = f"audit:{query.user_id}:{query.directory_id}:{query.since}:{query.correlation_id}"
        if query.user_id:
            users = await self.store.table("users")
            low = quote(f"{USER_ROW}{_inverted(query.since) + 1:013d}") if query.since else None
            flt = f"PartitionKey eq {quote(query.user_id)} and RowKey ge {quote(USER_ROW)} and RowKey lt " + (
                low or quote(USER_ROW[:-1] + "}")
            )
            if query.directory_id:
                flt += f" and DirectoryId eq {quote(query.directory_id)}"
            if query.correlation_id:
                flt += f" and CorrelationId eq {quote(query.correlation_id)}"
            rows, nxt = await page(users, flt, scope, cursor, limit)
            return Page([entry_from(r) for r in rows], nxt)
        if query.directory_id:
            flt = f"PartitionKey eq {quote('directory|' + query.directory_id)}{bound}"
            rows, nxt = await page(table, flt, scope, cursor, limit)
            return Page([entry_from(r) for r in rows], nxt)
        return await self._by_day(table, bound, scope, query, cursor, limit)

    async def _by_day(
        self, table: Any, bound: str, scope: str, query: AuditQuery, cursor: str | None, limit: int
    ) -> Page[AuditEntry]:
        """Unfiltered: the days newest first, each day's partition newest first."""
        position = decode_cursor(scope, cursor) or {"d": None, "c": None}
        day_bound = ""
        if query.since:
            day_bound = f" and RowKey le {quote(f'{_MAX_DAY - int(_day(query.since)):08d}')}"
        if position["d"]:
            first = _MAX_DAY - int(position["d"])
            day_bound += f" and RowKey ge {quote(f'{first:08d}')}"
        days = [
            f"{_MAX_DAY - int(r['RowKey']):08d}"
            async for r in stream(table, f"PartitionKey eq 'days'{day_bound}", select=["RowKey"])
        ]
        items: list[AuditEntry] = []
        inner = position["c"]
        for i, day in enumerate(days):
            while True:
                rows, inner = await page(
                    table,
                    f"PartitionKey eq {quote('day|' + day)}{bound}",
                    f"{scope}:{day}",
                    inner,
                    limit - len(items),
                )
                items.extend(entry_from(r) for r in rows)
                if len(items) >= limit:
                    if inner is not None:
                        return Page(items, encode_cursor(scope, {"d": day, "c": inner}))
                    more = i + 1 < len(days)
                    return Page(items, encode_cursor(scope, {"d": days[i + 1], "c": None}) if more else None)
                if inner is None:
                    break
        return Page(items, None)
