"""The admin API's request and response bodies, as pydantic models.

The same models validate every request (a failure answers 400 naming each bad field), shape every response,
and generate the OpenAPI document's schemas (``shared.api.openapi``): there is no second copy to drift.
Length limits are Graph's, because these values become Graph properties (graph/api/resources/user: givenName,
surname, department 64; jobTitle 128; displayName 256; employeeId 16; mailNickname 64; UPN rules from
entra/identity/authentication/concept-sspr-policy "Username policies").
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from shared.domain.dates import check_window, parse_local, zone
from shared.domain.hr import EventType
from shared.domain.model import GroupStatus, LinkStatus, UserState
from shared.domain.planner import check_mapping
from shared.service.hr.events import Outcome

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
UPN_LOCAL = re.compile(r"^[A-Za-z0-9'.\-_!#^~]{1,64}$")
_DNS = re.compile(r"^(?=.{1,48}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def _company_email(value: str) -> str:
    """The user's email is also its userPrincipalName (rule 3), so Entra's UPN rules apply."""
    local, _, domain = value.rpartition("@")
    if not local or not UPN_LOCAL.match(local) or local.endswith(".") or not _DNS.match(domain):
        raise ValueError(
            "must be an address whose part before the @ has 1-64 of A-Z a-z 0-9 ' . - _ ! # ^ ~ (not ending in '.') "
            "and whose domain is a DNS name of at most 48 characters (Entra's userPrincipalName rules)"
        )
    return f"{local}@{domain.lower()}"


def _time_zone(value: str) -> str:
    zone(value)
    return value


def _local_date(value: str) -> str:
    parse_local(value)
    return value


Text16 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16, pattern=_PRINTABLE)
]
Text64 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_PRINTABLE)
]
Text128 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_PRINTABLE)
]
Text256 = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256, pattern=_PRINTABLE)
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024, pattern=_PRINTABLE)]
Guid = Annotated[str, StringConstraints(pattern=GUID_PATTERN), AfterValidator(str.lower)]
CompanyEmail = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=113), AfterValidator(_company_email)
]
AnyEmail = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$",
    ),
]
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]{1,64}$"),
    Field(
        description='becomes the M365 mailNickname: 1-64 ASCII characters, none of @ ( ) \\ [ ] " ; : < > , or space'
    ),
]
TimeZone = Annotated[
    str,
    StringConstraints(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"),
    AfterValidator(_time_zone),
    Field(description="IANA time zone, e.g. Europe/Berlin"),
]
LocalDate = Annotated[
    str,
    StringConstraints(
        max_length=40,
        pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$",
    ),
    AfterValidator(_local_date),
    Field(description="ISO 8601 date (local midnight) or date-time, in timeZone"),
]
FIELD_NAMES = {
    "firstName": "first_name",
    "lastName": "last_name",
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "employeeId": "employee_id",
}
"""The API's names of the Warden fields an attribute mapping may use."""
UserStateField = UserState
LinkStatusField = LinkStatus


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------- users
class UserFields(Body):
    username: Username
    email: CompanyEmail
    firstName: Text64
    lastName: Text64
    displayName: Text256 | None = None
    alternateEmail: AnyEmail | None = None
    employeeId: Text16 | None = None
    jobTitle: Text128 | None = None
    department: Text64 | None = None
    managerId: Guid | None = None
    state: UserStateField = "active"
    startAt: LocalDate | None = None
    endAt: LocalDate | None = None
    timeZone: TimeZone | None = None


class UserCreate(UserFields):
    """A new user; ``displayName`` defaults to "firstName lastName"."""

    password: SecretStr | None = Field(
        None,
        min_length=8,
        max_length=256,
        description="an initial password for an active user's new accounts (rule 3): kept in Key Vault until the "
        "accounts are created, never stored elsewhere, logged or returned",
    )


