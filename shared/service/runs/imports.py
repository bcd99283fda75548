"""Bulk import of existing M365 accounts (rule 13), with progress and a 48-hour undo.

1. ``candidates``: the tenant's accounts not yet linked to a Warden user, a page at a time (Warden's cursor over
   Graph's nextLink), filtered by text (``startsWith`` on displayName / UPN / mail), domain and enabled state, each
   saying whether a Warden user with its email or username exists already.
2. ``start`` → a job in ``planning``; ``plan`` (a queue job) stores one item per account — read once: the listing
   for ``all``, one read per given id otherwise — and fans out chunks of 100 items.
3. ``run_chunk`` turns each pending item into a ``staged`` user (source ``import``) under an id derived from the job
   and the account, so a chunk processed twice imports nobody twice; the account is claimed for that user; with
   ``bind`` the user is bound and its sync takes the account over (never sending a password). An account whose
   username or email exists in Warden is skipped with that reason. Items are imported, marked and counted 25 at a
   time, each part counted once (``shared.service.runs.jobs``, the engine reconcile runs share).
4. ``undo`` (within 48 hours) removes the job's users nobody has bound, edited or added to a group since (those are
   listed as kept, with why); nothing is written to M365.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.domain.claims import claim_kind
from shared.domain.errors import Conflict, DomainError, NotFound
from shared.domain.imports import (
    CHUNK,
    IMPORT_CUTTING,
    UNDO_WINDOW,
    Candidate,
    ImportItem,
    ImportJob,
    email_of,
    import_user_id,
    keep_reason,
    user_fields,
    username_of,
)
from shared.domain.model import AuditEntry, Directory
from shared.domain.planner import M365Account
from shared.domain.runs import DIRECTORY_GONE
from shared.service.context import Actor, Auditor
from shared.service.ports import M365, Clock, DirectoryRepository, Ids, Page, Uniques, UserRepository
from shared.service.runs.jobs import ItemSink, end_open, work_chunk
from shared.service.store.users import audit_view

ITEM_CONCURRENCY = 4
CLAIM_CHECKS = 32
"""Claim point reads in flight while planning (a 100,000-account tenant is 100,000 reads)."""
ID_READS = 8
PAGE = 999


@dataclass(frozen=True)
class UndoReport:
    removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)


class ImportStore(Protocol):
    async def add(self, job: ImportJob) -> None: ...

    async def get(self, job_id: str) -> tuple[ImportJob, str] | None: ...

    async def save(self, job: ImportJob, etag: str | None) -> str: ...

    async def put_items(self, job_id: str, items: Sequence[ImportItem]) -> None: ...

    async def items(self, job_id: str, first: int, last: int) -> list[ImportItem]: ...

    async def page_items(
        self, job_id: str, state: str | None, cursor: str | None, limit: int
    ) -> Page[ImportItem]: ...

    async def add_counts(
        self, job_id: str, part: int, counts: dict[str, int], finished: Callable[[ImportJob], ImportJob]
    ) -> ImportJob: ...


def _starts(account: M365Account, text: str) -> bool:
    """The import's text filter: the displayName, UPN or mail starts with it (``text`` lower-cased)."""
    names = (account.display_name, account.user_principal_name, account.mail)
    return any((v or "").lower().startswith(text) for v in names)


class ImportQueue(Protocol):
    async def plan(self, job_id: str) -> None: ...

    async def chunks(self, job_id: str, count: int) -> None: ...


class UserMaker(Protocol):
    async def create(
        self,
        fields: dict[str, Any],
        actor: Actor,
        *,
        source: str = ...,
        user_id: str | None = ...,
        sync: bool = ...,
        audit: bool | list[AuditEntry] = ...,
    ) -> Any: ...

    async def bind(self, user_id: str, directory_id: str, actor: Actor) -> Any: ...

    async def delete(self, user_id: str, if_match: str | None, actor: Actor) -> Any: ...


