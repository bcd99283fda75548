"""What every Table Storage repository shares: the service client, table names, errors and encodings.

Tables are created once per process, on first use. Azure's errors become the domain's: an ETag mismatch is
``PreconditionFailed``; an insert of an existing key is reported to the caller as ``False``/``None`` where the
repository's contract says so. Values: strings (``""`` stands for "not set", as a merge cannot delete a
property), ISO-8601 UTC times, JSON for lists and objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.data.tables import TableTransactionError, UpdateMode

from shared.domain.errors import ConcurrentUpdate, Conflict, PreconditionFailed
from shared.service.paging import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient, TableServiceClient

TABLES = (
    "users",
    "groups",
    "directories",
    "dirindex",
    "uniques",
    "audit",
    "receipts",
    "runs",
    "runitems",
    "dates",
    "imports",
    "deferred",
    "hrsources",
    "hrrecords",
    "sessions",
    "discovery",
)
TRANSACTION_LIMIT = 100
"""Table Storage's entity group transactions: at most 100 operations, one partition."""


class TableStore:
    """The storage account's tables for one prefix, created on first use."""

    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self.service = service
        self.prefix = prefix
        self._clients = {name: service.get_table_client(prefix + name) for name in TABLES}
        self._ready: asyncio.Task[None] | None = None

    async def table(self, name: str) -> TableClient:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._create_all())
        await asyncio.shield(self._ready)
        return self._clients[name]

    async def _create_all(self) -> None:
        async def create(client: TableClient) -> None:
            with contextlib.suppress(ResourceExistsError):
                await client.create_table()

        try:
            await asyncio.gather(*(create(c) for c in self._clients.values()))
        except BaseException:
            self._ready = None  # let the next caller try again
            raise

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()


def to_text(value: str | None) -> str:
    return "" if value is None else value


def from_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def to_time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_time(value: Any) -> dt.datetime | None:
    text = from_text(value)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def required_time(value: Any) -> dt.datetime:
    parsed = from_time(value)
    if parsed is None:
        raise ValueError("a stored time is missing")
    return parsed


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def from_json(value: Any, default: Any = None) -> Any:
    text = from_text(value)
    return json.loads(text) if text else default


def etag_of(entity: Mapping[str, Any]) -> str:
    metadata = getattr(entity, "metadata", None) or entity
    return str(metadata.get("etag", ""))


