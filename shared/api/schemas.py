"""The admin API's request and response bodies, as pydantic models.

The same models validate every request (a failure answers 400 naming each bad field), shape every response,
and generate the OpenAPI document's schemas (``shared.api.openapi``): there is no second copy to drift.
Length limits are Graph's, because these values become Graph properties (graph/api/resources/user: givenName,
surname, department 64; jobTitle 128; displayName 256; employeeId 16; mailNickname 64; UPN rules from
entra/identity/authentication/concept-sspr-policy "Username policies").
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import zoneinfo
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from shared.domain.dates import check_window, parse_local, zone
from shared.domain.hr import EventType
from shared.domain.model import GroupStatus, LinkStatus, UserState
from shared.domain.planner import MANAGEABLE, check_mapping
from shared.domain.sources import WARDEN_FIELDS, WardenField
from shared.service.hr.events import Outcome

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_TEXT = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
"""Printable, and not blank. (Explicit classes, never a whitespace escape: JSON Schema's ECMA regexes and pydantic's Rust
ones disagree on what whitespace is, e.g. U+0085 and U+FEFF.)"""
UPN_LOCAL = re.compile(r"[A-Za-z0-9'.\-_!#^~]{1,64}")
_DNS = re.compile(r"(?=.{1,48}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
COMPANY_EMAIL_PATTERN = (
    r"^[A-Za-z0-9'.\-_!#^~]{0,63}[A-Za-z0-9'\-_!#^~]@(?=.{1,48}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}$"
)
"""``_company_email`` as a JSON Schema pattern (the same rules, for clients and for the fuzzer)."""

# Dates and times, exactly (valid months, days per month, leap years), so that a value the pattern admits always
# parses and converts to UTC: a year 1900-2999, a calendar date, a time, an offset.
_YEAR = r"(?:19|2\d)\d{2}"
_LEAP_YEAR = r"(?:(?:19|2\d)(?:0[48]|[2468][048]|[13579][26])|2[048]00)"
_DATE = (
    rf"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)"
)
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d"
_SECONDS = r":[0-5]\d(?:\.\d{1,6})?"
_OFFSET = r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
LOCAL_DATE_PATTERN = rf"^{_DATE}(?:[T ]{_TIME}(?:{_SECONDS})?{_OFFSET}?)?$"
DATE_TIME_PATTERN = rf"^{_DATE}T{_TIME}{_SECONDS}{_OFFSET}$"
"""RFC 3339 date-time (seconds and an offset required; at most microseconds)."""

# Entra ID's password policy for cloud accounts: 8-256 characters of A-Z a-z 0-9 and these symbols (no other
# Unicode), three of the four kinds
# (https://learn.microsoft.com/entra/identity/authentication/concept-password-ban-bad-combined-policy).
PASSWORD_SYMBOLS = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> "
_SYM = re.escape(PASSWORD_SYMBOLS).replace("\\ ", " ")
_KINDS = (r"[a-z]", r"[A-Z]", r"[0-9]", f"[{_SYM}]")
PASSWORD_PATTERN = (
    "^(?:"
    + "|".join("".join(f"(?=.*{_KINDS[k]})" for k in range(4) if k != skip) for skip in range(4))
    + f")[A-Za-z0-9{_SYM}]{{8,256}}$"
)
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,2048}$"
MAX_IF_MATCH = 256
ZONES = frozenset(zoneinfo.available_timezones())


def _company_email(value: str) -> str:
    """The user's email is also its userPrincipalName (rule 3), so Entra's UPN rules apply."""
    local, _, domain = value.rpartition("@")
    if not UPN_LOCAL.fullmatch(local) or local.endswith(".") or not _DNS.fullmatch(domain):
        raise ValueError(
            "must be an address whose part before the @ has 1-64 of A-Z a-z 0-9 ' . - _ ! # ^ ~ (not ending in '.') "
            "and whose domain is a DNS name of at most 48 characters (Entra's userPrincipalName rules)"
        )
    return f"{local}@{domain.lower()}"


def _time_zone(value: str) -> str:
    if value not in ZONES:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin")
    zone(value)
    return value


def _local_date(value: str) -> str:
    parse_local(value)
    return value


def _date_time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(DATE_TIME_PATTERN, value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-27T09:00:00Z")
    return dt.datetime.fromisoformat(value)


def _password(value: SecretStr) -> SecretStr:
    if not re.fullmatch(PASSWORD_PATTERN, value.get_secret_value()):
        raise ValueError(
            "must be 8-256 characters of A-Z a-z 0-9 and the symbols "
            + PASSWORD_SYMBOLS.strip()
            + " or space, "
            "with three of: a lowercase letter, an uppercase letter, a digit, a symbol (Entra's password policy)"
        )
    return value


def _integral(value: Any) -> Any:
    """JSON Schema's integer is any number without a fractional part (``5.0`` too); a string or a boolean is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = decimal.Decimal(value)
        except decimal.InvalidOperation:
            return value  # the int validation names it
        if (
            number.is_finite()
            and number == number.to_integral_value()
            and re.fullmatch(r"[0-9eE.+-]+", value)
        ):
            return int(number)
    return value


