"""A SCIM source's users and groups (RFC 7643/7644), in Warden's terms.

A SCIM client sees the users and groups it provisioned (or adopted): each has a record in the source's partition
(``SourceRecords``) holding the client's ``externalId`` and the resource as the client last wrote it, and is a
plain Warden user or group. Every write goes through the same store operations as an HR event and an admin
(``Users`` and ``Groups``: uniqueness claims, lifecycle, audit with the source's actor ``hris:<name>``), marks the
person's ``hr_event_at`` (so an older HR event arriving later changes nothing: the last applied wins), binds the
directories that auto-bind the email's domain, and queues one level-triggered sync, whose guard and audit are every
sync's. ``active: false`` suspends (blocked and signed out everywhere); DELETE removes the Warden user, whose M365
accounts are blocked, never deleted.

What a SCIM payload means in Warden's fields is the HTTP contract's business (``shared.api.scim``): a write here
takes the fields the source's mapping feeds, already validated, and the document to keep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shared.domain.errors import ConcurrentUpdate, Conflict, Invalid, NotFound, PreconditionFailed
from shared.domain.hr import active_state, username_candidates
from shared.domain.model import Group, User, UserState
from shared.domain.sources import PersonRecord, SourceRef
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    Clock,
    DirectoryRepository,
    GroupRepository,
    SecretStore,
    SyncQueue,
    Uniques,
    UserRecord,
    UserRepository,
)
from shared.service.store.groups import NAME as GROUP_NAME
from shared.service.store.groups import Groups
from shared.service.store.users import Users, initial_password_name

RecordKind = Literal["user", "group"]
WRITE_ATTEMPTS = 3
REQUIRED_FIELDS = ("email", "first_name", "last_name")


# ---------------------------------------------------------------------------------------------------- ports
class SourceRecords(Protocol):
    async def get(self, source_id: str, kind: RecordKind, object_id: str) -> PersonRecord | None: ...

    async def owner(self, source_id: str, kind: RecordKind, external_id: str) -> str | None: ...

    async def put(self, record: PersonRecord, kind: RecordKind, previous: PersonRecord | None) -> None:
        """Write the record and its external id's key in one transaction (``Conflict``: the key is another's;
        ``PreconditionFailed``: the record changed since ``previous`` was read)."""

    async def delete(self, record: PersonRecord, kind: RecordKind) -> None: ...

    async def remember(self, source_id: str, kind: RecordKind, external_id: str, object_id: str) -> None: ...

    async def page(
        self, source_id: str, kind: RecordKind, skip: int, count: int
    ) -> tuple[list[PersonRecord], int]: ...

    def all(self, source_id: str, kind: RecordKind) -> AsyncIterator[list[PersonRecord]]: ...

    async def drop(self, source_id: str) -> None: ...


PasswordPush = Callable[[str, str, Actor], Awaitable[Sequence[Any]]]
"""Push a password to every directory the user is linked in (rule 6); each result has ``ok`` and ``detail``."""


# ---------------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Sourced:
    """A Warden user as a source sees it: the user's partition and the source's record of it."""

    record: UserRecord
    person: PersonRecord

    @property
    def id(self) -> str:
        return self.record.user.id


@dataclass(frozen=True)
class SourcedGroup:
    group: Group
    etag: str
    members: tuple[str, ...]
    record: PersonRecord

    @property
    def id(self) -> str:
        return self.group.id


@dataclass(frozen=True)
class WantedUser:
    """A SCIM user in Warden's terms: the user fields the source's mapping feeds (every mapped one; None where
    the resource has no value), the ``active`` flag, the manager (a Warden user id), the client's externalId, the
    document to keep, and a write-only password (never kept: an initial password for new accounts, else pushed)."""

    fields: Mapping[str, Any]
    active: bool | None = None
    manager_id: str | None = None
    manager_given: bool = False
    external_id: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict)
    password: str | None = None


@dataclass(frozen=True)
class WantedGroup:
    name: str
    external_id: str | None = None
    members: tuple[str, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict)


Lookup = Literal["id", "externalId", "username", "email", "employeeId"]
GroupLookup = Literal["id", "externalId", "displayName"]
_UNIQUE_KIND = {"username": "username", "email": "email", "employeeId": "employeeId"}


# ------------------------------------------------------------------------------------------------ use case
class Scim:
    def __init__(
        self,
        users: Users,
        groups: Groups,
        user_store: UserRepository,
        group_store: GroupRepository,
        directories: DirectoryRepository,
        uniques: Uniques,
        records: SourceRecords,
        push_password: PasswordPush,
        secrets: SecretStore,
        sync: SyncQueue,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self.secrets = secrets
        self.auditor = auditor
        self.users = users
        self.groups = groups
        self.user_store = user_store
        self.group_store = group_store
        self.directories = directories
        self.uniques = uniques
        self.records = records
        self.push_password = push_password
        self.sync = sync
        self.clock = clock

    # ============================================================================================== users
    async def user(self, source: SourceRef, user_id: str) -> Sourced:
        person, record = await asyncio.gather(
            self.records.get(source.id, "user", user_id), self.user_store.get(user_id)
        )
        if person is None or record is None or record.user.deleted_at is not None:
            raise NotFound(f"no user with id '{user_id}' in this source")
        return Sourced(record, person)

    async def find_users(self, source: SourceRef, attribute: Lookup, value: str) -> list[Sourced]:
        """The user whose ``attribute`` is ``value`` (by index: a SCIM ``eq`` filter on an identifier)."""
        if attribute == "id":
            owner: str | None = value.lower()
        elif attribute == "externalId":
            owner = await self.records.owner(source.id, "user", value)
        else:
            owner = await self.uniques.owner(_UNIQUE_KIND[attribute], value.lower())
        if owner is None:
            return []
        try:
            return [await self.user(source, owner)]
        except NotFound:
            return []

    async def users_page(self, source: SourceRef, skip: int, count: int) -> tuple[list[Sourced], int]:
        people, total = await self.records.page(source.id, "user", skip, count)
        found = await self._sourced(people)
        return found, total - (len(people) - len(found))

    async def all_users(self, source: SourceRef) -> AsyncIterator[list[Sourced]]:
        async for people in self.records.all(source.id, "user"):
            yield await self._sourced(people)

    async def _sourced(self, people: Sequence[PersonRecord]) -> list[Sourced]:
        records = await asyncio.gather(*(self.user_store.get(p.object_id) for p in people))
        out = []
        for person, record in zip(people, records, strict=True):
            if record is None or record.user.deleted_at is not None:
                with contextlib.suppress(Exception):  # the user went another way (an admin deleted it)
                    await self.records.delete(person, "user")
                continue
            out.append(Sourced(record, person))
        return out

    async def create_user(
        self, source: SourceRef, wanted: WantedUser, actor: Actor, *, upsert: bool = False
    ) -> tuple[Sourced, bool]:
        """A new user; or the one the client already provisioned under this externalId or email (``upsert``, as
        Entra's ``/bulkUpload`` treats a POST: create or update); or a user Warden knows by email that no other HR
        feed holds (adopted, as an HR event adopts an imported account). Whether it was created (or adopted).

        A create is tried first (a new person is the common case, and its uniqueness claims are the check);
        only a taken email or username makes it look further."""
        _required(wanted)
        if upsert:
            mine = await self._provisioned(source, wanted)
            if mine is not None:
                return await self._replace_with(source, mine, wanted, actor), False
        try:
            return await self._create(source, wanted, actor), True
        except Conflict as exc:
            if exc.extensions.get("field") not in ("email", "username"):
                raise
            refused = exc
        email = str(wanted.fields["email"])
        owner = await self.uniques.owner("email", email.lower())
        existing = await self.user_store.get(owner) if owner is not None else None
        if existing is None or existing.user.deleted_at is not None:
            raise refused
        if await self.records.get(source.id, "user", existing.user.id) is not None:
            if upsert:
                return await self._replace_with(source, existing.user.id, wanted, actor), False
            raise Conflict(
                f"email '{email}' is user {existing.user.id}'s", field="email", owner=existing.user.id
            )
        if existing.user.source.startswith("hris:") and existing.user.source != source.actor:
            raise Conflict(
                f"email '{email}' is user {existing.user.id}'s, fed by {existing.user.source}", field="email"
            )
        return await self._adopt(source, existing, wanted, actor), True

    async def _provisioned(self, source: SourceRef, wanted: WantedUser) -> str | None:
        """The user this source already holds under the wanted externalId, else under its email."""
        if wanted.external_id is not None:
            owner = await self.records.owner(source.id, "user", wanted.external_id)
            if owner is not None and await self.find_users(source, "id", owner):
                return owner
        owner = await self.uniques.owner("email", str(wanted.fields["email"]).lower())
        if owner is not None and await self.find_users(source, "id", owner):
            return owner
        return None

    async def _create(self, source: SourceRef, wanted: WantedUser, actor: Actor) -> Sourced:
        now = self.clock()
        f = dict(wanted.fields)
        first, last = str(f["first_name"]), str(f["last_name"])
        base = {
            "email": f["email"],
            "first_name": first,
            "last_name": last,
            "display_name": f.get("display_name") or f"{first} {last}",
            "employee_id": f.get("employee_id"),
            "job_title": f.get("job_title"),
            "department": f.get("department"),
            "manager_id": wanted.manager_id if wanted.manager_given else None,
            "state": active_state(None, wanted.active),
            "hr_event_at": now,
        }
        given = f.get("username")
        candidates = (
            [given] if given else username_candidates(str(f["email"]), str(f.get("employee_id") or ""))
        )
        for username in candidates:
            try:
                view = await self.users.create(
                    {**base, "username": username},
                    actor,
                    source=source.actor,
                    initial_password=wanted.password,
                    sync=False,
                )
            except Conflict as exc:
                if given or exc.extensions.get("field") != "username" or username == candidates[-1]:
                    raise
                continue
            break
        user_id = view.user.id
        record = PersonRecord(
            source.id, user_id, wanted.external_id, wanted.document, applied(view.user, wanted)
        )
        try:
            await self.records.put(record, "user", None)
        except Conflict:
            with contextlib.suppress(Exception):  # a concurrent create took the externalId: undo this one
                await self.users.delete(user_id, None, actor)
            raise
        await self._relate(user_id, str(f["email"]), actor)
        return Sourced(UserRecord(view.user, view.etag, frozenset(), frozenset()), record)

    async def _adopt(
        self, source: SourceRef, existing: UserRecord, wanted: WantedUser, actor: Actor
    ) -> Sourced:
        """A user Warden already has (imported, made by an admin, or left by a create that crashed before its
        record): the source's record is added and the user takes the resource's values."""
        record = PersonRecord(source.id, existing.user.id, wanted.external_id, wanted.document)
        await self.records.put(record, "user", None)  # its applied values follow with the change
        return await self._replace_with(source, existing.user.id, wanted, actor)

    async def _replace_with(
        self, source: SourceRef, user_id: str, wanted: WantedUser, actor: Actor
    ) -> Sourced:
        async def same(_: Sourced) -> WantedUser:
            return wanted

        return await self.change_user(source, user_id, same, lambda _: None, actor)

    async def change_user(
        self,
        source: SourceRef,
        user_id: str,
        compute: Callable[[Sourced], Awaitable[WantedUser]],
        precondition: Callable[[Sourced], None],
        actor: Actor,
    ) -> Sourced:
        """PUT or PATCH: ``compute`` turns the user as it is into what is wanted (``precondition`` first checks
        If-Match); applied with the stored versions as conditions, recomputed if either moved meanwhile."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self.user(source, user_id)
            precondition(current)
            wanted = await compute(current)
            _required(wanted)
            changes = self._changes(current, wanted)
            try:
                view = await self.users.update(
                    user_id,
                    changes,
                    current.record.etag,
                    actor,
                    marks={"hr_event_at": self.clock()},
                    sync=False,
                )
                record = PersonRecord(
                    source.id, user_id, wanted.external_id, wanted.document, applied(view.user, wanted)
                )
                if (record.external_id, dict(record.document), dict(record.applied)) != (
                    current.person.external_id,
                    dict(current.person.document),
                    dict(current.person.applied),
                ):
                    await self.records.put(record, "user", current.person)
            except PreconditionFailed:
                continue
            await self._relate(user_id, str(wanted.fields["email"]), actor)
            if wanted.password is not None:
                await self._password(current.record, wanted.password, actor)
            return await self.user(source, user_id)
        raise ConcurrentUpdate(f"user '{user_id}' keeps changing; retry the request")

    def _changes(self, current: Sourced, wanted: WantedUser) -> dict[str, Any]:
        user = current.record.user
        changes = {k: v for k, v in wanted.fields.items() if k != "display_name"}
        if "display_name" in wanted.fields:
            changes["display_name"] = (
                wanted.fields["display_name"] or f"{wanted.fields['first_name']} {wanted.fields['last_name']}"
            )
        if "username" in changes and changes["username"] is None:
            del changes["username"]
        if wanted.manager_given:
            changes["manager_id"] = wanted.manager_id
        state: UserState = active_state(user.state, wanted.active)
        changes["state"] = state
        return changes

    async def _password(self, record: UserRecord, password: str, actor: Actor) -> None:
        """A written password: set now in every directory where the user has an account (rule 6); a user with
        none yet keeps it in Key Vault as the initial password of the accounts Warden creates (rule 3)."""
        if any(link.m365_user_id and link.status == "synced" for link in record.links.values()):
            results = await self.push_password(record.user.id, password, actor)
            refused = [r.detail or "refused" for r in results if not r.ok]
            if refused:
                raise Invalid("password: a directory refused it: " + "; ".join(refused), field="password")
            return
        await self.secrets.set(initial_password_name(record.user.id), password)
        await self.auditor.record(
            actor, "user.password.initial", user_id=record.user.id, after={"password": "set"}
        )

    async def delete_user(
        self, source: SourceRef, user_id: str, precondition: Callable[[Sourced], None], actor: Actor
    ) -> None:
        """The Warden user goes (its M365 accounts are blocked and signed out, never deleted: rule 7), and the
        source's record of it."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self.user(source, user_id)
            precondition(current)
            try:
                await self.users.delete(user_id, current.record.etag, actor)
            except PreconditionFailed:
                continue
            with contextlib.suppress(NotFound, PreconditionFailed):
                await self.records.delete(current.person, "user")
            return
        raise ConcurrentUpdate(f"user '{user_id}' keeps changing; retry the request")

    async def _relate(self, user_id: str, email: str, actor: Actor) -> None:
        """Bind the directories that auto-bind the email's domain (as an HR event does), and queue the user's one
        sync after every change of the request."""
        domain = email.rsplit("@", 1)[1].lower()
        for d in await self.directories.all():
            if d.options.auto_bind_verified_domains and domain in d.verified_domains():
                await self.users.bind(user_id, d.id, actor, sync=False)
        await self.sync.enqueue([user_id], actor.correlation_id)

    # ============================================================================================= groups
    async def group(self, source: SourceRef, group_id: str) -> SourcedGroup:
        person, found = await asyncio.gather(
            self.records.get(source.id, "group", group_id), self.group_store.get(group_id)
        )
        if person is None or found is None:
            raise NotFound(f"no group with id '{group_id}' in this source")
        group, etag = found
        members = await self.group_store.members(group_id)
        return SourcedGroup(group, etag, tuple(sorted(members)), person)

    async def find_groups(self, source: SourceRef, attribute: GroupLookup, value: str) -> list[SourcedGroup]:
        if attribute == "id":
            owner: str | None = value.lower()
        elif attribute == "externalId":
            owner = await self.records.owner(source.id, "group", value)
        else:
            owner = await self.uniques.owner(GROUP_NAME, value.lower())
        if owner is None:
            return []
        try:
            return [await self.group(source, owner)]
        except NotFound:
            return []

    async def groups_page(self, source: SourceRef, skip: int, count: int) -> tuple[list[SourcedGroup], int]:
        people, total = await self.records.page(source.id, "group", skip, count)
        found = await self._groups(people)
        return found, total - (len(people) - len(found))

    async def all_groups(self, source: SourceRef) -> AsyncIterator[list[SourcedGroup]]:
        async for people in self.records.all(source.id, "group"):
            yield await self._groups(people)

    async def _groups(self, people: Sequence[PersonRecord]) -> list[SourcedGroup]:
        out = []
        for person in people:
            try:
                out.append(await self.group(SourceRef(person.source_id, ""), person.object_id))
            except NotFound:
                with contextlib.suppress(Exception):
                    await self.records.delete(person, "group")
        return out

    async def _members(self, member_ids: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(m.lower() for m in member_ids))
        users = await self.user_store.get_many(wanted)
        unknown = [m for m in wanted if m not in users or users[m].deleted_at is not None]
        if unknown:
            raise Invalid(f"members: no user with id {', '.join(repr(u) for u in unknown)}", field="members")
        return wanted

    async def create_group(self, source: SourceRef, wanted: WantedGroup, actor: Actor) -> SourcedGroup:
        if wanted.external_id is not None:
            owner = await self.records.owner(source.id, "group", wanted.external_id)
            if owner is not None and await self.find_groups(source, "id", owner):
                raise Conflict(f"externalId '{wanted.external_id}' is group {owner}'s", field="externalId")
        members = await self._members(wanted.members)
        view = await self.groups.create(wanted.name, None, actor)
        record = PersonRecord(source.id, view.group.id, wanted.external_id, wanted.document)
        try:
            await self.records.put(record, "group", None)
        except Conflict:
            with contextlib.suppress(Exception):
                await self.groups.delete(view.group.id, None, actor)
            raise
        for user_id in members:
            await self.groups.add_member(view.group.id, user_id, actor)
        return await self.group(source, view.group.id)

    async def change_group(
        self,
        source: SourceRef,
        group_id: str,
        compute: Callable[[SourcedGroup], WantedGroup],
        precondition: Callable[[SourcedGroup], None],
        actor: Actor,
    ) -> SourcedGroup:
        for _ in range(WRITE_ATTEMPTS):
            current = await self.group(source, group_id)
            precondition(current)
            wanted = compute(current)
            members = await self._members(wanted.members)
            try:
                if wanted.name != current.group.name:
                    await self.groups.update(group_id, {"name": wanted.name}, current.etag, actor)
                record = PersonRecord(source.id, group_id, wanted.external_id, wanted.document)
                if (record.external_id, dict(record.document)) != (
                    current.record.external_id,
                    dict(current.record.document),
                ):
                    await self.records.put(record, "group", current.record)
            except PreconditionFailed:
                continue
            for user_id in sorted(set(members) - set(current.members)):
                await self.groups.add_member(group_id, user_id, actor)
            for user_id in sorted(set(current.members) - set(members)):
                with contextlib.suppress(NotFound):  # removed meanwhile: the wanted state holds
                    await self.groups.remove_member(group_id, user_id, actor)
            return await self.group(source, group_id)
        raise ConcurrentUpdate(f"group '{group_id}' keeps changing; retry the request")

    async def delete_group(
        self, source: SourceRef, group_id: str, precondition: Callable[[SourcedGroup], None], actor: Actor
    ) -> None:
        current = await self.group(source, group_id)
        precondition(current)
        await self.groups.delete(group_id, current.etag, actor)
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self.records.delete(current.record, "group")


def applied(user: User, wanted: WantedUser) -> dict[str, Any]:
    """Warden's values of what the source feeds, as its write left them (see ``PersonRecord.applied``)."""
    values: dict[str, Any] = {name: getattr(user, name) for name in wanted.fields}
    values["state"] = user.state
    values["manager_id"] = user.manager_id
    return values


def _required(wanted: WantedUser) -> None:
    missing = [name for name in REQUIRED_FIELDS if not wanted.fields.get(name)]
    if missing:
        raise Invalid(f"the resource gives no value for Warden's {', '.join(missing)}", field=missing[0])
