"""Users on Table Storage: one partition per user (PartitionKey = user id).

RowKey ``user`` is the user; ``relations`` its direct bindings, its copy of its group memberships (the group's
partition holds the authoritative one) and its links, as JSON columns guarded by the row's ETag; ``lease`` the
sync lease; ``audit|<inverted ms>|<entry id>`` the audit entries about the user (``shared.adapters.tables.audit``),
each written in one transaction with the change it audits. Reading a user is two point reads side by side (the
user and its relations); deleting one leaves its audit entries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.adapters.tables.audit import USER_ROW, user_rows
from shared.adapters.tables.base import (
    TableStore,
    delete_partition,
    etag_of,
    from_json,
    from_text,
    from_time,
    give_lease,
    insert,
    insert_new,
    merge,
    page,
    prefix_range,
    quote,
    read,
    required_time,
    take_lease,
    to_json,
    to_text,
    to_time,
)
from shared.domain.errors import ConcurrentUpdate, Conflict, PreconditionFailed
from shared.domain.model import AuditEntry, Link, User
from shared.service.ports import Page, UserQuery, UserRecord

USER = "user"
LINK = "link|"
RELATIONS = "relations"
"""One row with the user's direct bindings, group memberships and links: with the user row, everything about the
user in two point reads (a point read is what Table Storage, and Azurite, answer fastest)."""
RELATIONS_RETRIES = 30
LEASE = "lease"
"""The user's sync lease: which run may sync the user now, and until when."""
NOT_AUDIT = f"RowKey ge {quote(USER_ROW[:-1] + '}')}"
"""Every row of a user's partition but its audit entries (``audit|…`` sorts before ``lease``, ``relations``,
``user``)."""

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


_FIELDS = tuple(_COLUMNS.items())


def user_from(entity: Any) -> User:
    get = entity.get
    values: dict[str, Any] = {}
    for name, column in _FIELDS:  # ``from_text`` inline: a directory's listing reads 100,000 of these
        value = get(column)
        values[name] = value if value.__class__ is str and value else None
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


def _candidates(text: Any) -> tuple[str, ...]:
    return () if text in (None, "", "[]") else tuple(from_json(text, []))


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
        candidates=_candidates(entity.get("Candidates")),
        last_sync_at=from_time(entity.get("LastSyncAt")),
        manager_m365_id=from_text(entity.get("ManagerM365Id")),
    )


