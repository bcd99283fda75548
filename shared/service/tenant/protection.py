"""Rule 23's accounts per directory: the role holders read from Graph (at connect, each reconcile and each refresh
round), the accounts admins mark, and what the syncs plan with (``protect``: the accounts they observed, marked with
why they are protected, and whether the directory's role holders could be read at all).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from shared.domain.claims import claim_kind
from shared.domain.errors import NotFound, Upstream
from shared.domain.model import Directory
from shared.domain.planner import Observation, Target
from shared.domain.protection import ProtectedAccount, Protection, RoleHolders, refreshed
from shared.service.context import Actor, Auditor
from shared.service.paging import decode_cursor, encode_cursor
from shared.service.ports import (
    Clock,
    DirectoryRepository,
    M365Tenant,
    ProtectedAccounts,
    RolesRead,
    SyncQueue,
    Uniques,
)

READ_CONCURRENCY = 16
AUDIT_IDS = 200
"""Account ids named in one audit entry of a refresh."""
MISSING_PERMISSION = "the app may not read them (RoleManagement.Read.Directory)"


async def protect(
    source: ProtectedAccounts, directory_id: str, observation: Observation, target: Target
) -> tuple[Observation, Target]:
    """The observation with each account's protection, and the target knowing whether role holders were read."""
    accounts = [a for a in (observation.linked, *observation.candidates) if a is not None]
    if not accounts:
        return observation, target  # nothing to protect, nothing to take over: no read
    found = await source.lookup(directory_id, [a.id for a in accounts])
    return protected(observation, found), dataclasses.replace(target, roles_verified=found.roles_readable)


def protected(observation: Observation, found: Protection) -> Observation:
    linked = observation.linked
    if linked is not None and found.of(linked.id):
        linked = dataclasses.replace(linked, protected_by=found.of(linked.id))
    candidates = tuple(
        dataclasses.replace(c, protected_by=found.of(c.id)) if found.of(c.id) else c
        for c in observation.candidates
    )
    return dataclasses.replace(observation, linked=linked, candidates=candidates)


@dataclass(frozen=True)
class ProtectedList:
    items: list[ProtectedAccount]
    next: str | None
    roles_read: RolesRead | None


