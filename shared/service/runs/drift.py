"""Drift enforcement (rule 9): every few minutes, per directory, what changed in M365 since the last round —
Graph's user delta with ``$select`` of the managed properties — and a sync of every managed user among them.

- A round reads from the stored deltaLink; with nothing changed it costs one Graph request per directory.
- A changed or ``@removed`` account that Warden links to a user queues that user's sync, audited as
  ``timer:drift``: the sync re-reads the store and Graph and puts back what drifted (a re-enabled account is
  blocked again and its sessions revoked; an edited managed attribute is restored; a deleted account is recreated
  only with ``createMissingUsers``, else the link needs attention). Accounts Warden does not link are ignored.
- Warden's own writes come back in the next delta. A change whose managed values are exactly what Warden last
  applied (the link's fingerprint, ``shared.domain.planner.echoes``) is that echo: it costs no Graph read and no
  sync, so the round after a round of corrections costs one Graph request again.
- The new deltaLink is stored only after every correction of the round is queued (a queued message is durable).
- A deltaLink Graph no longer knows (410 ``syncStateNotFound``; they last 7 days) starts a full reconcile and a
  fresh deltaLink (``$deltatoken=latest``): nothing is missed, and the next round is cheap again.
- The baselines (users' and groups' deltaLinks) are taken when a directory is connected (``Baselines``), so its
  first round already sees every change made since; a directory without one (its baseline failed) has its first
  round take it, and the nightly reconcile compares everything.
https://learn.microsoft.com/en-us/graph/delta-query-overview, .../api/user-delta
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from shared.domain.claims import claim_kind, group_claim_kind
from shared.domain.model import Directory
from shared.domain.planner import echoes, target_of
from shared.domain.runs import Run, skipped_run
from shared.service.context import Actor
from shared.service.ports import (
    M365,
    Clock,
    DeltaExpired,
    DirectoryRepository,
    GroupQueue,
    Ids,
    SyncQueue,
    Uniques,
    UserRepository,
)

DELTA_KEY = "users.deltaLink"
GROUPS_DELTA_KEY = "groups.deltaLink"


class RunLog(Protocol):
    async def add(self, run: Run) -> None: ...


class Resync(Protocol):
    """Starts a directory's full reconcile (when a deltaLink has expired, nothing else tells what changed)."""

    async def start(self, directory_id: str, dry_run: bool, actor: Actor) -> Run: ...


DRIFT_ACTOR = "timer:drift"


@dataclass(frozen=True)
class DriftRound:
    directory_id: str
    changed: int
    """Accounts Graph reported changed (or removed) since the last round."""
    corrections: int
    """Managed users among them, queued for a sync."""
    echoes: int = 0
    """Changed accounts that only echoed what Warden last wrote there (no sync)."""
    resynced: bool = False
    """The deltaLink had expired: a full reconcile was started instead."""
    reconcile_run: str | None = None


