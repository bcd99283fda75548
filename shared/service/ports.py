"""The ports the use cases are written against. Table Storage, Key Vault and Graph implement them in
``shared.adapters``; unit tests of the core may use in-memory fakes, integration tests never do.

Versions: every read that may be followed by a conditional write returns the row's ETag, and every write
takes ``etag=None`` (unconditional) or the ETag to match (a mismatch raises ``PreconditionFailed``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from shared.domain.connections import AppCredential
from shared.domain.federation import DomainAccount, Federation, FederationSettings, IdpMetadata, TenantDomain
from shared.domain.group_plan import GroupPlan, M365Group
from shared.domain.model import (
    AuditEntry,
    Directory,
    Domain,
    Group,
    GroupBinding,
    Link,
    LinkStatus,
    User,
    UserState,
)
from shared.domain.planner import M365Account, PlanItem
from shared.domain.protection import ProtectedAccount, Protection, RoleHolders
from shared.domain.runs import Run

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None
    """Opaque cursor for the next page, None at the end."""


@dataclass(frozen=True)
class Claim:
    """A uniqueness claim: ``value`` of ``kind`` (username, email, employeeId, groupName, domain) is
    ``owner``'s."""

    kind: str
    value: str
    owner: str
    at: dt.datetime
    etag: str


class Uniques(Protocol):
    async def insert(self, kind: str, value: str, owner: str, at: dt.datetime) -> Claim | None:
        """Claim ``value``; None when claimed now, else the existing claim (left untouched)."""

    async def take_over(self, claim: Claim, owner: str, at: dt.datetime) -> bool:
        """Replace a stale ``claim`` if it is unchanged since read; False if someone else got there first."""

    async def release(self, kind: str, value: str, owner: str) -> None:
        """Drop the claim if ``owner`` still holds it."""

    async def owner(self, kind: str, value: str) -> str | None: ...


@dataclass(frozen=True)
class UserRecord:
    """Everything stored in one user's partition, read in one request: the user, its direct bindings, group
    memberships, links, and who holds its sync lease."""

    user: User
    etag: str
    direct: frozenset[str]
    groups: frozenset[str]
    links: dict[str, Link] = field(default_factory=dict)
    version: str = ""
    """The version of its bindings, memberships and links as read ("" when it has none yet): a save of links
    made against this version finds out whether anyone wrote them since (``UserRepository.save_links``)."""
    leased_by: str | None = None
    leased_until: dt.datetime | None = None
    """The sync lease as read: a run (its holder) may sync the user until then."""

    def leased(self, now: dt.datetime) -> bool:
        """Someone holds an unexpired sync lease on the user (as of the read)."""
        return self.leased_until is not None and self.leased_until > now


@dataclass(frozen=True)
class UserQuery:
    state: UserState | None = None
    name: str | None = None
    """Users whose display, first or last name starts with this text (as typed, or with a capital first letter)."""


class UserRepository(Protocol):
    """A user's partition. Writes that take ``audit`` write the entries' rows about this user with the change,
    in one transaction (the rest of each entry is the ``AuditLog``'s: ``record_all(..., users_written=True)``)."""

    async def add(self, user: User, audit: Sequence[AuditEntry] = (), direct: Sequence[str] = ()) -> str:
        """Insert a new user (its id is new), bound directly to ``direct``; returns the ETag."""

    async def get(self, user_id: str) -> UserRecord | None: ...

    async def update(
        self, user: User, changed: Sequence[str], etag: str | None, audit: Sequence[AuditEntry] = ()
    ) -> str:
        """Write ``changed`` fields only (a merge): concurrent writers of other fields never lose theirs.
        ``etag`` given: only if the row is unchanged since, else ``PreconditionFailed``."""

    async def delete(self, user_id: str) -> None:
        """Remove the user's partition (user, bindings, memberships, links)."""

    async def set_direct_binding(self, user_id: str, directory_id: str, bound: bool, at: dt.datetime) -> bool:
        """Returns whether anything changed."""

    async def set_membership(self, user_id: str, group_id: str, member: bool, at: dt.datetime) -> None: ...

    async def save_link(self, link: Link) -> None:
        """Write the link whatever was there (read, change, write: retried when another writer moved first)."""

    async def save_links(
        self, record: UserRecord, links: Sequence[Link], audit: Sequence[AuditEntry] = ()
    ) -> str:
        """Write ``links`` (of ``record``'s user) in one request if nothing of its relations changed since
        ``record`` was read; the new version. Bindings or other directories' links written meanwhile are kept
        (read again, and written again). ``ConcurrentUpdate`` when one of these directories' links is no longer
        what ``record`` holds: another run wrote it since, and what this one did must be looked at again."""

    async def forget_directory(self, user_id: str, directory_id: str) -> bool:
        """Remove the user's direct binding to the directory and its link there in one write (never a link left
        without its binding, which a sync would read as "block this account"); whether anything was removed."""

    async def page(self, query: UserQuery, cursor: str | None, limit: int) -> Page[UserRecord]:
        """A page of users with their relations (each user's relations row read beside the others)."""
        ...

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, User]: ...

    async def lease(self, user_id: str, holder: str, until: dt.datetime, now: dt.datetime) -> str | None:
        """Hold the user's sync lease until ``until`` unless someone else holds an unexpired one: a token to
        give it back with, or None."""

    async def release(self, user_id: str, holder: str, token: str | None = None) -> None:
        """Give the lease back if ``holder`` still has it (``token``: as ``lease`` returned it)."""


