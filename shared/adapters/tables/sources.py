"""HR sources and what each keeps about the people and groups it feeds, on Table Storage.

``hrsources``: PartitionKey ``source``, RowKey = the source id (name, kind, mapping, status, credential dates; never
a credential); PartitionKey ``activity``, RowKey = the source id (last event, last refusal), apart so that noting
activity never moves the source's ETag.

``hrrecords``: PartitionKey = the source id, so that a source's records list in one partition query and change in
one transaction. RowKey ``user|<userId>`` / ``group|<groupId>``: the source's external id for it and, for SCIM,
the resource as the client last wrote it (JSON, never a password); ``ukey|<externalId>`` / ``gkey|<externalId>``:
which user or group the external id names. A record and its key row are written and deleted in one transaction,
so an external id names at most one object of a source, and always the one whose record carries it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Literal

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared.adapters.tables.base import (
    TableStore,
    delete_partition,
    etag_of,
    from_json,
    from_text,
    from_time,
    insert_new,
    quote,
    read,
    required_time,
    stream,
    to_json,
    to_text,
    to_time,
)
from shared.adapters.tables.base import replace as write_row
from shared.domain.errors import ConcurrentUpdate, Conflict, PreconditionFailed
from shared.domain.sources import HrSource, PersonRecord, SourceActivity

SOURCE = "source"
ACTIVITY = "activity"
RecordKind = Literal["user", "group"]
_KEY = {"user": "ukey|", "group": "gkey|"}
PAGE = 1000


def _safe(value: str) -> str:
    """A RowKey part: '/', '\\', '#', '?', '%' and control characters percent-encoded (not allowed in keys)."""
    return "".join(c if c.isprintable() and c not in "/\\#?%" else f"%{ord(c):02X}" for c in value)


def source_entity(s: HrSource) -> dict[str, Any]:
    return {
        "PartitionKey": SOURCE,
        "RowKey": s.id,
        "Name": s.name,
        "Kind": s.kind,
        "Mapping": to_json(dict(s.mapping)),
        "Status": s.status,
        "QuietAfterHours": s.quiet_after_hours,
        "CreatedAt": to_time(s.created_at),
        "UpdatedAt": to_time(s.updated_at),
        "CredentialSetAt": to_time(s.credential_set_at),
        "PreviousValidUntil": to_time(s.previous_valid_until),
        "BuiltIn": s.built_in,
    }


def source_from(e: Any) -> HrSource:
    return HrSource(
        id=str(e["RowKey"]),
        name=str(e["Name"]),
        kind=e["Kind"],
        mapping=tuple(sorted(from_json(e.get("Mapping"), {}).items())),
        status="disabled" if e.get("Status") == "disabled" else "enabled",
        created_at=required_time(e.get("CreatedAt")),
        updated_at=required_time(e.get("UpdatedAt")),
        quiet_after_hours=int(e.get("QuietAfterHours") or 72),
        credential_set_at=from_time(e.get("CredentialSetAt")),
        previous_valid_until=from_time(e.get("PreviousValidUntil")),
        built_in=bool(e.get("BuiltIn", False)),
    )


class TableSources:
    """``SourceRepository``."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, source: HrSource) -> str:
        return await insert_new(await self.store.table("hrsources"), source_entity(source), "HR source")

    async def get(self, source_id: str) -> tuple[HrSource, str] | None:
        row = await read(await self.store.table("hrsources"), SOURCE, source_id)
        return (source_from(row), etag_of(row)) if row is not None else None

    async def all(self) -> list[HrSource]:
        table = await self.store.table("hrsources")
        return [source_from(e) async for e in stream(table, f"PartitionKey eq {quote(SOURCE)}")]

    async def update(self, source: HrSource, etag: str | None) -> str:
        table = await self.store.table("hrsources")
        try:
            return await write_row(table, source_entity(source), etag, f"HR source {source.id}")
        except ConcurrentUpdate:  # the ETag moved: another admin changed it
            raise PreconditionFailed("the HR source changed since it was read") from None

    async def delete(self, source_id: str) -> None:
        table = await self.store.table("hrsources")
        await table.delete_entity(SOURCE, source_id)
        await table.delete_entity(ACTIVITY, source_id)

    async def activity(self) -> dict[str, SourceActivity]:
        table = await self.store.table("hrsources")
        out: dict[str, SourceActivity] = {}
        async for e in stream(table, f"PartitionKey eq {quote(ACTIVITY)}"):
            out[str(e["RowKey"])] = SourceActivity(
                last_event_at=from_time(e.get("LastEventAt")),
                last_failure_at=from_time(e.get("LastFailureAt")),
                last_failure=from_text(e.get("LastFailure")),
            )
        return out

    async def note(
        self,
        source_id: str,
        *,
        event_at: dt.datetime | None = None,
        failure_at: dt.datetime | None = None,
        failure: str | None = None,
    ) -> None:
        entity: dict[str, Any] = {"PartitionKey": ACTIVITY, "RowKey": source_id}
        if event_at is not None:
            entity["LastEventAt"] = to_time(event_at)
        if failure_at is not None:
            entity["LastFailureAt"] = to_time(failure_at)
            entity["LastFailure"] = to_text(failure)[:256]
        table = await self.store.table("hrsources")
        await table.upsert_entity(entity, mode=UpdateMode.MERGE)


def record_entity(r: PersonRecord, kind: RecordKind) -> dict[str, Any]:
    return {
        "PartitionKey": r.source_id,
        "RowKey": f"{kind}|{r.object_id}",
        "ExternalId": to_text(r.external_id),
        "Document": to_json(dict(r.document)),
        "Applied": to_json(dict(r.applied)),
    }