class Drift:
    def __init__(
        self,
        directories: DirectoryRepository,
        uniques: Uniques,
        m365: M365,
        sync_queue: SyncQueue,
        reconciler: Resync,
        runs: RunLog,
        clock: Clock,
        ids: Ids,
        mirrors: GroupQueue | None = None,
        *,
        users: UserRepository,
    ) -> None:
        self.users = users
        self.mirrors = mirrors
        self.runs = runs
        self.clock = clock
        self.ids = ids
        self.directories = directories
        self.uniques = uniques
        self.m365 = m365
        self.sync_queue = sync_queue
        self.reconciler = reconciler

    async def round(self, actor: Actor) -> list[DriftRound]:
        """One round over every directory Warden may write to, each on its own (one failing never stops the rest).
        A directory without a working connection (rule 18) is skipped with a run record saying why."""
        everything = await self.directories.all()
        for d in everything:
            if d.paused:
                await self.runs.add(skipped_run(self.ids(), d, "drift", actor.name, self.clock()))
        directories = [d for d in everything if d.writable]
        results = await asyncio.gather(
            *(self.directory_round(d, actor) for d in directories), return_exceptions=True
        )
        rounds = [r for r in results if isinstance(r, DriftRound)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return rounds

    async def directory_round(self, directory: Directory, actor: Actor) -> DriftRound:
        """The round, recorded as a ``drift`` run (counts, timings, Graph usage)."""
        started, before = self.clock(), self.m365.usage(directory.id)
        try:
            result = await self._round(directory, actor)
        except Exception as exc:
            await self._record(directory, actor, started, before, None, f"{type(exc).__name__}")
            raise
        await self._record(directory, actor, started, before, result, None)
        return result

    async def _record(
        self,
        d: Directory,
        actor: Actor,
        started: dt.datetime,
        before: dict[str, float],
        result: DriftRound | None,
        error: str | None,
    ) -> None:
        now = self.m365.usage(d.id)
        counts = (
            {"changed": result.changed, "corrections": result.corrections, "echoes": result.echoes}
            if result
            else {}
        )
        run = Run(
            self.ids(),
            d.id,
            "drift",
            False,
            "failed" if error else "done",
            actor.name,
            started,
            started_at=started,
            finished_at=self.clock(),
            counts=counts,
            usage={k: round(v - before.get(k, 0), 3) for k, v in now.items()},
            error=error,
        )
        await self.runs.add(run)

    async def _round(self, directory: Directory, actor: Actor) -> DriftRound:
        link = await self.directories.get_state(directory.id, DELTA_KEY)
        if link is None:
            fresh = await self.m365.delta(directory, None, latest=True)
            await self.directories.set_state(directory.id, DELTA_KEY, fresh.delta_link)
            return DriftRound(directory.id, 0, 0)
        try:
            delta = await self.m365.delta(directory, link)
        except DeltaExpired:
            run = await self.reconciler.start(directory.id, False, actor)
            fresh = await self.m365.delta(directory, None, latest=True)
            await self.directories.set_state(directory.id, DELTA_KEY, fresh.delta_link)
            return DriftRound(directory.id, 0, 0, resynced=True, reconcile_run=run.id)
        ids = list(dict.fromkeys(str(c["id"]) for c in delta.changes if c.get("id")))
        removed = {str(c["id"]) for c in delta.changes if c.get("id") and "@removed" in c}
        owners = await asyncio.gather(*(self.uniques.owner(claim_kind(directory.id), i) for i in ids))
        managed = {i: o for i, o in zip(ids, owners, strict=True) if o is not None}
        latest = {str(c["id"]): c for c in delta.changes if c.get("id")}  # replays: the last one stands
        echoed = await self._echoes(directory, {i: o for i, o in managed.items() if i not in removed}, latest)
        changed = [o for i, o in managed.items() if i not in removed and i not in echoed]
        deleted = [o for i, o in managed.items() if i in removed]
        if changed:
            await self.sync_queue.enqueue(changed, actor.correlation_id, actor=DRIFT_ACTOR)
        if deleted:
            await self.sync_queue.enqueue(deleted, actor.correlation_id, actor=DRIFT_ACTOR, gone=True)
        await self.directories.set_state(directory.id, DELTA_KEY, delta.delta_link)
        groups = await self._groups_round(directory, actor)
        corrections = len(set(changed) | set(deleted)) + groups
        return DriftRound(directory.id, len(ids), corrections, echoes=len(echoed))

    async def _echoes(
        self, directory: Directory, owners: dict[str, str], accounts: dict[str, dict[str, Any]]
    ) -> set[str]:
        """The changed accounts (id → owning user) whose change is only Warden's own last write coming back."""
        mapping = target_of(directory).mapping
        records = await asyncio.gather(*(self.users.get(u) for u in owners.values()))
        echoed = set()
        for (m365_id, _), record in zip(owners.items(), records, strict=True):
            link = record.links.get(directory.id) if record is not None else None
            if link is not None and echoes(link, accounts[m365_id], mapping):
                echoed.add(m365_id)
        return echoed

    async def _groups_round(self, directory: Directory, actor: Actor) -> int:
        """The mirrored groups changed in M365 (names, ``members@delta``): each mirrored again. Only a
        directory that mirrors groups pays for this second request."""
        if self.mirrors is None or not await self.directories.bound_groups(directory.id):
            return 0
        link = await self.directories.get_state(directory.id, GROUPS_DELTA_KEY)
        try:
            delta = await self.m365.delta(directory, link, latest=link is None, resource="groups")
        except DeltaExpired:
            delta = await self.m365.delta(directory, None, latest=True, resource="groups")
            link = None  # a full mirror of every bound group instead
        if link is None:
            ours = await self.directories.bound_groups(directory.id)
        else:
            ids = list(dict.fromkeys(str(c["id"]) for c in delta.changes if c.get("id")))
            owners = await asyncio.gather(
                *(self.uniques.owner(group_claim_kind(directory.id), i) for i in ids)
            )
            ours = [o for o in dict.fromkeys(owners) if o is not None]
        if ours:
            await self.mirrors.enqueue([(g, directory.id) for g in ours], actor.correlation_id)
        await self.directories.set_state(directory.id, GROUPS_DELTA_KEY, delta.delta_link)
        return len(ours)


class Baselines:
    """Where a directory's drift rounds start: its users' and groups' deltaLinks, taken when it is connected."""

    def __init__(self, directories: DirectoryRepository, m365: M365) -> None:
        self.directories = directories
        self.m365 = m365

    async def baseline(self, directory: Directory, *, keep: bool = False) -> None:
        """Take the directory's users' and groups' deltaLinks now (``$deltatoken=latest``: one Graph request each),
        so that its first round sees every change made from here on. ``keep``: leave a stored one as it is (it
        already covers everything since it was taken)."""

        async def take(key: str, resource: str) -> None:
            if keep and await self.directories.get_state(directory.id, key) is not None:
                return
            fresh = await self.m365.delta(directory, None, latest=True, resource=resource)
            await self.directories.set_state(directory.id, key, fresh.delta_link)

        await asyncio.gather(take(DELTA_KEY, "users"), take(GROUPS_DELTA_KEY, "groups"))