@dataclass(frozen=True)
class IndexEntry:
    """One user's row in a directory's index: a projection of its user partition (direct binding, groups
    through which it is bound, the link), kept for directory-wide questions."""

    directory_id: str
    user_id: str
    via: tuple[str, ...]
    status: LinkStatus
    m365_user_id: str | None = None
    user: User | None = None
    """The user as its partition had it (what a directory-wide plan needs, without a read per user)."""
    link: Link | None = None


class DirectoryIndex(Protocol):
    """Directory-side projection: "everything bound to or linked in directory D" without a table scan."""

    async def put(self, entries: Sequence[IndexEntry]) -> None: ...

    async def remove(self, directory_id: str, user_ids: Sequence[str]) -> None: ...

    async def page(
        self, directory_id: str, status: LinkStatus | None, cursor: str | None, limit: int
    ) -> Page[IndexEntry]: ...

    def all(self, directory_id: str) -> AsyncIterator[IndexEntry]: ...

    async def linked(self, directory_id: str, user_ids: Collection[str]) -> dict[str, str]:
        """User id → M365 id of those of ``user_ids`` linked in the directory (a group's members: read as
        cheaply as their number allows, a row each or the directory's rows in one pass)."""

    async def counts(self, directory_id: str) -> dict[str, int]:
        """Rows by link status, and ``linked``: rows with an M365 account."""

    async def drop(self, directory_id: str) -> None: ...


class GroupRepository(Protocol):
    async def add(self, group: Group) -> str: ...

    async def get(self, group_id: str) -> tuple[Group, str] | None: ...

    async def update(self, group: Group, changed: Sequence[str], etag: str | None) -> str: ...

    async def delete(self, group_id: str) -> None: ...

    async def page(self, cursor: str | None, limit: int) -> Page[Group]: ...

    async def add_member(self, group_id: str, user_id: str, at: dt.datetime) -> bool:
        """Add and count the member in one transaction; False when already a member."""

    async def remove_member(self, group_id: str, user_id: str) -> bool: ...

    async def members(self, group_id: str) -> list[str]: ...

    async def bindings(self, group_id: str) -> list[GroupBinding]: ...

    async def bindings_of(self, group_ids: Sequence[str]) -> dict[str, list[GroupBinding]]: ...

    async def set_binding(self, binding: GroupBinding) -> bool:
        """Returns whether the binding is new."""

    async def remove_binding(self, group_id: str, directory_id: str) -> bool: ...

    async def save_binding(self, binding: GroupBinding) -> None:
        """Record the mirror's state (M365 group, status, origin) on an existing binding."""

    async def lease(
        self, group_id: str, directory_id: str, holder: str, until: dt.datetime, now: dt.datetime
    ) -> str | None: ...

    async def release(
        self, group_id: str, directory_id: str, holder: str, token: str | None = None
    ) -> None: ...


