"""The directory index on Table Storage: for each directory, one row per user bound to it (directly or
through a group) or linked in it.

PartitionKey = ``<directoryId>|<bucket>`` with 16 buckets by a hash of the user id, RowKey = user id. A
directory's 100,000 users spread over 16 partitions (Table Storage serves each partition from one server, at
about 2,000 entities per second), read in parallel; no directory's writes land on one hot partition.

The rows are a projection of the users' partitions (``shared.service.projection`` recomputes a user's rows
from its partition after every change); they are never the only copy of anything.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from pydantic_core import from_json as parse_json

from shared.adapters.tables.base import (
    TableStore,
    from_json,
    from_text,
    page,
    quote,
    stream,
    string_pages,
    to_json,
    to_text,
    transact,
)
from shared.adapters.tables.users import link_entity, link_from, user_entity, user_from
from shared.domain.model import LINK_STATUSES, LinkStatus
from shared.service.paging import decode_cursor, encode_cursor
from shared.service.ports import IndexEntry, Page

BUCKETS = 16
COLUMNS = ("PartitionKey", "RowKey", "Via", "Status", "M365UserId", "User", "Link")
"""What a listing reads of a row: not its Timestamp, whose parsing costs the SDK more than the rest of the row."""
YIELD_EVERY = 25
"""Rows made entries between two turns of the event loop while a directory's rows are read (under 1 ms)."""
PAGES_AHEAD = 64
"""Pages of rows (1,000 each) read ahead of the caller at most."""
POINT_READS = 500
"""Up to this many users, ``linked`` reads their rows one by one; more, it reads the directory's rows once."""
READ_CONCURRENCY = 16


def bucket_of(user_id: str) -> int:
    return hashlib.blake2b(user_id.encode(), digest_size=1).digest()[0] % BUCKETS


def partition(directory_id: str, bucket: int) -> str:
    return f"{directory_id}|{bucket:02d}"


def entry_entity(entry: IndexEntry) -> dict[str, Any]:
    """The user and link travel as the JSON of their own table entities (one codec for both tables)."""
    return {
        "PartitionKey": partition(entry.directory_id, bucket_of(entry.user_id)),
        "RowKey": entry.user_id,
        "Via": to_json(list(entry.via)),
        "Status": entry.status,
        "M365UserId": to_text(entry.m365_user_id),
        "User": to_json(user_entity(entry.user)) if entry.user else "",
        "Link": to_json(link_entity(entry.link)) if entry.link else "",
    }


@functools.lru_cache(maxsize=1024)
def _via(text: str) -> tuple[str, ...]:
    """The ways a user is bound (few distinct values: ``["direct"]``, a group or two), parsed once each."""
    return tuple(from_json(text, []))


def entry_from(entity: Any) -> IndexEntry:
    """The row's user and link parsed with pydantic-core's JSON parser, three times the standard library's speed:
    a reconcile reads 100,000 of each."""
    user, link = entity.get("User"), entity.get("Link")
    return IndexEntry(
        directory_id=entity["PartitionKey"].rsplit("|", 1)[0],
        user_id=entity["RowKey"],
        via=_via(entity.get("Via") or "[]"),
        status=entity.get("Status", "pending"),
        m365_user_id=from_text(entity.get("M365UserId")),
        user=user_from(parse_json(user)) if user else None,
        link=link_from(parse_json(link)) if link else None,
    )


def _filter(directory_id: str, bucket: int, status: LinkStatus | None) -> str:
    flt = f"PartitionKey eq {quote(partition(directory_id, bucket))}"
    return flt + (f" and Status eq {quote(status)}" if status else "")


