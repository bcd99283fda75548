"""The full reconcile of a directory (rules 9, 19, 20): plan everything, hold what the guard holds, apply the rest
in chunks that spread over Function instances and survive restarts.

1. ``start``: a run in ``planning``; the planning itself is a queue job (a 100,000-user tenant takes a while).
2. ``plan``: the tenant is read once (``$select``, ``$top=999``, every nextLink — a failed or partial read fails
   the run without writing); the directory's users and links are read once, from the directory index's 16
   partitions, side by side with it; the pure planner plans each linked user as soon as both its row and its
   account have come (``DirectoryPlan``: the planning fills the waits for Graph's pages), and the rest (users to
   match by address) once both reads are done; items with something to do are stored with the run. A dry run
   stops here. A plan that blocks more than the guard allows is ``held``. Otherwise the run is ``applying`` and
   one queue message per chunk of 100 items fans the work out.
3. ``apply_chunk``: each item still ``planned`` is re-checked against its user as read now (a user changed or
   synced since the plan is skipped: its own sync converges it), applied through the M365 port (``$batch``
   requests across users), recorded as one change of its user (its link and the entry auditing it in one
   transaction, made against what was read: a user whose links its own sync wrote meanwhile is synced again),
   the chunk's audit copies and directory-index rows written together, then marked and counted once
   (``shared.service.runs.jobs``, the engine imports share): a chunk delivered twice finds its items marked and
   its part counted, and writes and counts nothing again. Per item: the user's two rows read, one transaction;
   the rest is shared by the chunk.
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

from shared.domain.errors import ConcurrentUpdate, Conflict, NotFound
from shared.domain.model import AuditEntry, Directory, Link, UserDirectory
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
from shared.domain.runs import (
    DIRECTORY_GONE,
    RUN_CUTTING,
    ItemState,
    Run,
    RunItem,
    RunStatus,
    guard_verdict,
    skipped_run,
)
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    M365,
    Applied,
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    GroupQueue,
    HeldRuns,
    Ids,
    IndexEntry,
    Page,
    ProtectedAccounts,
    SyncQueue,
    UserRecord,
    UserRepository,
)
from shared.service.runs.jobs import ItemSink, end_open, work_chunk
from shared.service.store.bindings import Bindings
from shared.service.sync.links import Links
from shared.service.sync.passwords import random_password
from shared.service.tenant.settings import SettingsRound

INDEX_BATCH = 25
"""Index rows handed to the planning at a time (about 1 ms of it): Graph's pages, read side by side, wait a batch
at each turn of the event loop their request and answer take."""
READ_CONCURRENCY = 32
"""Users read (and recorded) at once while a chunk is applied."""
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

    def __init__(self, protected: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.protected = protected or {}
        """Rule 23: protected accounts' ids → why; an account is marked as it comes."""
        self.by_id: dict[str, M365Account] = {}
        self.by_address: dict[str, list[str]] = {}
        self.by_immutable: dict[str, str] = {}

    def add(self, accounts: Sequence[M365Account]) -> None:
        for a in accounts:
            why = self.protected.get(a.id)
            if why:
                a = dataclasses.replace(a, protected_by=why)
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