class DirectoryRepository(Protocol):
    async def add(self, directory: Directory) -> str: ...

    async def get(self, directory_id: str, *, deactivating: bool = False) -> tuple[Directory, str] | None:
        """The directory and its ETag; one being deactivated counts as gone unless ``deactivating``."""

    async def all(self) -> list[Directory]:
        """Every directory, except those being deactivated (``mark_deactivating``)."""

    async def mark_deactivating(self, directory_id: str, at: dt.datetime) -> None:
        """From now on the directory is gone to every reader but its deactivation (``get(..., deactivating=True)``):
        a sync, run, import or mirror that reads the directories after this writes nothing there."""

    async def recent(self) -> list[Directory]:
        """``all()``, as this process read it a few seconds ago (for what may see a change a little late: which
        directories auto-bind an HR hire's domain); a write through this process reads it again."""

    async def update(self, directory: Directory, etag: str | None) -> str: ...

    async def delete(self, directory_id: str) -> None: ...

    async def set_group_binding(self, directory_id: str, group_id: str, bound: bool) -> None: ...

    async def bound_groups(self, directory_id: str) -> list[str]: ...

    async def get_state(self, directory_id: str, key: str) -> str | None: ...

    async def set_state(self, directory_id: str, key: str, value: str | None) -> None: ...


@dataclass(frozen=True)
class AuditQuery:
    user_id: str | None = None
    directory_id: str | None = None
    since: dt.datetime | None = None
    correlation_id: str | None = None
    """Only the entries of one request (what it caused, queued work included); the other filters narrow the
    search, which pages through the partitions they name."""


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...

    async def record_all(self, entries: Sequence[AuditEntry], *, users_written: bool = False) -> None:
        """Many entries at once (an import chunk's): each written as ``record`` writes it, the rows that share a
        partition in transactions. ``users_written``: the rows in the users' partitions were written with the
        users' changes (``UserRepository``'s ``audit``)."""

    async def page(self, query: AuditQuery, cursor: str | None, limit: int) -> Page[AuditEntry]:
        """Newest first."""


class SecretStore(Protocol):
    async def set(self, name: str, value: str) -> None: ...

    async def get(self, name: str) -> str: ...

    async def find(self, name: str) -> str | None:
        """The secret, or None when there is none by that name."""

    async def delete(self, name: str) -> None: ...

    async def delete_all(self, prefix: str) -> list[str]:
        """Delete every secret whose name starts with ``prefix``; their names."""


@dataclass(frozen=True)
class TenantInfo:
    """What Warden reads of a tenant when it connects it: ``GET /organization`` and ``GET /domains``."""

    tenant_id: str
    display_name: str | None
    on_premises_sync_enabled: bool | None
    domains: tuple[Domain, ...]
    credentials: tuple[AppCredential, ...] | None = None
    """The app registration's credentials (``passwordCredentials``, ``keyCredentials``), None when unreadable."""
    credentials_unreadable: str | None = None


class DirectoryGraph(Protocol):
    """Graph for connected directories, one client each, built on first use and kept."""

    async def probe(self, directory: Directory) -> None:
        """One cheap authenticated read (``GET /organization?$select=id``); raises on failure."""

    async def forget(self, directory_id: str) -> None:
        """Drop the directory's client (its credentials changed or it was deactivated)."""


Outcome = Literal["applied", "none", "retry", "rematch", "exists", "failed", "stopped"]
"""What became of a write (the M365 adapter maps Graph's answers to these; the use cases act on them):
``applied``; ``none`` (nothing to write); ``retry`` (throttled or a service error: try again later); ``rematch``
(the linked object is gone: look again by email); ``exists`` (a create found its account already there: find it
and link it); ``failed`` (this object: recorded, the others go on); ``stopped`` (the directory refuses Warden:
nothing more is sent to it now)."""


@dataclass(frozen=True)
class Applied:
    """The outcome of one plan item."""

    item: PlanItem
    outcome: Outcome
    m365_user_id: str | None = None
    detail: str | None = None
    """What M365 answered, in a few words (for the link's reason and the audit; never a secret)."""
    manager_applied: bool = True
    """False when the manager could not be set (not visible yet, or gone): the next sync tries again."""
    writes: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome in ("applied", "none")

    @property
    def error(self) -> str | None:
        return None if self.ok else (self.detail or self.outcome)


@dataclass(frozen=True)
class Written:
    """The outcome of a write that is not a user's plan item: a password, a group's creation or change."""

    outcome: Outcome
    detail: str | None = None
    writes: int = 0
    m365_id: str | None = None
    """The id of an object the write created (a group)."""

    @property
    def ok(self) -> bool:
        return self.outcome in ("applied", "none")


PasswordSource = Callable[[PlanItem], Awaitable[str]]
"""The password of a create item (drawn or read when the item is written, never stored with the plan)."""


class DeltaExpired(Exception):
    """Graph answered 410 Gone (``syncStateNotFound``) to a deltaLink: start over with a full read."""


