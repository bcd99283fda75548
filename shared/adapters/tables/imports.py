"""Import jobs on Table Storage.

PartitionKey = job id, RowKey ``job``: the job (directory, bind, status, counters, undo deadline).
PartitionKey = ``<job id>|<chunk>`` (5 digits), RowKey ``item|<n>``: one account to import, with the account as
read from Graph, its state (``pending`` → ``imported`` / ``skipped`` / ``failed``), the reason and the Warden user
it became. A chunk's 100 items are one partition, written in one transaction by the plan and again by the chunk's
worker: chunks never contend for a partition (Table Storage serves a partition at about 2,000 entities a second,
and a 100,000-account job in one partition would be written at that pace). The listing of a job's items is a range
query over its chunk partitions, which sort after the job's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.adapters.tables.base import (
    TableStore,
    from_json,
    from_text,
    from_time,
    insert_new,
    page,
    quote,
    read,
    replace,
    required_time,
    stream,
    to_json,
    to_text,
    to_time,
    transact,
)
from shared.domain.errors import ConcurrentUpdate
from shared.domain.imports import CHUNK, ImportItem, ImportJob
from shared.service.ports import Page

JOB = "job"
ITEM = "item|"
RETRIES = 30


def job_entity(job: ImportJob) -> dict[str, Any]:
    return {
        "PartitionKey": job.id,
        "RowKey": JOB,
        "DirectoryId": job.directory_id,
        "Bind": job.bind,
        "Status": job.status,
        "Trigger": job.trigger,
        "Selection": to_json(job.selection),
        "Total": job.total,
        "Imported": job.imported,
        "Skipped": job.skipped,
        "Failed": job.failed,
        "Chunks": job.chunks,
        "ChunksDone": job.chunks_done,
        "CreatedAt": to_time(job.created_at),
        "StartedAt": to_time(job.started_at),
        "FinishedAt": to_time(job.finished_at),
        "UndoUntil": to_time(job.undo_until),
        "UndoneAt": to_time(job.undone_at),
        "Error": to_text(job.error),
        "PartsCounted": job.parts_counted or None,  # Edm.Binary
    }


def job_from(e: Any) -> ImportJob:
    return ImportJob(
        id=e["PartitionKey"],
        directory_id=e["DirectoryId"],
        bind=bool(e.get("Bind")),
        status=e["Status"],
        trigger=e.get("Trigger", ""),
        selection=from_json(e.get("Selection"), {}),
        total=int(e.get("Total", 0)),
        imported=int(e.get("Imported", 0)),
        skipped=int(e.get("Skipped", 0)),
        failed=int(e.get("Failed", 0)),
        chunks=int(e.get("Chunks", 0)),
        chunks_done=int(e.get("ChunksDone", 0)),
        created_at=required_time(e["CreatedAt"]),
        started_at=from_time(e.get("StartedAt")),
        finished_at=from_time(e.get("FinishedAt")),
        undo_until=required_time(e["UndoUntil"]),
        undone_at=from_time(e.get("UndoneAt")),
        error=from_text(e.get("Error")),
        parts_counted=bytes(e.get("PartsCounted") or b""),
    )


def item_partition(job_id: str, n: int) -> str:
    return f"{job_id}|{n // CHUNK:05d}"


def item_entity(job_id: str, i: ImportItem) -> dict[str, Any]:
    return {
        "PartitionKey": item_partition(job_id, i.n),
        "RowKey": f"{ITEM}{i.n:07d}",
        "M365UserId": i.m365_user_id,
        "Account": to_json(i.account),
        "State": i.state,
        "Reason": to_text(i.reason),
        "UserId": to_text(i.user_id),
    }


def item_from(e: Any) -> ImportItem:
    return ImportItem(
        n=int(e["RowKey"][len(ITEM) :]),
        m365_user_id=e["M365UserId"],
        account=from_json(e.get("Account"), {}),
        state=e["State"],
        reason=from_text(e.get("Reason")),
        user_id=from_text(e.get("UserId")),
    )


class TableImports:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, job: ImportJob) -> None:
        await insert_new(await self.store.table("imports"), job_entity(job), "import job")

    async def get(self, job_id: str) -> tuple[ImportJob, str] | None:
        table = await self.store.table("imports")
        row = await read(table, job_id, JOB)
        return (job_from(row), str(row.metadata["etag"])) if row is not None else None

    async def save(self, job: ImportJob, etag: str | None) -> str:
        return await replace(await self.store.table("imports"), job_entity(job), etag, "the import job")

    async def put_items(self, job_id: str, items: Sequence[ImportItem]) -> None:
        table = await self.store.table("imports")
        partitions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for i in items:
            entity = item_entity(job_id, i)
            partitions.setdefault(entity["PartitionKey"], []).append(("upsert", entity))
        for operations in partitions.values():
            await transact(table, operations)

    async def items(self, job_id: str, first: int, last: int) -> list[ImportItem]:
        if last <= first:
            return []
        table = await self.store.table("imports")
        low, high = quote(f"{ITEM}{first:07d}"), quote(f"{ITEM}{last:07d}")
        pk_low, pk_high = quote(item_partition(job_id, first)), quote(item_partition(job_id, last - 1))
        flt = (
            f"PartitionKey ge {pk_low} and PartitionKey le {pk_high} and RowKey ge {low} and RowKey lt {high}"
        )
        found = [item_from(r) async for r in stream(table, flt)]
        return sorted(found, key=lambda i: i.n)

    async def page_items(
        self, job_id: str, state: str | None, cursor: str | None, limit: int
    ) -> Page[ImportItem]:
        table = await self.store.table("imports")
        flt = f"PartitionKey ge {quote(job_id + '|')} and PartitionKey lt {quote(job_id + '}')}"
        flt += f" and RowKey ge {quote(ITEM)} and RowKey lt {quote('item}')}"
        flt += f" and State eq {quote(state)}" if state else ""
        rows, nxt = await page(table, flt, f"imports:{job_id}:{state}", cursor, limit)
        return Page([item_from(r) for r in rows], nxt)

    async def add_counts(
        self, job_id: str, part: int, counts: dict[str, int], finished: Callable[[ImportJob], ImportJob]
    ) -> ImportJob:
        """Count a part's outcome into the job's counters, once (ETag-guarded, retried); ``finished(job)`` may
        close the job. A part counted already writes nothing."""
        for _ in range(RETRIES):
            found = await self.get(job_id)
            if found is None:
                raise LookupError(job_id)
            job, etag = found
            if job.is_counted(part):
                return job
            updated = finished(job.tallied(part, counts))
            try:
                await self.save(updated, etag)
            except ConcurrentUpdate:
                continue
            return updated
        raise ConcurrentUpdate("the import job's counters kept changing")