class TableDirectoryIndex:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def put(self, entries: Sequence[IndexEntry]) -> None:
        table = await self.store.table("dirindex")
        by_partition: dict[str, list[tuple[Any, ...]]] = {}
        for e in entries:
            entity = entry_entity(e)
            by_partition.setdefault(entity["PartitionKey"], []).append(("upsert", entity))
        await asyncio.gather(*(transact(table, ops) for ops in by_partition.values()))

    async def remove(self, directory_id: str, user_ids: Sequence[str]) -> None:
        table = await self.store.table("dirindex")
        by_partition: dict[str, list[str]] = {}
        for uid in user_ids:
            by_partition.setdefault(partition(directory_id, bucket_of(uid)), []).append(uid)

        async def drop(pk: str, uids: list[str]) -> None:
            await asyncio.gather(*(table.delete_entity(pk, uid) for uid in uids))

        await asyncio.gather(*(drop(pk, uids) for pk, uids in by_partition.items()))

    async def page(
        self, directory_id: str, status: LinkStatus | None, cursor: str | None, limit: int
    ) -> Page[IndexEntry]:
        """Buckets in order; the cursor holds the bucket and Table Storage's continuation within it."""
        table = await self.store.table("dirindex")
        scope = f"dirindex:{directory_id}:{status}"
        position = decode_cursor(scope, cursor) or {"b": 0, "c": None}
        bucket, inner = int(position["b"]), position.get("c")
        items: list[IndexEntry] = []
        while bucket < BUCKETS and len(items) < limit:
            rows, nxt = await page(
                table, _filter(directory_id, bucket, status), f"{scope}:{bucket}", inner, limit - len(items)
            )
            items.extend(entry_from(r) for r in rows)
            if nxt is None:
                bucket, inner = bucket + 1, None
            else:
                inner = nxt
        if bucket >= BUCKETS:
            return Page(items, None)
        return Page(items, encode_cursor(scope, {"b": bucket, "c": inner}))

    async def all(self, directory_id: str) -> AsyncIterator[IndexEntry]:
        """Every row, the 16 buckets read concurrently; their pages parsed as JSON (``string_pages``), each row made
        an entry as it is taken."""
        table = await self.store.table("dirindex")
        queue: asyncio.Queue[list[dict[str, str]] | None] = asyncio.Queue(maxsize=PAGES_AHEAD)

        async def read_bucket(bucket: int) -> None:
            async for rows in string_pages(table, _filter(directory_id, bucket, None), COLUMNS):
                await queue.put(rows)

        async def read_all() -> None:
            try:
                await asyncio.gather(*(read_bucket(b) for b in range(BUCKETS)))
            finally:
                await queue.put(None)

        task = asyncio.ensure_future(read_all())
        try:
            while (rows := await queue.get()) is not None:
                for first in range(0, len(rows), YIELD_EVERY):
                    for row in rows[first : first + YIELD_EVERY]:
                        yield entry_from(row)
                    # Let other work of the loop run (a caller's Graph pages, read side by side, wait for their
                    # answers to be taken).
                    await asyncio.sleep(0)
            await task  # re-raise a bucket's failure: a partial listing is never passed off as complete
        finally:
            task.cancel()

    async def linked(self, directory_id: str, user_ids: Collection[str]) -> dict[str, str]:
        """A point read of each user's row while they are few; past ``POINT_READS``, the directory's rows read
        once (their ids only, the 16 buckets side by side), which costs less than a read per user."""
        table = await self.store.table("dirindex")
        wanted = set(user_ids)
        if len(wanted) <= POINT_READS:
            gate = asyncio.Semaphore(READ_CONCURRENCY)

            async def one(uid: str) -> tuple[str, str | None]:
                async with gate:
                    try:
                        row = await table.get_entity(
                            partition(directory_id, bucket_of(uid)), uid, select=["M365UserId"]
                        )
                    except ResourceNotFoundError:
                        return uid, None
                return uid, from_text(row.get("M365UserId"))

            found = await asyncio.gather(*(one(u) for u in wanted))
            return {u: m for u, m in found if m}

        async def bucket(b: int) -> dict[str, str]:
            flt = _filter(directory_id, b, None)
            return {
                r["RowKey"]: r["M365UserId"]
                async for r in stream(table, flt, select=["RowKey", "M365UserId"])
                if r["RowKey"] in wanted and r.get("M365UserId")
            }

        out: dict[str, str] = {}
        for part in await asyncio.gather(*(bucket(b) for b in range(BUCKETS))):
            out.update(part)
        return out

    async def counts(self, directory_id: str) -> dict[str, int]:
        table = await self.store.table("dirindex")

        async def count(bucket: int) -> Counter[str]:
            tally: Counter[str] = Counter()
            flt = _filter(directory_id, bucket, None)
            async for r in stream(table, flt, select=["Status", "M365UserId"]):
                tally[r.get("Status", "pending")] += 1
                tally["linked"] += bool(r.get("M365UserId"))
            return tally

        total: Counter[str] = Counter()
        for c in await asyncio.gather(*(count(b) for b in range(BUCKETS))):
            total.update(c)
        return {s: total.get(s, 0) for s in (*LINK_STATUSES, "linked")}

    async def drop(self, directory_id: str) -> None:
        table = await self.store.table("dirindex")

        async def drop_bucket(bucket: int) -> None:
            pk = partition(directory_id, bucket)
            keys = [
                r["RowKey"] async for r in stream(table, f"PartitionKey eq {quote(pk)}", select=["RowKey"])
            ]
            await transact(table, [("delete", {"PartitionKey": pk, "RowKey": k}) for k in keys])

        await asyncio.gather(*(drop_bucket(b) for b in range(BUCKETS)))
