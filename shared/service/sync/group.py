"""Mirroring a Warden group into one directory (rule 14): level-triggered, like a user's sync.

Read the group, its members and their M365 ids in the directory (the desired members: those linked there, as the
directory index has them — it is refreshed before a member's new link queues the mirror), and, side by side with
those store reads, the M365 group the binding points at and its members; plan (``shared.domain.group_plan``);
write the plan through the M365 port: the group's creation, then its rename, adds and removes ("already a member"
and "not a member" count as success, rule 14). One run per group and directory at a time (a lease), so two runs
never create two groups.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from shared.domain.claims import created_claim_kind, group_claim_kind
from shared.domain.group_plan import GroupPlan, M365Group, plan_group
from shared.domain.model import Directory, Group, GroupBinding
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    M365,
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    GroupRepository,
    ProtectedAccounts,
    Uniques,
    Written,
)
from shared.service.sync.leases import Leases

AUDIT_IDS = 500
"""Member ids per audit entry of a mirror's update: 500 object ids are about 20,000 characters of JSON."""


def update_audit(m365_id: str, plan: GroupPlan, ids_per_entry: int = AUDIT_IDS) -> list[dict[str, Any]]:
    """The audit entries of a mirror's update: the rename, and every member id added or removed,
    ``ids_per_entry`` to an entry (``part`` k/n when there are several): one entry naming 10,000 members
    would not fit an audit row (Table Storage refuses a property over 64 KiB, 32K UTF-16 characters)."""
    if not (plan.rename or plan.add or plan.remove):
        return []
    ids = [("added", m) for m in plan.add] + [("removed", m) for m in plan.remove]
    parts = [ids[i : i + ids_per_entry] for i in range(0, len(ids), ids_per_entry)] or [[]]
    return [
        {
            "m365GroupId": m365_id,
            "displayName": plan.rename if n == 1 else None,
            "added": [m for kind, m in part if kind == "added"],
            "removed": [m for kind, m in part if kind == "removed"],
            **({"part": f"{n}/{len(parts)}"} if len(parts) > 1 else {}),
        }
        for n, part in enumerate(parts, 1)
    ]


class GroupBusy(Exception):
    """Another run mirrors this group into this directory now; this one must follow it."""


@dataclass(frozen=True)
class GroupReport:
    group_id: str
    directory_id: str
    plan: GroupPlan | None
    writes: int = 0
    error: str | None = None


