"""HR events (SPEC §3, HRIS webhook): joiners, movers, leavers and rehires from the HR system, the authority.

One delivery, after the door has checked its size and content type:

1. ``authenticate``: the Standard Webhooks signature, with the current signing secret or, for 24 hours after a
   rotation, the previous one. The secrets live in Key Vault (``SigningKeyStore``), cached at most 60 s; a
   signature that matches neither is checked once more against a fresh read, so a rotation made on another
   instance counts at once.
2. The door parses and validates the event.
3. ``accept``: a receipt per ``webhook-id`` makes a repeated delivery a no-op; the person is found by
   ``employeeId`` (stable across email changes); an event older than the last one applied to that person changes
   nothing (``hr_event_at`` on the user); otherwise the user is created or updated, bound to the event's
   directories and to every directory that auto-binds its email domain, added to the event's groups, and queued
   for a sync. Only then is the receipt marked done and 202 answered: everything it promises is stored.

What must be durable before the 202 is little, and the event does little more (an ``employee.updated`` of a
known person: 8 storage requests, each row read once): the receipt (inserted, then marked done), the person
(the employeeId's claim, the user's two rows read side by side, and one transaction writing the change with the
entries that audit it), the entries' copies by day, the sync's queue message. Claims move only where an
identifier changes; a directory or group is read only to bind or join one the person is not bound to or a
member of yet (the list of directories, for auto-binding, is read at most every few seconds per process:
``DirectoryRepository.recent``; a binding is written only to a directory read again just before); the directory
index follows in the user's sync, which re-projects it after every run.

Every step is level-triggered and idempotent: a retry after a failure at any point recomputes from the store
and converges (a receipt whose processing failed is released; one left by a crash is processed again after
``REPROCESS_AFTER``).

The pure rules (fields, lifecycle state, staleness, usernames) are the domain's (``shared.domain.hr``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shared.domain.errors import ConcurrentUpdate, Conflict, Invalid, PreconditionFailed
from shared.domain.hr import (
    UNCHANGED,
    Employee,
    HrEvent,
    event_time,
    is_later,
    is_stale,
    new_user_fields,
    user_changes,
    username_candidates,
)
from shared.domain.model import AuditEntry, User
from shared.domain.sources import BUILT_IN, SourceRef
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    Clock,
    DirectoryRepository,
    GroupRepository,
    SyncQueue,
    Uniques,
    UserRecord,
    UserRepository,
)
from shared.service.store.groups import NAME as GROUP_NAME
from shared.service.store.groups import Groups
from shared.service.store.users import AuditAs, Users

HRIS_ACTOR = BUILT_IN.actor
"""Who the audit shows for an event of the built-in webhook (SPEC: ``hris:<source>``)."""
SECRET_PREFIX = "whsec_"
SECRET_OVERLAP = dt.timedelta(hours=24)
"""After a rotation the previous signing secret stays valid this long (senders switch over)."""
REPROCESS_AFTER = dt.timedelta(seconds=60)
"""A receipt still "received" after this long was left by a crash: the next delivery processes it again."""
WRITE_ATTEMPTS = 3
MAX_WEBHOOK_ID = 256
NO_SECRET = "no HRIS signing secret is configured: rotate one with POST /api/hris/secret"

Outcome = Literal["accepted", "duplicate", "stale", "ignored"]


# ------------------------------------------------------------------------------------------------ errors
class SignatureRefused(Exception):
    """The delivery is not authentic (401): headers missing, timestamp outside the tolerance, no secret, or a
    signature that matches no valid secret. ``reason`` is for the sender and never carries a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureMismatch(SignatureRefused):
    """Well-formed and timely, but signed with none of the secrets tried (a newer one may exist)."""


class DeliveryInProgress(Conflict):
    """Another delivery of this ``webhook-id`` is being processed right now (409: retry shortly)."""


# ------------------------------------------------------------------------------------------------ events
@dataclass(frozen=True)
class Delivery:
    """An authenticated delivery: its ``webhook-id`` and ``webhook-timestamp``."""

    webhook_id: str
    sent_at: dt.datetime


@dataclass(frozen=True)
class Accepted:
    outcome: Outcome
    user_id: str | None = None


