"""Warden's domain objects: users, groups, directories, bindings, links, audit entries.

Plain frozen data. Times are given to these objects (``at=...``); nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Literal

UserState = Literal["staged", "active", "suspended"]
USER_STATES: tuple[UserState, ...] = ("staged", "active", "suspended")

LinkStatus = Literal["pending", "synced", "blocked", "skipped", "error", "needs_attention"]
LINK_STATUSES: tuple[LinkStatus, ...] = (
    "pending",
    "synced",
    "blocked",
    "skipped",
    "error",
    "needs_attention",
)

LinkOrigin = Literal["created", "taken_over"]

DirectoryStatus = Literal["pending_consent", "active", "blocked", "needs_reactivation"]
DIRECTORY_STATUSES: tuple[DirectoryStatus, ...] = (
    "pending_consent",
    "active",
    "blocked",
    "needs_reactivation",
)
PAUSED: frozenset[str] = frozenset({"pending_consent", "needs_reactivation"})
"""Rule 18: a directory without a working connection. Its writes pause: per-user syncs are deferred (kept and
replayed once it is active again), drift and reconcile skip it with a run record saying why."""
GroupStatus = Literal["pending", "creating", "synced", "skipped", "error", "needs_attention"]
"""A group binding's mirror: not yet mirrored, being created, in step, not mirrored here (a directory Warden may
not write to), failed, or waiting for an admin (a name taken by a group Warden may not adopt)."""
AuthMode = Literal["app", "delegated"]
CredentialKind = Literal["secret", "certificate"]
ExpirySource = Literal["graph", "certificate", "admin"]
"""Where ``credential_expires_at`` comes from: the app registration read from Graph (``passwordCredentials`` /
``keyCredentials``), the certificate's own ``notAfter``, or the date an admin gave (Graph not readable)."""

ON_PREMISES_SYNC_REASON = "directory synchronization from on-premises is enabled"
"""Rule 17: a tenant mastered by Entra Connect is not written to."""

DIRECT = "direct"


def group_via(group_id: str) -> str:
    """How a binding through a group is shown on the user (``group:<id>``)."""
    return f"group:{group_id}"


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    first_name: str
    last_name: str
    display_name: str
    state: UserState
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    alternate_email: str | None = None
    employee_id: str | None = None
    job_title: str | None = None
    department: str | None = None
    manager_id: str | None = None
    start_at: str | None = None
    """ISO date (local midnight) or local date-time, read in ``time_zone``."""
    end_at: str | None = None
    time_zone: str | None = None
    """IANA time zone of ``start_at`` / ``end_at``; UTC when absent."""
    deleted_at: dt.datetime | None = None
    """Set when an admin deleted the user while M365 accounts are still linked: the user is gone from the API,
    its links stay until the sync engine has blocked each account (rule 7: block, never delete)."""
    hr_event_at: dt.datetime | None = None
    """When the last HR event applied to this person occurred: an older one arriving later changes nothing."""

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[1].lower()

    def unique_values(self) -> dict[str, str]:
        """The values no two users may share, by kind, normalised (case-insensitive)."""
        values = {"username": self.username.lower(), "email": self.email.lower()}
        if self.employee_id:
            values["employeeId"] = self.employee_id.lower()
        return values


USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "alternate_email",
    "employee_id",
    "job_title",
    "department",
    "manager_id",
    "state",
    "start_at",
    "end_at",
    "time_zone",
)
"""The fields an admin may set on a user (create and PATCH)."""


def apply_user_changes(user: User, changes: dict[str, Any], at: dt.datetime) -> User:
    unknown = set(changes) - set(USER_FIELDS)
    if unknown:
        raise ValueError(f"not user fields: {sorted(unknown)}")
    return replace(user, **changes, updated_at=at)


@dataclass(frozen=True)
class Domain:
    id: str
    is_verified: bool
    is_default: bool
    authentication_type: str
    is_initial: bool = False
    password_validity_days: int | None = None
    """passwordValidityPeriodInDays as last read (rule 16; 2147483647: passwords never expire)."""

    @property
    def name(self) -> str:
        return self.id.lower()


@dataclass(frozen=True)
class MassChangeGuard:
    percent: float = 10.0
    count: int = 10


@dataclass(frozen=True)
class DirectoryOptions:
    create_missing_users: bool = True
    auto_bind_verified_domains: bool = False
    password_never_expires: bool = False
    mass_change_guard: MassChangeGuard = field(default_factory=MassChangeGuard)
    attribute_mapping: tuple[tuple[str, str | None], ...] = ()
    """Rule 4, per directory: Graph property → the Warden field feeding it, or None (unmanaged). Properties not
    listed keep the default mapping (``shared.domain.planner.DEFAULT_MAPPING``)."""
    notify_url: str | None = None
    """Where Warden POSTs this directory's events (``directory.*``, ``run.held``), signed per Standard Webhooks."""


def options_document(options: DirectoryOptions) -> dict[str, Any]:
    """The options as the API and the audit show them (and as they are stored)."""
    return {
        "createMissingUsers": options.create_missing_users,
        "autoBindVerifiedDomains": options.auto_bind_verified_domains,
        "passwordNeverExpires": options.password_never_expires,
        "massChangeGuard": {
            "percent": options.mass_change_guard.percent,
            "count": options.mass_change_guard.count,
        },
        "attributeMapping": dict(options.attribute_mapping),
        "notify": {"url": options.notify_url} if options.notify_url else None,
    }


