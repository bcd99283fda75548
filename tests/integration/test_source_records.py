"""HR sources' tables against Azurite: a source's records and their external-id keys move together in one
transaction (an external id names at most one user of a source), pages count, activity notes merge."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables.base import TableStore
from shared.adapters.tables.sources import TableSourceRecords, TableSources
from shared.domain.errors import Conflict, PreconditionFailed
from shared.domain.sources import HrSource, PersonRecord
from tests.conftest import Azurite

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[TableStore]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    s = TableStore(service, "hs" + uuid.uuid4().hex[:10])
    yield s
    await s.aclose()
    await service.close()


async def test_an_external_id_names_one_user_and_moves_with_its_record(store: TableStore) -> None:
    records = TableSourceRecords(store)
    src = str(uuid.uuid4())
    await records.put(PersonRecord(src, "u1", "EXT/1#?", {"userName": "a"}), "user", None)
    assert await records.owner(src, "user", "EXT/1#?") == "u1", "any client's id is a valid key"
    with pytest.raises(Conflict, match="EXT/1#"):
        await records.put(PersonRecord(src, "u2", "EXT/1#?"), "user", None)
    assert await records.get(src, "user", "u2") is None, "the transaction wrote nothing"
    current = await records.get(src, "user", "u1")
    assert current is not None and current.document == {"userName": "a"}
    await records.put(
        PersonRecord(src, "u1", "EXT-2", {"userName": "b"}, {"state": "active"}), "user", current
    )
    assert (await records.owner(src, "user", "EXT/1#?"), await records.owner(src, "user", "EXT-2")) == (
        None,
        "u1",
    )
    with pytest.raises(PreconditionFailed):
        await records.put(PersonRecord(src, "u1", "EXT-3"), "user", current)  # read before the last write
    moved = await records.get(src, "user", "u1")
    assert moved is not None and moved.applied == {"state": "active"}
    await records.delete(moved, "user")
    assert await records.get(src, "user", "u1") is None and await records.owner(src, "user", "EXT-2") is None


async def test_of_ten_concurrent_creates_under_one_external_id_one_wins(store: TableStore) -> None:
    records = TableSourceRecords(store)
    src = str(uuid.uuid4())
    results = await asyncio.gather(
        *(records.put(PersonRecord(src, f"u{i}", "same"), "user", None) for i in range(10)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


async def test_pages_skip_and_count_a_sources_users_apart_from_its_groups_and_others(
    store: TableStore,
) -> None:
    records = TableSourceRecords(store)
    src, other = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(7):
        await records.put(PersonRecord(src, f"u{i}", None), "user", None)
    await records.put(PersonRecord(src, "g0", "G"), "group", None)
    await records.put(PersonRecord(other, "x", None), "user", None)
    page, total = await records.page(src, "user", 5, 10)
    assert total == 7 and [r.object_id for r in page] == ["u5", "u6"]
    assert [r.object_id async for batch in records.all(src, "group") for r in batch] == ["g0"]
    await records.drop(src)
    assert (await records.page(src, "user", 0, 10))[1] == 0
    assert (await records.page(other, "user", 0, 10))[1] == 1


async def test_activity_notes_merge_and_never_move_the_sources_etag(store: TableStore) -> None:
    sources = TableSources(store)
    s = HrSource(str(uuid.uuid4()), "feed", "scim", (("userName", "username"),), "enabled", T0, T0)
    etag = await sources.add(s)
    await sources.note(s.id, event_at=T0)
    await sources.note(s.id, failure_at=T0 + dt.timedelta(minutes=1), failure="a wrong token")
    activity = (await sources.activity())[s.id]
    assert (activity.last_event_at, activity.last_failure, activity.last_failure_at) == (
        T0,
        "a wrong token",
        T0 + dt.timedelta(minutes=1),
    )
    found = await sources.get(s.id)
    assert found is not None and found[1] == etag and found[0] == s
    await sources.update(s, etag)
    with pytest.raises(PreconditionFailed):
        await sources.update(s, etag)