def _query_bool(value: Any) -> Any:
    """A query string's boolean is ``true`` or ``false``, nothing else."""
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"
    return value


def _not_null(schema: dict[str, Any]) -> None:
    """The JSON Schema of a field that may be left out but not sent as null."""
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


def omittable(description: str | None = None) -> Any:
    """``Field(None)`` for an optional field whose JSON Schema does not admit null (the model refuses it)."""
    return Field(None, description=description, json_schema_extra=_not_null)


Text16 = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=_TEXT)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_TEXT)]
Text128 = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_TEXT)]
Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_TEXT)]
Description = Annotated[str, StringConstraints(max_length=1024, pattern=_PRINTABLE)]
Guid = Annotated[str, StringConstraints(pattern=GUID_PATTERN), AfterValidator(str.lower)]
CompanyEmail = Annotated[
    str,
    StringConstraints(max_length=113),
    AfterValidator(_company_email),
    WithJsonSchema({"type": "string", "maxLength": 113, "pattern": COMPANY_EMAIL_PATTERN}),
]
AnyEmail = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$"),
]
Username = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]{1,64}$"),
    Field(
        description='becomes the M365 mailNickname: 1-64 ASCII characters, none of @ ( ) \\ [ ] " ; : < > , or space'
    ),
]
TimeZone = Annotated[
    str,
    AfterValidator(_time_zone),
    WithJsonSchema(
        {"type": "string", "enum": sorted(ZONES), "description": "IANA time zone, e.g. Europe/Berlin"}
    ),
]
LocalDate = Annotated[
    str,
    StringConstraints(max_length=40, pattern=LOCAL_DATE_PATTERN),
    AfterValidator(_local_date),
    Field(description="ISO 8601 date (local midnight) or date-time, in timeZone"),
]
DateTime = Annotated[
    dt.datetime,
    BeforeValidator(_date_time),
    WithJsonSchema({"type": "string", "pattern": DATE_TIME_PATTERN, "description": "RFC 3339 date-time"}),
]
Password = Annotated[
    SecretStr,
    Field(min_length=8, max_length=256, json_schema_extra={"pattern": PASSWORD_PATTERN}),
    AfterValidator(_password),
]
QueryBool = Annotated[bool, BeforeValidator(_query_bool)]
QueryInt = Annotated[int, BeforeValidator(_integral)]
"""A query string's integer, as JSON Schema counts integers (``5`` or ``5.0``)."""
Count = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]
"""A body's integer: ``5`` or ``5.0`` (the same JSON Schema integer), never ``"5"`` or ``true``."""
Cursor = Annotated[
    str,
    StringConstraints(pattern=CURSOR_PATTERN),
    Field(description="the `next` of the previous page, unchanged"),
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
API_NAMES = {field: name for name, field in FIELD_NAMES.items()}
UserStateField = UserState
LinkStatusField = LinkStatus


class Body(BaseModel):
    """A request body or query: unknown fields are refused, and values are taken as the schema says (no
    trimming, no coercion: ``"1"`` is not a number, ``1`` not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def _omitted_not_null(self) -> Any:
        """A field declared with ``omittable()`` may be left out, not sent as null (its schema says so)."""
        for name, info in type(self).model_fields.items():
            if (
                info.json_schema_extra is _not_null
                and name in self.model_fields_set
                and getattr(self, name) is None
            ):
                raise ValueError(f"{name} cannot be null: leave it out instead")
        return self


class Query(BaseModel):
    """A query string: every value arrives as text, so numbers are parsed (booleans only from true/false)."""

    model_config = ConfigDict(extra="forbid")


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

    password: Password | None = omittable(
        "an initial password for an active user's new accounts (rule 3): kept in Key Vault until the "
        "accounts are created, never stored elsewhere, logged or returned"
    )


class UserPatch(Body):
    """Fields to change; ``null`` clears an optional field. Only the given fields are written."""

    username: Username | None = omittable()
    email: CompanyEmail | None = omittable()
    firstName: Text64 | None = omittable()
    lastName: Text64 | None = omittable()
    displayName: Text256 | None = omittable()
    alternateEmail: AnyEmail | None = None
    employeeId: Text16 | None = None
    jobTitle: Text128 | None = None
    department: Text64 | None = None
    managerId: Guid | None = None
    state: UserStateField | None = omittable()
    startAt: LocalDate | None = None
    endAt: LocalDate | None = None
    timeZone: TimeZone | None = None


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


class ListQuery(Query):
    cursor: Cursor | None = None
    limit: QueryInt = Field(50, ge=1, le=200)


class UserListQuery(ListQuery):
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    employeeId: Annotated[str, StringConstraints(max_length=16)] | None = None
    state: UserStateField | None = None
    directoryId: Guid | None = None
    status: LinkStatusField | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = Field(
        None,
        description="display, first or last name starting with this text (as typed, or capitalised); not with "
        "directoryId, email or employeeId",
    )


class PasswordIn(Body):
    password: Password = Field(description="pushed to every linked directory; never stored")


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
    name: Text256 | None = omittable()
    description: Description | None = None


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
    count: Count = Field(10, ge=0, le=10_000_000, description="... and more than this many users")


class NotifyIn(Body):
    url: Annotated[
        str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s/?#@]+[^\s]*$")
    ] = Field(description="https (http only to 127.0.0.1 or localhost, and only outside Azure)")


class DirectoryOptionsIn(Body):
    createMissingUsers: bool = True
    autoBindVerifiedDomains: bool = False
    passwordNeverExpires: bool = False
    massChangeGuard: MassChangeGuardIn = Field(default_factory=MassChangeGuardIn)
    notify: NotifyIn | None = Field(
        None,
        description="where Warden POSTs this directory's events (directory.credential_expiring, "
        "directory.needs_reactivation, directory.reactivated, run.held), signed per Standard Webhooks; null or left "
        "out: none",
    )
    attributeMapping: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], Text64 | None],
        WithJsonSchema(
            {
                "type": "object",
                "properties": {
                    prop: {
                        "anyOf": [
                            {"type": "string", "enum": [API_NAMES[f] for f in fields]},
                            {"type": "null"},
                        ]
                    }
                    for prop, fields in MANAGEABLE.items()
                },
                "additionalProperties": False,
            }
        ),
    ] = Field(
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


_PEM_PATTERN = r"^[\s\S]*-----BEGIN [A-Z ]+-----[\s\S]*$"
ClientSecret = Annotated[
    SecretStr,
    Field(
        min_length=1, max_length=1024, description="the app's client secret (kept in Key Vault, never shown)"
    ),
]
CertificatePem = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=16 * 1024,
        json_schema_extra={"pattern": _PEM_PATTERN},
        description="the app's certificate and its unencrypted RSA private key, PEM (kept in Key Vault); a "
        "malformed PEM, a key that does not match the certificate or an expired certificate is refused (422)",
    ),
]
_ONE_CREDENTIAL: dict[str, Any] = {
    "oneOf": [
        {"required": ["clientSecret"], "not": {"required": ["certificatePem"]}},
        {
            "required": ["certificatePem"],
            "not": {"anyOf": [{"required": ["clientSecret"]}, {"required": ["credentialExpiresAt"]}]},
        },
    ]
}


def _pem_shape(value: SecretStr | None) -> None:
    if value is not None and not re.fullmatch(_PEM_PATTERN, value.get_secret_value()):
        raise ValueError(
            "certificatePem: is not PEM (-----BEGIN CERTIFICATE----- and -----BEGIN PRIVATE KEY-----)"
        )


class Credentials(Body):
    """A confidential client's credential: ``clientSecret`` or ``certificatePem`` (one of them)."""

    clientSecret: ClientSecret | None = omittable("the app's client secret")
    certificatePem: CertificatePem | None = omittable("the app's certificate with its private key (PEM)")
    credentialExpiresAt: DateTime | None = Field(
        None,
        description="when the client secret expires, as Entra shows it; used only while Warden cannot read it from "
        "the app registration (Application.Read.All). Not with a certificate: its own notAfter is used",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> Credentials:
        _pem_shape(self.certificatePem)
        if (self.clientSecret is None) == (self.certificatePem is None):
            raise ValueError("give exactly one of clientSecret and certificatePem")
        if self.certificatePem is not None and self.credentialExpiresAt is not None:
            raise ValueError("credentialExpiresAt: not with a certificate (its notAfter is its expiry)")
        return self


class AppAuth(Credentials):
    """App-only (client credentials, the recommended mode): the app registration's client id and its client
    secret or certificate."""

    model_config = ConfigDict(json_schema_extra=_ONE_CREDENTIAL)
    mode: Literal["app"]
    clientId: Guid


class DelegatedAuth(Credentials):
    """Delegated (authorization code with PKCE, as the seeds do it): the confidential client's id and its secret
    or certificate; an administrator of the tenant then consents at the ``authorizeUrl`` the answer gives."""

    model_config = ConfigDict(json_schema_extra=_ONE_CREDENTIAL)
    mode: Literal["delegated"]
    clientId: Guid
    loginHint: AnyEmail | None = omittable("the account that should sign in (pre-filled on Entra's page)")


class DirectoryCreate(Body):
    name: Text256
    tenantId: Guid
    auth: Annotated[AppAuth | DelegatedAuth, Field(discriminator="mode")]
    options: DirectoryOptionsIn = Field(default_factory=DirectoryOptionsIn)


class DirectoryPatch(Body):
    name: Text256 | None = omittable()
    options: DirectoryOptionsIn | None = omittable()


class Reactivate(Body):
    """App-only: optionally a new ``clientSecret`` or ``certificatePem`` (checked with Entra before the old one
    goes). Delegated: a new consent (``authorizeUrl`` in the answer), optionally with a new credential for the
    confidential client first."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "anyOf": [
                    {"required": ["clientSecret", "certificatePem"]},
                    {"required": ["certificatePem", "credentialExpiresAt"]},
                ]
            }
        }
    )
    clientSecret: ClientSecret | None = omittable("a new client secret")
    certificatePem: CertificatePem | None = omittable("a new certificate with its private key (PEM)")
    credentialExpiresAt: DateTime | None = None
    loginHint: AnyEmail | None = omittable("delegated: the account that should sign in")

    @model_validator(mode="after")
    def _at_most_one(self) -> Reactivate:
        _pem_shape(self.certificatePem)
        if self.clientSecret is not None and self.certificatePem is not None:
            raise ValueError("give at most one of clientSecret and certificatePem")
        if self.certificatePem is not None and self.credentialExpiresAt is not None:
            raise ValueError("credentialExpiresAt: not with a certificate (its notAfter is its expiry)")
        return self


class DeactivateQuery(Query):
    confirm: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="the directory's name, to confirm an irreversible deactivation"
    )


class DomainOut(Out):
    id: str
    isVerified: bool
    isDefault: bool
    authenticationType: str
    isInitial: bool = False
    passwordValidityPeriodInDays: int | None = Field(
        None, description="as last read; 2147483647: passwords never expire (passwordNeverExpires, rule 16)"
    )


class ConsentedByOut(Out):
    userPrincipalName: str
    objectId: str
    at: dt.datetime


class DirectoryAuthOut(Out):
    mode: Literal["app", "delegated"]
    clientId: str
    credential: Literal["secret", "certificate"] = "secret"
    certificateThumbprint: str | None = Field(None, description="SHA-256 of the certificate (hex)")
    credentialExpiresAt: dt.datetime | None = None
    credentialExpirySource: Literal["graph", "certificate", "admin"] | None = Field(
        None,
        description="graph: read from the app registration; certificate: its notAfter; admin: the date given",
    )
    consentedBy: ConsentedByOut | None = Field(
        None, description="delegated: whose consent the connection lives on (their departure would break it)"
    )
    tokenRefreshedAt: dt.datetime | None = Field(None, description="delegated: the refresh token's last use")
    checkedAt: dt.datetime | None = Field(None, description="the token refresh timer's last check")


class MassChangeGuardOut(Out):
    percent: float
    count: int


class NotifyOut(Out):
    url: str


class DirectoryOptionsOut(Out):
    createMissingUsers: bool
    autoBindVerifiedDomains: bool
    passwordNeverExpires: bool
    massChangeGuard: MassChangeGuardOut
    attributeMapping: dict[str, str | None]
    notify: NotifyOut | None = None


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
    status: Literal["pending_consent", "active", "blocked", "needs_reactivation"]
    reason: str | None = None
    reasonCode: str | None = Field(None, description="the AADSTS code behind needs_reactivation")
    authorizeUrl: str | None = Field(
        None,
        description="delegated, on connect and reactivate: where an administrator of the tenant consents",
    )
    deferred: int = Field(0, description="per-user syncs waiting for the directory to work again")
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


# ------------------------------------------------------------------ federation and protected accounts
MAX_METADATA = 60_000
MfaBehavior = Literal["acceptIfMfaDoneByFederatedIdp", "enforceMfaByFederatedIdp", "rejectMfaByFederatedIdp"]
HttpsUri = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https://[^\x00-\x20\x7f]+$")]


class FederationIn(Body):
    """The IdP's SAML 2.0 metadata, as the IdP exports it (JumpCloud: SSO tab, Export Metadata)."""

    metadataXml: str = Field(
        min_length=1,
        max_length=MAX_METADATA,
        description="the metadata document; one that declares a DTD, entities or external references is refused "
        "unread (400); one that is not an IdP's SAML 2.0 metadata is refused (422)",
    )
    signOutUri: HttpsUri | None = omittable("where users go when they sign out (default: the metadata's)")
    federatedIdpMfaBehavior: MfaBehavior | None = omittable(
        "whether Entra accepts, enforces or rejects the IdP's MFA (default acceptIfMfaDoneByFederatedIdp)"
    )


class FederationPutQuery(Query):
    dryRun: QueryBool = Field(False, description="run the checks and write nothing")
    confirm: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = Field(
        None,
        description="the domain, required unless dryRun: federating ends password sign-in for the whole domain "
        "(400 without it, 422 when it names something else)",
    )
    fixImmutableIds: QueryBool = Field(
        False, description="give the linked accounts in the domain that lack one Warden's immutable id first"
    )
    allowUnmanaged: QueryBool = Field(
        False, description="federate although accounts Warden does not manage are in the domain"
    )


class FederationDeleteQuery(Query):
    confirm: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="the domain: returning it to Managed ends single sign-on for the whole domain (422 when it "
        "names something else)"
    )


class CertificateOut(Out):
    subject: str
    notBefore: dt.datetime
    notAfter: dt.datetime
    thumbprint: str = Field(description="SHA-1, upper-case hex, as Entra shows it")


class FederationConfigOut(Out):
    issuerUri: str
    passiveSignInUri: str
    activeSignInUri: str | None = None
    signOutUri: str | None = None
    preferredAuthenticationProtocol: str
    federatedIdpMfaBehavior: str
    signingCertificate: CertificateOut | None = None
    nextSigningCertificate: CertificateOut | None = None


class CheckOut(Out):
    id: Literal[
        "domain-verified",
        "not-default",
        "not-initial",
        "not-federated-elsewhere",
        "issuer-format",
        "sign-in-uri",
        "signing-certificate",
        "no-on-premises-sync",
        "immutable-ids",
        "unmanaged-accounts",
        "admin-fallback",
    ]
    verdict: Literal["pass", "warn", "fail"]
    sentence: str


class FederationOut(Out):
    directoryId: str
    domain: str
    authenticationType: str
    managedByWarden: bool = Field(description="Warden set this federation and keeps it (nightly reconcile)")
    dryRun: bool = False
    federation: FederationConfigOut | None = Field(None, description="the domain's federation in Entra now")
    proposed: FederationConfigOut | None = Field(None, description="a dry run: what would be written")
    checks: list[CheckOut]
    immutableIdsSet: int = 0


class NeedsPasswordOut(Out):
    userId: str
    m365UserId: str
    userPrincipalName: str


class FederationRemovedOut(Out):
    directoryId: str
    domain: str
    authenticationType: str
    needPassword: list[NeedsPasswordOut] = Field(
        description="linked users of the domain who now sign in with an Entra password: push one with "
        "POST /users/{id}/password"
    )


class ProtectedAccountOut(Out):
    m365UserId: str
    userPrincipalName: str | None = None
    roles: list[str] = Field(description="the Entra directory roles it holds (eligible, or through a group)")
    markedBy: str | None = None
    markedAt: dt.datetime | None = None
    why: list[str] = Field(description='its roles, and "marked by admin:<oid>"')


class ProtectedList(Out):
    items: list[ProtectedAccountOut]
    next: str | None
    rolesReadable: bool = Field(description="the role holders could be read when last tried")
    rolesReadAt: dt.datetime | None = None
    rolesDetail: str | None = None


# -------------------------------------------------------------------------------------------- imports
class CandidateQuery(ListQuery):
    limit: QueryInt = Field(100, ge=1, le=999)
    text: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = Field(
        None, description="startsWith on displayName, userPrincipalName or mail"
    )
    domain: Annotated[str, StringConstraints(max_length=253, pattern=r"^[A-Za-z0-9.-]+$")] | None = None
    enabled: QueryBool | None = None


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
    """Either ``m365UserIds`` (at most 1,000 a request) or ``all: true`` (optionally with a ``filter``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["m365UserIds"], "properties": {"all": {"const": False}, "filter": False}},
                {"required": ["all"], "properties": {"all": {"const": True}, "m365UserIds": False}},
            ]
        }
    )
    m365UserIds: list[Guid] | None = Field(None, min_length=1, max_length=1000, json_schema_extra=_not_null)
    all: bool = False
    filter: (
        Annotated[
            dict[
                Annotated[str, StringConstraints(pattern="^text$")],
                Annotated[str, StringConstraints(max_length=64, pattern=_PRINTABLE)],
            ],
            WithJsonSchema(
                {
                    "type": "object",
                    "properties": {"text": {"type": "string", "maxLength": 64, "pattern": _PRINTABLE}},
                    "additionalProperties": False,
                }
            ),
        ]
        | None
    ) = omittable('with all: {"text": "..."} imports only accounts whose displayName, UPN or mail starts so')
    bind: bool = Field(
        False, description="bind each imported user to the directory (its account is taken over)"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> ImportIn:
        if (self.m365UserIds is None) == (not self.all):
            raise ValueError("give either m365UserIds or all: true")
        if self.filter is not None and not self.all:
            raise ValueError("filter goes with all: true")
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
    kind: Literal["reconcile", "drift", "user", "token_refresh"]
    dryRun: bool
    status: Literal["planning", "held", "applying", "done", "failed", "discarded", "skipped"]
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
    since: DateTime | None = None
    correlationId: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] | None
    ) = Field(None, description="only what one request caused (its correlation id, as each entry shows it)")


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
AwareTime = DateTime


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
    name: str = Field(examples=["tableStorage", "queueStorage", "keyVault", "graph", "userSyncPoison"])
    status: Literal["up", "down", "warning"]
    latencyMs: float = Field(ge=0)
    detail: str | None = Field(None, description="why it is down, in a few secret-free words")
    directory: str | None = Field(None, description="graph probes: the directory checked")
    tenantId: str | None = Field(None, description="graph probes: the directory's tenant")
    source: str | None = Field(None, description="hrSource: the HR source's name")
    kind: str | None = Field(None, description="hrSource: the source's kind")
    lastEventAt: str | None = Field(None, description="hrSource: its last accepted event (none yet: absent)")
    lastFailureAt: str | None = Field(None, description="hrSource: its last refused request")


class Health(Out):
    status: Literal["up", "degraded", "down"] = Field(
        description="down (503): Table Storage, Queue Storage or Key Vault fails; degraded (200): a directory is "
        "unreachable or needs reactivation, or messages wait in a poison queue; up: everything is"
    )
    checkedAt: dt.datetime
    components: list[ComponentHealth]


# ------------------------------------------------------------------------------------------ connections
class OAuthCallbackQuery(Query):
    """What Entra ID sends back to the redirect URI (https://learn.microsoft.com/en-us/entra/identity-platform/
    v2-oauth2-auth-code-flow): ``code`` and ``state``, or ``error`` and ``error_description``. Sized so that the
    whole URL stays within what a web server reads (8 KiB), encoded."""

    state: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,256}$")]
    code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,3000}$")] | None = None
    session_state: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{1,128}$")] | None = None
    error: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] | None = None
    error_description: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e\r\n]{1,900}$")] | None = None
    error_uri: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,300}$")] | None = None
    error_subcode: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] | None = None


class ConsentOut(Out):
    directoryId: str
    status: Literal["pending_consent", "active", "blocked", "needs_reactivation"]
    consentedBy: ConsentedByOut | None = None
    reactivated: bool = Field(description="the directory needed reactivation and works again")
    replayed: int = Field(description="deferred per-user syncs queued again")


class NotificationsSecret(Out):
    secret: str = Field(
        description="the new notification signing secret (whsec_…), shown only now; the previous one keeps "
        "signing for 24 hours"
    )


class RoundsQuery(Query):
    limit: QueryInt = Field(20, ge=1, le=100)


class RoundOut(Out):
    id: str
    status: Literal["done", "failed"]
    trigger: str
    counts: dict[str, int] = Field(
        description="directories, checked, refreshed, expiring, lapsed, failed, skipped, replayed"
    )
    error: str | None = None
    startedAt: dt.datetime | None = None
    finishedAt: dt.datetime | None = None


class RoundList(Out):
    items: list[RoundOut]
    next: str | None


# ----------------------------------------------------------------------------------------- hr sources
SOURCE_FIELD_TYPES: dict[str, Any] = {
    "username": Username,
    "email": CompanyEmail,
    "firstName": Text64,
    "lastName": Text64,
    "displayName": Text256,
    "jobTitle": Text128,
    "department": Text64,
    "employeeId": Text16,
    "managerEmployeeId": Text16,
    "startAt": LocalDate,
    "endAt": LocalDate,
    "timeZone": TimeZone,
    "status": Text64,
}
"""The type of each Warden field a source's mapping may feed: a value a source sends is held to the same rules as
an admin's or an HR event's."""


@cache
def field_adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(SOURCE_FIELD_TYPES[name])


SourceName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"),
    Field(description="1-40 lower-case letters, digits and inner hyphens; the audit actor is hris:<name>"),
]
QuietHours = Annotated[
    Count,
    Field(ge=1, le=8760),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 8760}),
]
SourceField = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_TEXT)]
SourceMapping = Annotated[
    dict[SourceField, WardenField],
    Field(max_length=64),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": _TEXT},
            "additionalProperties": {"type": "string", "enum": list(WARDEN_FIELDS)},
            "maxProperties": 64,
        }
    ),
]


class HrSourceCreate(Body):
    """A new HR source. ``mapping`` (source field → Warden field) defaults to the kind's usual one; a standard
    source takes none (it sends Warden's own fields)."""

    name: SourceName
    kind: Literal["standard", "scim", "bamboohr"]
    mapping: SourceMapping | None = omittable(
        "scim: SCIM attribute path → Warden field (e.g. emails.value → email); bamboohr: the posted field's name "
        "(or alias) → Warden field. Required: scim email, firstName, lastName (userName → username or email); "
        "bamboohr employeeId, email, firstName, lastName"
    )
    quietAfterHours: QuietHours | None = omittable(
        "warn when the source sent nothing this long, in hours (default 72)"
    )


class HrSourcePatch(Body):
    mapping: SourceMapping | None = omittable()
    enabled: bool | None = omittable("false: the source's requests are refused (403) until enabled again")
    quietAfterHours: QuietHours | None = omittable()


class HrSourceSecretIn(Body):
    secret: SecretStr = Field(
        min_length=1, max_length=1024, description="the webhook's private key, as BambooHR shows it once"
    )


class HrSourceActivityOut(Out):
    lastEventAt: dt.datetime | None = None
    lastFailureAt: dt.datetime | None = None
    lastFailure: str | None = Field(None, description="why the last refused request was refused")


class HrSourceOut(Out):
    id: str
    name: str
    kind: Literal["standard", "scim", "bamboohr"]
    builtIn: bool
    enabled: bool
    actor: str = Field(description="who the audit shows for what the source sends: hris:<name>")
    mapping: dict[str, str]
    quietAfterHours: int
    endpoint: str = Field(description="where the source sends: its webhook, or the SCIM base path")
    credentialSetAt: dt.datetime | None = Field(
        None, description="null: no credential yet (BambooHR: PUT …/secret)"
    )
    previousCredentialValidUntil: dt.datetime | None = None
    activity: HrSourceActivityOut
    warnings: list[str]
    createdAt: dt.datetime
    updatedAt: dt.datetime


class HrSourceCreated(HrSourceOut):
    credential: str | None = Field(
        description="scim: the bearer token; standard: the signing secret (whsec_…); shown only now. bamboohr: "
        "null (store BambooHR's private key with PUT /hris/sources/{sourceId}/secret)"
    )


class HrSourceList(Out):
    items: list[HrSourceOut]
    next: str | None


class HrSourceRotated(Out):
    credential: str = Field(description="the new token or secret, shown only now")
    previousValidUntil: dt.datetime | None = Field(None, description="the one it replaces works until then")


BambooValue = str | int | float | bool | None


class BambooEmployeeIn(BaseModel):
    """One employee change as BambooHR's field-based webhook posts it. Unknown keys are BambooHR's to add."""

    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | int
    action: Literal["Created", "Updated", "Deleted"]
    timestamp: Annotated[str, StringConstraints(max_length=64)] | None = None
    changedFields: list[Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=list, max_length=500
    )
    fields: dict[Annotated[str, StringConstraints(max_length=256)], BambooValue] | list[Any] = Field(
        default_factory=dict, description="the posted fields' current values (empty for Created and Deleted)"
    )


class BambooHrDelivery(BaseModel):
    """BambooHR's field-based webhook delivery (JSON)."""

    model_config = ConfigDict(extra="ignore")
    employees: list[BambooEmployeeIn] = Field(min_length=1, max_length=1000)


class SourceEventBody(RootModel[HrisEvent | BambooHrDelivery]):
    """A standard source's HR event (Standard Webhooks), or a BambooHR source's delivery."""


class SourceEventResult(Out):
    status: Outcome
    userId: str | None = None
    bambooId: str | None = Field(None, description="BambooHR's id of the employee the change is about")


class SourceEventsAccepted(Out):
    results: list[SourceEventResult]