class GroupSync:
    def __init__(
        self,
        groups: GroupRepository,
        directories: DirectoryRepository,
        uniques: Uniques,
        m365: M365,
        leases: Leases,
        auditor: Auditor,
        clock: Clock,
        index: DirectoryIndex,
        protection: ProtectedAccounts | None = None,
    ) -> None:
        self.index = index
        self.protection = protection
        """Rule 23: accounts never added to or removed from a mirrored group."""
        self.leases = leases
        self.groups = groups
        self.directories = directories
        self.uniques = uniques
        self.m365 = m365
        self.auditor = auditor
        self.clock = clock

    async def sync_group(self, group_id: str, directory_id: str, actor: Actor) -> GroupReport:
        holder = str(uuid.uuid4())
        token = await self.leases.take_group(group_id, directory_id, holder)
        if token is None:
            raise GroupBusy(f"group {group_id} is being mirrored into {directory_id} by another run")
        try:
            return await self._sync(group_id, directory_id, actor)
        finally:
            await self.leases.give_group(group_id, directory_id, holder, token)

    async def _desired(self, group_id: str, directory_id: str) -> frozenset[str]:
        """The M365 ids of the group's members that are linked in the directory."""
        members = await self.groups.members(group_id)
        return frozenset((await self.index.linked(directory_id, members)).values())

    async def _m365(
        self, directory: Directory, binding: GroupBinding
    ) -> tuple[M365Group | None, frozenset[str] | None]:
        """The M365 group the binding points at (None: none yet, or gone) and its members."""
        if not binding.m365_group_id:
            return None, None
        linked = await self.m365.get_group(directory, binding.m365_group_id)
        return linked, (await self.m365.group_members(directory, linked.id) if linked else None)

    async def _sync(self, group_id: str, directory_id: str, actor: Actor) -> GroupReport:
        found, directory_found, bindings = await asyncio.gather(
            self.groups.get(group_id), self.directories.get(directory_id), self.groups.bindings(group_id)
        )
        binding = next((b for b in bindings if b.directory_id == directory_id), None)
        if found is None or directory_found is None or binding is None:
            return GroupReport(group_id, directory_id, None)  # unbound or gone: no longer managed
        group, directory = found[0], directory_found[0]
        if not directory.writable:
            await self.groups.save_binding(
                dataclasses.replace(binding, status="skipped", reason=directory.status_reason)
            )
            return GroupReport(group_id, directory_id, None)
        desired, (linked, members) = await asyncio.gather(
            self._desired(group_id, directory_id), self._m365(directory, binding)
        )
        same = () if linked else tuple(await self.m365.find_groups(directory, group.name))
        # A group of this name that this Warden group managed before (claimed, e.g. before an unbind) is its own.
        ours = (
            len(same) == 1
            and await self.uniques.owner(group_claim_kind(directory_id), same[0].id) == group_id
        )
        adopt = binding.adopt or binding.status == "creating" or ours
        protected = await self._protected(directory_id, desired | (members or frozenset()))
        plan = plan_group(group.name, desired, linked, members, same, adopt=adopt, protected=protected)
        if plan.action == "adopt" and plan.m365_group_id:
            adopted = next(g for g in same if g.id == plan.m365_group_id)
            made_here = await self.uniques.owner(created_claim_kind(directory_id), adopted.id) == group_id
            origin = binding.origin or ("created" if made_here else "adopted")
            binding = dataclasses.replace(binding, m365_group_id=adopted.id, origin=origin)
            await self._claim(directory_id, adopted.id, group_id)
            await self.groups.save_binding(binding)
            current = await self.m365.group_members(directory, adopted.id)
            protected = await self._protected(directory_id, desired | current)
            plan = plan_group(group.name, desired, adopted, current, (), adopt=True, protected=protected)
            await self.auditor.record(
                actor,
                "group.m365.adopt",
                group_id=group_id,
                directory_id=directory_id,
                after={"m365GroupId": adopted.id},
            )
        if plan.action == "conflict":
            await self.groups.save_binding(
                dataclasses.replace(binding, status="needs_attention", reason=plan.reason)
            )
            await self.auditor.record(
                actor,
                "group.m365.conflict",
                result=f"needs_attention: {plan.reason}",
                group_id=group_id,
                directory_id=directory_id,
            )
            return GroupReport(group_id, directory_id, plan)
        return await self._apply(group, directory, binding, plan, actor)

    async def _protected(self, directory_id: str, m365_ids: frozenset[str]) -> frozenset[str]:
        if self.protection is None or not m365_ids:
            return frozenset()
        return frozenset((await self.protection.lookup(directory_id, sorted(m365_ids))).why)

    async def _claim(self, directory_id: str, m365_id: str, group_id: str) -> None:
        await self.uniques.insert(group_claim_kind(directory_id), m365_id, group_id, self.clock())

    async def _apply(
        self, group: Group, directory: Directory, binding: GroupBinding, plan: GroupPlan, actor: Actor
    ) -> GroupReport:
        writes = 0
        m365_id = plan.m365_group_id
        if plan.action == "create":
            # Recorded as creating first: a crash after the creation leaves a group of this name that the retry
            # adopts (it is ours) instead of creating a second one.
            await self.groups.save_binding(dataclasses.replace(binding, status="creating", origin="created"))
            created = await self.m365.create_group(directory, group)
            writes += created.writes
            if not created.ok or created.m365_id is None:
                return await self._failed(binding, created, writes, plan, actor)
            m365_id = created.m365_id
            await self._claim(directory.id, m365_id, group.id)
            await self.uniques.insert(created_claim_kind(directory.id), m365_id, group.id, self.clock())
            binding = dataclasses.replace(binding, m365_group_id=m365_id, origin="created")
            await self.groups.save_binding(dataclasses.replace(binding, status="creating"))
            await self.auditor.record(
                actor,
                "group.m365.create",
                group_id=group.id,
                directory_id=directory.id,
                after={"m365GroupId": m365_id, "displayName": group.name},
            )
        assert m365_id is not None
        changed = await self.m365.change_group(directory, m365_id, plan)
        writes += changed.writes
        if not changed.ok:
            return await self._failed(binding, changed, writes, plan, actor)
        await self.groups.save_binding(
            dataclasses.replace(binding, m365_group_id=m365_id, status="synced", reason=None)
        )
        for after in update_audit(m365_id, plan):
            await self.auditor.record(
                actor, "group.m365.update", group_id=group.id, directory_id=directory.id, after=after
            )
        return GroupReport(group.id, directory.id, plan, writes)

    async def _failed(
        self, binding: GroupBinding, written: Written, writes: int, plan: GroupPlan, actor: Actor
    ) -> GroupReport:
        error = written.detail or written.outcome
        await self.groups.save_binding(dataclasses.replace(binding, status="error", reason=error))
        await self.auditor.record(
            actor,
            "group.m365.update",
            result=f"failed: {error}",
            group_id=binding.group_id,
            directory_id=binding.directory_id,
        )
        if written.outcome == "retry":
            raise RuntimeError(error)  # transient: the queue retries
        return GroupReport(binding.group_id, binding.directory_id, plan, writes, error)

    async def delete_mirror(self, directory_id: str, m365_group_id: str, actor: Actor) -> None:
        """Delete an M365 group Warden created, once its Warden group is deleted (never one it adopted)."""
        found = await self.directories.get(directory_id)
        if found is None:
            return
        deleted = await self.m365.delete_group(found[0], m365_group_id)
        if not deleted.ok:
            raise RuntimeError(f"deleting group {m365_group_id}: {deleted.detail}")
        await self.auditor.record(
            actor, "group.m365.delete", directory_id=directory_id, after={"m365GroupId": m365_group_id}
        )
