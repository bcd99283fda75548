"""The full reconcile of a directory (rules 9, 19, 20): plan everything, hold what the guard holds, apply the rest
in chunks that spread over Function instances and survive restarts.

1. ``start``: a run in ``planning``; the planning itself is a queue job (a 100,000-user tenant takes a while).
2. ``plan``: the tenant is read once (``$select``, ``$top=999``, every nextLink — a failed or partial read fails
   the run without writing); the directory's users and links are read once, from the directory index's 16
   partitions; the pure planner plans them all; items with something to do are stored with the run. A dry run
   stops here. A plan that blocks more than the guard allows is ``held``. Otherwise the run is ``applying`` and
   one queue message per chunk of 100 items fans the work out.
3. ``apply_chunk``: each item still ``planned`` is re-checked (a user changed since the plan is skipped: its own
   sync converges it), applied through the M365 port (``$batch`` requests across users), recorded (link, claim,
   audit) and marked, then counted once (``shared.service.runs.jobs``, the engine imports share): a chunk delivered
   twice finds its items marked and its part counted, and writes and counts nothing again.
4. ``approve`` applies exactly a held plan (re-checked item by item); ``discard`` drops it.

Accounts of the tenant that no bound user links or matches are counted ``unmanaged`` and never touched. Before it
plans, a reconcile re-checks rule 17, re-reads the role holders (rule 23: protected accounts are planned nothing) and
keeps the tenant's password policy and federations (``shared.service.tenant.settings``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from shared.domain.errors import Conflict, NotFound
from shared.domain.model import Directory, Link, UserDirectory
from shared.domain.planner import (
    Desired,
    M365Account,
    Observation,
    PlanItem,
    Target,
    immutable_id,
    plan_user,
    target_of,
    written_recently,
)
from shared.domain.protection import reason as protection_reason
from shared.domain.runs import RUN_CUTTING, ItemState, Run, RunItem, RunStatus, guard_verdict
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    M365,
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    GroupQueue,
    Ids,
    IndexEntry,
    Page,
    ProtectedAccounts,
    SyncQueue,
    UserRepository,
)
from shared.service.runs.jobs import ItemSink, work_chunk
from shared.service.store.bindings import Bindings
from shared.service.sync.leases import Leases
from shared.service.sync.links import Links
from shared.service.sync.passwords import random_password
from shared.service.tenant.settings import SettingsRound

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two reads at once; the first to fail cancels the other and its error is raised as it is."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    done, pending = await asyncio.wait((one, two), return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in (one, two):
        if task in done and (error := task.exception()) is not None:
            raise error
    return one.result(), two.result()


class Runs(Protocol):
    async def add(self, run: Run) -> None: ...

    async def get(self, directory_id: str, run_id: str) -> tuple[Run, str] | None: ...

    async def save(self, run: Run, etag: str | None) -> str: ...

    async def latest(self, directory_id: str, limit: int) -> list[Run]: ...

    async def put_items(self, run_id: str, items: Sequence[RunItem]) -> None: ...

    async def items(self, run_id: str, first: int, last: int) -> list[RunItem]: ...

    async def page_items(
        self, run_id: str, action: str | None, cursor: str | None, limit: int
    ) -> Page[RunItem]: ...

    async def set_item_states(self, run_id: str, items: Sequence[RunItem]) -> None: ...

    async def add_progress(
        self,
        directory_id: str,
        run_id: str,
        progress: dict[str, int],
        at: dt.datetime,
        *,
        part: int | None = None,
    ) -> Run:
        """Add to the run's progress; with ``part``, a part's outcome, added once (``Run.tallied``)."""


class TenantSettingsKeeper(Protocol):
    """``shared.service.tenant.settings.TenantSettings.enforce``: rule 17 and role holders read now, the password
    policy and federations kept."""

    async def enforce(self, directory: Directory, dry_run: bool, actor: Actor) -> SettingsRound: ...


class ReconcileQueue(Protocol):
    async def plan(self, directory_id: str, run_id: str) -> None: ...

    async def chunks(self, directory_id: str, run_id: str, count: int) -> None: ...


def payload_of(item: PlanItem, entry: IndexEntry | None) -> dict[str, Any]:
    """A run item's payload: the plan item, and when the user was last changed (a user changed since the plan is
    left to its own sync)."""
    updated = entry.user.updated_at.isoformat() if entry and entry.user else None
    return {**item.to_payload(), "userUpdatedAt": updated}


class TenantView:
    """The tenant's accounts, read once, indexed for matching by address and immutable id."""

    def __init__(self) -> None:
        self.by_id: dict[str, M365Account] = {}
        self.by_address: dict[str, list[str]] = {}
        self.by_immutable: dict[str, str] = {}

    def protect(self, why: Mapping[str, tuple[str, ...]]) -> None:
        """Mark the protected accounts with why (rule 23)."""
        for account_id, reasons in why.items():
            if account_id in self.by_id:
                self.by_id[account_id] = dataclasses.replace(self.by_id[account_id], protected_by=reasons)

    def add(self, accounts: Sequence[M365Account]) -> None:
        for a in accounts:
            self.by_id[a.id] = a
            addresses = {a.user_principal_name.lower()}
            if a.mail:
                addresses.add(a.mail.lower())
            addresses.update(p[5:].lower() for p in a.proxy_addresses if p.lower().startswith("smtp:"))
            for address in addresses:
                self.by_address.setdefault(address, []).append(a.id)
            if a.on_premises_immutable_id:
                self.by_immutable[a.on_premises_immutable_id] = a.id

    def matches(self, email: str, immutable: str) -> list[M365Account]:
        ids = set(self.by_address.get(email.lower(), ()))
        if immutable in self.by_immutable:
            ids.add(self.by_immutable[immutable])
        return [self.by_id[i] for i in sorted(ids)]