@dataclass
class Relations:
    direct: dict[str, str] = field(default_factory=dict)
    """Directory id → when bound."""
    groups: dict[str, str] = field(default_factory=dict)
    """Group id → when joined."""
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Directory id → the link as its entity columns."""


def relations_from(row: Any) -> Relations:
    if row is None:
        return Relations()
    return Relations(
        from_json(row.get("Direct"), {}), from_json(row.get("Groups"), {}), from_json(row.get("Links"), {})
    )


def _record(user_row: Any, rels_row: Any) -> UserRecord:
    rels = relations_from(rels_row)
    return UserRecord(
        user=user_from(user_row),
        etag=str(user_row.metadata["etag"]),
        direct=frozenset(rels.direct),
        groups=frozenset(rels.groups),
        links={d: link_from(e) for d, e in rels.links.items()},
        version=etag_of(rels_row.metadata) if rels_row is not None else "",
    )


def _comparable(entity: dict[str, Any] | None) -> Link | None:
    return link_from(entity) if entity is not None else None


def relations_entity(user_id: str, rels: Relations) -> dict[str, Any]:
    return {
        "PartitionKey": user_id,
        "RowKey": RELATIONS,
        "Direct": to_json(rels.direct),
        "Groups": to_json(rels.groups),
        "Links": to_json(rels.links),
    }


def _transaction_error(exc: TableTransactionError, what: str) -> Exception:
    """A failed transaction as the domain sees it: the row changed since read, or it exists already."""
    code = getattr(exc, "error_code", None)
    if code == "UpdateConditionNotSatisfied":
        return PreconditionFailed("the resource changed since it was read (ETag mismatch)")
    if code == "EntityAlreadyExists":
        return Conflict(f"a {what} exists")
    return exc


class TableUsers:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, user: User, audit: Sequence[AuditEntry] = (), direct: Sequence[str] = ()) -> str:
        """Insert a new user bound directly to ``direct``, with the audit entries about it that ``audit`` holds, in
        one transaction."""
        table = await self.store.table("users")
        rows = user_rows(audit, user.id)
        if direct:
            bound = {d: to_time(user.created_at) for d in direct}
            rows.insert(0, relations_entity(user.id, Relations(direct=bound)))
        if not rows:
            return await insert_new(table, user_entity(user), "user")
        try:
            meta = await table.submit_transaction(
                [("create", user_entity(user)), *(("create", r) for r in rows)]
            )
        except TableTransactionError as exc:
            raise _transaction_error(exc, f"user with id {user.id}") from None
        return str(meta[0].get("etag", ""))

    async def get(self, user_id: str) -> UserRecord | None:
        """Two point reads, side by side: the user, and the row of its relations."""
        table = await self.store.table("users")
        user_row, rels_row = await asyncio.gather(read(table, user_id, USER), read(table, user_id, RELATIONS))
        if user_row is None:
            return None
        return _record(user_row, rels_row)

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        table = await self.store.table("users")

        async def one(uid: str) -> User | None:

            row = await read(table, uid, USER)
            return user_from(row) if row is not None else None

        found = await asyncio.gather(*(one(u) for u in dict.fromkeys(user_ids)))
        return {u.id: u for u in found if u is not None}

    async def lease(self, user_id: str, holder: str, until: dt.datetime, now: dt.datetime) -> str | None:
        return await take_lease(await self.store.table("users"), user_id, LEASE, holder, until, now)

    async def release(self, user_id: str, holder: str, token: str | None = None) -> None:
        await give_lease(await self.store.table("users"), user_id, LEASE, holder, token)

    async def update(
        self, user: User, changed: Sequence[str], etag: str | None, audit: Sequence[AuditEntry] = ()
    ) -> str:
        """Merge the ``changed`` fields (with ``etag``: only if the row is unchanged), with the audit entries
        about the user that ``audit`` holds, in one transaction; the user row's new ETag."""
        table = await self.store.table("users")
        entity = user_entity(user, changed)
        rows = user_rows(audit, user.id)
        if not rows:
            return await merge(table, entity, etag)
        options: dict[str, Any] = {"mode": UpdateMode.MERGE}
        if etag is not None:
            options |= {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            meta = await table.submit_transaction(
                [("update", entity, options), *(("create", r) for r in rows)]
            )
        except TableTransactionError as exc:
            raise _transaction_error(exc, "user") from None
        return str(meta[0].get("etag", ""))

    async def save_links(
        self, record: UserRecord, links: Sequence[Link], audit: Sequence[AuditEntry] = ()
    ) -> str:
        """The links, and the audit entries about the user that ``audit`` holds, in one transaction against the
        version ``record`` was read at (see ``UserRepository.save_links``)."""
        table = await self.store.table("users")
        user_id = record.user.id
        rows = user_rows(audit, user_id)
        version, current = record.version, {d: link_entity(x) for d, x in record.links.items()}
        wanted = {x.directory_id: link_entity(x) for x in links}
        for _ in range(RELATIONS_RETRIES):
            merged = {**current, **wanted}
            entity = {"PartitionKey": user_id, "RowKey": RELATIONS, "Links": to_json(merged)}
            if version:
                write: tuple[Any, ...] = (
                    "update",
                    entity,
                    {
                        "mode": UpdateMode.MERGE,
                        "etag": version,
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
            else:
                write = ("create", {**entity, "Direct": to_json({}), "Groups": to_json({})})
            try:
                meta = await table.submit_transaction([write, *(("create", r) for r in rows)])
            except TableTransactionError as exc:
                if getattr(exc, "error_code", None) not in (
                    "UpdateConditionNotSatisfied",
                    "EntityAlreadyExists",
                ):
                    raise
            else:
                return str(meta[0].get("etag", ""))
            # Someone wrote the relations since they were read: theirs are kept, unless they wrote these links.
            row = await read(table, user_id, RELATIONS)
            fresh = relations_from(row)
            for d in wanted:
                if _comparable(fresh.links.get(d)) != _comparable(current.get(d)):
                    raise ConcurrentUpdate(f"user {user_id}'s link in directory {d} was written meanwhile")
            version, current = (etag_of(row.metadata) if row is not None else ""), fresh.links
        raise ConcurrentUpdate(f"user {user_id}'s relations kept changing; try again")

    async def delete(self, user_id: str) -> None:
        """Remove the user's rows (user, relations, lease); its audit entries stay."""
        await delete_partition(await self.store.table("users"), user_id, USER, NOT_AUDIT)

    async def _change(self, user_id: str, change: Callable[[Relations], bool]) -> bool:
        """Apply ``change`` to the user's relations row, guarded by its ETag (retried when another writer moved
        it first); whether it changed anything."""
        table = await self.store.table("users")
        for _ in range(RELATIONS_RETRIES):
            row = await read(table, user_id, RELATIONS)
            rels = relations_from(row)
            if not change(rels):
                return False
            entity = relations_entity(user_id, rels)
            try:
                if row is None:
                    if await insert(table, entity) is None:
                        continue
                else:
                    await table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            return True
        raise ConcurrentUpdate(f"user {user_id}'s relations kept changing; try again")

    async def set_direct_binding(self, user_id: str, directory_id: str, bound: bool, at: dt.datetime) -> bool:
        def change(rels: Relations) -> bool:
            if (directory_id in rels.direct) == bound:
                return False
            if bound:
                rels.direct[directory_id] = to_time(at)
            else:
                rels.direct.pop(directory_id, None)
            return True

        return await self._change(user_id, change)

    async def set_membership(self, user_id: str, group_id: str, member: bool, at: dt.datetime) -> None:
        def change(rels: Relations) -> bool:
            if (group_id in rels.groups) == member:
                return False
            if member:
                rels.groups[group_id] = to_time(at)
            else:
                rels.groups.pop(group_id, None)
            return True

        await self._change(user_id, change)

    async def save_link(self, link: Link) -> None:
        entity = link_entity(link)

        def change(rels: Relations) -> bool:
            rels.links[link.directory_id] = entity
            return True

        await self._change(link.user_id, change)

    async def forget_directory(self, user_id: str, directory_id: str) -> bool:
        def change(rels: Relations) -> bool:
            bound = rels.direct.pop(directory_id, None) is not None
            linked = rels.links.pop(directory_id, None) is not None
            return bound or linked

        return await self._change(user_id, change)

    async def page(self, query: UserQuery, cursor: str | None, limit: int) -> Page[UserRecord]:
        table = await self.store.table("users")
        flt = f"RowKey eq {quote(USER)}"
        if query.state is not None:
            flt += f" and State eq {quote(query.state)}"
        if query.name:
            # A property filter: Table Storage pages through the users' rows and answers the matches (a page may
            # come back short, with a continuation). Comparisons are ordinal: the text as typed, or capitalised.
            variants = dict.fromkeys((query.name, query.name[:1].upper() + query.name[1:]))
            starts = [
                f"({prefix_range(v, column)})"
                for column in ("DisplayName", "FirstName", "LastName")
                for v in variants
            ]
            flt += f" and ({' or '.join(starts)})"
        rows, nxt = await page(table, flt, f"users:{query.state}:{query.name}", cursor, limit)
        relations = await asyncio.gather(*(read(table, r["PartitionKey"], RELATIONS) for r in rows))
        return Page([_record(r, rels) for r, rels in zip(rows, relations, strict=True)], nxt)