class Protections:
    def __init__(
        self,
        directories: DirectoryRepository,
        store: ProtectedAccounts,
        tenant: M365Tenant,
        uniques: Uniques,
        sync_queue: SyncQueue,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self.directories = directories
        self.store = store
        self.tenant = tenant
        self.uniques = uniques
        self.sync_queue = sync_queue
        self.auditor = auditor
        self.clock = clock

    async def _directory(self, directory_id: str) -> Directory:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found[0]

    # -------------------------------------------------------------------------------------------- refresh
    async def refresh(self, directory: Directory, actor: Actor) -> RolesRead:
        """Read the directory's role holders anew and keep the protected accounts in step: holders get their roles,
        accounts that hold none any more keep only an admin's mark. The users linked to an account whose protection
        changed are synced again (a newly protected account is frozen now, not at its next change)."""
        return await self.take(directory, actor, await self.tenant.role_holders(directory))

    async def take(
        self, directory: Directory, actor: Actor, holders: RoleHolders | None, failure: str | None = None
    ) -> RolesRead:
        """``refresh`` with the role holders read already (the token refresh round reads them in its ``$batch``):
        None, the app may not read them; ``failure``, Graph failed to answer (recorded as not readable, with why)."""
        now = self.clock()
        if failure is not None:
            read = RolesRead(now, False, failure)
            await self.store.set_roles_read(directory.id, read)
            return read
        if holders is None:
            read = RolesRead(now, False, MISSING_PERMISSION)
            before = await self.store.roles_read(directory.id)
            await self.store.set_roles_read(directory.id, read)
            if before is None or before.readable:
                await self.auditor.record(
                    actor,
                    "directory.roles.unreadable",
                    result=f"failed: role holders cannot be read: {MISSING_PERMISSION}",
                    directory_id=directory.id,
                )
            return read
        current = await self.store.all(directory.id)
        write, drop = refreshed(directory.id, current, holders, holders.names)
        await self.store.put(write)
        await self.store.drop(directory.id, drop)
        read = RolesRead(now, True)
        await self.store.set_roles_read(directory.id, read)
        added = [
            r.m365_user_id
            for r in write
            if r.m365_user_id not in current or not current[r.m365_user_id].roles
        ]
        changed = [r.m365_user_id for r in write] + drop
        if added or drop:
            await self.auditor.record(
                actor,
                "directory.roles.refresh",
                directory_id=directory.id,
                after={
                    "holders": len(holders.grants),
                    "nowProtected": added[:AUDIT_IDS],
                    "noLongerProtected": drop[:AUDIT_IDS],
                },
            )
        await self._resync(directory.id, changed, actor)
        return read

    async def _resync(self, directory_id: str, m365_ids: list[str], actor: Actor) -> None:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def owner(m365_id: str) -> str | None:
            async with gate:
                return await self.uniques.owner(claim_kind(directory_id), m365_id)

        owners = await asyncio.gather(*(owner(i) for i in dict.fromkeys(m365_ids)))
        users = [o for o in dict.fromkeys(owners) if o is not None]
        if users:
            await self.sync_queue.enqueue(users, actor.correlation_id, actor=actor.name)

    # ------------------------------------------------------------------------------------------ admins
    async def mark(self, directory_id: str, m365_user_id: str, actor: Actor) -> tuple[ProtectedAccount, bool]:
        """Mark an account of the tenant protected; (the account, whether it was not marked before)."""
        directory = await self._directory(directory_id)
        found = await self.tenant.accounts(directory, [m365_user_id])
        if not found:
            raise NotFound(
                f"the tenant of directory '{directory.name}' has no account with id '{m365_user_id}'"
            )
        current = (await self.store.all(directory_id)).get(m365_user_id)
        if current is not None and current.marked_by:
            return current, False
        row = ProtectedAccount(
            directory_id,
            m365_user_id,
            current.roles if current else (),
            actor.name,
            self.clock(),
            found[0].user_principal_name,
        )
        await self.store.put([row])
        await self.auditor.record(
            actor,
            "directory.protected.mark",
            directory_id=directory_id,
            after={"m365UserId": m365_user_id, "userPrincipalName": row.user_principal_name},
        )
        await self._resync(directory_id, [m365_user_id], actor)
        return row, True

    async def unmark(self, directory_id: str, m365_user_id: str, actor: Actor) -> None:
        """Remove an admin's mark; an account that holds a role stays protected for it."""
        await self._directory(directory_id)
        current = (await self.store.all(directory_id)).get(m365_user_id)
        if current is None or not current.marked_by:
            raise NotFound(f"account '{m365_user_id}' is not marked protected in this directory")
        if current.roles:
            await self.store.put([dataclasses.replace(current, marked_by=None, marked_at=None)])
        else:
            await self.store.drop(directory_id, [m365_user_id])
        await self.auditor.record(
            actor,
            "directory.protected.unmark",
            directory_id=directory_id,
            before={"m365UserId": m365_user_id, "markedBy": current.marked_by},
            after={"stillProtectedBy": list(current.roles)} if current.roles else None,
        )
        await self._resync(directory_id, [m365_user_id], actor)

    async def page(self, directory_id: str, cursor: str | None, limit: int) -> ProtectedList:
        await self._directory(directory_id)
        scope = f"protected:{directory_id}"
        after = decode_cursor(scope, cursor)
        rows = sorted((await self.store.all(directory_id)).values(), key=lambda r: r.m365_user_id)
        rows = [r for r in rows if r.protected and (after is None or r.m365_user_id > str(after))]
        shown = rows[:limit]
        nxt = encode_cursor(scope, shown[-1].m365_user_id) if len(rows) > limit else None
        return ProtectedList(shown, nxt, await self.store.roles_read(directory_id))

    async def warnings(self, directory: Directory) -> list[str]:
        read = await self.store.roles_read(directory.id)
        if read is None:
            return ["role holders not read yet: take-overs wait for an admin until they are (rule 23)"]
        if not read.readable:
            return [
                f"role holders cannot be read: {read.detail or MISSING_PERMISSION}; every take-over is held as "
                "needs_attention until they can be (rule 23)"
            ]
        return []

    async def refresh_quietly(self, directory: Directory, actor: Actor) -> RolesRead:
        """``refresh``, recording a Graph failure as "not readable" (with why) instead of raising: at connect, a
        directory whose role holders cannot be read yet is connected and warns."""
        try:
            return await self.refresh(directory, actor)
        except Upstream as exc:
            read = RolesRead(self.clock(), False, exc.detail)
            await self.store.set_roles_read(directory.id, read)
            return read
