"""HR sources (SPEC §3, HR sources and SCIM): the systems that feed Warden its people, each with its own kind, its
own credential (in Key Vault), its own field mapping and its own audit actor ``hris:<name>``.

Three kinds:

- ``standard``: Warden's own event schema signed per Standard Webhooks. The built-in source ``webhook`` is the one
  ``POST /api/hris/events`` has always served; an admin may add more (each with its own signing secret).
- ``scim``: a SCIM 2.0 client (Entra's provisioning, a Workday or SuccessFactors connector, a CSV-to-SCIM script)
  calling ``/api/scim/v2`` with the bearer token Warden generated for it.
- ``bamboohr``: BambooHR's field-based webhooks, signed with the private key BambooHR generated.

A mapping says which field of what the source sends feeds which Warden field. Pure rules only: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

SourceKind = Literal["standard", "scim", "bamboohr"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)

BUILT_IN_ID = "00000000-0000-4000-8000-000000000001"
"""The built-in ``standard`` source behind ``POST /api/hris/events`` (its actor stays ``hris:webhook``)."""
BUILT_IN_NAME = "webhook"

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$|^[a-z0-9]$"
"""A source's name is its audit actor's (``hris:<name>``): 1-40 lower-case letters, digits and inner hyphens."""

DEFAULT_QUIET_HOURS = 72
"""A source that sent nothing for this long shows as a warning (an HR integration that stopped is the failure
nobody sees). Three days: a weekend is not an outage."""

CREDENTIAL_OVERLAP = dt.timedelta(hours=24)
"""After a rotation the previous credential stays valid this long (the sender switches over)."""

WardenField = Literal[
    "username",
    "email",
    "firstName",
    "lastName",
    "displayName",
    "jobTitle",
    "department",
    "employeeId",
    "managerEmployeeId",
    "startAt",
    "endAt",
    "timeZone",
    "status",
]
WARDEN_FIELDS: tuple[str, ...] = get_args(WardenField)

FIELD_ATTRIBUTES: dict[str, str] = {
    "username": "username",
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "employeeId": "employee_id",
    "managerEmployeeId": "manager_employee_id",
    "startAt": "start_at",
    "endAt": "end_at",
    "timeZone": "time_zone",
    "status": "status",
}
"""A mapping's Warden field (API name) → the domain's name."""

TARGETS: dict[str, frozenset[str]] = {
    "standard": frozenset(),
    "scim": frozenset(
        {"username", "email", "firstName", "lastName", "displayName", "jobTitle", "department", "employeeId"}
    ),
    "bamboohr": frozenset(
        {
            "employeeId",
            "email",
            "firstName",
            "lastName",
            "displayName",
            "jobTitle",
            "department",
            "managerEmployeeId",
            "startAt",
            "endAt",
            "timeZone",
            "status",
        }
    ),
}
"""The Warden fields each kind may feed. A SCIM source's manager, active flag and externalId are SCIM's own
(``manager.value`` names a SCIM user, ``active`` suspends, ``externalId`` is the client's key), never mapped."""

REQUIRED: dict[str, frozenset[str]] = {
    "standard": frozenset(),
    "scim": frozenset({"email", "firstName", "lastName"}),
    "bamboohr": frozenset({"employeeId", "email", "firstName", "lastName"}),
}

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

DEFAULT_MAPPINGS: dict[str, dict[str, str]] = {
    "standard": {},
    "scim": {
        "userName": "username",
        "emails.value": "email",
        "name.givenName": "firstName",
        "name.familyName": "lastName",
        "displayName": "displayName",
        "title": "jobTitle",
        f"{ENTERPRISE}:employeeNumber": "employeeId",
        f"{ENTERPRISE}:department": "department",
    },
    # BambooHR posts its fields under their English names unless the webhook gives them aliases
    # (documentation.bamboohr.com/docs/field-based-webhooks: "Field Name Aliases").
    "bamboohr": {
        "Employee #": "employeeId",
        "Work Email": "email",
        "First Name": "firstName",
        "Last Name": "lastName",
        "Job Title": "jobTitle",
        "Department": "department",
        "Hire Date": "startAt",
        "Termination Date": "endAt",
        "Status": "status",
    },
}
"""What a new source of each kind maps when the admin gives no mapping."""

SCIM_USERNAME_TARGETS = frozenset({"username", "email"})
"""SCIM's ``userName`` is unique and required: it feeds a Warden field that is unique too."""


class MappingError(ValueError):
    """A mapping that cannot work for its kind; the message names the field."""


def check_mapping(kind: str, mapping: Mapping[str, str]) -> None:
    """Every target a Warden field this kind may feed, fed once; every required one fed."""
    if kind == "standard":
        if mapping:
            raise MappingError(
                "a standard source sends Warden's own fields (the HR event schema): it takes no mapping"
            )
        return
    allowed = TARGETS[kind]
    seen: dict[str, str] = {}
    for source_field, target in mapping.items():
        if not source_field or len(source_field) > 256:
            raise MappingError("mapping: a source field is 1-256 characters")
        if target not in allowed:
            raise MappingError(
                f"mapping.{source_field}: '{target}' is not a field a {kind} source may feed "
                f"(one of {', '.join(sorted(allowed))})"
            )
        if target in seen:
            raise MappingError(f"mapping: {target} is fed by both '{seen[target]}' and '{source_field}'")
        seen[target] = source_field
    missing = sorted(REQUIRED[kind] - set(seen))
    if missing:
        raise MappingError(f"mapping: nothing feeds {', '.join(missing)} (required for a {kind} source)")
    if kind == "scim" and mapping.get("userName") not in SCIM_USERNAME_TARGETS:
        raise MappingError("mapping.userName: SCIM's userName must feed username or email (both unique)")


# ------------------------------------------------------------------------------------------------ sources
SourceStatus = Literal["enabled", "disabled"]


@dataclass(frozen=True)
class HrSource:
    id: str
    name: str
    kind: SourceKind
    mapping: tuple[tuple[str, str], ...]
    status: SourceStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    quiet_after_hours: int = DEFAULT_QUIET_HOURS
    credential_set_at: dt.datetime | None = None
    """When the current credential was made (or stored, for BambooHR's key); None: none yet."""
    previous_valid_until: dt.datetime | None = None
    built_in: bool = False

    @property
    def actor(self) -> str:
        return f"hris:{self.name}"

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"

    def fields(self) -> dict[str, str]:
        return dict(self.mapping)

    def secret_name(self) -> str:
        """The Key Vault secret holding the source's credentials (the current and the previous one)."""
        return f"hris-source-{self.id}"


@dataclass(frozen=True)
class SourceActivity:
    """What a source did lately: its last accepted event and its last refusal (why, in a few words)."""

    last_event_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None
    last_failure: str | None = None
    events: int = 0
    failures: int = 0


@dataclass(frozen=True)
class Quiet:
    since: dt.datetime
    hours: float


def quiet(source: HrSource, activity: SourceActivity, now: dt.datetime) -> Quiet | None:
    """A source that sent nothing accepted for longer than its ``quiet_after_hours`` (counted from its last
    event, else from when its credential was set: a source never used is quiet too). A disabled source, or one
    without a credential yet, is not quiet: nobody expects it to send."""
    if not source.enabled or source.credential_set_at is None:
        return None
    since = activity.last_event_at or source.credential_set_at
    hours = (now - since).total_seconds() / 3600
    return Quiet(since, hours) if hours > source.quiet_after_hours else None


# ---------------------------------------------------------------------------------------------- credentials
TOKEN_PREFIX = "wscim"
_TOKEN = re.compile(r"^wscim_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


def scim_token(source_id: str, secret_part: str) -> str:
    """A SCIM bearer token: ``wscim_<source id without hyphens>_<43 random base64url characters>``. The source id
    in it is not secret (it says which source's credential to compare against); the random part is."""
    return f"{TOKEN_PREFIX}_{source_id.replace('-', '')}_{secret_part}"


def token_source(token: str) -> str | None:
    """The source id a SCIM token names (None: not a Warden SCIM token)."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    h = match.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Credentials:
    """A source's credentials: the current one and, until ``previous_until``, the one it replaced."""

    current: str
    previous: str | None = None
    previous_until: dt.datetime | None = None

    def valid(self, now: dt.datetime) -> tuple[str, ...]:
        if self.previous and self.previous_until is not None and now < self.previous_until:
            return (self.current, self.previous)
        return (self.current,)

    def rotated(self, new: str, now: dt.datetime) -> Credentials:
        return Credentials(new, self.current, now + CREDENTIAL_OVERLAP)

    def __repr__(self) -> str:  # never a secret through repr()
        return f"Credentials(previous_until={self.previous_until!r})"


# ---------------------------------------------------------------------------------------------- people
@dataclass(frozen=True)
class SourceRef:
    """Which source an HR event came through: its id and audit actor."""

    id: str
    actor: str


BUILT_IN = SourceRef(BUILT_IN_ID, f"hris:{BUILT_IN_NAME}")


@dataclass(frozen=True)
class PersonRecord:
    """What a source keeps about one person (or group) it feeds: its own key for them (SCIM's ``externalId``,
    BambooHR's employee id) and, for SCIM, the resource as the client last wrote it (never a password)."""

    source_id: str
    object_id: str
    """The Warden user (or group) id."""
    external_id: str | None = None
    document: Mapping[str, object] = field(default_factory=dict)
    applied: Mapping[str, object] = field(default_factory=dict)
    """Warden's values of the fields the source feeds, as its last write left them: where Warden's user differs
    now, someone else changed it, and the resource shows Warden's value."""
    etag: str = ""
