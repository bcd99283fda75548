"""Per-user sync (rule 8: level-triggered): whatever woke it, read the user as the store has it now, observe its
M365 accounts, plan, apply, record. Running it twice, or again after a crash at any point, converges to the
same end state and never creates a second account.

Each row is read once: the user's two rows side by side (after its sync lease is taken), the directories, its
groups' bindings when it has groups, its manager's links when it has a manager. Its outcomes are written as one
change of the user (links and their audit entries in one transaction, against the version read: see
``shared.service.sync.links``), its directory index rows are projected from what the run holds, and the lease is
given back with the token it was taken with. A linked account that is to be blocked whatever its state is not
read first (``blocks_unread``): its PATCH and revoke go out at once.

- a create whose answer was lost is found again by its UPN / immutable id and taken over (linked, not created);
- a create Graph refuses as a duplicate UPN means "it exists": find it (waiting out replication lag, bounded)
  and link it;
- every M365 account Warden links is claimed for its Warden user (``m365:<directory>`` claims), so one account
  is never linked to two people.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared.domain.claims import claim_kind
from shared.domain.errors import ConcurrentUpdate, Conflict, CredentialRefused, NotFound
from shared.domain.model import Directory, Link, UserDirectory
from shared.domain.planner import (
    Desired,
    Observation,
    PlanItem,
    Target,
    blocks_unread,
    immutable_id,
    plan_user,
    target_of,
    written_recently,
)
from shared.domain.protection import reason as protection_reason
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    M365,
    Applied,
    Clock,
    DirectoryRepository,
    GroupQueue,
    ProtectedAccounts,
    SecretStore,
    Uniques,
    UserRecord,
    UserRepository,
)
from shared.service.store.bindings import Bindings
from shared.service.store.users import initial_password_name
from shared.service.sync.guard import HELD_REASON, SlidingGuard
from shared.service.sync.leases import Leases
from shared.service.sync.links import Links
from shared.service.sync.passwords import random_password
from shared.service.tenant.protection import protect

LAG_WAITS = (0.25, 0.5, 1.0, 2.0, 3.0)
"""Seconds between lookups of an account Graph says exists but does not list yet (replication lag)."""


class SyncIncomplete(Exception):
    """Some writes could not be made now (throttling or a 5xx outlived the retries); the queue retries."""


class SyncBusy(Exception):
    """Another run holds this user's sync lease; this one must run after it (the message is re-queued)."""


class Pauses(Protocol):
    """Rule 18: directories whose connection does not work (``shared.service.connections.status``)."""

    async def defer(self, directory_id: str, user_id: str, correlation_id: str | None) -> None:
        """Keep the user's sync for a directory that is not active (replayed when it is again)."""

    async def refused(self, refusal: CredentialRefused, actor: Actor) -> None:
        """Entra refused a directory's token: the directory needs reactivation from now on."""


@dataclass
class SyncReport:
    user_id: str
    results: list[Applied] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(r.writes for r in self.results)


@dataclass(frozen=True)
class PasswordResult:
    directory_id: str
    ok: bool
    detail: str | None = None


