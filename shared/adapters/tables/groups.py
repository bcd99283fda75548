"""Groups on Table Storage: one partition per group (PartitionKey = group id).

RowKey ``group`` is the group (with its member count); ``member|<userId>`` a member — the authoritative
membership, written in one transaction with the count; ``binding|<directoryId>`` the group's binding to a
directory and, once mirrored, its M365 group id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.adapters.tables.base import (
    TableStore,
    delete,
    delete_partition,
    from_text,
    give_lease,
    insert,
    insert_new,
    merge,
    page,
    prefix_range,
    quote,
    read,
    required_time,
    stream,
    take_lease,
    to_text,
    to_time,
)
from shared.domain.errors import ConcurrentUpdate
from shared.domain.model import Group, GroupBinding
from shared.service.ports import Page

GROUP = "group"
MEMBER = "member|"
BINDING = "binding|"
LEASE = "lease|"
COUNT_RETRIES = 20


def group_entity(group: Group, fields: Sequence[str] | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": group.id,
        "RowKey": GROUP,
        "UpdatedAt": to_time(group.updated_at),
    }
    every = fields is None
    names = set(fields or ())
    if every or "name" in names:
        entity["Name"] = group.name
    if every or "description" in names:
        entity["Description"] = to_text(group.description)
    if every:
        entity["MemberCount"] = group.member_count
        entity["CreatedAt"] = to_time(group.created_at)
    return entity


def group_from(entity: Any) -> Group:
    return Group(
        id=entity["PartitionKey"],
        name=entity["Name"],
        description=from_text(entity.get("Description")),
        member_count=int(entity.get("MemberCount", 0)),
        created_at=required_time(entity["CreatedAt"]),
        updated_at=required_time(entity["UpdatedAt"]),
    )


def binding_from(entity: Any) -> GroupBinding:
    return GroupBinding(
        group_id=entity["PartitionKey"],
        directory_id=entity["RowKey"][len(BINDING) :],
        at=required_time(entity["At"]),
        m365_group_id=from_text(entity.get("M365GroupId")),
        status=entity.get("Status", "pending"),
        origin=from_text(entity.get("Origin")),
        adopt=bool(entity.get("Adopt", False)),
        reason=from_text(entity.get("Reason")),
    )


def binding_entity(binding: GroupBinding) -> dict[str, Any]:
    return {
        "PartitionKey": binding.group_id,
        "RowKey": BINDING + binding.directory_id,
        "At": to_time(binding.at),
        "M365GroupId": to_text(binding.m365_group_id),
        "Status": binding.status,
        "Origin": to_text(binding.origin),
        "Adopt": binding.adopt,
        "Reason": to_text(binding.reason),
    }


class TableGroups:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, group: Group) -> str:
        return await insert_new(await self.store.table("groups"), group_entity(group), "group")

    async def get(self, group_id: str) -> tuple[Group, str] | None:
        table = await self.store.table("groups")
        row = await read(table, group_id, GROUP)
        return (group_from(row), str(row.metadata["etag"])) if row is not None else None

    async def update(self, group: Group, changed: Sequence[str], etag: str | None) -> str:
        table = await self.store.table("groups")
        return await merge(table, group_entity(group, changed), etag)

    async def delete(self, group_id: str) -> None:
        await delete_partition(await self.store.table("groups"), group_id, GROUP)

    async def page(self, cursor: str | None, limit: int) -> Page[Group]:
        table = await self.store.table("groups")
        rows, nxt = await page(table, f"RowKey eq {quote(GROUP)}", "groups", cursor, limit)
        return Page([group_from(r) for r in rows], nxt)

    async def _change_membership(self, group_id: str, user_id: str, at: dt.datetime | None) -> bool:
        """Add (``at`` given) or remove a member and move the count, in one transaction."""
        add = at is not None
        table = await self.store.table("groups")
        member = {"PartitionKey": group_id, "RowKey": MEMBER + user_id, "At": to_time(at)}
        for _ in range(COUNT_RETRIES):
            row = await read(table, group_id, GROUP)
            if row is None:
                return False
            exists = await read(table, group_id, member["RowKey"]) is not None
            if exists == add:
                return False
            count = int(row.get("MemberCount", 0)) + (1 if add else -1)
            ops: list[tuple[Any, ...]] = [
                ("create", member) if add else ("delete", member),
                (
                    "update",
                    {"PartitionKey": group_id, "RowKey": GROUP, "MemberCount": max(0, count)},
                    {
                        "mode": UpdateMode.MERGE,
                        "etag": row.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                ),
            ]
            try:
                await table.submit_transaction(ops)
            except TableTransactionError:
                continue  # the count moved or the member came or went meanwhile: read again
            return True
        raise ConcurrentUpdate("the group's membership kept changing; try again")

    async def add_member(self, group_id: str, user_id: str, at: dt.datetime) -> bool:
        return await self._change_membership(group_id, user_id, at)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        return await self._change_membership(group_id, user_id, None)

    async def members(self, group_id: str) -> list[str]:
        table = await self.store.table("groups")
        flt = f"PartitionKey eq {quote(group_id)} and {prefix_range(MEMBER)}"
        return [r["RowKey"][len(MEMBER) :] async for r in stream(table, flt, select=["RowKey"])]

    async def bindings(self, group_id: str) -> list[GroupBinding]:
        table = await self.store.table("groups")
        flt = f"PartitionKey eq {quote(group_id)} and {prefix_range(BINDING)}"
        return [binding_from(r) async for r in stream(table, flt)]

    async def bindings_of(self, group_ids: Sequence[str]) -> dict[str, list[GroupBinding]]:
        ids = list(dict.fromkeys(group_ids))
        found = await asyncio.gather(*(self.bindings(g) for g in ids))
        return dict(zip(ids, found, strict=True))

    async def set_binding(self, binding: GroupBinding) -> bool:
        table = await self.store.table("groups")
        return (
            await insert(table, binding_entity(binding)) is not None
        )  # an existing binding is left as it is

    async def save_binding(self, binding: GroupBinding) -> None:
        """Record what mirroring the group did (its M365 group, status, origin), if it is still bound."""
        table = await self.store.table("groups")
        with contextlib.suppress(ResourceNotFoundError):
            await table.update_entity(binding_entity(binding), mode=UpdateMode.MERGE)

    async def lease(
        self, group_id: str, directory_id: str, holder: str, until: dt.datetime, now: dt.datetime
    ) -> str | None:
        table = await self.store.table("groups")
        return await take_lease(table, group_id, LEASE + directory_id, holder, until, now)

    async def release(self, group_id: str, directory_id: str, holder: str, token: str | None = None) -> None:
        table = await self.store.table("groups")
        await give_lease(table, group_id, LEASE + directory_id, holder, token)

    async def remove_binding(self, group_id: str, directory_id: str) -> bool:
        table = await self.store.table("groups")
        existed = await read(table, group_id, BINDING + directory_id) is not None
        await delete(table, group_id, BINDING + directory_id)
        return existed
