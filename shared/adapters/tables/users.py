"""Users on Table Storage: one partition per user (PartitionKey = user id).

RowKey ``user`` is the user; ``binding|<directoryId>`` a direct binding; ``membership|<groupId>`` a group
membership (the user's copy; the group's partition holds the authoritative one); ``link|<directoryId>`` the
link. "Everything about user U" is one partition query; a binding and its link change in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.adapters.tables.base import (
    TableStore,
    delete,
    delete_partition,
    from_json,
    from_text,
    from_time,
    insert,
    insert_new,
    merge,
    page,
    quote,
    read,
    required_time,
    to_json,
    to_text,
    to_time,
)
from shared.domain.model import Link, User
from shared.service.ports import Page, UserQuery, UserRecord

USER = "user"
BINDING = "binding|"
MEMBERSHIP = "membership|"
LINK = "link|"
LEASE = "lease"
"""The user's sync lease: which run may sync the user now, and until when."""

_COLUMNS = {
    "username": "Username",
    "email": "Email",
    "first_name": "FirstName",
    "last_name": "LastName",
    "display_name": "DisplayName",
    "alternate_email": "AlternateEmail",
    "employee_id": "EmployeeId",
    "job_title": "JobTitle",
    "department": "Department",
    "manager_id": "ManagerId",
    "state": "State",
    "start_at": "StartAt",
    "end_at": "EndAt",
    "time_zone": "TimeZone",
    "source": "Source",
}


def user_entity(user: User, fields: Sequence[str] | None = None) -> dict[str, Any]:
    names = _COLUMNS if fields is None else [f for f in fields if f in _COLUMNS]
    entity: dict[str, Any] = {"PartitionKey": user.id, "RowKey": USER, "UpdatedAt": to_time(user.updated_at)}
    for name in names:
        entity[_COLUMNS[name]] = to_text(getattr(user, name))
    if fields is None:
        entity["CreatedAt"] = to_time(user.created_at)
    if fields is None or "deleted_at" in fields:
        entity["DeletedAt"] = to_time(user.deleted_at)
    if fields is None or "hr_event_at" in fields:
        entity["HrEventAt"] = to_time(user.hr_event_at)
    return entity


def user_from(entity: Any) -> User:
    values: dict[str, Any] = {name: from_text(entity.get(column)) for name, column in _COLUMNS.items()}
    return User(
        id=entity["PartitionKey"],
        created_at=required_time(entity.get("CreatedAt")),
        updated_at=required_time(entity.get("UpdatedAt")),
        deleted_at=from_time(entity.get("DeletedAt")),
        hr_event_at=from_time(entity.get("HrEventAt")),
        **values,
    )


def link_entity(link: Link) -> dict[str, Any]:
    return {
        "PartitionKey": link.user_id,
        "RowKey": LINK + link.directory_id,
        "Status": link.status,
        "M365UserId": to_text(link.m365_user_id),
        "ImmutableId": to_text(link.immutable_id),
        "Origin": to_text(link.origin),
        "Fingerprint": to_text(link.fingerprint),
        "Reason": to_text(link.reason),
        "Candidates": to_json(list(link.candidates)),
        "LastSyncAt": to_time(link.last_sync_at),
        "ManagerM365Id": to_text(link.manager_m365_id),
    }


def link_from(entity: Any) -> Link:
    return Link(
        user_id=entity["PartitionKey"],
        directory_id=entity["RowKey"][len(LINK) :],
        status=entity.get("Status", "pending"),
        m365_user_id=from_text(entity.get("M365UserId")),
        immutable_id=from_text(entity.get("ImmutableId")),
        origin=from_text(entity.get("Origin")),  # type: ignore[arg-type]
        fingerprint=from_text(entity.get("Fingerprint")),
        reason=from_text(entity.get("Reason")),
        candidates=tuple(from_json(entity.get("Candidates"), [])),
        last_sync_at=from_time(entity.get("LastSyncAt")),
        manager_m365_id=from_text(entity.get("ManagerM365Id")),
    )