@dataclass(frozen=True)
class Delta:
    changes: list[dict[str, Any]]
    """Changed users as Graph sent them (changed properties only; ``@removed`` for deleted ones)."""
    delta_link: str


class M365(Protocol):
    """A directory's Microsoft 365 users and groups, at the level of intent: reads return domain objects,
    writes take plan items and group plans and return outcomes. Graph's paths, ``$batch``, status and error
    codes stay behind this port (``shared.adapters.m365``)."""

    async def get_user(self, directory: Directory, m365_id: str) -> M365Account | None:
        """The account, or None when Graph answers 404."""

    async def find_users(self, directory: Directory, email: str, immutable_id: str) -> list[M365Account]:
        """Accounts whose UPN, mail or smtp: proxy address is ``email`` (case-insensitive), or with that
        immutable id."""

    async def apply(
        self, directory: Directory, items: Sequence[PlanItem], password: PasswordSource
    ) -> list[Applied]:
        """Write ``items`` (of one directory; ``none`` items are not sent) and tell each one's outcome, in order.
        One object's failure never stops the others; a ``stopped`` directory is sent nothing more."""

    async def set_password(self, directory: Directory, m365_user_id: str, password: str) -> Written: ...

    async def create_group(self, directory: Directory, group: Group) -> Written:
        """A security group mirroring ``group`` (its id in ``m365_id``)."""

    async def change_group(self, directory: Directory, m365_group_id: str, plan: GroupPlan) -> Written:
        """The plan's rename, adds and removes; "already a member" and "not a member" are success (rule 14)."""

    async def delete_group(self, directory: Directory, m365_group_id: str) -> Written:
        """Delete a group; one that is gone already counts as deleted."""

    def list_users(self, directory: Directory) -> AsyncIterator[list[M365Account]]:
        """Every account of the tenant, a part of a page at a time; raises rather than end early."""

    async def delta(
        self, directory: Directory, delta_link: str | None, *, latest: bool = False, resource: str = "users"
    ) -> Delta:
        """Users (or ``resource="groups"``) changed since ``delta_link`` (all when None; none with ``latest``)
        and the new deltaLink."""

    async def user_page(
        self, directory: Directory, *, text: str | None, enabled: bool | None, next_link: str | None, top: int
    ) -> tuple[list[M365Account], str | None]:
        """One page of the tenant's users (``startsWith`` text on displayName/UPN/mail, enabled state), and the
        nextLink to the following page."""

    async def get_group(self, directory: Directory, m365_id: str) -> M365Group | None: ...

    async def find_groups(self, directory: Directory, display_name: str) -> list[M365Group]: ...

    async def group_members(self, directory: Directory, m365_id: str) -> frozenset[str]:
        """Every member's id (all pages)."""

    def usage(self, directory_id: str) -> dict[str, float]:
        """What the directory's client has spent so far (requests, resource units, writes, throttled, waits)."""

    def set_tenant_size(self, directory_id: str, users: int) -> None:
        """Pace the directory at the resource-unit limit of a tenant of this size."""


class SyncQueue(Protocol):
    """Per-user sync jobs. A message carries a user id and a correlation id, never desired values (rule 8)."""

    async def enqueue(
        self,
        user_ids: Sequence[str],
        correlation_id: str | None,
        *,
        delay_seconds: int = 0,
        actor: str | None = None,
        gone: bool = False,
        approved: bool = False,
    ) -> None:
        """``approved``: an admin approved the users' held blocks (the sliding-hour guard is lifted for them).
        ``delay_seconds``: the messages become visible only after that long; ``actor``: who the sync's writes
        are audited as (``timer:drift``), the system by default; ``gone``: Graph reported the users' linked
        accounts deleted, so a 404 on them is final (not replication lag)."""


class GroupQueue(Protocol):
    """Group mirroring jobs: a (group, directory) to mirror now, or a created M365 group to delete."""

    async def enqueue(
        self, pairs: Sequence[tuple[str, str]], correlation_id: str | None, *, delay_seconds: int = 0
    ) -> None: ...

    async def delete_mirror(
        self, directory_id: str, m365_group_id: str, correlation_id: str | None
    ) -> None: ...


class HeldRuns(Protocol):
    async def held(self, directory: Directory, run: Run) -> None:
        """A plan waits for an admin (rule 19): whoever listens hears of it (``run.held``); never raises."""


