"""Use cases on users: create, read, list, change, delete, and bind to directories."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.domain.dates import check_window
from shared.domain.errors import Invalid, NotFound, PreconditionFailed
from shared.domain.model import (
    USER_FIELDS,
    AuditEntry,
    LinkStatus,
    User,
    UserState,
    UserView,
    apply_user_changes,
)
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    Ids,
    Page,
    SecretStore,
    SyncQueue,
    Uniques,
    UserQuery,
    UserRecord,
    UserRepository,
)
from shared.service.store.bindings import Bindings
from shared.service.store.dates import START, DateIndex, instants, track
from shared.service.store.uniqueness import Claims


def initial_password_name(user_id: str) -> str:
    """The Key Vault secret holding an admin-given initial password until the user's accounts are created."""
    return f"user-{user_id}-initial-password"


UNIQUE_FIELDS = {"username": "username", "email": "email", "employee_id": "employeeId"}


@dataclass(frozen=True)
class UserFilter:
    email: str | None = None
    employee_id: str | None = None
    state: UserState | None = None
    directory_id: str | None = None
    status: LinkStatus | None = None
    name: str | None = None


AuditAs = Callable[[dict[str, Any] | None, dict[str, Any] | None], AuditEntry]
"""The entry auditing a change, given the changed fields before and after (None: only bookkeeping changed)."""


@dataclass(frozen=True)
class Changed:
    """What ``Users.change`` did: the user's record as it is now, the fields changed, and the audit entries
    written with the change (their rows in the user's partition: the caller records the rest of them)."""

    record: UserRecord
    changed: tuple[str, ...] = ()
    entries: tuple[AuditEntry, ...] = ()
    written: bool = False
    """Whether anything was written (nothing changed and nothing to mark: nothing, and no entry)."""


def audit_view(user: User, fields: Any = None) -> dict[str, Any]:
    """The user's fields as the audit shows them (camelCase, only ``fields`` when given)."""
    names = USER_FIELDS if fields is None else [f for f in USER_FIELDS if f in fields]
    out: dict[str, Any] = {}
    for name in names:
        head, *rest = name.split("_")
        out[head + "".join(p.title() for p in rest)] = getattr(user, name)
    return out


