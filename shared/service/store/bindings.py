"""Effective bindings: what a user is bound to (directly and through groups), and the directory index that
answers the same question from the directory's side.

The index rows of a user are always recomputed from its partition and its groups' bindings — never patched
one change at a time — so a refresh after any change (or a retry after a crash halfway) converges them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence

from shared.domain.model import UserDirectory, effective_directories
from shared.service.ports import (
    DirectoryIndex,
    DirectoryRepository,
    GroupRepository,
    IndexEntry,
    UserRecord,
    UserRepository,
)

REFRESH_CONCURRENCY = 16


class Bindings:
    def __init__(
        self,
        users: UserRepository,
        groups: GroupRepository,
        directories: DirectoryRepository,
        index: DirectoryIndex,
    ) -> None:
        self.users = users
        self.groups = groups
        self.directories = directories
        self.index = index

    async def effective(self, record: UserRecord) -> list[UserDirectory]:
        bindings = await self.groups.bindings_of(sorted(record.groups))
        through_groups = {g: frozenset(b.directory_id for b in bs) for g, bs in bindings.items()}
        return effective_directories(record.user.id, record.direct, through_groups, record.links)

    async def effective_many(self, records: Sequence[UserRecord]) -> list[list[UserDirectory]]:
        """``effective`` of each record, the bindings of their groups read once for all of them."""
        groups = sorted({g for r in records for g in r.groups})
        bindings = await self.groups.bindings_of(groups) if groups else {}
        through = {g: frozenset(b.directory_id for b in bs) for g, bs in bindings.items()}
        return [
            effective_directories(
                r.user.id, r.direct, {g: through[g] for g in r.groups if g in through}, r.links
            )
            for r in records
        ]

    async def mirrors_of(
        self, group_ids: Iterable[str], directory_ids: Collection[str]
    ) -> list[tuple[str, str]]:
        """(group, directory) for each of the groups mirrored into one of the directories."""
        bindings = await self.groups.bindings_of(sorted(group_ids))
        return [
            (g, b.directory_id) for g, bs in bindings.items() for b in bs if b.directory_id in directory_ids
        ]

    async def refresh(
        self, user_id: str, known: Sequence[str] | None = None, *, record: UserRecord | None = None
    ) -> None:
        """Rewrite the user's index rows from its partition: one per directory it is bound to or linked in,
        none elsewhere. ``known`` (the directories' ids) is listed here unless the caller has listed it;
        ``record``: the partition as the caller has just read or written it (else it is read here)."""
        if record is None:
            record = await self.users.get(user_id)
        if known is None:
            known = [d.id for d in await self.directories.all()]
        if record is None or (record.user.deleted_at is not None and not record.links):
            await asyncio.gather(*(self.index.remove(d, [user_id]) for d in known))
            return
        wanted = await self.effective(record)
        entries = [
            IndexEntry(
                d.directory_id, user_id, d.via, d.link.status, d.link.m365_user_id, record.user, d.link
            )
            for d in wanted
            if d.directory_id in known
        ]
        await self.index.put(entries)
        keep = {e.directory_id for e in entries}
        await asyncio.gather(*(self.index.remove(d, [user_id]) for d in known if d not in keep))

    async def project(
        self, records: Iterable[tuple[UserRecord, Sequence[UserDirectory]]], known: Collection[str]
    ) -> None:
        """Write the index rows of users the caller has just read and written (each with its effective
        directories, as computed from what it holds), reading nothing: for runs that change links but no
        binding (a sync, a reconcile's chunk), whose users' rows are the same ones with new links. Rows of
        directories a user no longer relates to are the binding changes' to remove (``refresh``)."""
        entries = [
            IndexEntry(d.directory_id, r.user.id, d.via, d.link.status, d.link.m365_user_id, r.user, d.link)
            for r, effective in records
            for d in effective
            if d.directory_id in known
        ]
        if entries:
            await self.index.put(entries)

    async def refresh_many(self, user_ids: Iterable[str]) -> None:
        """``refresh`` for each user, the directories listed once for all of them (a reconcile chunk or a
        group's members: not one directory query per user)."""
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return
        known = [d.id for d in await self.directories.all()]
        gate = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(uid: str) -> None:
            async with gate:
                await self.refresh(uid, known)

        await asyncio.gather(*(one(u) for u in unique))