def record_from(e: Any) -> PersonRecord:
    return PersonRecord(
        source_id=str(e["PartitionKey"]),
        object_id=str(e["RowKey"]).split("|", 1)[1],
        external_id=from_text(e.get("ExternalId")),
        document=from_json(e.get("Document"), {}),
        applied=from_json(e.get("Applied"), {}),
        etag=etag_of(e),
    )


def _key_entity(source_id: str, kind: RecordKind, external_id: str, object_id: str) -> dict[str, Any]:
    return {"PartitionKey": source_id, "RowKey": _KEY[kind] + _safe(external_id), "Owner": object_id}


class TableSourceRecords:
    """What each source keeps about the users and groups it feeds."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def get(self, source_id: str, kind: RecordKind, object_id: str) -> PersonRecord | None:
        row = await read(await self.store.table("hrrecords"), source_id, f"{kind}|{object_id}")
        return record_from(row) if row is not None else None

    async def owner(self, source_id: str, kind: RecordKind, external_id: str) -> str | None:
        row = await read(await self.store.table("hrrecords"), source_id, _KEY[kind] + _safe(external_id))
        return str(row["Owner"]) if row is not None else None

    async def put(self, record: PersonRecord, kind: RecordKind, previous: PersonRecord | None) -> None:
        """Write ``record`` (new when ``previous`` is None, else only if ``previous`` is still current) and move
        its external id's key row, in one transaction. A key another object holds is a ``Conflict``."""
        operations: list[tuple[Any, ...]] = []
        entity = record_entity(record, kind)
        if previous is None:
            operations.append(("create", entity))
        else:
            operations.append(
                (
                    "update",
                    entity,
                    {
                        "mode": UpdateMode.REPLACE,
                        "etag": previous.etag,
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
            )
        old = previous.external_id if previous is not None else None
        if record.external_id != old:
            if record.external_id is not None:
                operations.append(
                    ("create", _key_entity(record.source_id, kind, record.external_id, record.object_id))
                )
            if old is not None:
                operations.append(("delete", _key_entity(record.source_id, kind, old, record.object_id)))
        await self._submit(operations, record, kind)

    async def _submit(
        self, operations: list[tuple[Any, ...]], record: PersonRecord, kind: RecordKind
    ) -> None:
        table = await self.store.table("hrrecords")
        try:
            await table.submit_transaction(operations)
        except TableTransactionError as exc:
            code = getattr(exc, "error_code", None)
            if code == "UpdateConditionNotSatisfied":
                raise PreconditionFailed(f"the {kind}'s source record changed meanwhile") from None
            if code == "EntityAlreadyExists":
                holder = await self.owner(record.source_id, kind, record.external_id or "")
                if holder is not None and holder != record.object_id:
                    raise Conflict(
                        f"externalId '{record.external_id}' already names another {kind} of this source",
                        field="externalId",
                        owner=holder,
                    ) from None
                raise PreconditionFailed(f"the {kind}'s source record was written meanwhile") from None
            if code == "ResourceNotFound":
                raise PreconditionFailed(f"the {kind}'s source record changed meanwhile") from None
            raise

    async def delete(self, record: PersonRecord, kind: RecordKind) -> None:
        operations: list[tuple[Any, ...]] = [
            ("delete", {"PartitionKey": record.source_id, "RowKey": f"{kind}|{record.object_id}"})
        ]
        if record.external_id is not None:
            operations.append(
                ("delete", _key_entity(record.source_id, kind, record.external_id, record.object_id))
            )
        await self._submit(operations, record, kind)

    async def remember(self, source_id: str, kind: RecordKind, external_id: str, object_id: str) -> None:
        """Point ``external_id`` at ``object_id`` (BambooHR's employee ids: an upsert, unconditionally)."""
        table = await self.store.table("hrrecords")
        await table.upsert_entity(
            _key_entity(source_id, kind, external_id, object_id), mode=UpdateMode.REPLACE
        )

    async def page(
        self, source_id: str, kind: RecordKind, skip: int, count: int
    ) -> tuple[list[PersonRecord], int]:
        """``count`` records after the first ``skip`` (in id order) and how many the source has in all."""
        table = await self.store.table("hrrecords")
        flt = f"PartitionKey eq {quote(source_id)} and RowKey ge {quote(kind + '|')} and RowKey lt {quote(kind + '}')}"
        keys = [str(e["RowKey"]) async for e in stream(table, flt, select=["RowKey"], page_size=PAGE)]
        chosen = keys[skip : skip + count]
        rows = await asyncio.gather(*(read(table, source_id, k) for k in chosen))
        return [record_from(r) for r in rows if r is not None], len(keys)

    async def all(self, source_id: str, kind: RecordKind) -> AsyncIterator[list[PersonRecord]]:
        """Every record of the kind, a page at a time."""
        table = await self.store.table("hrrecords")
        flt = f"PartitionKey eq {quote(source_id)} and RowKey ge {quote(kind + '|')} and RowKey lt {quote(kind + '}')}"
        batch: list[PersonRecord] = []
        async for e in stream(table, flt, page_size=PAGE):
            batch.append(record_from(e))
            if len(batch) >= PAGE:
                yield batch
                batch = []
        if batch:
            yield batch

    async def drop(self, source_id: str) -> None:
        table = await self.store.table("hrrecords")
        keys = [
            e["RowKey"] async for e in stream(table, f"PartitionKey eq {quote(source_id)}", select=["RowKey"])
        ]
        if keys:
            await delete_partition(table, source_id, keys[-1])