class Sync:
    def __init__(
        self,
        *,
        users: UserRepository,
        directories: DirectoryRepository,
        bindings: Bindings,
        uniques: Uniques,
        m365: M365,
        links: Links,
        leases: Leases,
        auditor: Auditor,
        clock: Clock,
        guard: SlidingGuard | None = None,
        secrets: SecretStore | None = None,
        mirrors: GroupQueue | None = None,
        pauses: Pauses | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        protection: ProtectedAccounts | None = None,
    ) -> None:
        self.protection = protection
        """Rule 23: which observed accounts are protected (None: no such source, as in tests of other rules)."""
        self.users = users
        self.directories = directories
        self.bindings = bindings
        self.uniques = uniques
        self.m365 = m365
        self.links = links
        self.leases = leases
        self.auditor = auditor
        self.clock = clock
        self.guard = guard
        self.secrets = secrets
        self.mirrors = mirrors
        self.pauses = pauses
        self.sleep = sleep

    # ------------------------------------------------------------------------------------------ observe
    async def _candidates(self, d: Directory, record: UserRecord) -> Observation:
        found = await self.m365.find_users(d, record.user.email, immutable_id(record.user.id))
        owners = await asyncio.gather(*(self.uniques.owner(claim_kind(d.id), a.id) for a in found))
        taken = frozenset(
            a.id for a, owner in zip(found, owners, strict=True) if owner not in (None, record.user.id)
        )
        return Observation(candidates=tuple(found), taken=taken)

    async def _observe(
        self, d: Directory, record: UserRecord, link: Link, gone: bool = False, *, unread: bool = False
    ) -> Observation:
        if link.m365_user_id and unread:
            return Observation(unread=link.m365_user_id, recent=written_recently(link, self.clock()))
        if link.m365_user_id:
            account = await self.m365.get_user(d, link.m365_user_id)
            if account is not None:
                return Observation(linked=account, recent=written_recently(link, self.clock()))
            return await self._missing(d, record, link, gone)
        return await self._candidates(d, record)

    async def _missing(self, d: Directory, record: UserRecord, link: Link, gone: bool) -> Observation:
        """The linked account answered 404 (to a read, or to a block written without one)."""
        if not gone and written_recently(link, self.clock()):
            # Rule 2: once linked, the object id is the match. An account Warden linked minutes ago that
            # answers 404 is most likely not replicated to this reader yet: try again later.
            raise SyncIncomplete(f"linked account {link.m365_user_id} is not visible yet")
        if record.user.deleted_at is not None or record.user.state == "suspended":
            return Observation()  # gone in M365: nothing to block, and never a reason to create
        return await self._candidates(d, record)

    async def _manager_ids(self, manager_id: str | None) -> dict[str, str | None]:
        if manager_id is None:
            return {}
        manager = await self.users.get(manager_id)
        if manager is None:
            return {}
        return {d: link.m365_user_id for d, link in manager.links.items() if link.status == "synced"}

    # -------------------------------------------------------------------------------------------- sync
    async def sync_user(
        self, user_id: str, actor: Actor, *, gone: bool = False, approved: bool = False
    ) -> SyncReport:
        """One run at a time per user: a run that started later (its change came later) waits for the one
        before it, so an older picture of the user is never written after a newer one (rule 8)."""
        holder = str(uuid.uuid4())
        token = await self.leases.take_user(user_id, holder)
        if token is None:
            raise SyncBusy(f"user {user_id} is being synced by another run")
        try:
            return await self._sync_or_defer(user_id, actor, gone, approved)
        finally:
            await self.leases.give_user(user_id, holder, token)

    # ----------------------------------------------------------------------------- rule 18: deferral
    async def _sync_or_defer(self, user_id: str, actor: Actor, gone: bool, approved: bool) -> SyncReport:
        """A token refused for a directory marks it ``needs_reactivation`` (once), and the sync runs again: its
        writes there are deferred now, the other directories' go ahead. Never poisoned, never dropped."""
        refused: set[str] = set()
        while True:
            try:
                return await self._sync(user_id, actor, gone, approved)
            except CredentialRefused as refusal:
                if self.pauses is None or refusal.directory_id in refused:
                    raise
                refused.add(refusal.directory_id)
                await self.pauses.refused(refusal, actor)

    async def _defer_paused(
        self, user_id: str, effective: list[UserDirectory], directories: Mapping[str, Directory], actor: Actor
    ) -> list[UserDirectory]:
        """The user's directories that can be written; the others keep the user's sync for later."""
        if self.pauses is None:
            return effective
        paused = [e for e in effective if directories[e.directory_id].paused]
        for e in paused:
            await self.pauses.defer(e.directory_id, user_id, actor.correlation_id)
        return [e for e in effective if not directories[e.directory_id].paused]

    async def _blocks_unread(
        self, desired: Desired, ud: UserDirectory, targets: Mapping[str, Target]
    ) -> bool:
        """``blocks_unread``, unless the linked account is protected (rule 23): a protected account is read, so that
        the planner sees its protection and freezes the link instead of blocking it blind."""
        if not blocks_unread(desired, ud, targets):
            return False
        account = ud.link.m365_user_id
        if self.protection is None or account is None:
            return True
        return not (await self.protection.lookup(ud.directory_id, [account])).of(account)

    async def _sync(
        self, user_id: str, actor: Actor, gone: bool = False, approved: bool = False
    ) -> SyncReport:
        report = SyncReport(user_id)
        record, listed = await asyncio.gather(self.users.get(user_id), self.directories.all())
        if record is None:
            return report
        directories = {d.id: d for d in listed}
        record = await self._forget_removed(record, directories)
        if record is None:
            return report
        effective = [e for e in await self.bindings.effective(record) if e.directory_id in directories]
        effective = await self._defer_paused(user_id, effective, directories, actor)
        if not effective:
            return report
        targets = {d: target_of(directories[d]) for d in {e.directory_id for e in effective}}
        desired = Desired(record.user, tuple(effective), await self._manager_ids(record.user.manager_id))
        unread = {e.directory_id: await self._blocks_unread(desired, e, targets) for e in effective}
        observed = dict(
            zip(
                [e.directory_id for e in effective],
                await asyncio.gather(
                    *(
                        self._observe(
                            directories[e.directory_id],
                            record,
                            e.link,
                            gone,
                            unread=unread[e.directory_id],
                        )
                        if targets[e.directory_id].writable
                        else _nothing()
                        for e in effective
                    )
                ),
                strict=True,
            )
        )
        if self.protection is not None:
            for directory_id, seen in list(observed.items()):
                if targets[directory_id].writable:
                    observed[directory_id], targets[directory_id] = await protect(
                        self.protection, directory_id, seen, targets[directory_id]
                    )
        planned = plan_user(desired, targets, observed)
        # Only an admin gives an initial password (POST /api/users): HR hires never have one to look up.
        creates = any(i.action == "create" for i in planned) and record.user.state == "active"
        creates = creates and record.user.source == "admin"
        if creates and self.secrets and await self.secrets.find(initial_password_name(user_id)) is not None:
            desired = dataclasses.replace(desired, has_initial_password=True)
            planned = plan_user(desired, targets, observed)
        items = [
            await self._guarded(directories[i.directory_id], ud, i, actor, approved)
            for ud, i in zip(effective, planned, strict=True)
        ]
        outcomes = await asyncio.gather(
            *(
                self._apply_with_recovery(directories[i.directory_id], record, desired, targets, i, gone)
                for i in items
            )
        )
        report.results.extend(outcomes)
        try:
            now = await self.links.record_all(
                record, [(ud.link, a) for ud, a in zip(effective, outcomes, strict=True)], actor
            )
        except ConcurrentUpdate as exc:
            # Another run (a reconcile's chunk) wrote one of these links since this run read them: run again,
            # on what both wrote (the queue delivers the message again).
            raise SyncIncomplete(str(exc)) from None
        projected = [dataclasses.replace(e, link=now.links.get(e.directory_id, e.link)) for e in effective]
        await self.bindings.project([(now, projected)], directories)
        relinked = {
            ud.directory_id
            for ud, applied in zip(effective, outcomes, strict=True)
            if (applied.m365_user_id or ud.link.m365_user_id) != ud.link.m365_user_id
        }
        if relinked and record.groups and self.mirrors is not None:
            # A member's account changed in a directory: the groups mirrored there must follow (rule 14).
            pairs = await self.bindings.mirrors_of(record.groups, relinked)
            if pairs:
                await self.mirrors.enqueue(pairs, actor.correlation_id)
        if self.secrets is not None and any(
            a.outcome == "applied" and a.item.password == "initial" for a in report.results
        ):
            await self.secrets.delete(initial_password_name(user_id))  # used: it lives nowhere any more
        if any(a.outcome == "retry" for a in report.results):
            raise SyncIncomplete(f"user {user_id}: some writes must be retried")
        return report

    async def _forget_removed(
        self, record: UserRecord, directories: Mapping[str, Directory]
    ) -> UserRecord | None:
        """The record without its bindings and links to directories deleted since (a link a run wrote while
        its directory was being deactivated): each is forgotten, and the record read again. A directory only
        absent from the list (being deactivated, or connected after it was read) is left to its own work."""
        unknown = sorted((set(record.links) | record.direct) - set(directories))
        removed = [d for d in unknown if await self.directories.get(d, deactivating=True) is None]
        if not removed:
            return record
        for directory_id in removed:
            await self.users.forget_directory(record.user.id, directory_id)
        return await self.users.get(record.user.id)

    async def _guarded(
        self, d: Directory, ud: UserDirectory, item: PlanItem, actor: Actor, approved: bool
    ) -> PlanItem:
        """A block over the sliding-hour guard becomes a held item (rule 19); the rest passes unchanged."""
        if item.action != "block" or approved or self.guard is None:
            return item
        if ud.link.status == "needs_attention" and (ud.link.reason or "").startswith(HELD_REASON):
            reason = ud.link.reason  # held already: it waits in its run
        elif await self.guard.reserve(d):
            return item
        else:
            run_id = await self.guard.hold(d, item, actor)
            reason = f"{HELD_REASON} (run {run_id}): an admin approves or discards it"
        return dataclasses.replace(
            item,
            action="needs_attention",
            status="needs_attention",
            reason=reason,
            changes={},
            revoke_sessions=False,
        )

    async def _apply(self, d: Directory, item: PlanItem) -> Applied:
        (applied,) = await self.m365.apply(d, [item], self._password)
        return applied

    async def _apply_with_recovery(
        self,
        d: Directory,
        record: UserRecord,
        desired: Desired,
        targets: Mapping[str, Target],
        item: PlanItem,
        gone: bool = False,
    ) -> Applied:
        applied = await self._apply(d, item)
        if (
            applied.outcome == "rematch"
            and item.action == "block"
            and item.changes["accountEnabled"][0] is None
        ):
            # A block written without reading the account, which answered 404: as a read's 404 would.
            link = next(e.link for e in desired.directories if e.directory_id == d.id)
            try:
                seen = await self._missing(d, record, link, gone)
            except SyncIncomplete as exc:
                return dataclasses.replace(applied, outcome="retry", detail=str(exc))
            (replanned,) = [i for i in plan_user(desired, targets, {d.id: seen}) if i.directory_id == d.id]
            if not replanned.writes:
                return Applied(replanned, "none", replanned.m365_user_id)
            return await self._apply(d, replanned)
        if applied.outcome not in ("rematch", "exists"):
            return applied
        # The linked id is gone, or the account exists already: find it by email and plan once more.
        unlinked = tuple(
            dataclasses.replace(e, link=dataclasses.replace(e.link, m365_user_id=None))
            if e.directory_id == d.id
            else e
            for e in desired.directories
        )
        for wait in (0.0, *LAG_WAITS) if applied.outcome == "exists" else (0.0,):
            await self.sleep(wait)
            observation = await self._candidates(d, record)
            if self.protection is not None:
                observation, _ = await protect(self.protection, d.id, observation, targets[d.id])
            if observation.candidates:
                break
        else:
            return dataclasses.replace(
                applied, outcome="retry", detail="the account exists but is not visible yet"
            )
        again = [
            i
            for i in plan_user(
                dataclasses.replace(desired, directories=unlinked), targets, {d.id: observation}
            )
            if i.directory_id == d.id
        ]
        if not again or not again[0].writes:
            return Applied(again[0], "none", again[0].m365_user_id) if again else applied
        return await self._apply(d, again[0])

    async def _password(self, item: PlanItem) -> str:
        """A new account's password: the admin's initial one (rule 3, from Key Vault), else a random strong one."""
        if item.password == "initial" and self.secrets is not None:
            given = await self.secrets.find(initial_password_name(item.user_id))
            if given is not None:
                return given
        return random_password()

    # ---------------------------------------------------------------------------------------- password
    async def push_password(self, user_id: str, password: str, actor: Actor) -> list[PasswordResult]:
        """Rule 6: set the password in every directory the user is linked in, now; the password goes to Graph
        and nowhere else (not a table, queue, log, exception or audit entry)."""
        record = await self.users.get(user_id)
        if record is None or record.user.deleted_at is not None:
            raise NotFound(f"no user with id '{user_id}'")
        directories = {d.id: d for d in await self.directories.all()}
        linked = [
            x
            for x in record.links.values()
            if x.m365_user_id and x.directory_id in directories and x.status == "synced"
        ]

        async def push(link: Link) -> PasswordResult:
            d = directories[link.directory_id]
            assert link.m365_user_id is not None
            if d.paused:  # rule 18: no connection to write with (a password is never kept for later)
                return PasswordResult(
                    d.id, False, f"{d.name}: the directory is {d.status}, {d.status_reason}"
                )
            if self.protection is not None:
                why = (await self.protection.lookup(d.id, [link.m365_user_id])).of(link.m365_user_id)
                if why:  # rule 23: never a password on a protected account
                    return PasswordResult(
                        d.id, False, f"{d.name}: {protection_reason(why)}: Warden sets no password"
                    )
            written = await self.m365.set_password(d, link.m365_user_id, password)
            return PasswordResult(d.id, written.ok, None if written.ok else f"{d.name}: {written.detail}")

        if not linked:
            raise Conflict(
                "the user is not linked in any directory yet: there is no account to set a password on"
            )
        results = list(await asyncio.gather(*(push(link) for link in linked)))
        for r in results:
            await self.auditor.record(
                actor,
                "m365.password",
                result="succeeded" if r.ok else f"failed: {r.detail}",
                user_id=user_id,
                directory_id=r.directory_id,
                after={"password": "set" if r.ok else "not set"},
            )
        return results


async def _nothing() -> Observation:
    return Observation()
