"""The Table Storage adapters against Azurite: atomic claims, paging across partitions, the audit order."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables.audit import TableAuditLog
from shared.adapters.tables.base import TableStore, delete_partition, stream, string_pages, transact
from shared.adapters.tables.dirindex import BUCKETS, TableDirectoryIndex, bucket_of
from shared.adapters.tables.imports import TableImports
from shared.adapters.tables.uniques import TableUniques
from shared.domain.group_plan import GroupPlan
from shared.domain.imports import ImportItem, ImportJob
from shared.domain.model import AuditEntry
from shared.service.ports import AuditQuery, IndexEntry
from shared.service.sync.group import update_audit
from tests.conftest import Azurite

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[TableStore]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    s = TableStore(service, "it" + uuid.uuid4().hex[:10])
    yield s
    await s.aclose()
    await service.close()


async def test_of_twenty_concurrent_claims_of_one_value_exactly_one_wins(store: TableStore) -> None:
    uniques = TableUniques(store)
    owners = [f"u{i}" for i in range(20)]
    results = await asyncio.gather(*(uniques.insert("email", "ada@contoso.example", o, T0) for o in owners))
    winners = [o for o, r in zip(owners, results, strict=True) if r is None]
    assert len(winners) == 1
    assert {r.owner for r in results if r is not None} == set(winners)
    assert await uniques.owner("email", "ada@contoso.example") == winners[0]


async def test_a_claim_is_taken_over_only_with_the_version_it_was_read_at(store: TableStore) -> None:
    uniques = TableUniques(store)
    await uniques.insert("username", "ada", "dead", T0)
    seen = await uniques.insert("username", "ada", "a", T0)
    assert seen is not None and seen.owner == "dead"
    assert await uniques.take_over(seen, "a", T0) is True
    assert await uniques.take_over(seen, "b", T0) is False, "the claim changed since b read it"
    await uniques.release("username", "ada", "b")
    assert await uniques.owner("username", "ada") == "a", "only the owner releases"


async def test_the_directory_index_pages_every_row_once_across_its_buckets(store: TableStore) -> None:
    index = TableDirectoryIndex(store)
    directory = str(uuid.uuid4())
    users = [str(uuid.uuid4()) for _ in range(60)]
    await index.put(
        [
            IndexEntry(directory, u, ("direct",), "error" if i % 3 == 0 else "pending")
            for i, u in enumerate(users)
        ]
    )
    assert len({bucket_of(u) for u in users}) > BUCKETS // 2, "rows spread over the buckets"
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await index.page(directory, None, cursor, 7)
        assert len(page.items) <= 7
        seen += [e.user_id for e in page.items]
        if (cursor := page.next) is None:
            break
    assert sorted(seen) == sorted(users)
    errors = [e.user_id async for e in index.all(directory) if e.status == "error"]
    assert len(errors) == 20
    counts = await index.counts(directory)
    assert (counts["error"], counts["pending"], counts["linked"]) == (20, 40, 0)
    await index.remove(directory, users[:10])
    assert len([e async for e in index.all(directory)]) == 50
    await index.drop(directory)
    assert [e async for e in index.all(directory)] == []


async def test_string_pages_read_a_partition_page_by_page_to_its_last_row(store: TableStore) -> None:
    table = await store.table("dirindex")
    pk = f"pages|{uuid.uuid4()}"
    rows = [
        {"PartitionKey": pk, "RowKey": f"{i:03d}", "Name": f'Zoë "{i}" O\'Neil', "Skip": "x"}
        for i in range(25)
    ]
    await transact(table, [("upsert", r) for r in rows])
    pages = [
        p async for p in string_pages(table, f"PartitionKey eq '{pk}'", ("RowKey", "Name"), page_size=10)
    ]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r for p in pages for r in p] == [{"RowKey": r["RowKey"], "Name": r["Name"]} for r in rows]
    assert [p async for p in string_pages(table, "PartitionKey eq 'none'", ("RowKey",))] == [[]]


async def test_audit_reads_newest_first_across_days_and_by_user_with_since(store: TableStore) -> None:
    log = TableAuditLog(store)
    user = str(uuid.uuid4())
    entries = [
        AuditEntry(
            str(uuid.uuid4()),
            T0 - dt.timedelta(hours=20 * i),
            "system",
            f"a{i}",
            "succeeded",
            None,
            user_id=user,
        )
        for i in range(6)
    ]
    for e in entries:
        await log.record(e)
        await log.record(e)  # a retried write leaves one entry
    everything: list[str] = []
    cursor = None
    for _ in range(20):
        page = await log.page(AuditQuery(), cursor, 2)
        everything += [e.action for e in page.items]
        if (cursor := page.next) is None:
            break
    assert everything == [f"a{i}" for i in range(6)], "newest first, each once, across 5 days"
    mine = await log.page(AuditQuery(user_id=user, since=T0 - dt.timedelta(hours=41)), None, 50)
    assert [e.action for e in mine.items] == ["a0", "a1", "a2"]


async def test_an_index_row_carries_the_user_and_link_it_was_projected_from(store: TableStore) -> None:
    from shared.domain.model import Link, User

    index = TableDirectoryIndex(store)
    directory, uid = str(uuid.uuid4()), str(uuid.uuid4())
    user = User(
        uid, "ada", "ada@contoso.example", "Ada", "L", "Ada L", "active", "admin", T0, T0, job_title="CTO"
    )
    link = Link(uid, directory, "synced", "m-1", "imm", "created", "fp", None, ("c",), T0, "m-boss")
    await index.put([IndexEntry(directory, uid, ("direct",), "synced", "m-1", user, link)])
    (entry,) = [e async for e in index.all(directory)]
    assert (entry.user, entry.link, entry.via) == (user, link, ("direct",))


async def test_runs_read_newest_first_and_count_progress_from_concurrent_chunks(store: TableStore) -> None:
    from shared.adapters.tables.runs import TableRuns
    from shared.domain.runs import Run, RunItem

    runs = TableRuns(store)
    directory = str(uuid.uuid4())
    made = [
        Run(
            str(uuid.uuid4()),
            directory,
            "reconcile",
            False,
            "applying",
            "admin:x",
            T0 + dt.timedelta(minutes=i),
            chunks=8,
        )
        for i in range(3)
    ]
    for r in made:
        await runs.add(r)
    assert [r.id for r in await runs.latest(directory, 2)] == [made[2].id, made[1].id]
    await asyncio.gather(
        *(runs.add_progress(directory, made[2].id, {"applied": 3, "chunksDone": 1}, T0) for _ in range(8))
    )
    run, _ = await runs.get(directory, made[2].id) or (None, None)
    assert run is not None and run.progress == {"applied": 24, "chunksDone": 8} and run.status == "done"
    await runs.put_items(
        made[0].id, [RunItem(n, "block", f"u{n}", "planned", {"action": "block"}) for n in range(150)]
    )
    await runs.set_item_states(
        made[0].id, [RunItem(n, "block", f"u{n}", "applied", {}) for n in range(100, 110)]
    )
    chunk = await runs.items(made[0].id, 100, 200)
    assert len(chunk) == 50 and [i.state for i in chunk[:11]] == ["applied"] * 10 + ["planned"]
    assert chunk[0].payload == {"action": "block"}, "a state change keeps the item"


async def test_an_empty_run_is_withdrawn_only_while_it_is_unchanged(store: TableStore) -> None:
    """The guard withdraws an empty held run a concurrent sync opened; one changed meanwhile stays."""
    import dataclasses

    from shared.adapters.tables.runs import TableRuns
    from shared.domain.runs import Run

    runs = TableRuns(store)
    directory = str(uuid.uuid4())
    kept, gone = (
        Run(str(uuid.uuid4()), directory, "user", False, "held", "hris:x", T0 + dt.timedelta(seconds=i))
        for i in range(2)
    )
    for r in (kept, gone):
        await runs.add(r)
    _, stale = await runs.get(directory, kept.id) or (None, "")
    await runs.save(dataclasses.replace(kept, items=1), stale)
    assert await runs.withdraw(kept, stale) is False, "it got an item after it was read"
    _, etag = await runs.get(directory, gone.id) or (None, "")
    assert await runs.withdraw(gone, etag) is True
    assert await runs.get(directory, gone.id) is None
    assert [r.id for r in await runs.latest(directory, 5)] == [kept.id]
    pointers = [e async for e in (await store.table("runs")).query_entities(f"PartitionKey eq '{directory}'")]
    assert gone.id not in {str(e.get("RunId")) for e in pointers}, (
        "its place in the newest-first list went too"
    )


async def test_a_mirror_update_of_ten_thousand_members_is_audited_in_entries_that_fit_a_row(
    store: TableStore,
) -> None:
    """Table Storage refuses a property over 64 KiB: 10,000 added ids in one entry's After failed the run
    after its Graph writes (and its retry found nothing to do, so the change went unaudited)."""
    log = TableAuditLog(store)
    added = tuple(str(uuid.uuid4()) for _ in range(10_000))
    removed = tuple(str(uuid.uuid4()) for _ in range(3))
    parts = update_audit("m365-group", GroupPlan("update", "m365-group", "Sales", added, removed))
    group_id = str(uuid.uuid4())
    for n, after in enumerate(parts):
        at = T0 + dt.timedelta(milliseconds=n)
        entry = AuditEntry(
            str(uuid.uuid4()),
            at,
            "app",
            "group.m365.update",
            "succeeded",
            None,
            group_id=group_id,
            after=after,
        )
        await log.record(entry)
    entries = await log.page(AuditQuery(), None, 100)
    mine = [e.after for e in entries.items if e.group_id == group_id and e.after]
    assert len(mine) == 21
    assert sorted(m for a in mine for m in a["added"]) == sorted(added)
    assert sorted(m for a in mine for m in a["removed"]) == sorted(removed)


async def test_import_items_live_a_chunk_to_a_partition_and_page_in_order(store: TableStore) -> None:
    imports = TableImports(store)
    job_id = str(uuid.uuid4())
    items = [
        ImportItem(n, f"m{n}", {"id": f"m{n}"}, "imported" if n % 7 == 0 else "pending") for n in range(250)
    ]
    await imports.put_items(job_id, items[:130])  # across two chunks: one transaction per partition
    await imports.put_items(job_id, items[130:])
    rows = [r async for r in stream(await store.table("imports"), "RowKey ge 'item|' and RowKey lt 'item}'")]
    assert {r["PartitionKey"] for r in rows} == {f"{job_id}|{c:05d}" for c in range(3)}
    assert [i.n for i in await imports.items(job_id, 100, 200)] == list(range(100, 200))
    assert [i.n for i in await imports.items(job_id, 200, 250)] == list(range(200, 250))
    seen: list[int] = []
    cursor = None
    for _ in range(20):
        page = await imports.page_items(job_id, None, cursor, 40)
        seen += [i.n for i in page.items]
        if (cursor := page.next) is None:
            break
    assert seen == list(range(250))
    imported = await imports.page_items(job_id, "imported", None, 100)
    assert [i.n for i in imported.items] == list(range(0, 250, 7))


async def test_an_import_jobs_counters_take_each_part_once_even_when_two_deliveries_race(
    store: TableStore,
) -> None:
    imports = TableImports(store)
    job = ImportJob(str(uuid.uuid4()), "d1", False, "running", "admin", {}, T0, T0, total=130, chunks=2)
    await imports.add(job)
    assert (await imports.get(job.id) or (job, ""))[0].parts_counted == b""  # no bit set: no property
    done = []

    def close(j: ImportJob) -> ImportJob:
        done.append(j.chunks_done)
        return j

    # Parts 0-3 (chunk 0) and 4 (chunk 1), each counted by two deliveries at once, part 1 by three.
    parts = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 1]
    await asyncio.gather(
        *(imports.add_counts(job.id, p, {"imported": 20, "skipped": 5}, close) for p in parts)
    )
    final = (await imports.get(job.id) or (job, ""))[0]
    assert (final.imported, final.skipped, final.chunks_done) == (100, 25, 1)
    assert final.parts_counted == bytes([0b11111])  # stored as Edm.Binary, read back as bytes
    again = await imports.add_counts(job.id, 2, {"imported": 99}, close)
    assert again.imported == 100


async def test_audit_entries_recorded_together_read_as_if_recorded_one_by_one_and_a_retry_adds_none(
    store: TableStore,
) -> None:
    log = TableAuditLog(store)
    users = [str(uuid.uuid4()) for _ in range(230)]
    entries = [
        AuditEntry(
            str(uuid.uuid4()), T0 + dt.timedelta(milliseconds=n), "app", "user.create", "succeeded", None, u
        )
        for n, u in enumerate(users)
    ]
    await log.record_all(entries)
    await log.record_all(entries[100:130])  # a chunk audited again after a crash: its rows exist already
    day = [e.id async for e in _all_entries(log, AuditQuery())]
    assert day == [e.id for e in reversed(entries)], "every entry once, newest first"
    mine = await log.page(AuditQuery(user_id=users[7]), None, 10)
    assert [e.id for e in mine.items] == [entries[7].id]


async def _all_entries(log: TableAuditLog, query: AuditQuery) -> AsyncIterator[AuditEntry]:
    cursor = None
    for _ in range(50):
        page = await log.page(query, cursor, 100)
        for entry in page.items:
            yield entry
        if (cursor := page.next) is None:
            return


async def test_deleting_a_partition_survives_a_row_going_meanwhile(store: TableStore) -> None:
    """A sync giving its lease up between the listing and the delete made DELETE /api/users/{id} answer 500."""
    table = await store.table("users")
    pk = str(uuid.uuid4())
    for rk in ("user", "relations", "lease"):
        await table.create_entity({"PartitionKey": pk, "RowKey": rk})
    real = table.submit_transaction
    calls = 0

    async def racing(operations: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await table.delete_entity(pk, "lease")  # the lease holder lets go meanwhile
        return await real(operations, **kw)

    table.submit_transaction = racing  # type: ignore[method-assign]
    try:
        await delete_partition(table, pk, "user")
    finally:
        del table.submit_transaction
    assert [r async for r in stream(table, f"PartitionKey eq '{pk}'")] == []
    assert calls == 2
