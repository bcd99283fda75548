"""Runs (reconcile, drift, user) and their plans on Table Storage.

``runs``: PartitionKey = directory id; RowKey ``run|<runId>`` is the run, ``latest|<inverted ms>|<runId>`` a
pointer so the newest runs of a directory read first; both written in one transaction. The counters of a run
move with ETag-guarded merges (retried), so concurrent chunks never lose each other's progress.
``runitems``: PartitionKey = run id, RowKey = the item's number (7 digits): the stored plan, in order, with
each item's state (``planned`` → ``applied`` / ``failed`` / ``skipped``), so a chunk delivered twice applies
nothing twice and a restart resumes where it stopped. Which parts of the plan are counted in the run's progress
is a bit per part on the run's row (``PartsCounted``), so a part is counted once whoever finishes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.tables.base import (
    TableStore,
    etag_of,
    from_json,
    from_text,
    from_time,
    insert,
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
from shared.domain.runs import Run, RunItem
from shared.service.ports import Page
from shared.service.sync.guard import BlockCounts

RUN = "run|"
LATEST = "latest|"
BLOCKS = "blocks|"
_MAX_MS = 10**13 - 1
MERGE_RETRIES = 30


def run_entity(run: Run) -> dict[str, Any]:
    return {
        "PartitionKey": run.directory_id,
        "RowKey": RUN + run.id,
        "Kind": run.kind,
        "DryRun": run.dry_run,
        "Status": run.status,
        "Trigger": run.trigger,
        "CreatedAt": to_time(run.created_at),
        "StartedAt": to_time(run.started_at),
        "PlannedAt": to_time(run.planned_at),
        "FinishedAt": to_time(run.finished_at),
        "Counts": to_json(run.counts),
        "Progress": to_json(run.progress),
        "Usage": to_json(run.usage),
        "Guard": to_json(run.guard) if run.guard is not None else "",
        "Error": to_text(run.error),
        "Items": run.items,
        "Chunks": run.chunks,
        "PartsCounted": run.parts_counted or None,  # Edm.Binary
    }


def run_from(e: Any) -> Run:
    return Run(
        id=e["RowKey"][len(RUN) :],
        directory_id=e["PartitionKey"],
        kind=e["Kind"],
        dry_run=bool(e.get("DryRun")),
        status=e["Status"],
        trigger=e.get("Trigger", ""),
        created_at=required_time(e["CreatedAt"]),
        started_at=from_time(e.get("StartedAt")),
        planned_at=from_time(e.get("PlannedAt")),
        finished_at=from_time(e.get("FinishedAt")),
        counts=from_json(e.get("Counts"), {}),
        progress=from_json(e.get("Progress"), {}),
        usage=from_json(e.get("Usage"), {}),
        guard=from_json(e.get("Guard")),
        error=from_text(e.get("Error")),
        items=int(e.get("Items", 0)),
        chunks=int(e.get("Chunks", 0)),
        parts_counted=bytes(e.get("PartsCounted") or b""),
    )


def item_entity(run_id: str, item: RunItem) -> dict[str, Any]:
    return {
        "PartitionKey": run_id,
        "RowKey": f"{item.n:07d}",
        "Action": item.action,
        "UserId": item.user_id,
        "State": item.state,
        "Item": to_json(item.payload),
        "Error": to_text(item.error),
    }


def item_from(e: Any) -> RunItem:
    return RunItem(
        n=int(e["RowKey"]),
        action=e["Action"],
        user_id=e["UserId"],
        state=e["State"],
        payload=from_json(e.get("Item"), {}),
        error=from_text(e.get("Error")),
    )


def _pointer(run: Run) -> str:
    """The run's row in its directory's newest-first list."""
    return f"{LATEST}{_MAX_MS - int(run.created_at.timestamp() * 1000):013d}|{run.id}"


class TableRuns:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, run: Run) -> None:
        table = await self.store.table("runs")
        await insert_new(table, run_entity(run), "run")
        await table.upsert_entity(
            {"PartitionKey": run.directory_id, "RowKey": _pointer(run), "RunId": run.id}
        )

    async def get(self, directory_id: str, run_id: str) -> tuple[Run, str] | None:
        table = await self.store.table("runs")
        row = await read(table, directory_id, RUN + run_id)
        return (run_from(row), str(row.metadata["etag"])) if row is not None else None

    async def save(self, run: Run, etag: str | None) -> str:
        return await replace(await self.store.table("runs"), run_entity(run), etag, "the run")

    async def withdraw(self, run: Run, etag: str) -> bool:
        """Delete the run's row only if it is unchanged since ``etag`` (412: False), then its ``latest`` pointer
        (``latest`` skips a pointer whose run is gone, should this process stop in between)."""
        table = await self.store.table("runs")
        try:
            await table.delete_entity(
                run.directory_id, RUN + run.id, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:  # 412: a sync put items in it meanwhile: it stays
            return False
        await table.delete_entity(run.directory_id, _pointer(run))
        return True

    async def latest(self, directory_id: str, limit: int) -> list[Run]:
        table = await self.store.table("runs")
        flt = f"PartitionKey eq {quote(directory_id)} and RowKey ge {quote(LATEST)} and RowKey lt {quote('latest}')}"
        ids: list[str] = []
        async for r in stream(table, flt, select=["RunId"], page_size=limit):
            ids.append(str(r["RunId"]))
            if len(ids) >= limit:
                break
        found = [await self.get(directory_id, i) for i in ids]
        return [f[0] for f in found if f is not None]

    async def put_items(self, run_id: str, items: Sequence[RunItem]) -> None:
        table = await self.store.table("runitems")
        await transact(table, [("upsert", item_entity(run_id, i)) for i in items])

    async def items(self, run_id: str, first: int, last: int) -> list[RunItem]:
        """Items ``first`` ≤ n < ``last``."""
        table = await self.store.table("runitems")
        flt = f"PartitionKey eq {quote(run_id)} and RowKey ge {quote(f'{first:07d}')} and RowKey lt {quote(f'{last:07d}')}"
        return [item_from(r) async for r in stream(table, flt)]

    async def page_items(
        self, run_id: str, action: str | None, cursor: str | None, limit: int
    ) -> Page[RunItem]:
        table = await self.store.table("runitems")
        flt = f"PartitionKey eq {quote(run_id)} and RowKey lt 'a'"  # items only (numbers), not chunk markers
        flt += f" and Action eq {quote(action)}" if action else ""
        rows, nxt = await page(table, flt, f"runitems:{run_id}:{action}", cursor, limit)
        return Page([item_from(r) for r in rows], nxt)

    async def set_item_states(self, run_id: str, items: Sequence[RunItem]) -> None:
        table = await self.store.table("runitems")
        ops = [
            (
                "upsert",
                {"PartitionKey": run_id, "RowKey": f"{i.n:07d}", "State": i.state, "Error": to_text(i.error)},
                {"mode": UpdateMode.MERGE},
            )
            for i in items
        ]
        await transact(table, ops)

    async def block_counts(self, directory_id: str, since: dt.datetime) -> BlockCounts:
        """Blocks per-user syncs applied in the directory since ``since`` (counted per minute): one query."""
        table = await self.store.table("runs")
        low = quote(f"{BLOCKS}{since.astimezone(dt.UTC):%Y%m%d%H%M}")
        flt = f"PartitionKey eq {quote(directory_id)} and RowKey ge {low} and RowKey lt {quote('blocks}')}"
        counts: dict[str, int] = {}
        versions: dict[str, str] = {}
        async for r in stream(table, flt, select=["RowKey", "Count"]):
            counts[r["RowKey"]] = int(r.get("Count", 0))
            versions[r["RowKey"]] = etag_of(r)
        return BlockCounts(counts, versions)

    async def add_block(self, directory_id: str, at: dt.datetime, seen: BlockCounts) -> bool:
        table = await self.store.table("runs")
        key = f"{BLOCKS}{at.astimezone(dt.UTC):%Y%m%d%H%M}"
        entity = {"PartitionKey": directory_id, "RowKey": key, "Count": seen.per_minute.get(key, 0) + 1}
        version = seen.versions.get(key)
        if version is None:
            return await insert(table, entity) is not None
        try:
            await table.update_entity(entity, etag=version, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def add_progress(
        self,
        directory_id: str,
        run_id: str,
        progress: dict[str, int],
        at: dt.datetime,
        *,
        part: int | None = None,
    ) -> Run:
        """Add ``progress`` (counter → increment) to the run's progress; the run as it is afterwards. With ``part``
        the increment is a part's outcome, added once (``Run.tallied``): a part counted already writes nothing."""
        for _ in range(MERGE_RETRIES):
            found = await self.get(directory_id, run_id)
            if found is None:
                raise LookupError(run_id)
            run, etag = found
            if part is not None:
                if run.is_counted(part):
                    return run
                updated = run.tallied(part, progress, at)
            else:
                merged = dict(run.progress)
                for k, v in progress.items():
                    merged[k] = merged.get(k, 0) + v
                updated = run.with_progress(merged, at)
            try:
                await self.save(updated, etag)
            except ConcurrentUpdate:
                continue
            return updated
        raise ConcurrentUpdate("the run's progress kept changing")