class UserPatch(Body):
    """Fields to change; ``null`` clears an optional field. Only the given fields are written."""

    username: Username | None = None
    email: CompanyEmail | None = None
    firstName: Text64 | None = None
    lastName: Text64 | None = None
    displayName: Text256 | None = None
    alternateEmail: AnyEmail | None = None
    employeeId: Text16 | None = None
    jobTitle: Text128 | None = None
    department: Text64 | None = None
    managerId: Guid | None = None
    state: UserStateField | None = None
    startAt: LocalDate | None = None
    endAt: LocalDate | None = None
    timeZone: TimeZone | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> UserPatch:
        for name in ("username", "email", "firstName", "lastName", "displayName", "state"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared (null)")
        return self


class UserDirectoryOut(Out):
    directoryId: str
    via: list[str] = Field(description='"direct" or "group:<groupId>", one per way the user is bound')
    status: LinkStatusField
    reason: str | None = None
    m365UserId: str | None = None
    lastSyncAt: dt.datetime | None = None
    candidates: list[str] = Field(
        default_factory=list, description="needs_attention: the M365 accounts that matched (their object ids)"
    )


class UserOut(Out):
    id: str
    username: str
    email: str
    firstName: str
    lastName: str
    displayName: str
    alternateEmail: str | None = None
    employeeId: str | None = None
    jobTitle: str | None = None
    department: str | None = None
    managerId: str | None = None
    state: UserStateField
    startAt: str | None = None
    endAt: str | None = None
    timeZone: str | None = None
    source: str
    groups: list[str]
    directories: list[UserDirectoryOut]
    createdAt: dt.datetime
    updatedAt: dt.datetime


class UserList(Out):
    items: list[UserOut]
    next: str | None


class ListQuery(Body):
    cursor: str | None = Field(None, max_length=4096)
    limit: int = Field(50, ge=1, le=200)


class UserListQuery(ListQuery):
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    employeeId: Annotated[str, StringConstraints(max_length=16)] | None = None
    state: UserStateField | None = None
    directoryId: Guid | None = None
    status: LinkStatusField | None = None


class PasswordIn(Body):
    password: SecretStr = Field(
        min_length=8, max_length=256, description="pushed to every linked directory; never stored"
    )


class PasswordDirectoryOut(Out):
    directoryId: str
    status: Literal["set", "failed"]
    detail: str | None = None


class PasswordOut(Out):
    directories: list[PasswordDirectoryOut]


# --------------------------------------------------------------------------------------------- groups
class GroupCreate(Body):
    name: Text256
    description: Description | None = None


class GroupPatch(Body):
    name: Text256 | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _name_stays(self) -> GroupPatch:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be cleared (null)")
        return self


class GroupBindIn(Body):
    adopt: bool = Field(
        False, description="take over an existing security group of the same name in the tenant (rule 14)"
    )


class GroupDirectoryOut(Out):
    directoryId: str
    m365GroupId: str | None = None
    status: GroupStatus
    reason: str | None = None
    origin: str | None = Field(None, description="created (deleting the Warden group deletes it) or adopted")


class GroupOut(Out):
    id: str
    name: str
    description: str | None = None
    memberCount: int
    directories: list[GroupDirectoryOut]
    createdAt: dt.datetime
    updatedAt: dt.datetime


class GroupList(Out):
    items: list[GroupOut]
    next: str | None


class GroupMemberOut(Out):
    groupId: str
    userId: str


# ---------------------------------------------------------------------------------------- directories
class MassChangeGuardIn(Body):
    percent: float = Field(
        10.0, ge=0, le=100, description="hold a plan that blocks more than this share of linked users"
    )
    count: int = Field(10, ge=0, le=10_000_000, description="... and more than this many users")


class DirectoryOptionsIn(Body):
    createMissingUsers: bool = True
    autoBindVerifiedDomains: bool = False
    passwordNeverExpires: bool = False
    massChangeGuard: MassChangeGuardIn = Field(default_factory=MassChangeGuardIn)
    attributeMapping: dict[Annotated[str, StringConstraints(max_length=64)], Text64 | None] = Field(
        default_factory=dict,
        description="Graph property → the Warden field feeding it, or null to leave it unmanaged (rule 4). "
        "Mappable: givenName (firstName, lastName, displayName), surname (lastName, firstName), displayName, "
        "jobTitle, department, employeeId (their own fields). Unlisted properties keep the default.",
    )

    @model_validator(mode="after")
    def _mapping(self) -> DirectoryOptionsIn:
        try:
            check_mapping(
                {
                    k: FIELD_NAMES.get(v, v) if v is not None else None
                    for k, v in self.attributeMapping.items()
                }
            )
        except ValueError as exc:
            raise ValueError(f"attributeMapping: {exc}") from None
        return self


class AppAuth(Body):
    mode: Literal["app"]
    clientId: Guid
    clientSecret: SecretStr | None = Field(None, min_length=1, max_length=1024)
    certificatePem: Annotated[str, StringConstraints(max_length=16384)] | None = None
    credentialExpiresAt: dt.datetime | None = Field(
        None, description="when the client secret expires (Entra shows it); Warden warns 7 days before"
    )

    @model_validator(mode="after")
    def _one_credential(self) -> AppAuth:
        if self.clientSecret is None and self.certificatePem is None:
            raise ValueError("app mode needs clientSecret (or certificatePem)")
        return self


class DelegatedAuth(Body):
    mode: Literal["delegated"]
    clientId: Guid
    clientSecret: SecretStr | None = Field(None, min_length=1, max_length=1024)


class DirectoryCreate(Body):
    name: Text256
    tenantId: Guid
    auth: Annotated[AppAuth | DelegatedAuth, Field(discriminator="mode")]
    options: DirectoryOptionsIn = Field(default_factory=DirectoryOptionsIn)


class DirectoryPatch(Body):
    name: Text256 | None = None
    options: DirectoryOptionsIn | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> DirectoryPatch:
        for name in ("name", "options"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared (null)")
        return self


class Reactivate(Body):
    clientSecret: SecretStr | None = Field(
        None, min_length=1, max_length=1024, description="a new client secret"
    )
    credentialExpiresAt: dt.datetime | None = None


class DeactivateQuery(Body):
    confirm: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, description="the directory's name, to confirm an irreversible deactivation"
    )


class DomainOut(Out):
    id: str
    isVerified: bool
    isDefault: bool
    authenticationType: str


class DirectoryAuthOut(Out):
    mode: Literal["app", "delegated"]
    clientId: str
    credentialExpiresAt: dt.datetime | None = None


class MassChangeGuardOut(Out):
    percent: float
    count: int


class DirectoryOptionsOut(Out):
    createMissingUsers: bool
    autoBindVerifiedDomains: bool
    passwordNeverExpires: bool
    massChangeGuard: MassChangeGuardOut
    attributeMapping: dict[str, str | None]


class DirectoryCounts(Out):
    linked: int
    blocked: int
    error: int
    needsAttention: int
    pending: int
    synced: int
    skipped: int


class DirectoryOut(Out):
    id: str
    name: str
    tenantId: str
    organizationName: str | None = None
    domains: list[DomainOut]
    status: Literal["active", "blocked", "needs_reactivation"]
    reason: str | None = None
    auth: DirectoryAuthOut
    options: DirectoryOptionsOut
    counts: DirectoryCounts
    warnings: list[str]
    lastRuns: list[dict[str, Any]] = Field(description="the newest runs: id, kind, status, dryRun, createdAt")
    createdAt: dt.datetime
    updatedAt: dt.datetime


class DirectoryList(Out):
    items: list[DirectoryOut]
    next: str | None


# -------------------------------------------------------------------------------------------- imports
class CandidateQuery(ListQuery):
    limit: int = Field(100, ge=1, le=999)
    text: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = Field(
        None, description="startsWith on displayName, userPrincipalName or mail"
    )
    domain: Annotated[str, StringConstraints(max_length=253, pattern=r"^[A-Za-z0-9.-]+$")] | None = None
    enabled: bool | None = None


class CandidateOut(Out):
    m365UserId: str
    userPrincipalName: str
    mail: str | None = None
    displayName: str | None = None
    accountEnabled: bool
    username: str = Field(
        description="the username the import would give it (its alias, else its email's local part)"
    )
    email: str
    exists: bool = Field(
        description="a Warden user with this email or username exists: the import would skip it"
    )
    existsReason: str | None = None


class CandidateList(Out):
    items: list[CandidateOut]
    next: str | None


class ImportIn(Body):
    m365UserIds: list[Guid] | None = Field(None, min_length=1, max_length=10_000)
    all: bool = False
    filter: dict[str, Annotated[str, StringConstraints(max_length=64, pattern=_PRINTABLE)]] | None = Field(
        None,
        description='with all: {"text": "..."} imports only accounts whose displayName, UPN or mail starts so',
    )
    bind: bool = Field(
        False, description="bind each imported user to the directory (its account is taken over)"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> ImportIn:
        if (self.m365UserIds is None) == (not self.all):
            raise ValueError("give either m365UserIds or all: true")
        if self.filter is not None and (not self.all or set(self.filter) - {"text"}):
            raise ValueError("filter goes with all: true and knows only 'text'")
        return self


class ImportStarted(Out):
    jobId: str
    status: Literal["planning"]


class ImportItemOut(Out):
    m365UserId: str
    state: Literal["pending", "imported", "skipped", "failed"]
    reason: str | None = None
    userId: str | None = None
    userPrincipalName: str | None = None


class ImportItems(Out):
    items: list[ImportItemOut]
    next: str | None


class ImportOut(Out):
    id: str
    directoryId: str
    status: Literal["planning", "running", "done", "failed", "undone"]
    bind: bool
    total: int
    done: int
    imported: int
    skipped: int
    failed: int
    progressPercent: float
    ratePerSecond: float | None = None
    etaSeconds: float | None = None
    createdAt: dt.datetime
    undoUntil: dt.datetime
    error: str | None = None
    items: ImportItems = Field(
        description="the job's accounts, paged; ?state=skipped lists the skipped with why"
    )


class ImportQuery(ListQuery):
    state: Literal["pending", "imported", "skipped", "failed"] | None = None


class UndoKept(Out):
    userId: str
    reason: str


class UndoOut(Out):
    removed: list[str]
    kept: list[UndoKept]


# ----------------------------------------------------------------------------------------------- runs
class ReconcileIn(Body):
    dryRun: bool = Field(False, description="plan only: return the plan and write nothing to M365 (rule 20)")


class RunStarted(Out):
    runId: str
    status: Literal["planning"]


class RunItemOut(Out):
    n: int
    action: str
    userId: str
    m365UserId: str | None = None
    changes: dict[str, list[Any]] = Field(description="Graph property → [before, after]")
    reason: str | None = None
    candidates: list[str] = Field(default_factory=list)
    state: Literal["planned", "applied", "failed", "skipped"]
    error: str | None = None


class RunItems(Out):
    items: list[RunItemOut]
    next: str | None


class RunOut(Out):
    id: str
    directoryId: str
    kind: Literal["reconcile", "drift", "user"]
    dryRun: bool
    status: Literal["planning", "held", "applying", "done", "failed", "discarded"]
    trigger: str
    counts: dict[str, int] = Field(
        description="plan items per action; unmanaged: tenant accounts Warden leaves alone"
    )
    progress: dict[str, int]
    usage: dict[str, float] = Field(
        description="Graph requests, resource units, writes, throttled answers, waits"
    )
    guard: dict[str, Any] | None = Field(None, description="why the run is held (rule 19)")
    error: str | None = None
    createdAt: dt.datetime
    startedAt: dt.datetime | None = None
    plannedAt: dt.datetime | None = None
    finishedAt: dt.datetime | None = None
    plan: RunItems


class RunQuery(ListQuery):
    action: Annotated[str, StringConstraints(max_length=32, pattern=r"^[a-z_]+$")] | None = None


# ---------------------------------------------------------------------------------------------- audit
class AuditQueryIn(ListQuery):
    userId: Guid | None = None
    directoryId: Guid | None = None
    since: dt.datetime | None = None

    @model_validator(mode="after")
    def _aware(self) -> AuditQueryIn:
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must carry a time zone offset (e.g. 2026-11-27T00:00:00Z)")
        return self


class AuditEntryOut(Out):
    id: str
    at: dt.datetime
    actor: str
    action: str
    result: str
    correlationId: str | None = None
    userId: str | None = None
    directoryId: str | None = None
    groupId: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AuditList(Out):
    items: list[AuditEntryOut]
    next: str | None


# ----------------------------------------------------------------------------------------------- hris
def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone offset (e.g. 2026-11-27T09:00:00Z)")
    return value


AwareTime = Annotated[dt.datetime, AfterValidator(_aware)]


class HrisEventData(Body):
    """The person, as the HR system knows them; ``employeeId`` identifies them across email changes. An
    optional field left out keeps its value; ``null`` clears it."""

    employeeId: Text16
    email: CompanyEmail
    firstName: Text64
    lastName: Text64
    displayName: Text256 | None = None
    jobTitle: Text128 | None = None
    department: Text64 | None = None
    managerEmployeeId: Text16 | None = Field(
        None, description="the manager's employeeId; one Warden does not know is ignored (and audited)"
    )
    startAt: LocalDate | None = None
    endAt: LocalDate | None = None
    timeZone: TimeZone | None = None
    occurredAt: AwareTime | None = Field(
        None,
        description="when it happened in the HR system (else the payload's timestamp, else webhook-timestamp); "
        "an event older than the last one applied to the person changes nothing",
    )
    directories: list[Guid] | None = Field(None, max_length=50, description="directories to bind directly")
    groups: list[Text256] | None = Field(None, max_length=50, description="Warden group names to join")

    @model_validator(mode="after")
    def _window(self) -> HrisEventData:
        try:
            check_window(self.startAt, self.endAt, self.timeZone)
        except ValueError as exc:
            raise ValueError(f"startAt/endAt: {exc}") from None
        return self


class HrisEvent(Body):
    """An HR event, signed per Standard Webhooks."""

    type: EventType
    data: HrisEventData
    timestamp: AwareTime | None = Field(
        None, description="Standard Webhooks' payload timestamp: when the event occurred"
    )


class HrisAccepted(Out):
    status: Outcome = Field(
        description="accepted: applied; duplicate: this webhook-id was processed before; stale: older than "
        "the last event applied to the person; ignored: a termination of nobody Warden knows"
    )
    userId: str | None = None


class HrisSecret(Out):
    secret: str = Field(
        description="the new signing secret (whsec_…), shown only now; the previous one stays valid 24 hours"
    )


# --------------------------------------------------------------------------------------------- common
class Problem(Out):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(None, description="validation failures: where and what")


class ComponentHealth(Out):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["tableStorage", "queueStorage", "keyVault", "graph"])
    status: Literal["up", "down"]
    latencyMs: float = Field(ge=0)
    detail: str | None = Field(None, description="why it is down, in a few secret-free words")
    directory: str | None = Field(None, description="graph probes: the directory checked")
    tenantId: str | None = Field(None, description="graph probes: the directory's tenant")


class Health(Out):
    status: Literal["up", "down"]
    checkedAt: dt.datetime
    components: list[ComponentHealth]