class Clock(Protocol):
    def __call__(self) -> dt.datetime:
        """Now, timezone-aware UTC."""


class Ids(Protocol):
    def __call__(self) -> str:
        """A new unique id (uuid4 in production)."""


# -------------------------------------------------------------------- a tenant's own settings (rules 15-17, 23)
class M365Tenant(Protocol):
    """What Warden manages of a directory's tenant itself, not its users: domains and their federation (rule 15) and
    password policy (rule 16), the organization's on-premises sync flag (rule 17), the role holders (rule 23). Reads
    raise (``Upstream``) rather than answer incompletely; writes return their outcome (``Written``: ``applied``,
    ``failed`` with Graph's answer, ``retry`` when no answer came or Graph failed). ``shared.adapters.m365.tenant``."""

    async def on_premises_sync(self, directory: Directory) -> bool | None:
        """organization.onPremisesSyncEnabled: True (synced), False (no longer) or None (never)."""

    async def domains(self, directory: Directory) -> list[TenantDomain]: ...

    async def federation(self, directory: Directory, domain: str) -> Federation | None:
        """The domain's internalDomainFederation (None: it has none, or none can be read)."""

    async def create_federation(
        self, directory: Directory, domain: str, settings: FederationSettings
    ) -> Written:
        """POST it (the federation's id in ``m365_id``); never sent without a signing certificate."""

    async def update_federation(
        self, directory: Directory, domain: str, federation_id: str, settings: FederationSettings
    ) -> Written: ...

    async def delete_federation(self, directory: Directory, domain: str, federation_id: str) -> Written: ...

    async def set_authentication(self, directory: Directory, domain: str, kind: str) -> Written:
        """The domain's authenticationType, ``Managed`` or ``Federated``."""

    async def set_password_validity(self, directory: Directory, domain: str, days: int) -> Written: ...

    async def domain_accounts(self, directory: Directory, domain: str) -> list[DomainAccount]:
        """Every account whose userPrincipalName is in ``domain``."""

    async def accounts(self, directory: Directory, ids: Sequence[str]) -> list[DomainAccount]:
        """The accounts with these ids that exist (a missing one is left out)."""

    async def role_holders(self, directory: Directory) -> RoleHolders | None:
        """Every account holding a directory role, actively or as PIM-eligible, directly or through a role-assignable
        group; None when the app may not read them (``RoleManagement.Read.Directory`` missing)."""


@dataclass(frozen=True)
class RolesRead:
    """When a directory's role holders were last read, and whether they could be."""

    at: dt.datetime
    readable: bool
    detail: str | None = None


class ProtectedAccounts(Protocol):
    """Rule 23's accounts of each directory and why (``shared.adapters.tables.tenant``)."""

    async def all(self, directory_id: str) -> dict[str, ProtectedAccount]: ...

    async def lookup(self, directory_id: str, m365_user_ids: Sequence[str]) -> Protection:
        """Which of these accounts are protected, and whether the directory's role holders could be read."""

    async def whole(self, directory_id: str) -> Protection:
        """Every protected account of the directory (what a reconcile plans with)."""

    async def put(self, rows: Sequence[ProtectedAccount]) -> None: ...

    async def drop(self, directory_id: str, m365_user_ids: Sequence[str]) -> None: ...

    async def roles_read(self, directory_id: str) -> RolesRead | None: ...

    async def set_roles_read(self, directory_id: str, read: RolesRead) -> None: ...


class ManagedSettingsStore(Protocol):
    """What Warden wrote of a tenant's settings, to keep it (``shared.adapters.tables.tenant``): each federation as
    Warden set it, each domain's password validity before ``passwordNeverExpires``."""

    async def federations(self, directory_id: str) -> dict[str, FederationSettings]: ...

    async def save_federation(self, directory_id: str, domain: str, settings: FederationSettings) -> None: ...

    async def drop_federation(self, directory_id: str, domain: str) -> None: ...

    async def password_previous(self, directory_id: str) -> dict[str, int]: ...

    async def remember_password(self, directory_id: str, domain: str, days: int) -> None: ...

    async def forget_password(self, directory_id: str, domain: str) -> None: ...


class MetadataReader(Protocol):
    def __call__(self, xml: str) -> IdpMetadata:
        """An IdP's SAML metadata, parsed safely (``shared.adapters.saml.read_metadata``): ``BadInput`` for a
        document declaring a DTD, entities or external references; ``Invalid`` for anything not IdP metadata."""