class Users:
    def __init__(
        self,
        users: UserRepository,
        directories: DirectoryRepository,
        index: DirectoryIndex,
        uniques: Uniques,
        bindings: Bindings,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        sync: SyncQueue,
        dates: DateIndex,
        secrets: SecretStore | None = None,
        *,
        real_clock: Clock | None = None,
    ) -> None:
        self.secrets = secrets
        self.sync = sync
        self.dates = dates
        self.users = users
        self.directories = directories
        self.index = index
        self.bindings = bindings
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.uniques = uniques
        self.claims = Claims(uniques, real_clock or clock, self._holds)

    async def _holds(self, owner: str, kind: str, value: str) -> bool:
        record = await self.users.get(owner)
        if record is None or record.user.deleted_at is not None:
            return False
        return record.user.unique_values().get(kind) == value

    async def _record(self, user_id: str) -> UserRecord:
        record = await self.users.get(user_id)
        if record is None or record.user.deleted_at is not None:
            raise NotFound(f"no user with id '{user_id}'")
        return record

    async def _check(self, user: User, before: User | None = None) -> None:
        """The user's dates, and its manager (read only when it is new: a manager once checked stays one, and
        a deleted one is a tombstone whose id stays valid)."""
        try:
            check_window(user.start_at, user.end_at, user.time_zone)
        except ValueError as exc:
            raise Invalid(str(exc), field="startAt/endAt/timeZone") from None
        if user.manager_id is not None and (before is None or before.manager_id != user.manager_id):
            if user.manager_id == user.id:
                raise Invalid("managerId: a user cannot be their own manager", field="managerId")
            manager = await self.users.get(user.manager_id)
            if manager is None or manager.user.deleted_at is not None:
                raise Invalid(f"managerId: no user with id '{user.manager_id}'", field="managerId")

    async def view(self, record: UserRecord) -> UserView:
        directories = await self.bindings.effective(record)
        return UserView(record.user, record.etag, tuple(sorted(record.groups)), tuple(directories))

    async def get(self, user_id: str) -> UserView:
        return await self.view(await self._record(user_id))

    async def create(
        self,
        fields: Mapping[str, Any],
        actor: Actor,
        *,
        source: str = "admin",
        initial_password: str | None = None,
        user_id: str | None = None,
        sync: bool = True,
        audit: bool | list[AuditEntry] = True,
        direct: Sequence[str] = (),
        also: Callable[[User], Sequence[AuditEntry]] | None = None,
    ) -> UserView:
        """``user_id``: a given id (an import derives it from the account, so a retry makes no second user);
        ``sync``: False when the new user has nothing to sync (no binding yet; an import without ``bind``);
        ``audit``: the ``user.create`` entry is written with the user; a list: the entry (and the others written
        with the user) are added to it for the caller to record the rest of (``record_all(...,
        users_written=True)``, an import chunk's at once); ``direct``: directories (known to exist) the user is
        bound to as it is created, each audited ``user.bind``; ``also``: more entries about the new user, written
        with it (an HR hire's)."""
        now = self.clock()
        user = User(id=user_id or self.ids(), source=source, created_at=now, updated_at=now, **fields)
        await self._check(user)
        values = user.unique_values()
        await self.claims.claim_all(values, user.id)
        after = {**audit_view(user), **({"initialPassword": "set"} if initial_password else {})}
        entries = [self.auditor.entry(actor, "user.create", user_id=user.id, after=after)]
        bound = list(dict.fromkeys(direct))
        entries += [
            self.auditor.entry(actor, "user.bind", user_id=user.id, directory_id=d, after={"via": "direct"})
            for d in bound
        ]
        entries += also(user) if also is not None else []
        try:
            etag = await self.users.add(user, entries if audit is not False else [], bound)
        except BaseException:
            await self.claims.release_all(values, user.id)
            raise
        await track(self.dates, None, user)
        if initial_password is not None and self.secrets is not None:
            await self.secrets.set(initial_password_name(user.id), initial_password)
        if isinstance(audit, list):
            audit.extend(entries)
        elif audit:
            await self.auditor.record_all(entries, users_written=True)
        if sync:
            await self.sync.enqueue([user.id], actor.correlation_id)
        return UserView(user, etag, (), ())

    async def change(
        self,
        record: UserRecord,
        changes: Mapping[str, Any],
        actor: Actor,
        *,
        etag: str | None,
        marks: Mapping[str, Any] | None = None,
        audit_as: AuditAs | None = None,
    ) -> Changed:
        """Change the user as ``record`` holds it, reading nothing again: its uniqueness claims where an
        identifier changes, the merge of the changed fields with the entry auditing them in one transaction, its
        dates. The entry is a ``user.update`` (when a field changed), or ``audit_as``'s (given the changed
        fields before and after: an HR event's one entry). ``etag``: only if the user is still as read
        (``PreconditionFailed`` otherwise). Queues no sync and refreshes no index (the caller's to do)."""
        before = record.user
        changed = tuple(k for k, v in changes.items() if getattr(before, k) != v)
        marked = {k: v for k, v in (marks or {}).items() if getattr(before, k) != v}
        if not changed and not marked:
            return Changed(record)
        after = replace(apply_user_changes(before, {k: changes[k] for k in changed}, self.clock()), **marked)
        await self._check(after, before)
        old_values, new_values = before.unique_values(), after.unique_values()
        claimed = {k: v for k, v in new_values.items() if old_values.get(k) != v}
        await self.claims.claim_all(claimed, before.id)
        views = (audit_view(before, changed), audit_view(after, changed)) if changed else (None, None)
        if audit_as is not None:
            entries = [audit_as(*views)]
        elif changed:
            entries = [
                self.auditor.entry(actor, "user.update", user_id=before.id, before=views[0], after=views[1])
            ]
        else:
            entries = []
        try:
            new_etag = await self.users.update(after, [*changed, *marked], etag, entries)
        except BaseException:
            await self.claims.release_all(claimed, before.id)
            raise
        released = {k: v for k, v in old_values.items() if new_values.get(k) != v}
        await self.claims.release_all(released, before.id)
        await track(self.dates, before, after)
        return Changed(replace(record, user=after, etag=new_etag), changed, tuple(entries), True)

    async def update(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        if_match: str | None,
        actor: Actor,
        *,
        marks: Mapping[str, Any] | None = None,
        sync: bool = True,
    ) -> UserView:
        """``marks``: bookkeeping fields that are not an admin's to set (``hr_event_at``), written with the
        change (or alone) and not audited as a change of the user. ``sync``: False when the caller queues the
        user's sync itself (once, after all its changes)."""
        record = await self._record(user_id)
        if if_match is not None and if_match != record.etag:
            raise PreconditionFailed("the user changed since it was read (If-Match does not match its ETag)")
        done = await self.change(record, changes, actor, etag=if_match, marks=marks)
        if not done.written:
            return await self.view(record)
        await self.auditor.record_all(done.entries, users_written=True)
        if done.changed and sync:
            await self.sync.enqueue([user_id], actor.correlation_id)
        await self.bindings.refresh(
            user_id, record=done.record
        )  # the directory index carries the user's fields
        return await self.view(done.record)

    async def delete(self, user_id: str, if_match: str | None, actor: Actor) -> list[str]:
        """Delete the user; returns the groups it left (their members changed). With linked M365 accounts
        the user stays as a tombstone holding its links, so that the accounts get blocked (rule 7)."""
        record = await self._record(user_id)
        if if_match is not None and if_match != record.etag:
            raise PreconditionFailed("the user changed since it was read (If-Match does not match its ETag)")
        now = self.clock()
        for directory_id in record.direct:
            await self.users.set_direct_binding(user_id, directory_id, False, now)
        linked = any(link.m365_user_id for link in record.links.values())
        if linked:
            gone = replace(record.user, deleted_at=now, updated_at=now)
            await self.users.update(gone, ["deleted_at"], if_match)
        else:
            await self.users.delete(user_id)
        await self.claims.release_all(record.user.unique_values(), user_id)
        await track(self.dates, record.user, None)
        if record.direct or record.links or record.groups:  # else it has no index rows to remove
            await self.bindings.refresh(user_id)
        await self.auditor.record(
            actor,
            "user.delete",
            user_id=user_id,
            before=audit_view(record.user),
            after={
                "linkedAccountsToBlock": sorted(d for d, link in record.links.items() if link.m365_user_id)
            },
        )
        if linked:
            await self.sync.enqueue([user_id], actor.correlation_id)
        return sorted(record.groups)

    async def page(self, flt: UserFilter, cursor: str | None, limit: int) -> Page[UserView]:
        if flt.status is not None and flt.directory_id is None:
            raise Invalid(
                "status: link statuses are per directory; give directoryId with status", field="status"
            )
        if flt.name is not None and (flt.email, flt.employee_id, flt.directory_id) != (None, None, None):
            raise Invalid(
                "name: search by name alone (with state at most), not with email, employeeId or directoryId",
                field="name",
            )
        if flt.email is not None or flt.employee_id is not None:
            return await self._by_unique(flt)
        if flt.directory_id is not None:
            if await self.directories.get(flt.directory_id) is None:
                raise NotFound(f"no directory with id '{flt.directory_id}'")
            entries = await self.index.page(flt.directory_id, flt.status, cursor, limit)
            records = await asyncio.gather(*(self.users.get(e.user_id) for e in entries.items))
            found = [r for r in records if r is not None and r.user.deleted_at is None]
            if flt.state is not None:
                found = [r for r in found if r.user.state == flt.state]
            return Page([await self.view(r) for r in found], entries.next)
        listed = await self.users.page(UserQuery(state=flt.state, name=flt.name), cursor, limit)
        return Page([await self.view(r) for r in listed.items], listed.next)

    async def _by_unique(self, flt: UserFilter) -> Page[UserView]:
        owners = set()
        if flt.email is not None:
            owners.add(await self.uniques.owner("email", flt.email.lower()))
        if flt.employee_id is not None:
            owners.add(await self.uniques.owner("employeeId", flt.employee_id.lower()))
        if len(owners) != 1 or None in owners:
            return Page([], None)
        owner = owners.pop()
        record = await self.users.get(owner) if owner else None
        if record is None or record.user.deleted_at is not None:
            return Page([], None)
        view = await self.view(record)
        u = view.user
        matches = (
            (flt.email is None or u.email.lower() == flt.email.lower())
            and (flt.employee_id is None or (u.employee_id or "").lower() == flt.employee_id.lower())
            and (flt.state is None or u.state == flt.state)
            and (
                flt.directory_id is None or any(d.directory_id == flt.directory_id for d in view.directories)
            )
            and (
                flt.status is None
                or any(
                    d.link.status == flt.status
                    for d in view.directories
                    if d.directory_id == flt.directory_id
                )
            )
        )
        return Page([view] if matches else [], None)

    async def bind(
        self, user_id: str, directory_id: str, actor: Actor, *, sync: bool = True
    ) -> tuple[UserView, bool]:
        """``sync``: False when the caller queues the user's sync itself. (An admin's PUT queues one even when the
        user is bound already: a re-run converges.)"""
        await self._record(user_id)
        if await self.directories.get(directory_id) is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        created = await self.users.set_direct_binding(user_id, directory_id, True, self.clock())
        await self.bindings.refresh(user_id)
        if created:
            await self.auditor.record(
                actor, "user.bind", user_id=user_id, directory_id=directory_id, after={"via": "direct"}
            )
        if sync:
            await self.sync.enqueue([user_id], actor.correlation_id)
        return await self.get(user_id), created

    async def unbind(self, user_id: str, directory_id: str, actor: Actor) -> None:
        record = await self._record(user_id)
        if directory_id not in record.direct:
            raise NotFound(f"user '{user_id}' is not bound directly to directory '{directory_id}'")
        await self.users.set_direct_binding(user_id, directory_id, False, self.clock())
        await self.bindings.refresh(user_id)
        await self.auditor.record(
            actor, "user.unbind", user_id=user_id, directory_id=directory_id, before={"via": "direct"}
        )
        await self.sync.enqueue([user_id], actor.correlation_id)

    async def apply_date(self, user_id: str, kind: str, actor: Actor) -> bool:
        """Rule 21: activate a staged user whose start has come, suspend one whose end has come (the change
        queues its sync, which provisions or blocks). False when the date no longer holds (changed meanwhile)."""
        record = await self.users.get(user_id)
        if record is None or record.user.deleted_at is not None:
            return False
        due = instants(record.user)[kind]
        if due is None or due > self.clock():
            return False
        state = "active" if kind == START else "suspended"
        await self.update(user_id, {"state": state}, record.etag, actor)
        return True