def quote(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def prefix_range(prefix: str, column: str = "RowKey") -> str:
    """A filter for every ``column`` value (RowKey unless told) starting with ``prefix``: from it to the same text
    with its last character's successor (``|`` separates keys; ``}`` sorts after it)."""
    return f"{column} ge {quote(prefix)} and {column} lt {quote(prefix[:-1] + chr(ord(prefix[-1]) + 1))}"


async def insert(table: TableClient, entity: Mapping[str, Any]) -> str | None:
    """Insert; the new ETag, or None when the key exists."""
    try:
        meta = await table.create_entity(entity)
    except ResourceExistsError:
        return None
    return str(meta.get("etag", ""))


async def _write(table: TableClient, entity: Mapping[str, Any], etag: str | None, mode: UpdateMode) -> str:
    """``mode``: MERGE updates an existing row, REPLACE writes the whole row (created when missing); with
    ``etag``, only if the row is unchanged (``ResourceModifiedError`` otherwise). The new ETag."""
    if etag is None:
        write = table.update_entity if mode == UpdateMode.MERGE else table.upsert_entity
        meta = await write(entity, mode=mode)
    else:
        meta = await table.update_entity(
            entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    return str(meta.get("etag", ""))


async def merge(table: TableClient, entity: Mapping[str, Any], etag: str | None) -> str:
    """Merge the given properties into an existing row; with ``etag``, only if it is unchanged."""
    try:
        return await _write(table, entity, etag, UpdateMode.MERGE)
    except ResourceModifiedError:
        raise PreconditionFailed("the resource changed since it was read (ETag mismatch)") from None


async def replace(table: TableClient, entity: Mapping[str, Any], etag: str | None, what: str) -> str:
    """Write the whole row; with ``etag``, only if it is unchanged, else ``ConcurrentUpdate`` naming ``what``."""
    try:
        return await _write(table, entity, etag, UpdateMode.REPLACE)
    except ResourceModifiedError:
        raise ConcurrentUpdate(f"{what} changed meanwhile") from None


async def read(table: TableClient, pk: str, rk: str) -> Any | None:
    try:
        return await table.get_entity(pk, rk)
    except ResourceNotFoundError:
        return None


async def delete(table: TableClient, pk: str, rk: str) -> None:
    """Delete a row; a missing row is not an error (the SDK reports it as success)."""
    await table.delete_entity(pk, rk)


async def query(
    table: TableClient, flt: str, *, select: Sequence[str] | None = None, page_size: int = 1000
) -> list[Any]:
    return [
        e
        async for e in table.query_entities(
            flt, results_per_page=page_size, select=list(select) if select else None
        )
    ]


async def stream(
    table: TableClient, flt: str, *, select: Sequence[str] | None = None, page_size: int = 1000
) -> AsyncIterator[Any]:
    async for e in table.query_entities(
        flt, results_per_page=page_size, select=list(select) if select else None
    ):
        yield e


async def string_pages(
    table: TableClient, flt: str, select: Sequence[str], *, page_size: int = 1000
) -> AsyncIterator[list[dict[str, str]]]:
    """The rows ``flt`` selects, a page (one request) at a time, as Table Storage's JSON: for columns that are all
    strings, which need no type annotations (``odata=nometadata``). ``query_entities`` walks every property of
    every row through the SDK's generic deserializer and builds a ``TableEntity`` of it, four times the CPU of
    parsing the page: on a directory's 100,000 index rows, seconds during which the event loop serves nothing
    else. Sent through the SDK's own pipeline (its authentication, retries and transport) with the generated
    client's ``send_request``; parsed with pydantic-core's JSON parser, three times the standard library's speed
    (imported here: the store's other reads, on a cold start's path, do without it)."""
    from pydantic_core import from_json as parse_json

    params = {"$filter": flt, "$select": ",".join(select), "$top": str(page_size)}
    headers = {
        "Accept": "application/json;odata=nometadata",
        "DataServiceVersion": "3.0",
        "x-ms-version": table.api_version,
    }
    while True:
        request = HttpRequest("GET", f"/{table.table_name}()", params=params, headers=headers)
        # Streamed: else the pipeline parses the JSON too, into a context nothing reads here.
        response = await table._client.send_request(request, stream=True)
        try:
            body = await response.read()
        finally:
            await response.close()
        if response.status_code != 200:
            map_error(response.status_code, response, {404: ResourceNotFoundError})
            response.raise_for_status()
        rows: list[dict[str, str]] = parse_json(body)["value"]
        yield rows
        next_pk = response.headers.get("x-ms-continuation-NextPartitionKey")
        next_rk = response.headers.get("x-ms-continuation-NextRowKey")
        if not next_pk and not next_rk:
            return
        params = {**params, "NextPartitionKey": next_pk or "", "NextRowKey": next_rk or ""}


async def page(
    table: TableClient, flt: str, scope: str, cursor: str | None, limit: int, *, max_round_trips: int = 20
) -> tuple[list[Any], str | None]:
    """One page of at most ``limit`` rows and the cursor after it. Table Storage may answer a page with
    fewer rows (even none) and a continuation; this keeps reading, within ``max_round_trips``, until it has
    something or there is nothing left."""
    token = decode_cursor(scope, cursor)
    rows: list[Any] = []
    for _ in range(max_round_trips):
        pages: Any = table.query_entities(flt, results_per_page=limit - len(rows)).by_page(
            continuation_token=token
        )
        async for batch in pages:
            rows.extend([e async for e in batch])
            break
        token = pages.continuation_token
        if rows or token is None:
            break
    return rows, (encode_cursor(scope, token) if token is not None else None)


async def _alone(table: TableClient, operation: tuple[Any, ...]) -> None:
    """One operation of a transaction made as a plain request: a one-entity transaction is as atomic, and costs
    the SDK a multipart request and response (several times a plain request's CPU)."""
    kind, entity, *rest = operation
    options: dict[str, Any] = rest[0] if rest else {}
    try:
        if kind == "upsert":
            await table.upsert_entity(entity, mode=options.get("mode", UpdateMode.MERGE))
        elif kind == "create":
            await table.create_entity(entity)
        elif kind == "delete":
            await table.delete_entity(entity["PartitionKey"], entity["RowKey"], **options)
        else:
            await table.update_entity(entity, **options)
    except ResourceModifiedError:
        raise PreconditionFailed("the resource changed since it was read (ETag mismatch)") from None


async def transact(table: TableClient, operations: Sequence[tuple[Any, ...]]) -> None:
    """Submit same-partition operations in transactions of at most 100 (each chunk atomic); one operation alone
    is sent as a plain request."""
    if len(operations) == 1 and operations[0][0] in ("upsert", "create", "delete", "update"):
        await _alone(table, operations[0])
        return
    for start in range(0, len(operations), TRANSACTION_LIMIT):
        chunk = list(operations[start : start + TRANSACTION_LIMIT])
        try:
            await table.submit_transaction(chunk)
        except TableTransactionError as exc:
            if getattr(exc, "error_code", None) == "UpdateConditionNotSatisfied":
                raise PreconditionFailed("the resource changed since it was read (ETag mismatch)") from None
            raise


async def insert_new(table: TableClient, entity: Mapping[str, Any], what: str) -> str:
    """Insert a row that must not exist yet; the new ETag. An existing key is a ``Conflict``."""
    etag = await insert(table, entity)
    if etag is None:
        raise Conflict(f"a {what} with id {entity['PartitionKey']} exists")
    return etag


DELETE_ATTEMPTS = 5


async def delete_partition(table: TableClient, pk: str, last: str, rows: str | None = None) -> None:
    """Delete every row of a partition (``rows``: those this RowKey filter selects), ``last`` in the final
    transaction: until it goes the entity still reads as existing, and a retry after a crash halfway finds and
    deletes the rest.

    A row that goes between the listing and the delete (another writer's lease, given up) fails the transaction
    with ResourceNotFound: the partition is listed again and the delete retried."""
    flt = f"PartitionKey eq {quote(pk)}" + (f" and {rows}" if rows else "")
    for attempt in range(DELETE_ATTEMPTS):
        keys = [r["RowKey"] async for r in stream(table, flt, select=["RowKey"])]
        keys.sort(key=lambda k: k == last)
        try:
            await transact(table, [("delete", {"PartitionKey": pk, "RowKey": k}) for k in keys])
        except TableTransactionError as exc:
            if getattr(exc, "error_code", None) != "ResourceNotFound" or attempt == DELETE_ATTEMPTS - 1:
                raise
            continue
        return


async def take_lease(
    table: TableClient, pk: str, rk: str, holder: str, until: dt.datetime, now: dt.datetime
) -> str | None:
    """Hold the lease row ``rk`` until ``until`` unless another holder's lease is unexpired (one run at a time).
    The lease row's ETag (the token ``give_lease`` gives it back with), or None when someone else holds it."""
    entity = {"PartitionKey": pk, "RowKey": rk, "Holder": holder, "Until": to_time(until)}
    etag = await insert(table, entity)
    if etag is not None:
        return etag
    current = await read(table, pk, rk)
    if current is None:
        return await insert(table, entity)
    held_until = from_time(current.get("Until"))
    if current.get("Holder") != holder and held_until is not None and held_until > now:
        return None
    try:
        meta = await table.update_entity(
            entity, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    return str(meta.get("etag", ""))


async def give_lease(table: TableClient, pk: str, rk: str, holder: str, token: str | None = None) -> None:
    """Give the lease back if ``holder`` still has it: with the ``token`` ``take_lease`` returned, one conditional
    delete (a lease that expired and was taken over since has another ETag and stays); without, read first."""
    if token:
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await table.delete_entity(pk, rk, etag=token, match_condition=MatchConditions.IfNotModified)
        return
    current = await read(table, pk, rk)
    if current is None or current.get("Holder") != holder:
        return
    with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
        await table.delete_entity(
            pk, rk, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