def account_json(a: M365Account) -> dict[str, Any]:
    return dataclasses.asdict(a)


def account_of(raw: dict[str, Any]) -> M365Account:
    return M365Account(**{**raw, "proxy_addresses": tuple(raw.get("proxy_addresses") or ())})


class Imports:
    def __init__(
        self,
        store: ImportStore,
        queue: ImportQueue,
        directories: DirectoryRepository,
        users: UserRepository,
        uniques: Uniques,
        maker: UserMaker,
        m365: M365,
        clock: Clock,
        ids: Ids,
        auditor: Auditor,
    ) -> None:
        self.store = store
        self.queue = queue
        self.directories = directories
        self.users = users
        self.uniques = uniques
        self.maker = maker
        self.m365 = m365
        self.clock = clock
        self.ids = ids
        self.auditor = auditor

    async def _directory(self, directory_id: str) -> Directory:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found[0]

    async def _job(self, job_id: str) -> tuple[ImportJob, str]:
        found = await self.store.get(job_id)
        if found is None:
            raise NotFound(f"no import job '{job_id}'")
        return found

    async def get(self, job_id: str) -> ImportJob:
        return (await self._job(job_id))[0]

    async def items(self, job_id: str, state: str | None, cursor: str | None, limit: int) -> Page[ImportItem]:
        await self._job(job_id)
        return await self.store.page_items(job_id, state, cursor, limit)

    async def _exists(self, account: M365Account) -> str | None:
        email, username = email_of(account).lower(), username_of(account).lower()
        if await self.uniques.owner("email", email):
            return f"a Warden user with email {email} exists"
        if await self.uniques.owner("username", username):
            return f"a Warden user with username {username} exists"
        return None

    # ------------------------------------------------------------------------------------------ candidates
    async def candidates(
        self,
        directory_id: str,
        *,
        text: str | None,
        domain: str | None,
        enabled: bool | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Candidate], str | None]:
        """Unlinked accounts, a Graph page at a time (``cursor`` is Graph's nextLink, opaque to the caller)."""
        directory = await self._directory(directory_id)
        accounts, next_link = await self.m365.user_page(
            directory, text=text, enabled=enabled, next_link=cursor, top=limit
        )
        if domain:
            accounts = [a for a in accounts if email_of(a).lower().endswith("@" + domain.lower())]
        owners = await asyncio.gather(*(self.uniques.owner(claim_kind(directory_id), a.id) for a in accounts))
        free = [a for a, owner in zip(accounts, owners, strict=True) if owner is None]
        exists = await asyncio.gather(*(self._exists(a) for a in free))
        return [
            Candidate(a, username_of(a), email_of(a), e) for a, e in zip(free, exists, strict=True)
        ], next_link

    # ------------------------------------------------------------------------------------------------ jobs
    async def start(
        self, directory_id: str, selection: dict[str, Any], bind: bool, actor: Actor
    ) -> ImportJob:
        await self._directory(directory_id)
        now = self.clock()
        job = ImportJob(
            self.ids(), directory_id, bind, "planning", actor.name, selection, now, now + UNDO_WINDOW
        )
        await self.store.add(job)
        await self.queue.plan(job.id)
        return job

    async def plan(self, job_id: str) -> ImportJob:
        """Select the accounts and store them as the job's items, page by page: memory holds one page of
        the tenant (999 accounts) and the items of an unfinished chunk, never the whole tenant. Each account
        is checked against its claim (an account linked since the candidates were listed is left out),
        ``CLAIM_CHECKS`` at a time. A failed read of the tenant fails the job; a failed store request leaves
        it planning, for the queue's next delivery to plan again (the items are rewritten in the same order:
        Graph lists a tenant in a stable order, and an item is keyed by its position)."""
        job, etag = await self._job(job_id)
        if job.status != "planning":
            return job
        found = await self.directories.get(job.directory_id)
        if found is None:
            return await self._gone(job, etag)
        directory = found[0]
        started = self.clock()
        text = (job.selection.get("text") or "").lower()
        gate = asyncio.Semaphore(CLAIM_CHECKS)
        sink: ItemSink[ImportItem] = ItemSink(lambda items: self.store.put_items(job.id, items), CHUNK)

        async def unclaimed(account: M365Account) -> bool:
            async with gate:
                return await self.uniques.owner(claim_kind(directory.id), account.id) is None

        pages = self._pages(directory, job.selection)
        while True:
            try:
                accounts = await anext(pages)
            except StopAsyncIteration:
                break
            except Exception as exc:
                failed = f"reading the tenant failed: {type(exc).__name__}"
                await self.store.save(dataclasses.replace(job, status="failed", error=failed), etag)
                raise
            if text:
                accounts = [a for a in accounts if _starts(a, text)]
            free = await asyncio.gather(*(unclaimed(a) for a in accounts))
            taken = [a for a, ok in zip(accounts, free, strict=True) if ok]
            first = sink.total
            await sink.add([ImportItem(first + k, a.id, account_json(a)) for k, a in enumerate(taken)])
        total = await sink.close()
        chunks = IMPORT_CUTTING.chunks(total)
        running = dataclasses.replace(
            job,
            status="running" if chunks else "done",
            total=total,
            chunks=chunks,
            started_at=started,
            finished_at=None if chunks else self.clock(),
        )
        await self.store.save(running, etag)
        if chunks:
            await self.queue.chunks(job.id, chunks)
        return running

    async def _pages(
        self, directory: Directory, selection: dict[str, Any]
    ) -> AsyncIterator[list[M365Account]]:
        """The selected accounts, a page at a time: the tenant's pages, or the given ids read ``ID_READS``
        at a time in slices of a page (an id no longer in the tenant is left out)."""
        if selection.get("all"):
            async for accounts in self.m365.list_users(directory):
                yield accounts
            return
        ids = list(dict.fromkeys(selection.get("m365UserIds") or []))
        gate = asyncio.Semaphore(ID_READS)

        async def one(m365_id: str) -> M365Account | None:
            async with gate:
                return await self.m365.get_user(directory, m365_id)

        for start in range(0, len(ids), PAGE):
            found = await asyncio.gather(*(one(i) for i in ids[start : start + PAGE]))
            yield [a for a in found if a is not None]

    async def run_chunk(self, job_id: str, chunk: int) -> ImportJob:
        """Import the chunk's pending items a part at a time, each part marked then counted exactly once
        (``shared.service.runs.jobs``)."""
        job, etag = await self._job(job_id)
        if job.status != "running":
            return job
        if await self.directories.get(job.directory_id) is None:
            return await self._gone(job, etag)
        return await work_chunk(_ImportChunk(self, Actor(job.trigger)), job, chunk)

    async def _gone(self, job: ImportJob, etag: str) -> ImportJob:
        """An import into a directory deactivated meanwhile ends here, failed: what it imported stays (Warden's
        users now), nothing more is imported or bound."""
        return await end_open(
            job,
            etag,
            lambda j: dataclasses.replace(j, status="failed", error=DIRECTORY_GONE, finished_at=self.clock()),
            open_states=("planning", "running"),
            save=self.store.save,
            read=lambda: self._job(job.id),
        )

    async def _import(
        self, job: ImportJob, item: ImportItem, actor: Actor
    ) -> tuple[ImportItem, AuditEntry | None, bool]:
        """The item's outcome, the ``user.create`` entry of the user it became, and whether that entry's row in
        the user's partition was written with the user (it was, unless the user was created by an earlier
        delivery of the chunk)."""
        account = account_of(item.account)
        user_id = import_user_id(job.id, account.id)
        written: list[AuditEntry] = []
        try:
            view = await self.maker.create(
                user_fields(account), actor, source="import", user_id=user_id, sync=False, audit=written
            )
            user = view.user
        except Conflict as exc:
            # Its username or email is taken — unless by this very import's user (the chunk ran before).
            record = await self.users.get(user_id)
            if record is None:
                return (
                    dataclasses.replace(item, state="skipped", reason=f"{exc.detail}: a Warden user has it"),
                    None,
                    False,
                )
            user = record.user
        except DomainError as exc:  # invalid for Warden (e.g. a UPN Warden's rules refuse)
            return dataclasses.replace(item, state="failed", reason=exc.detail), None, False
        await self.uniques.insert(claim_kind(job.directory_id), account.id, user_id, self.clock())
        if job.bind:
            await self.maker.bind(user_id, job.directory_id, actor)  # its sync takes the account over
        entry = (
            written[0]
            if written
            else self.auditor.entry(actor, "user.create", user_id=user_id, after=audit_view(user))
        )
        return dataclasses.replace(item, state="imported", user_id=user_id, reason=None), entry, bool(written)

    # ------------------------------------------------------------------------------------------------ undo
    async def undo(self, job_id: str, actor: Actor) -> UndoReport:
        job, etag = await self._job(job_id)
        if self.clock() > job.undo_until:
            raise Conflict(f"the undo window of this import closed at {job.undo_until.isoformat()}")
        if job.status in ("planning", "running"):
            raise Conflict("the import is still running; undo it once it is done")
        if job.status == "undone":
            raise Conflict("this import was undone already")
        report = UndoReport()
        gate = asyncio.Semaphore(ITEM_CONCURRENCY)

        async def undo_one(item: ImportItem) -> None:
            assert item.user_id is not None
            async with gate:
                record = await self.users.get(item.user_id)
                if record is None:
                    return
                why = keep_reason(
                    bound=bool(record.direct),
                    edited=record.user.updated_at > record.user.created_at,
                    grouped=bool(record.groups),
                )
                if why:
                    report.kept.append((item.user_id, why))
                    return
                await self.maker.delete(item.user_id, None, actor)
                await self.uniques.release(claim_kind(job.directory_id), item.m365_user_id, item.user_id)
                report.removed.append(item.user_id)

        cursor: str | None = None
        while True:
            page_ = await self.store.page_items(job_id, "imported", cursor, 200)
            await asyncio.gather(*(undo_one(i) for i in page_.items))
            if (cursor := page_.next) is None:
                break
        await self.store.save(dataclasses.replace(job, status="undone", undone_at=self.clock()), etag)
        return report