@dataclass(frozen=True)
class Directory:
    id: str
    name: str
    tenant_id: str
    auth_mode: AuthMode
    client_id: str
    secret_name: str
    """The Key Vault secret holding the app's client secret (the value never leaves Key Vault and the
    Graph credential built from it)."""
    domains: tuple[Domain, ...]
    status: DirectoryStatus
    options: DirectoryOptions
    created_at: dt.datetime
    updated_at: dt.datetime
    status_reason: str | None = None
    organization_name: str | None = None
    credential_expires_at: dt.datetime | None = None
    credential: CredentialKind = "secret"
    """The confidential client's credential kept in Key Vault (``secret_name``): a client secret, or a certificate
    with its private key (PEM)."""
    certificate_thumbprint: str | None = None
    """SHA-256 of the certificate (hex), as MSAL sends it (``x5t#S256``); never a secret."""
    certificate_sha1: str | None = None
    """SHA-1 of the certificate in base64: Graph's ``keyCredential.customKeyIdentifier``, to find it in the app."""
    credential_key_id: str | None = None
    """Graph's ``keyId`` of the credential in use, once found in the app registration."""
    expiry_source: ExpirySource | None = None
    consented_by: ConsentedBy | None = None
    """Delegated: the person whose consent the connection lives on (their departure would break it)."""
    token_refreshed_at: dt.datetime | None = None
    """Delegated: when Warden last redeemed the refresh token (the 90-day inactivity window restarts then)."""
    checked_at: dt.datetime | None = None
    """When the token refresh timer last checked the connection (a token, expiry, on-premises sync flag)."""
    status_code: str | None = None
    """The AADSTS code behind ``needs_reactivation`` (e.g. ``AADSTS700082``)."""
    check_warnings: tuple[str, ...] = ()
    """What the last check could not establish (e.g. the credential's expiry not readable from Graph)."""
    expiry_warned: dt.datetime | None = None
    """The expiry already announced (warning, audit, notification): announced once per expiry date."""

    def verified_domains(self) -> frozenset[str]:
        return frozenset(d.name for d in self.domains if d.is_verified)

    @property
    def writable(self) -> bool:
        """Warden writes users into this tenant (rule 17: not when Entra Connect masters it; rule 18: not without
        a working connection)."""
        return self.status == "active"

    @property
    def paused(self) -> bool:
        """Rule 18: its writes wait (deferred, never dropped) until the connection works again."""
        return self.status in PAUSED


@dataclass(frozen=True)
class ConsentedBy:
    """Who consented to a delegated connection, and when."""

    user_principal_name: str
    object_id: str
    at: dt.datetime


def directory_status(on_premises_sync_enabled: bool | None) -> tuple[DirectoryStatus, str | None]:
    """Rule 17. ``onPremisesSyncEnabled`` is true (synced), false (no longer synced) or null (never)."""
    if on_premises_sync_enabled is True:
        return "blocked", ON_PREMISES_SYNC_REASON
    return "active", None


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    description: str | None
    member_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class GroupBinding:
    group_id: str
    directory_id: str
    at: dt.datetime
    m365_group_id: str | None = None
    status: GroupStatus = "pending"
    origin: str | None = None
    """``created`` (Warden made the M365 group: deleting the Warden group deletes it) or ``adopted``."""
    adopt: bool = False
    """The admin asked to take over an existing security group of the same name."""
    reason: str | None = None


@dataclass(frozen=True)
class Link:
    """That ``user_id`` is (or is to be) managed in ``directory_id``, and how the last sync went."""

    user_id: str
    directory_id: str
    status: LinkStatus = "pending"
    m365_user_id: str | None = None
    immutable_id: str | None = None
    origin: LinkOrigin | None = None
    fingerprint: str | None = None
    """Hash of the attribute values last applied (a converged user is not written again)."""
    reason: str | None = None
    candidates: tuple[str, ...] = ()
    last_sync_at: dt.datetime | None = None
    manager_m365_id: str | None = None
    """The manager last written (Graph's user delta does not report manager changes, so the applied value is
    remembered instead of read back)."""


@dataclass(frozen=True)
class UserDirectory:
    """One effective binding (or a link left without one) of a user, as the user resource shows it."""

    directory_id: str
    via: tuple[str, ...]
    link: Link

    @property
    def bound(self) -> bool:
        return bool(self.via)


def effective_directories(
    user_id: str,
    direct: frozenset[str],
    group_directories: dict[str, frozenset[str]],
    links: dict[str, Link],
) -> list[UserDirectory]:
    """Every directory a user is bound to, directly or through groups (``group_directories``: group id → its
    directories), with how; plus directories where a link remains without a binding (to be blocked)."""
    via: dict[str, list[str]] = {d: [DIRECT] for d in direct}
    for group_id in sorted(group_directories):
        for d in group_directories[group_id]:
            via.setdefault(d, []).append(group_via(group_id))
    out = []
    for d in sorted(set(via) | set(links)):
        out.append(UserDirectory(d, tuple(via.get(d, ())), links.get(d) or Link(user_id, d)))
    return out


@dataclass(frozen=True)
class UserView:
    """A user with everything Warden knows about it: what ``GET /api/users/{id}`` shows."""

    user: User
    etag: str
    groups: tuple[str, ...]
    directories: tuple[UserDirectory, ...]


ActorKind = Literal["admin", "hris", "timer", "system"]


def actor(kind: ActorKind, name: str | None = None) -> str:
    """``admin:<oid>``, ``hris:<source>``, ``timer:<name>`` or ``system``."""
    return kind if kind == "system" else f"{kind}:{name}"


@dataclass(frozen=True)
class AuditEntry:
    id: str
    at: dt.datetime
    actor: str
    action: str
    result: str
    correlation_id: str | None
    user_id: str | None = None
    directory_id: str | None = None
    group_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