class TableUsers:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, user: User) -> str:
        return await insert_new(await self.store.table("users"), user_entity(user), "user")

    async def get(self, user_id: str) -> UserRecord | None:
        table = await self.store.table("users")
        rows = [e async for e in table.query_entities(f"PartitionKey eq {quote(user_id)}")]
        user_row = next((r for r in rows if r["RowKey"] == USER), None)
        if user_row is None:
            return None
        keys = [r["RowKey"] for r in rows]
        return UserRecord(
            user=user_from(user_row),
            etag=str(user_row.metadata["etag"]),
            direct=frozenset(k[len(BINDING) :] for k in keys if k.startswith(BINDING)),
            groups=frozenset(k[len(MEMBERSHIP) :] for k in keys if k.startswith(MEMBERSHIP)),
            links={
                link.directory_id: link
                for link in (link_from(r) for r in rows if r["RowKey"].startswith(LINK))
            },
        )

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        table = await self.store.table("users")

        async def one(uid: str) -> User | None:

            row = await read(table, uid, USER)
            return user_from(row) if row is not None else None

        found = await asyncio.gather(*(one(u) for u in dict.fromkeys(user_ids)))
        return {u.id: u for u in found if u is not None}

    async def lease(self, user_id: str, holder: str, until: dt.datetime, now: dt.datetime) -> bool:
        table = await self.store.table("users")
        entity = {"PartitionKey": user_id, "RowKey": LEASE, "Holder": holder, "Until": to_time(until)}
        if await insert(table, entity) is not None:
            return True
        current = await read(table, user_id, LEASE)
        if current is None:
            return await insert(table, entity) is not None
        held_until = from_time(current.get("Until"))
        if current.get("Holder") != holder and held_until is not None and held_until > now:
            return False
        try:
            await table.update_entity(
                entity, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def release(self, user_id: str, holder: str) -> None:
        table = await self.store.table("users")
        current = await read(table, user_id, LEASE)
        if current is None or current.get("Holder") != holder:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await table.delete_entity(
                user_id, LEASE, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )

    async def update(self, user: User, changed: Sequence[str], etag: str | None) -> str:
        table = await self.store.table("users")
        return await merge(table, user_entity(user, changed), etag)

    async def delete(self, user_id: str) -> None:
        await delete_partition(await self.store.table("users"), user_id, USER)

    async def set_direct_binding(self, user_id: str, directory_id: str, bound: bool, at: dt.datetime) -> bool:
        table = await self.store.table("users")
        key = BINDING + directory_id
        if bound:
            return (
                await insert(table, {"PartitionKey": user_id, "RowKey": key, "At": to_time(at)}) is not None
            )

        existed = await read(table, user_id, key) is not None
        await delete(table, user_id, key)
        return existed

    async def set_membership(self, user_id: str, group_id: str, member: bool, at: dt.datetime) -> None:
        table = await self.store.table("users")
        key = MEMBERSHIP + group_id
        if member:
            await table.upsert_entity({"PartitionKey": user_id, "RowKey": key, "At": to_time(at)})
        else:
            await delete(table, user_id, key)

    async def save_link(self, link: Link) -> None:
        table = await self.store.table("users")
        await table.upsert_entity(link_entity(link))

    async def delete_link(self, user_id: str, directory_id: str) -> None:
        table = await self.store.table("users")
        await delete(table, user_id, LINK + directory_id)

    async def page(self, query: UserQuery, cursor: str | None, limit: int) -> Page[User]:
        table = await self.store.table("users")
        flt = f"RowKey eq {quote(USER)}"
        if query.state is not None:
            flt += f" and State eq {quote(query.state)}"
        rows, nxt = await page(table, flt, f"users:{query.state}", cursor, limit)
        return Page([user_from(r) for r in rows], nxt)