class _ImportChunk:
    """An import's work on a chunk: each pending account becomes a staged user (``Imports._import``)."""

    pending = "pending"

    def __init__(self, imports: Imports, actor: Actor) -> None:
        self.imports = imports
        self.actor = actor

    async def items(self, job: ImportJob, first: int, last: int) -> list[ImportItem]:
        return await self.imports.store.items(job.id, first, last)

    async def process(self, job: ImportJob, items: list[ImportItem]) -> list[ImportItem]:
        gate = asyncio.Semaphore(ITEM_CONCURRENCY)

        async def one(item: ImportItem) -> tuple[ImportItem, AuditEntry | None, bool]:
            async with gate:
                return await self.imports._import(job, item, self.actor)

        results = await asyncio.gather(*(one(i) for i in items))
        # The user.create entries (their rows by user went with each user), written together before the items
        # are marked: a crash in between delivers the chunk again, and its users, found created, are audited
        # again (at least once).
        auditor = self.imports.auditor
        await auditor.record_all(
            [e for _, e, written in results if e is not None and written], users_written=True
        )
        await auditor.record_all([e for _, e, written in results if e is not None and not written])
        return [item for item, _, _ in results]

    async def mark(self, job: ImportJob, items: list[ImportItem]) -> None:
        await self.imports.store.put_items(job.id, items)

    async def count(self, job: ImportJob, part: int, counts: dict[str, int]) -> ImportJob:
        clock = self.imports.clock
        return await self.imports.store.add_counts(job.id, part, counts, lambda j: j.closed(clock()))
