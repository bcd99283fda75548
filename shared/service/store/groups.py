"""Use cases on groups: create, read, list, rename, delete, members, and bindings to directories.

A group bound to a directory binds its members there (JumpCloud's "Provisioning - Office 365" group); the
members' index rows are refreshed after every change of membership or binding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.domain.errors import NotFound, PreconditionFailed
from shared.domain.model import Group, GroupBinding
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    Clock,
    DirectoryRepository,
    GroupQueue,
    GroupRepository,
    Ids,
    Page,
    SyncQueue,
    Uniques,
    UserRepository,
)
from shared.service.store.bindings import Bindings
from shared.service.store.uniqueness import Claims

NAME = "groupName"


@dataclass(frozen=True)
class GroupView:
    group: Group
    etag: str
    bindings: tuple[GroupBinding, ...]


class Groups:
    def __init__(
        self,
        groups: GroupRepository,
        users: UserRepository,
        directories: DirectoryRepository,
        uniques: Uniques,
        bindings: Bindings,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        sync: SyncQueue,
        mirrors: GroupQueue,
        *,
        real_clock: Clock | None = None,
    ) -> None:
        self.sync = sync
        self.mirrors = mirrors
        self.groups = groups
        self.users = users
        self.directories = directories
        self.bindings = bindings
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.claims = Claims(uniques, real_clock or clock, self._holds)

    async def _holds(self, owner: str, kind: str, value: str) -> bool:
        found = await self.groups.get(owner)
        return found is not None and found[0].name.lower() == value

    async def _group(self, group_id: str) -> tuple[Group, str]:
        found = await self.groups.get(group_id)
        if found is None:
            raise NotFound(f"no group with id '{group_id}'")
        return found

    async def _user(self, user_id: str) -> None:
        record = await self.users.get(user_id)
        if record is None or record.user.deleted_at is not None:
            raise NotFound(f"no user with id '{user_id}'")

    async def _directory(self, directory_id: str) -> None:
        if await self.directories.get(directory_id) is None:
            raise NotFound(f"no directory with id '{directory_id}'")

    async def get(self, group_id: str) -> GroupView:
        group, etag = await self._group(group_id)
        return GroupView(group, etag, tuple(await self.groups.bindings(group_id)))

    async def page(self, cursor: str | None, limit: int) -> Page[GroupView]:
        page = await self.groups.page(cursor, limit)
        bindings = await self.groups.bindings_of([g.id for g in page.items])
        return Page([GroupView(g, "", tuple(bindings[g.id])) for g in page.items], page.next)

    async def create(self, name: str, description: str | None, actor: Actor) -> GroupView:
        now = self.clock()
        group = Group(self.ids(), name, description, 0, now, now)
        await self.claims.claim(NAME, name.lower(), group.id)
        try:
            etag = await self.groups.add(group)
        except BaseException:
            await self.claims.release_all({NAME: name.lower()}, group.id)
            raise
        await self.auditor.record(
            actor, "group.create", group_id=group.id, after={"name": name, "description": description}
        )
        return GroupView(group, etag, ())

    async def update(
        self, group_id: str, changes: Mapping[str, Any], if_match: str | None, actor: Actor
    ) -> GroupView:
        before, etag = await self._group(group_id)
        if if_match is not None and if_match != etag:
            raise PreconditionFailed("the group changed since it was read (If-Match does not match its ETag)")
        changed = [k for k, v in changes.items() if getattr(before, k) != v]
        if not changed:
            return await self.get(group_id)
        after = replace(before, **{k: changes[k] for k in changed}, updated_at=self.clock())
        renamed = before.name.lower() != after.name.lower()
        if renamed:
            await self.claims.claim(NAME, after.name.lower(), group_id)
        try:
            await self.groups.update(after, changed, if_match)
        except BaseException:
            if renamed:
                await self.claims.release_all({NAME: after.name.lower()}, group_id)
            raise
        if renamed:
            await self.claims.release_all({NAME: before.name.lower()}, group_id)
        await self.auditor.record(
            actor,
            "group.update",
            group_id=group_id,
            before={k: getattr(before, k) for k in changed},
            after={k: getattr(after, k) for k in changed},
        )
        await self._mirror(group_id, actor)
        return await self.get(group_id)

    async def _mirror(self, group_id: str, actor: Actor) -> None:
        """Queue the group's mirroring into every directory it is bound to."""
        pairs = [(group_id, b.directory_id) for b in await self.groups.bindings(group_id)]
        if pairs:
            await self.mirrors.enqueue(pairs, actor.correlation_id)

    async def delete(self, group_id: str, if_match: str | None, actor: Actor) -> list[str]:
        """Delete the group, its memberships and bindings; returns its former members."""
        group, etag = await self._group(group_id)
        if if_match is not None and if_match != etag:
            raise PreconditionFailed("the group changed since it was read (If-Match does not match its ETag)")
        members = await self.groups.members(group_id)
        bindings = await self.groups.bindings(group_id)
        for b in bindings:
            await self.directories.set_group_binding(b.directory_id, group_id, False)
        now = self.clock()
        for user_id in members:
            await self.users.set_membership(user_id, group_id, False, now)
        await self.groups.delete(group_id)
        await self.claims.release_all({NAME: group.name.lower()}, group_id)
        await self.bindings.refresh_many(members)
        await self.auditor.record(
            actor,
            "group.delete",
            group_id=group_id,
            before={
                "name": group.name,
                "memberCount": len(members),
                "directories": [b.directory_id for b in bindings],
            },
        )
        await self.sync.enqueue(members, actor.correlation_id)
        for b in bindings:  # rule 14: the M365 group goes only if Warden created it
            if b.origin == "created" and b.m365_group_id:
                await self.mirrors.delete_mirror(b.directory_id, b.m365_group_id, actor.correlation_id)
        return members

    async def add_member(self, group_id: str, user_id: str, actor: Actor, *, sync: bool = True) -> bool:
        await self._group(group_id)
        await self._user(user_id)
        now = self.clock()
        added = await self.groups.add_member(group_id, user_id, now)
        await self.users.set_membership(user_id, group_id, True, now)  # idempotent: repairs a crash halfway
        await self.bindings.refresh(user_id)
        if added:
            await self.auditor.record(actor, "group.member.add", group_id=group_id, user_id=user_id)
        if sync:
            await self.sync.enqueue([user_id], actor.correlation_id)
        await self._mirror(group_id, actor)
        return added

    async def remove_member(self, group_id: str, user_id: str, actor: Actor) -> None:
        await self._group(group_id)
        removed = await self.groups.remove_member(group_id, user_id)
        await self.users.set_membership(user_id, group_id, False, self.clock())
        if not removed:
            raise NotFound(f"user '{user_id}' is not a member of group '{group_id}'")
        await self.bindings.refresh(user_id)
        await self.auditor.record(actor, "group.member.remove", group_id=group_id, user_id=user_id)
        await self.sync.enqueue([user_id], actor.correlation_id)
        await self._mirror(group_id, actor)

    async def bind(
        self, group_id: str, directory_id: str, actor: Actor, *, adopt: bool = False
    ) -> tuple[GroupView, bool]:
        """Bind the group (its members) to the directory and mirror it there as a security group; ``adopt``
        lets the mirror take over an existing security group of the same name."""
        await self._group(group_id)
        await self._directory(directory_id)
        await self.directories.set_group_binding(directory_id, group_id, True)
        created = await self.groups.set_binding(
            GroupBinding(group_id, directory_id, self.clock(), adopt=adopt)
        )
        if not created and adopt:
            current = next(b for b in await self.groups.bindings(group_id) if b.directory_id == directory_id)
            await self.groups.save_binding(dataclasses.replace(current, adopt=True))
        await self.bindings.refresh_many(await self.groups.members(group_id))
        if created:
            await self.auditor.record(
                actor, "group.bind", group_id=group_id, directory_id=directory_id, after={"adopt": adopt}
            )
        await self.sync.enqueue(await self.groups.members(group_id), actor.correlation_id)
        await self.mirrors.enqueue([(group_id, directory_id)], actor.correlation_id)
        return await self.get(group_id), created

    async def unbind(self, group_id: str, directory_id: str, actor: Actor) -> list[str]:
        """Unbind; returns the members (each may now be unbound from the directory: rule 7 blocks them)."""
        await self._group(group_id)
        removed = await self.groups.remove_binding(group_id, directory_id)
        await self.directories.set_group_binding(directory_id, group_id, False)
        if not removed:
            raise NotFound(f"group '{group_id}' is not bound to directory '{directory_id}'")
        members = await self.groups.members(group_id)
        await self.bindings.refresh_many(members)
        await self.auditor.record(actor, "group.unbind", group_id=group_id, directory_id=directory_id)
        await self.sync.enqueue(members, actor.correlation_id)
        return members