class DirectoryPlan:
    """The plan of a directory, made while its two reads come in: a user whose link names an account is planned
    as soon as its index row and that account are both there (and its manager's row, when it has a manager);
    the others — unlinked users, matched by address, and links whose account the tenant does not hold — once
    both reads are done (``finish``). The same items as planning everyone at the end; only sooner."""

    def __init__(
        self,
        directory: Directory,
        targets: Mapping[str, Target],
        now: dt.datetime,
        protected: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.directory = directory
        self.targets = targets
        self.now = now
        self.tenant = TenantView(protected)
        self.entries = 0
        self.items: list[tuple[PlanItem, IndexEntry]] = []
        self.counts: Counter[str] = Counter()
        self.linked_ids: set[str] = set()
        self.manager_of: dict[str, str | None] = {}
        """User id → its M365 id when synced here (what its reports' manager is), for every row read."""
        self.waiting: dict[str, IndexEntry] = {}
        """Rows whose linked account has not come yet, by that account's id."""
        self.later: list[IndexEntry] = []
        self.matched: set[str] = set()
        """Accounts some unlinked user matched by address (touched: not unmanaged)."""

    def add_entries(self, entries: Sequence[IndexEntry]) -> None:
        for e in entries:
            self.entries += 1
            link = e.link
            if link is not None and link.m365_user_id:
                self.linked_ids.add(link.m365_user_id)
                if link.status == "synced":
                    self.manager_of[e.user_id] = link.m365_user_id
            if e.user is None:
                continue
            if link is None or not link.m365_user_id:
                self.later.append(e)
            elif link.m365_user_id in self.tenant.by_id:
                self._now_or_later(e)
            else:
                self.waiting[link.m365_user_id] = e

    def add_accounts(self, accounts: Sequence[M365Account]) -> None:
        self.tenant.add(accounts)
        for a in accounts:
            e = self.waiting.pop(a.id, None)
            if e is not None:
                self._now_or_later(e)

    def _now_or_later(self, e: IndexEntry) -> None:
        assert e.user is not None
        if e.user.manager_id and e.user.manager_id not in self.manager_of:
            self.later.append(e)  # its manager's row has not come yet
        else:
            self._plan(e)

    def finish(self) -> tuple[list[tuple[PlanItem, IndexEntry]], dict[str, int], int]:
        """Plan the rest; every item with something to do, the counts by action, and the accounts no user
        links or matches (unmanaged)."""
        for e in [*self.later, *self.waiting.values()]:
            self._plan(e)
        self.later, self.waiting = [], {}
        touched = self.linked_ids | self.matched
        return self.items, dict(self.counts), len(set(self.tenant.by_id) - touched)

    def _plan(self, e: IndexEntry) -> None:
        assert e.user is not None
        directory = self.directory
        link = e.link or Link(e.user_id, directory.id)
        ud = UserDirectory(directory.id, e.via, link)
        tenant = self.tenant
        if link.m365_user_id and link.m365_user_id in tenant.by_id:
            recent = written_recently(link, self.now)
            observation = Observation(linked=tenant.by_id[link.m365_user_id], recent=recent)
        else:
            found = tenant.matches(e.user.email, immutable_id(e.user.id))
            linked = self.linked_ids
            taken = frozenset(a.id for a in found if a.id in linked and a.id != link.m365_user_id)
            observation = Observation(candidates=tuple(found), taken=taken)
            self.matched.update(a.id for a in found)
        manager = self.manager_of.get(e.user.manager_id) if e.user.manager_id else None
        desired = Desired(e.user, (ud,), {directory.id: manager})
        for item in plan_user(desired, self.targets, {directory.id: observation}):
            self.counts[item.action] += 1
            if item.action != "none":
                self.items.append((item, e))


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
        auditor: Auditor,
        queue: ReconcileQueue,
        sync_queue: SyncQueue,
        clock: Clock,
        ids: Ids,
        mirrors: GroupQueue | None = None,
        held: HeldRuns | None = None,
        settings: TenantSettingsKeeper | None = None,
        protection: ProtectedAccounts | None = None,
    ) -> None:
        self.held = held
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
        blocked by rule 17 (its reconcile re-checks it, and carries on once the tenant is no longer synced); a
        directory without a working connection (rule 18) gets a skipped run saying why."""
        runs = []
        for d in await self.directories.all():
            if d.paused:
                skipped = skipped_run(self.ids(), d, "reconcile", actor.name, self.clock())
                await self.runs.add(skipped)
                runs.append(skipped)
            elif d.writable or (d.status == "blocked" and self.settings is not None):
                runs.append(await self.start(d.id, False, actor))
        return runs

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
        found = await self.directories.get(directory_id)
        if found is None:
            return await self._gone(run, etag)
        directory = found[0]
        if directory.paused:  # rule 18: nothing can be read or written there now
            skipped = skipped_run(run.id, directory, run.kind, run.trigger, run.created_at)
            await self.runs.save(
                dataclasses.replace(skipped, started_at=started, finished_at=self.clock()), etag
            )
            return skipped
        m365 = self.m365
        usage_before = m365.usage(directory_id)

        async def read_index() -> None:
            batch: list[IndexEntry] = []
            async for e in self.index.all(directory_id):
                batch.append(e)
                if len(batch) == INDEX_BATCH:
                    planning.add_entries(batch)
                    batch = []
                    await asyncio.sleep(0)  # let the Graph pages' answers in between
            planning.add_entries(batch)

        async def read_tenant() -> None:
            async for accounts in m365.list_users(directory):
                planning.add_accounts(accounts)

        try:
            settled = None
            if self.settings is not None:  # rules 15-17 and 23 first: the tenant's own settings, role holders
                settled = await self.settings.enforce(directory, run.dry_run, Actor(run.trigger, run.id))
            if settled is not None and not settled.directory.writable:
                return await self._blocked(run, etag, started, settled)
            targets = {d.id: target_of(d) for d in await self.directories.all()}
            protection = await self.protection.whole(directory_id) if self.protection is not None else None
            if protection is not None:  # rule 23: what the planner must not write to
                targets[directory_id] = dataclasses.replace(
                    targets[directory_id], roles_verified=protection.roles_readable
                )
            planning = DirectoryPlan(
                directory, targets, self.clock(), protection.why if protection is not None else None
            )
            # The two reads are independent: the store's index and Graph's pages are read side by side.
            await both(read_index(), read_tenant())
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
        m365.set_tenant_size(directory_id, len(planning.tenant.by_id))
        items, counts, unmanaged = self._finish(planning)
        counts.update(settled.counts if settled is not None else {})
        sink: ItemSink[RunItem] = ItemSink(
            lambda batch: self.runs.put_items(run.id, batch), RUN_CUTTING.chunk
        )
        await sink.add(
            RunItem(n, i.action, i.user_id, "planned", payload_of(i, by_user))
            for n, (i, by_user) in enumerate(items)
        )
        stored = await sink.close()
        linked = len(planning.linked_ids)
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
            counts={**counts, "unmanaged": unmanaged, "users": planning.entries},
            guard=guard,
            items=stored,
            chunks=RUN_CUTTING.chunks(stored),
            usage=_since(m365.usage(directory_id), usage_before),
        )
        await self.runs.save(planned, etag)
        if status == "held" and self.held is not None:
            await self.held.held(directory, planned)
        if status == "applying":
            await self.queue.chunks(directory_id, run.id, planned.chunks)
        if not run.dry_run and self.mirrors is not None:  # the reconcile includes the groups mirrored here
            groups = await self.directories.bound_groups(directory_id)
            if groups:
                await self.mirrors.enqueue([(g, directory_id) for g in groups], run.id)
        return planned

    @staticmethod
    def _finish(planning: DirectoryPlan) -> tuple[list[tuple[PlanItem, IndexEntry]], dict[str, int], int]:
        """The plan's last step, once both reads are done (apart, so that it can be timed)."""
        return planning.finish()

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

    # ------------------------------------------------------------------------------------------- apply
    async def apply_chunk(self, directory_id: str, run_id: str, chunk: int) -> Run:
        """Apply the chunk's items still planned and count its outcome once (``shared.service.runs.jobs``): a chunk
        delivered again, or after a crash, writes nothing twice and counts nothing twice."""
        run, etag = await self._run(directory_id, run_id)
        if run.status != "applying":
            return run
        found = await self.directories.get(directory_id)
        if found is None:
            return await self._gone(run, etag)
        return await work_chunk(_ApplyChunk(self, found[0], Actor(run.trigger)), run, chunk)

    async def _gone(self, run: Run, etag: str) -> Run:
        """The run of a directory deactivated meanwhile ends here, failed, its remaining work dropped (the
        directory is gone, and with it everything the run was to write): no retry, no poisoned message."""
        return await end_open(
            run,
            etag,
            lambda r: dataclasses.replace(r, status="failed", finished_at=self.clock(), error=DIRECTORY_GONE),
            open_states=("planning", "applying"),
            save=self.runs.save,
            read=lambda: self._run(run.directory_id, run.id),
        )

    async def apply_items(
        self, run: Run, directory: Directory, todo: list[RunItem], actor: Actor
    ) -> list[RunItem]:
        """Each item re-checked just before it is written against its user as read now (a user changed or synced
        since the plan is left to its own sync), written, and recorded; the items with their outcome."""
        records = await self._records([i.user_id for i in todo])
        ready: list[RunItem] = []
        finished: list[RunItem] = []
        for i in todo:
            verdict = self._stale(run, i, records.get(i.user_id), directory.id)
            if verdict is None:
                ready.append(i)
            else:
                finished.append(dataclasses.replace(i, state=verdict[0], error=verdict[1]))
        ready = await self._unprotected(directory.id, ready, finished)
        results = await self.m365.apply(directory, [PlanItem.from_payload(i.payload) for i in ready], _random)
        written: list[UserRecord] = []
        later: list[AuditEntry] = []
        again: list[str] = []
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def record(i: RunItem, applied: Applied) -> RunItem:
            before = records[i.user_id]
            old = before.links.get(directory.id) or Link(i.user_id, directory.id)
            state: ItemState = "applied" if applied.ok else "failed"
            try:
                async with gate:
                    written.append(await self.links.record_all(before, [(old, applied)], actor, later=later))
            except ConcurrentUpdate:
                again.append(i.user_id)
                return dataclasses.replace(
                    i, state=state, error="the user's own sync wrote its link meanwhile: it runs again"
                )
            if applied.outcome in ("rematch", "exists", "retry"):
                again.append(i.user_id)  # its own sync recovers
            return dataclasses.replace(i, state=state, error=applied.error)

        finished += await asyncio.gather(*(record(i, a) for i, a in zip(ready, results, strict=True)))
        effective = await self.bindings.effective_many(written)
        await asyncio.gather(
            self.auditor.record_all(later, users_written=True),
            self.bindings.project(zip(written, effective, strict=True), {directory.id}),
        )
        if again:
            await self.sync_queue.enqueue(again, actor.correlation_id)
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
    def _stale(
        run: Run, item: RunItem, record: UserRecord | None, directory_id: str
    ) -> tuple[ItemState, str] | None:
        """What became of an item since the plan (re-checked just before it is written), or None to apply it."""
        if record is None:
            return "skipped", "the user no longer exists"
        link = record.links.get(directory_id)
        if link is not None and run.planned_at and link.last_sync_at and link.last_sync_at > run.planned_at:
            p = item.payload
            same = link.fingerprint is not None and link.fingerprint == p.get("fingerprint")
            if same or (p.get("action") == "block" and link.status == p.get("status")):
                return "applied", "applied by an earlier delivery of this chunk"
            return "skipped", "the user was synced since the plan by its own run"
        changed = record.user.updated_at.isoformat() != item.payload.get("userUpdatedAt")
        if item.payload.get("action") != "needs_attention" and changed:
            return "skipped", "the user changed since the plan; its own sync applies the change"
        return None

    async def _records(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(user_id: str) -> UserRecord | None:
            async with gate:
                return await self.users.get(user_id)

        found = await asyncio.gather(*(one(u) for u in dict.fromkeys(user_ids)))
        return {r.user.id: r for r in found if r is not None}

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