# ----------------------------------------------------------------------------------------- signing keys
@dataclass(frozen=True)
class SigningKeys:
    """The webhook signing secrets: the current one and, until ``previous_until``, the one it replaced."""

    current: str
    previous: str | None = None
    previous_until: dt.datetime | None = None

    def valid(self, now: dt.datetime) -> tuple[str, ...]:
        if self.previous and self.previous_until is not None and now < self.previous_until:
            return (self.current, self.previous)
        return (self.current,)

    def __repr__(self) -> str:  # never a secret through repr()
        return f"SigningKeys(previous_until={self.previous_until!r})"


def rotated(keys: SigningKeys | None, new: str, now: dt.datetime) -> SigningKeys:
    """``new`` becomes current; the current one stays valid for ``SECRET_OVERLAP`` (an older previous one
    ends now: there is one previous secret at a time)."""
    if keys is None:
        return SigningKeys(new)
    return SigningKeys(new, keys.current, now + SECRET_OVERLAP)


def new_signing_secret() -> str:
    """``whsec_`` and 32 random bytes in base64, as Standard Webhooks senders expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# ---------------------------------------------------------------------------------------------- ports
class SigningKeyStore(Protocol):
    async def read(self, *, fresh: bool = False) -> SigningKeys | None:
        """The stored keys (None: never rotated), from a cache of at most 60 s unless ``fresh``."""

    async def write(self, keys: SigningKeys) -> None:
        """Store all keys in one write."""


class SignatureVerifier(Protocol):
    def __call__(self, secret: str, body: bytes, headers: Mapping[str, str]) -> dt.datetime:
        """The delivery's ``webhook-timestamp`` if ``secret`` signed it within the tolerance; otherwise
        ``SignatureRefused`` (``SignatureMismatch`` when only the signature is wrong)."""


ReceiptState = Literal["received", "done"]


@dataclass(frozen=True)
class Receipt:
    webhook_id: str
    event_type: str
    employee_id: str
    state: ReceiptState
    at: dt.datetime
    """When processing (last) began."""
    etag: str = ""
    outcome: str | None = None
    user_id: str | None = None


class Receipts(Protocol):
    async def insert(self, receipt: Receipt) -> Receipt | None:
        """Insert a "received" receipt; None when inserted now, else the existing one (left untouched)."""

    async def take_over(self, receipt: Receipt, at: dt.datetime) -> bool:
        """Restart ``receipt`` (at ``at``) if it is unchanged since read; False if another delivery did."""

    async def finish(
        self, webhook_id: str, outcome: Outcome, user_id: str | None, at: dt.datetime
    ) -> None: ...

    async def release(self, webhook_id: str) -> None:
        """Forget the receipt (its processing failed: a retry must process the event)."""


@dataclass(frozen=True)
class Relations:
    """What an event asks of a person's relations beyond what the person has: directories to bind (each known
    to exist), groups to join (each known to exist)."""

    bind: tuple[str, ...] = ()
    join: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------- use case
class Hris:
    def __init__(
        self,
        users: Users,
        groups: Groups,
        user_store: UserRepository,
        group_store: GroupRepository,
        directories: DirectoryRepository,
        uniques: Uniques,
        receipts: Receipts,
        keys: SigningKeyStore,
        verify: SignatureVerifier,
        sync: SyncQueue,
        auditor: Auditor,
        clock: Clock,
        *,
        real_clock: Clock | None = None,
    ) -> None:
        self.real_clock = real_clock or clock
        """When a receipt's processing began, and whether it was left by a crash: real time, never the business
        clock a test moves (a receipt stamped days ahead would refuse every retry for days)."""
        self.users = users
        self.groups = groups
        self.user_store = user_store
        self.group_store = group_store
        self.directories = directories
        self.uniques = uniques
        self.receipts = receipts
        self.keys = keys
        self.verify = verify
        self.sync = sync
        self.auditor = auditor
        self.clock = clock

    # ------------------------------------------------------------------------------------ the secret
    async def rotate_secret(self, actor: Actor) -> str:
        """A new signing secret, returned once; the one it replaces stays valid for 24 hours."""
        now = self.clock()
        keys = rotated(await self.keys.read(fresh=True), new_signing_secret(), now)
        await self.keys.write(keys)
        until = keys.previous_until.isoformat() if keys.previous_until else None
        await self.auditor.record(actor, "hris.secret.rotate", after={"previousValidUntil": until})
        return keys.current

    async def authenticate(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        keys = await self.keys.read()
        if keys is None:
            keys = await self.keys.read(fresh=True)
        if keys is None:
            raise SignatureRefused(NO_SECRET)
        try:
            delivery = self._verify(keys, body, headers)
        except SignatureMismatch:
            fresh = await self.keys.read(fresh=True)
            if fresh is None or fresh == keys:
                raise
            delivery = self._verify(fresh, body, headers)
        if len(delivery.webhook_id) > MAX_WEBHOOK_ID:
            raise Invalid(f"webhook-id: at most {MAX_WEBHOOK_ID} characters", field="webhook-id")
        return delivery

    def _verify(self, keys: SigningKeys, body: bytes, headers: Mapping[str, str]) -> Delivery:
        mismatch: SignatureMismatch | None = None
        for secret in keys.valid(self.clock()):
            try:
                sent_at = self.verify(secret, body, headers)
            except SignatureMismatch as exc:
                mismatch = exc
                continue
            return Delivery(headers["webhook-id"], sent_at)
        assert mismatch is not None
        raise mismatch

    # ------------------------------------------------------------------------------------- an event
    async def accept(
        self, event: HrEvent, delivery: Delivery, correlation_id: str | None, *, source: SourceRef = BUILT_IN
    ) -> Accepted:
        """``source``: the HR source the event came through (its audit actor is the event's, and a person it
        creates is its user); the built-in webhook's by default."""
        actor = Actor(source.actor, correlation_id)
        now = self.real_clock()
        e = event.employee
        # Who the person is, read beside the receipt's insert (the event's first attempt uses it): one round
        # trip fewer before the 202. A change still writes only against the version it read.
        lookup = asyncio.ensure_future(self._person(e))
        try:
            existing = await self.receipts.insert(
                Receipt(delivery.webhook_id, event.type, e.employee_id, "received", now)
            )
        except BaseException:
            await _settled(lookup)
            raise
        if existing is not None:
            await _settled(lookup)
            if existing.state == "done":
                await self._audit(actor, "hris.event.duplicate", event, delivery, existing.user_id)
                return Accepted("duplicate", existing.user_id)
            if now - existing.at < REPROCESS_AFTER or not await self.receipts.take_over(existing, now):
                raise DeliveryInProgress(
                    f"webhook-id '{delivery.webhook_id}' is being processed by another delivery; retry shortly"
                )
        try:
            result = await self._apply(event, delivery, actor, lookup)
            await self.receipts.finish(delivery.webhook_id, result.outcome, result.user_id, self.clock())
        except Exception:
            with contextlib.suppress(Exception):  # left behind, it is processed again after REPROCESS_AFTER
                await self.receipts.release(delivery.webhook_id)
            raise
        return result

    async def _apply(
        self, event: HrEvent, delivery: Delivery, actor: Actor, first: Awaitable[UserRecord | None] | None
    ) -> Accepted:
        """``first``: the person as read for the first attempt; each later attempt reads again."""
        e = event.employee
        event_at = event_time(e, delivery.sent_at)
        for _ in range(WRITE_ATTEMPTS):
            try:
                read, first = first, None
                record = await (read if read is not None else self._person(e))
                if record is None:
                    return await self._hire(event, delivery, event_at, actor)
                if is_stale(event_at, record.user.hr_event_at):
                    await self._audit(
                        actor,
                        "hris.event.stale",
                        event,
                        delivery,
                        record.user.id,
                        eventAt=event_at.isoformat(),
                        lastAppliedAt=_iso(record.user.hr_event_at),
                    )
                    return Accepted("stale", record.user.id)
                wanted = await self._relations(e, record)
                warnings: list[str] = []
                manager = await self._manager(e, record.user, warnings)
                changes = user_changes(event, record.user, manager, self.clock())
                user_id = record.user.id
                applied = self._applied(actor, event, delivery, user_id, event_at, warnings)
                done = await self.users.change(
                    record,
                    changes,
                    actor,
                    etag=record.etag,
                    marks={"hr_event_at": event_at},
                    audit_as=applied,
                )
            except (PreconditionFailed, _Recheck):
                continue  # the person changed (or was just created) meanwhile: read again
            written = list(done.entries) if done.written else []
            await self._finish(user_id, wanted, actor, written, [] if done.written else [applied(None, None)])
            return Accepted("accepted", user_id)
        raise ConcurrentUpdate(f"employee '{e.employee_id}' keeps changing; retry the delivery")

    async def _hire(
        self,
        event: HrEvent,
        delivery: Delivery,
        event_at: dt.datetime,
        actor: Actor,
    ) -> Accepted:
        e = event.employee
        now = self.clock()
        o = e.optional
        if event.type == "employee.terminated" and not is_later(o.get("end_at"), o.get("time_zone"), now):
            await self._audit(
                actor,
                "hris.event.ignored",
                event,
                delivery,
                None,
                reason="no user has this employeeId; a termination already in effect creates nobody",
            )
            return Accepted("ignored")
        wanted = await self._relations(e, None)
        warnings: list[str] = []
        manager = await self._manager(e, None, warnings)
        candidates = username_candidates(e.email, e.employee_id)
        for username in candidates:
            fields = new_user_fields(event, username, manager, event_at, now)
            entries: list[AuditEntry] = []

            def applied(
                user: User, username: str = username, warnings: list[str] = warnings
            ) -> list[AuditEntry]:
                details = {"eventAt": event_at.isoformat(), "created": True, "username": username}
                details["warnings"] = warnings or None
                after = _after(event, delivery, details)
                return [self.auditor.entry(actor, "hris.event.applied", user_id=user.id, after=after)]

            try:
                # The user, its bindings to the event's directories and the entries auditing them: one write.
                view = await self.users.create(
                    fields,
                    actor,
                    source=actor.name,
                    sync=False,
                    audit=entries,
                    direct=wanted.bind,
                    also=applied,
                )
            except Conflict as exc:
                if await self._person(e) is not None:
                    raise _Recheck() from None  # created by a concurrent delivery: update it instead
                if exc.extensions.get("field") != "username":
                    raise
                warnings.append(f"username '{username}' is taken")
                continue
            user_id = view.user.id
            await self._finish(user_id, dataclasses.replace(wanted, bind=()), actor, entries, [])
            return Accepted("accepted", user_id)
        raise Conflict(
            f"usernames {candidates} are all taken; create the user with another username, then resend",
            field="username",
        )

    async def _person(self, e: Employee) -> UserRecord | None:
        """The user with this employeeId; else the user with this email if it has no employeeId yet (an
        account imported or created before the HR feed is the person's: it is adopted)."""
        owner = await self.uniques.owner("employeeId", e.employee_id.lower())
        record = await self._live(owner)
        if record is not None:
            return record
        record = await self._live(await self.uniques.owner("email", e.email.lower()))
        if record is None:
            return None
        if record.user.employee_id and record.user.employee_id.lower() != e.employee_id.lower():
            raise Conflict(
                f"email '{e.email}' belongs to user {record.user.id}, employee '{record.user.employee_id}'",
                field="email",
            )
        return record

    async def _live(self, user_id: str | None) -> UserRecord | None:
        if user_id is None:
            return None
        record = await self.user_store.get(user_id)
        return record if record is not None and record.user.deleted_at is None else None

    async def _manager(self, e: Employee, current: User | None, warnings: list[str]) -> Any:
        """The manager's user id; ``UNCHANGED`` when the event names none or one Warden does not know
        (the event still applies: the manager follows once HR sends an event naming a known one). The manager
        is read only when it would change."""
        user_id = current.id if current is not None else None
        if "manager_employee_id" not in e.optional:
            return UNCHANGED if user_id is not None else None
        wanted = e.optional["manager_employee_id"]
        if wanted is None:
            return None
        owner = await self.uniques.owner("employeeId", wanted.lower())
        if owner is not None and current is not None and owner == current.manager_id:
            return owner
        manager = await self._live(owner)
        if manager is None or manager.user.id == user_id or wanted.lower() == e.employee_id.lower():
            warnings.append(f"managerEmployeeId '{wanted}' names no other known employee: manager unchanged")
            return UNCHANGED if user_id is not None else None
        return manager.user.id

    async def _relations(self, e: Employee, record: UserRecord | None) -> Relations:
        """The directories to bind and the groups to join that the person (``record``; None: a new hire) is not
        bound to or a member of yet, each checked to exist; an unknown one is refused before anything is
        written. Those the person has need no read."""
        direct = record.direct if record is not None else frozenset()
        groups = record.groups if record is not None else frozenset()
        named = [d for d in dict.fromkeys(d.lower() for d in e.directories) if d not in direct]
        domain = e.email.rsplit("@", 1)[1].lower()
        auto = [
            d.id
            for d in await self.directories.recent()
            if d.options.auto_bind_verified_domains and domain in d.verified_domains() and d.id not in direct
        ]
        bind: list[str] = []
        for directory_id in dict.fromkeys([*named, *auto]):
            if await self.directories.get(directory_id) is not None:
                bind.append(directory_id)
            elif directory_id in named:
                raise Invalid(
                    f"data.directories: no directory with id '{directory_id}'", field="data.directories"
                )
        join: list[str] = []
        for name in dict.fromkeys(e.groups):
            owner = await self.uniques.owner(GROUP_NAME, name.lower())
            if owner is None or (owner not in groups and await self.group_store.get(owner) is None):
                raise Invalid(f"data.groups: no group named '{name}'", field="data.groups")
            if owner not in groups:
                join.append(owner)
        return Relations(tuple(bind), tuple(dict.fromkeys(join)))

    async def _finish(
        self,
        user_id: str,
        wanted: Relations,
        actor: Actor,
        written: Sequence[AuditEntry],
        pending: Sequence[AuditEntry],
    ) -> None:
        """Bind and join what the event asks (never leaving other directories or groups), audit, and queue the
        user's one sync, after every change of the event. ``written``: entries whose rows in the user's
        partition went with its change; ``pending``: entries not written yet. Each step is idempotent."""
        entries = list(pending)
        now = self.clock()
        for directory_id in wanted.bind:
            if await self.user_store.set_direct_binding(user_id, directory_id, True, now):
                after = {"via": "direct"}
                entries.append(
                    self.auditor.entry(
                        actor, "user.bind", user_id=user_id, directory_id=directory_id, after=after
                    )
                )
        for group_id in wanted.join:
            await self.groups.add_member(group_id, user_id, actor, sync=False)
        await asyncio.gather(
            self.sync.enqueue([user_id], actor.correlation_id),
            self.auditor.record_all(written, users_written=True),
            self.auditor.record_all(entries),
        )

    def _applied(
        self,
        actor: Actor,
        event: HrEvent,
        delivery: Delivery,
        user_id: str,
        event_at: dt.datetime,
        warnings: list[str],
    ) -> AuditAs:
        """The event's one entry about a known person: what it changed (before → after) and how it came."""

        def entry(before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditEntry:
            details = {"eventAt": event_at.isoformat(), "warnings": warnings or None, "changed": after}
            return self.auditor.entry(
                actor,
                "hris.event.applied",
                user_id=user_id,
                before=before,
                after=_after(event, delivery, details),
            )

        return entry

    async def _audit(
        self,
        actor: Actor,
        action: str,
        event: HrEvent,
        delivery: Delivery,
        user_id: str | None,
        **details: Any,
    ) -> None:
        await self.auditor.record(actor, action, user_id=user_id, after=_after(event, delivery, details))


class _Recheck(Exception):
    """The person appeared while this delivery was creating them."""


def _after(event: HrEvent, delivery: Delivery, details: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": event.type,
        "webhookId": delivery.webhook_id,
        "employeeId": event.employee.employee_id,
        **{k: v for k, v in details.items() if v is not None},
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _settled(task: asyncio.Future[Any]) -> None:
    """Wait for a read whose answer is no longer needed (a duplicate delivery): it ends before the request does,
    and its error, if any, is not this request's."""
    with contextlib.suppress(Exception):
        await task