class Reconciler:
    def __init__(
        self,
        *,
        runs: Runs,
        directories: DirectoryRepository,
        index: DirectoryIndex,
        users: UserRepository,
        bindings: Bindings,
        m365: M365,
        links: Links,
        leases: Leases,
        auditor: Auditor,
        queue: ReconcileQueue,
        sync_queue: SyncQueue,
        clock: Clock,
        ids: Ids,
        mirrors: GroupQueue | None = None,
        settings: TenantSettingsKeeper | None = None,
        protection: ProtectedAccounts | None = None,
    ) -> None:
        self.settings = settings
        """The tenant's own settings, enforced before planning (rules 15-17, 23)."""
        self.protection = protection
        self.runs = runs
        self.directories = directories
        self.index = index
        self.users = users
        self.bindings = bindings
        self.m365 = m365
        self.links = links
        self.leases = leases
        self.auditor = auditor
        self.queue = queue
        self.sync_queue = sync_queue
        self.clock = clock
        self.ids = ids
        self.mirrors = mirrors

    async def _directory(self, directory_id: str) -> Directory:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found[0]

    async def _run(self, directory_id: str, run_id: str) -> tuple[Run, str]:
        found = await self.runs.get(directory_id, run_id)
        if found is None:
            raise NotFound(f"no run '{run_id}' in directory '{directory_id}'")
        return found

    # ------------------------------------------------------------------------------------------- start
    async def start(self, directory_id: str, dry_run: bool, actor: Actor, kind: str = "reconcile") -> Run:
        await self._directory(directory_id)
        run = Run(self.ids(), directory_id, kind, dry_run, "planning", actor.name, self.clock())  # type: ignore[arg-type]
        await self.runs.add(run)
        await self.queue.plan(directory_id, run.id)
        await self.auditor.record(
            actor,
            "run.start",
            directory_id=directory_id,
            after={"runId": run.id, "dryRun": dry_run, "kind": kind},
        )
        return run

    async def start_all(self, actor: Actor) -> list[Run]:
        """A full reconcile of every connected directory Warden may write to (the nightly one), and of each one
        blocked by rule 17 (its reconcile re-checks it, and carries on once the tenant is no longer synced)."""
        return [
            await self.start(d.id, False, actor)
            for d in await self.directories.all()
            if d.writable or (d.status == "blocked" and self.settings is not None)
        ]

    async def get(self, directory_id: str, run_id: str) -> tuple[Run, str]:
        return await self._run(directory_id, run_id)

    async def items(
        self, directory_id: str, run_id: str, action: str | None, cursor: str | None, limit: int
    ) -> Page[RunItem]:
        await self._run(directory_id, run_id)
        return await self.runs.page_items(run_id, action, cursor, limit)

    # -------------------------------------------------------------------------------------------- plan
    async def plan(self, directory_id: str, run_id: str) -> Run:
        run, etag = await self._run(directory_id, run_id)
        if run.status != "planning":
            return run  # a redelivered plan job: planned already
        started = self.clock()
        directory = await self._directory(directory_id)
        m365 = self.m365
        usage_before = m365.usage(directory_id)

        async def read_index() -> list[IndexEntry]:
            return [e async for e in self.index.all(directory_id)]

        async def read_tenant() -> TenantView:
            tenant = TenantView()
            async for accounts in m365.list_users(directory):
                tenant.add(accounts)
            return tenant

        try:
            settled = None
            if self.settings is not None:  # rules 15-17 and 23 first: the tenant's own settings, role holders
                settled = await self.settings.enforce(directory, run.dry_run, Actor(run.trigger, run.id))
            if settled is not None and not settled.directory.writable:
                return await self._blocked(run, etag, started, settled)
            # The two reads are independent: the store's index and Graph's pages are read side by side.
            entries, tenant = await both(read_index(), read_tenant())
            protection = await self.protection.whole(directory_id) if self.protection is not None else None
        except Exception as exc:
            failed = dataclasses.replace(
                run,
                status="failed",
                error=f"reading failed, nothing written: {type(exc).__name__}",
                started_at=started,
                finished_at=self.clock(),
            )
            await self.runs.save(failed, etag)
            raise
        m365.set_tenant_size(directory_id, len(tenant.by_id))
        targets = {d.id: target_of(d) for d in await self.directories.all()}
        if protection is not None:  # rule 23: what the planner must not write to
            tenant.protect(protection.why)
            targets[directory_id] = dataclasses.replace(
                targets[directory_id], roles_verified=protection.roles_readable
            )
        items, counts, unmanaged = self._plan(directory, entries, tenant, targets)
        counts.update(settled.counts if settled is not None else {})
        sink: ItemSink[RunItem] = ItemSink(
            lambda batch: self.runs.put_items(run.id, batch), RUN_CUTTING.chunk
        )
        await sink.add(
            RunItem(n, i.action, i.user_id, "planned", payload_of(i, by_user))
            for n, (i, by_user) in enumerate(items)
        )
        stored = await sink.close()
        linked = sum(1 for e in entries if e.link is not None and e.link.m365_user_id)
        guard = guard_verdict(counts, linked, directory.options.mass_change_guard)
        status: RunStatus = "done" if run.dry_run else ("held" if guard else "applying")
        if not stored and status == "applying":
            status = "done"
        planned = dataclasses.replace(
            run,
            status=status,
            started_at=started,
            planned_at=self.clock(),
            finished_at=self.clock() if status == "done" else None,
            counts={**counts, "unmanaged": unmanaged, "users": len(entries)},
            guard=guard,
            items=stored,
            chunks=RUN_CUTTING.chunks(stored),
            usage=_since(m365.usage(directory_id), usage_before),
        )
        await self.runs.save(planned, etag)
        if status == "applying":
            await self.queue.chunks(directory_id, run.id, planned.chunks)
        if not run.dry_run and self.mirrors is not None:  # the reconcile includes the groups mirrored here
            groups = await self.directories.bound_groups(directory_id)
            if groups:
                await self.mirrors.enqueue([(g, directory_id) for g in groups], run.id)
        return planned

    async def _blocked(self, run: Run, etag: str, started: dt.datetime, settled: SettingsRound) -> Run:
        """A directory Warden may not write to (rule 17): nothing is planned, the run says why."""
        d = settled.directory
        done = dataclasses.replace(
            run,
            status="done",
            started_at=started,
            planned_at=self.clock(),
            finished_at=self.clock(),
            counts=settled.counts,
            error=f"directory {d.status}: {d.status_reason}; nothing planned or written",
        )
        await self.runs.save(done, etag)
        return done

    def _plan(
        self,
        directory: Directory,
        entries: list[IndexEntry],
        tenant: TenantView,
        targets: Mapping[str, Target],
    ) -> tuple[list[tuple[PlanItem, IndexEntry]], dict[str, int], int]:
        linked_ids = {e.link.m365_user_id for e in entries if e.link is not None and e.link.m365_user_id}
        manager_of = {
            e.user_id: e.link.m365_user_id
            for e in entries
            if e.link is not None and e.link.status == "synced"
        }
        touched: set[str] = set(linked_ids)
        items: list[tuple[PlanItem, IndexEntry]] = []
        counts: Counter[str] = Counter()
        for e in entries:
            if e.user is None:
                continue
            link = e.link or Link(e.user_id, directory.id)
            ud = UserDirectory(directory.id, e.via, link)
            if link.m365_user_id and link.m365_user_id in tenant.by_id:
                recent = written_recently(link, self.clock())
                observation = Observation(linked=tenant.by_id[link.m365_user_id], recent=recent)
            else:
                found = tenant.matches(e.user.email, immutable_id(e.user.id))
                taken = frozenset(a.id for a in found if a.id in linked_ids and a.id != link.m365_user_id)
                observation = Observation(candidates=tuple(found), taken=taken)
                touched.update(a.id for a in found)
            manager = manager_of.get(e.user.manager_id) if e.user.manager_id else None
            desired = Desired(e.user, (ud,), {directory.id: manager})
            for item in plan_user(desired, targets, {directory.id: observation}):
                counts[item.action] += 1
                if item.action != "none":
                    items.append((item, e))
        return items, dict(counts), len(set(tenant.by_id) - touched)

    # ------------------------------------------------------------------------------------------- apply
    async def apply_chunk(self, directory_id: str, run_id: str, chunk: int) -> Run:
        """Apply the chunk's items still planned and count its outcome once (``shared.service.runs.jobs``): a chunk
        delivered again, or after a crash, writes nothing twice and counts nothing twice."""
        run, _ = await self._run(directory_id, run_id)
        if run.status != "applying":
            return run
        directory = await self._directory(directory_id)
        return await work_chunk(_ApplyChunk(self, directory, Actor(run.trigger)), run, chunk)

    async def apply_items(
        self, run: Run, directory: Directory, todo: list[RunItem], actor: Actor
    ) -> list[RunItem]:
        """Each item re-checked just before it is written (a user changed or synced since the plan is left to its
        own sync), written under the user's sync lease, and recorded; the items with their outcome."""
        current = dict(await self._entries(directory.id, [i.user_id for i in todo]))
        holder = self.ids()
        ready, finished, leased = [], [], []
        for i in todo:
            verdict = self._stale(run, i, current.get(i.user_id))
            if verdict is None and not await self.leases.take_user(i.user_id, holder):
                verdict = (
                    "skipped",
                    "the user is being synced by its own run, which applies the current state",
                )
            if verdict is None:
                leased.append(i.user_id)
                ready.append(i)
            else:
                finished.append(dataclasses.replace(i, state=verdict[0], error=verdict[1]))
        try:
            ready = await self._unprotected(directory.id, ready, finished)
            results = await self.m365.apply(
                directory, [PlanItem.from_payload(i.payload) for i in ready], _random
            )
            for i, applied in zip(ready, results, strict=True):
                entry = current[i.user_id]
                await self.links.record(
                    i.user_id, entry.link or Link(i.user_id, directory.id), applied, actor
                )
                finished.append(
                    dataclasses.replace(i, state="applied" if applied.ok else "failed", error=applied.error)
                )
                if applied.outcome in ("rematch", "exists", "retry"):
                    await self.sync_queue.enqueue([i.user_id], actor.correlation_id)  # its own sync recovers
        finally:
            await asyncio.gather(*(self.leases.give_user(u, holder) for u in leased))
        await self.bindings.refresh_many([i.user_id for i in finished])
        return finished

    async def _unprotected(
        self, directory_id: str, ready: list[RunItem], finished: list[RunItem]
    ) -> list[RunItem]:
        """Rule 23 once more, just before writing: an account that became protected since the plan is skipped."""
        ids = [str(i.payload.get("m365UserId")) for i in ready if i.payload.get("m365UserId")]
        if self.protection is None or not ids:
            return ready
        found = await self.protection.lookup(directory_id, ids)
        keep = []
        for i in ready:
            why = found.of(str(i.payload.get("m365UserId") or ""))
            if why:
                finished.append(dataclasses.replace(i, state="skipped", error=protection_reason(why)))
            else:
                keep.append(i)
        return keep

    @staticmethod
    def _stale(run: Run, item: RunItem, entry: IndexEntry | None) -> tuple[ItemState, str] | None:
        """What became of an item since the plan (re-checked just before it is written), or None to apply it."""
        if entry is None or entry.user is None:
            return "skipped", "the user no longer exists"
        link = entry.link
        if link is not None and run.planned_at and link.last_sync_at and link.last_sync_at > run.planned_at:
            p = item.payload
            same = link.fingerprint is not None and link.fingerprint == p.get("fingerprint")
            if same or (p.get("action") == "block" and link.status == p.get("status")):
                return "applied", "applied by an earlier delivery of this chunk"
            return "skipped", "the user was synced since the plan by its own run"
        changed = entry.user.updated_at.isoformat() != item.payload.get("userUpdatedAt")
        if item.payload.get("action") != "needs_attention" and changed:
            return "skipped", "the user changed since the plan; its own sync applies the change"
        return None

    async def _entries(self, directory_id: str, user_ids: Sequence[str]) -> list[tuple[str, IndexEntry]]:
        records = await asyncio.gather(*(self.users.get(u) for u in dict.fromkeys(user_ids)))
        out = []
        for record in records:
            if record is None:
                continue
            link = record.links.get(directory_id)
            out.append(
                (
                    record.user.id,
                    IndexEntry(
                        directory_id,
                        record.user.id,
                        (),
                        link.status if link else "pending",
                        link.m365_user_id if link else None,
                        record.user,
                        link,
                    ),
                )
            )
        return out

    # ------------------------------------------------------------------------------------ approve/discard
    async def approve(self, directory_id: str, run_id: str, actor: Actor) -> Run:
        run, etag = await self._run(directory_id, run_id)
        if run.status != "held":
            raise Conflict(f"only a held run can be approved; this one is {run.status}")
        if run.kind == "user":
            return await self._release(run, etag, actor)
        approved = dataclasses.replace(run, status="applying" if run.chunks else "done")
        await self.runs.save(approved, etag)
        await self.auditor.record(
            actor, "run.approve", directory_id=directory_id, after={"runId": run_id, "guard": run.guard}
        )
        if run.chunks:
            await self.queue.chunks(directory_id, run_id, run.chunks)
        return approved

    async def _release(self, run: Run, etag: str, actor: Actor) -> Run:
        """Approving the blocks per-user syncs held: each held user is synced again with the guard lifted, so a
        block whose reason has gone since (rehired, rebound) is not written."""
        items = await self.runs.items(run.id, 0, run.items)
        released = dataclasses.replace(
            run, status="done", finished_at=self.clock(), progress={"released": len(items)}
        )
        await self.runs.save(released, etag)
        await self.runs.set_item_states(
            run.id,
            [dataclasses.replace(i, state="applied", error="released to the user's sync") for i in items],
        )
        await self.auditor.record(
            actor,
            "run.approve",
            directory_id=run.directory_id,
            after={"runId": run.id, "guard": run.guard, "users": len(items)},
        )
        await self.sync_queue.enqueue([i.user_id for i in items], actor.correlation_id, approved=True)
        return released

    async def discard(self, directory_id: str, run_id: str, actor: Actor) -> Run:
        run, etag = await self._run(directory_id, run_id)
        if run.status != "held":
            raise Conflict(f"only a held run can be discarded; this one is {run.status}")
        discarded = dataclasses.replace(run, status="discarded", finished_at=self.clock())
        await self.runs.save(discarded, etag)
        await self.auditor.record(actor, "run.discard", directory_id=directory_id, after={"runId": run_id})
        return discarded


