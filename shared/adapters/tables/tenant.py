"""What Warden keeps of a tenant's own settings, in the directory's partition of the ``directories`` table (so that
deactivating a directory, which drops its partition, drops them too):

- ``protected|<m365UserId>``: a protected account (rule 23): ``Roles`` (JSON list, as described), ``MarkedBy`` /
  ``MarkedAt`` when an admin marked it, ``UserPrincipalName``; ``state|roles.read``: when the role holders were last
  read and whether they could be (``Readable``, ``Detail``);
- ``federation|<domain>``: the federation Warden set on the domain (``Settings``: Graph's property names, JSON);
- ``password|<domain>``: the domain's ``passwordValidityPeriodInDays`` before ``passwordNeverExpires`` (``Days``).

"Which of these accounts are protected" is one query of the partition naming the rows it wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.data.tables import UpdateMode

from shared.adapters.tables.base import (
    TableStore,
    delete,
    from_json,
    from_text,
    from_time,
    prefix_range,
    quote,
    read,
    required_time,
    stream,
    to_json,
    to_text,
    to_time,
    transact,
)
from shared.domain.federation import FederationSettings
from shared.domain.protection import ProtectedAccount, Protection
from shared.service.ports import RolesRead

PROTECTED = "protected|"
FEDERATION = "federation|"
PASSWORD = "password|"
ROLES_READ = "state|roles.read"
LOOKUP_CHUNK = 14
"""Row keys named in one query: Table Storage permits at most 15 comparisons in a ``$filter`` (the partition's is the
fifteenth; learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities)."""
LOOKUP_QUERIES = 3
"""Beyond this many queries' worth of ids, the partition's protected rows are read whole instead."""


def _protected(e: Any) -> ProtectedAccount:
    return ProtectedAccount(
        directory_id=e["PartitionKey"],
        m365_user_id=e["RowKey"][len(PROTECTED) :],
        roles=tuple(from_json(e.get("Roles"), [])),
        marked_by=from_text(e.get("MarkedBy")),
        marked_at=from_time(e.get("MarkedAt")),
        user_principal_name=from_text(e.get("UserPrincipalName")),
    )


class TableProtectedAccounts:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def all(self, directory_id: str) -> dict[str, ProtectedAccount]:
        table = await self.store.table("directories")
        flt = f"PartitionKey eq {quote(directory_id)} and {prefix_range(PROTECTED)}"
        rows = [_protected(e) async for e in stream(table, flt)]
        return {r.m365_user_id: r for r in rows}

    async def whole(self, directory_id: str) -> Protection:
        rows, read_at = await self.all(directory_id), await self.roles_read(directory_id)
        why = {i: r.why for i, r in rows.items() if r.protected}
        return Protection(why, read_at is not None and read_at.readable)

    async def lookup(self, directory_id: str, m365_user_ids: Sequence[str]) -> Protection:
        ids = list(dict.fromkeys(m365_user_ids))
        if len(ids) > LOOKUP_CHUNK * LOOKUP_QUERIES:
            whole = await self.whole(directory_id)
            asked = set(ids)
            return Protection({i: w for i, w in whole.why.items() if i in asked}, whole.roles_readable)
        table = await self.store.table("directories")
        keys = [ROLES_READ, *(PROTECTED + i for i in ids)]
        why: dict[str, tuple[str, ...]] = {}
        readable = False
        for start in range(0, len(keys), LOOKUP_CHUNK):
            wanted = " or ".join(f"RowKey eq {quote(k)}" for k in keys[start : start + LOOKUP_CHUNK])
            async for e in stream(table, f"PartitionKey eq {quote(directory_id)} and ({wanted})"):
                if e["RowKey"] == ROLES_READ:
                    readable = bool(e.get("Readable"))
                else:
                    row = _protected(e)
                    if row.protected:
                        why[row.m365_user_id] = row.why
        return Protection(why, readable)

    async def put(self, rows: Sequence[ProtectedAccount]) -> None:
        table = await self.store.table("directories")
        by_directory: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            entity = {
                "PartitionKey": r.directory_id,
                "RowKey": PROTECTED + r.m365_user_id,
                "Roles": to_json(list(r.roles)),
                "MarkedBy": to_text(r.marked_by),
                "MarkedAt": to_time(r.marked_at),
                "UserPrincipalName": to_text(r.user_principal_name),
            }
            by_directory.setdefault(r.directory_id, []).append(
                ("upsert", entity, {"mode": UpdateMode.REPLACE})
            )
        for operations in by_directory.values():
            await transact(table, operations)

    async def drop(self, directory_id: str, m365_user_ids: Sequence[str]) -> None:
        table = await self.store.table("directories")
        for m365_id in m365_user_ids:
            await delete(table, directory_id, PROTECTED + m365_id)

    async def roles_read(self, directory_id: str) -> RolesRead | None:
        table = await self.store.table("directories")
        row = await read(table, directory_id, ROLES_READ)
        if row is None:
            return None
        return RolesRead(required_time(row["At"]), bool(row.get("Readable")), from_text(row.get("Detail")))

    async def set_roles_read(self, directory_id: str, read_at: RolesRead) -> None:
        table = await self.store.table("directories")
        await table.upsert_entity(
            {
                "PartitionKey": directory_id,
                "RowKey": ROLES_READ,
                "At": to_time(read_at.at),
                "Readable": read_at.readable,
                "Detail": to_text(read_at.detail),
            }
        )


class TableManagedSettings:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def _rows(self, directory_id: str, prefix: str) -> list[Any]:
        table = await self.store.table("directories")
        flt = f"PartitionKey eq {quote(directory_id)} and {prefix_range(prefix)}"
        return [e async for e in stream(table, flt)]

    async def federations(self, directory_id: str) -> dict[str, FederationSettings]:
        return {
            e["RowKey"][len(FEDERATION) :]: FederationSettings.from_document(from_json(e.get("Settings"), {}))
            for e in await self._rows(directory_id, FEDERATION)
        }

    async def save_federation(self, directory_id: str, domain: str, settings: FederationSettings) -> None:
        table = await self.store.table("directories")
        await table.upsert_entity(
            {
                "PartitionKey": directory_id,
                "RowKey": FEDERATION + domain.lower(),
                "Settings": to_json(settings.document()),
            },
            mode=UpdateMode.REPLACE,
        )

    async def drop_federation(self, directory_id: str, domain: str) -> None:
        await delete(await self.store.table("directories"), directory_id, FEDERATION + domain.lower())

    async def password_previous(self, directory_id: str) -> dict[str, int]:
        return {
            e["RowKey"][len(PASSWORD) :]: int(e["Days"]) for e in await self._rows(directory_id, PASSWORD)
        }

    async def remember_password(self, directory_id: str, domain: str, days: int) -> None:
        table = await self.store.table("directories")
        await table.upsert_entity(
            {"PartitionKey": directory_id, "RowKey": PASSWORD + domain.lower(), "Days": int(days)}
        )

    async def forget_password(self, directory_id: str, domain: str) -> None:
        await delete(await self.store.table("directories"), directory_id, PASSWORD + domain.lower())