def _since(now: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0), 3) for k, v in now.items()}


async def _random(_: PlanItem) -> str:
    return random_password()


class _ApplyChunk:
    """A reconcile's work on a chunk of its plan (``Reconciler.apply_items``), and the Graph usage it spent."""

    pending = "planned"

    def __init__(self, reconciler: Reconciler, directory: Directory, actor: Actor) -> None:
        self.reconciler = reconciler
        self.directory = directory
        self.actor = actor
        self.usage = reconciler.m365.usage(directory.id)

    async def items(self, run: Run, first: int, last: int) -> list[RunItem]:
        return await self.reconciler.runs.items(run.id, first, last)

    async def process(self, run: Run, items: list[RunItem]) -> list[RunItem]:
        return await self.reconciler.apply_items(run, self.directory, items, self.actor)

    async def mark(self, run: Run, items: list[RunItem]) -> None:
        await self.reconciler.runs.set_item_states(run.id, items)

    async def count(self, run: Run, part: int, counts: dict[str, int]) -> Run:
        now = self.reconciler.m365.usage(self.directory.id)
        spent = {f"usage.{k}": int(v) for k, v in _since(now, self.usage).items()}
        self.usage = now
        progress = {"applied": 0, "failed": 0, "skipped": 0, **counts, **spent}
        r = self.reconciler
        return await r.runs.add_progress(run.directory_id, run.id, progress, r.clock(), part=part)
