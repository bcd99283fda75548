"""The simulated Microsoft Graph v1.0 directory of one tenant: users, groups, domains, organization, delta.

The HTTP layer hands every authenticated request to ``TenantDirectory.handle``; this module answers as Graph
does according to Microsoft's documentation (each rule names its page). Reads see replicas that lag behind
the primary by ``replication_lag()`` seconds (see ``tools.m365sim.delta``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cryptography import x509

from tools.m365sim.delta import Data, DeltaQuery, VersionedStore
from tools.m365sim.errors import graph_error
from tools.m365sim.model import Clock, GraphRequest, GraphResponse
from tools.m365sim.odata import (
    FilterSchema,
    QueryError,
    compile_filter,
    decode_token,
    encode_token,
    parse_select,
    parse_top,
)

# --------------------------------------------------------------------------------------------------------
# Permissions (https://learn.microsoft.com/en-us/graph/permissions-reference and each API page's table)
# --------------------------------------------------------------------------------------------------------
DIR_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
DIR_WRITE = frozenset({"Directory.ReadWrite.All"})
USER_READ = DIR_READ | {"User.Read.All", "User.ReadWrite.All"}
USER_WRITE = DIR_WRITE | {"User.ReadWrite.All"}
USER_ENABLE = USER_WRITE | {"User.EnableDisableAccount.All"}
USER_PASSWORD = frozenset({"User-PasswordProfile.ReadWrite.All"})
USER_REVOKE = USER_WRITE | {"User.RevokeSessions.All"}
USER_PATCH = USER_ENABLE | USER_PASSWORD
GROUP_READ = DIR_READ | {"Group.Read.All", "GroupMember.Read.All", "Group.ReadWrite.All"}
GROUP_WRITE = DIR_WRITE | {"Group.ReadWrite.All"}
MEMBER_WRITE = GROUP_WRITE | {"GroupMember.ReadWrite.All"}
DOMAIN_READ = DIR_READ | {"Domain.Read.All", "Domain.ReadWrite.All"}
DOMAIN_WRITE = frozenset({"Domain.ReadWrite.All"})
FED_WRITE = frozenset({"Domain-InternalFederation.ReadWrite.All", "Domain.ReadWrite.All"})
FED_READ = DOMAIN_READ | FED_WRITE | {"Domain-InternalFederation.Read.All"}
ORG_READ = DIR_READ | {"Organization.Read.All", "Organization.ReadWrite.All"}
DELEGATED_ALL = "Directory.AccessAsUser.All"

# --------------------------------------------------------------------------------------------------------
# The user resource (https://learn.microsoft.com/en-us/graph/api/resources/user)
# --------------------------------------------------------------------------------------------------------
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_WRITABLE = frozenset(
    {
        "accountEnabled",
        "displayName",
        "givenName",
        "surname",
        "mailNickname",
        "userPrincipalName",
        "mail",
        "jobTitle",
        "department",
        "employeeId",
        "onPremisesImmutableId",
        "businessPhones",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "usageLocation",
        "otherMails",
        "passwordProfile",
        "city",
        "country",
        "companyName",
        "state",
        "streetAddress",
        "postalCode",
        "employeeType",
        "passwordPolicies",
        "userType",
        "faxNumber",
        "ageGroup",
        "employeeHireDate",
        "showInAddressList",
    }
)
USER_READONLY = frozenset(
    {
        "id",
        "proxyAddresses",
        "createdDateTime",
        "signInSessionsValidFromDateTime",
        "onPremisesSyncEnabled",
        "deletedDateTime",
        "onPremisesLastSyncDateTime",
        "lastPasswordChangeDateTime",
        "creationType",
        "externalUserState",
    }
)
USER_PROPS = {n.lower(): n for n in USER_WRITABLE | USER_READONLY | {"manager"}}
USER_LISTS = frozenset({"businessPhones", "otherMails", "proxyAddresses"})
USER_BOOLS = frozenset({"accountEnabled", "showInAddressList"})
USER_MAX_LENGTHS = {
    "displayName": 256,
    "givenName": 64,
    "surname": 64,
    "mailNickname": 64,
    "jobTitle": 128,
    "department": 64,
    "employeeId": 16,
    "companyName": 64,
    "mobilePhone": 64,
    "city": 128,
    "state": 128,
    "country": 128,
    "postalCode": 40,
    "streetAddress": 1024,
}
"""The user resource page's "Maximum length is N characters" for each property. Longer values are refused as
invalid values (the page gives the limits, not the error; the InvalidValue answer is our choice)."""
UPN_LOCAL = re.compile(r"[A-Za-z0-9'.\-_!#^~]{1,64}")
"""concept-sspr-policy, "Username policies": characters allowed A-Z a-z 0-9 ' . - _ ! # ^ ~; up to 64 characters
before the @, up to 48 after, 113 in total; no "." immediately before the @."""
SYNCED_CLOUD_EDITABLE = frozenset({"usageLocation"})
"""Properties Entra lets the cloud edit on a user mastered on-premises; every other write is refused."""
USER_FILTER = FilterSchema(
    resource="User",
    strings=frozenset(
        {
            "userPrincipalName",
            "mail",
            "employeeId",
            "displayName",
            "givenName",
            "surname",
            "mailNickname",
            "id",
            "jobTitle",
            "department",
            "onPremisesImmutableId",
            "usageLocation",
        }
    ),
    booleans=frozenset({"accountEnabled"}),
    collections=frozenset({"proxyAddresses", "otherMails"}),
    # aad-advanced-queries: "endsWith ... supported only ... by mail, otherMails, userPrincipalName, proxyAddresses"
    ends_with=frozenset({"mail", "otherMails", "userPrincipalName", "proxyAddresses"}),
    no_starts_with=frozenset({"id"}),
)

# --------------------------------------------------------------------------------------------------------
# The group resource (https://learn.microsoft.com/en-us/graph/api/resources/group)
# --------------------------------------------------------------------------------------------------------
GROUP_OUTPUT = (
    "id",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "proxyAddresses",
    "securityEnabled",
    "visibility",
)
GROUP_WRITABLE = frozenset({"description", "displayName", "mailNickname", "securityEnabled", "visibility"})
GROUP_CREATE_ONLY = frozenset({"mailEnabled", "groupTypes"})
GROUP_READONLY = frozenset(GROUP_OUTPUT) - GROUP_WRITABLE - GROUP_CREATE_ONLY
GROUP_PROPS = {n.lower(): n for n in (*GROUP_OUTPUT, "members")}
GROUP_FILTER = FilterSchema(
    resource="Group",
    strings=frozenset({"displayName", "mailNickname", "mail", "id", "description"}),
    booleans=frozenset({"securityEnabled", "mailEnabled"}),
    collections=frozenset({"groupTypes", "proxyAddresses"}),
    ends_with=frozenset({"mail", "proxyAddresses"}),
    no_starts_with=frozenset({"id"}),
)
MAX_BIND = 20
"""group-post-groups / group-update: "up to 20 members" per request with members@odata.bind."""

# --------------------------------------------------------------------------------------------------------
# Domains (https://learn.microsoft.com/en-us/graph/api/resources/domain) and internalDomainFederation
# --------------------------------------------------------------------------------------------------------
NEVER_EXPIRES = 2147483647
DOMAIN_OUTPUT = (
    "id",
    "authenticationType",
    "availabilityStatus",
    "isAdminManaged",
    "isDefault",
    "isInitial",
    "isRoot",
    "isVerified",
    "passwordNotificationWindowInDays",
    "passwordValidityPeriodInDays",
    "supportedServices",
    "state",
)
DOMAIN_WRITABLE = frozenset({"isDefault", "passwordValidityPeriodInDays", "passwordNotificationWindowInDays"})
FED_FIELDS = frozenset(
    {
        "displayName",
        "issuerUri",
        "metadataExchangeUri",
        "passiveSignInUri",
        "activeSignInUri",
        "signOutUri",
        "signingCertificate",
        "nextSigningCertificate",
        "preferredAuthenticationProtocol",
        "federatedIdpMfaBehavior",
        "isSignedAuthenticationRequestRequired",
        "promptLoginBehavior",
    }
)
FED_REQUIRED = ("issuerUri", "passiveSignInUri", "signingCertificate")
FED_ENUMS = {
    "preferredAuthenticationProtocol": {"wsFed", "saml"},
    "federatedIdpMfaBehavior": {
        "acceptIfMfaDoneByFederatedIdp",
        "enforceMfaByFederatedIdp",
        "rejectMfaByFederatedIdp",
    },
    "promptLoginBehavior": {"translateToFreshPasswordAuthentication", "nativeSupport", "disabled"},
}

# --------------------------------------------------------------------------------------------------------
# Messages Graph answers (sources next to each use)
# --------------------------------------------------------------------------------------------------------
INSUFFICIENT = "Insufficient privileges to complete the operation."
PASSWORD_COMPLEXITY = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)
UNVERIFIED_DOMAIN = (
    "The domain portion of the userPrincipalName property is invalid. You must use one of the "
    "verified domain names in your organization."
)
ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: 'members'."
)
SYNCED_OBJECT = (
    "Unable to update the specified properties for on-premises mastered Directory Sync objects or "
    "objects currently undergoing migration."
)
MAIL_ENABLED_GROUP = (
    "The service does not currently support writes of mail-enabled groups. Please ensure that "
    "the mail-enablement property is unset and the security-enablement property is set."
)
METHOD_NOT_ALLOWED = "Specified HTTP method is not allowed for the request target."
MAILNICKNAME_FORBIDDEN = set('@()\\[]";:<>, ')

GIVEN_NAMES = (
    "Adele",
    "Alex",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
)
SURNAMES = (
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Mueller",
    "Langer",
    "Lorenz",
    "Sherman",
    "Gu",
    "Holloway",
    "Robinson",
    "Bowen",
    "Graham",
    "Wilke",
    "Fernandez",
    "Gupta",
    "O'Brien",
)
JOBS = ("Engineer", "Analyst", "Designer", "Manager", "Consultant", "Accountant")
DEPARTMENTS = ("Engineering", "Finance", "Sales", "Marketing", "Operations", "Legal")
SEED_NAMESPACE = uuid.UUID("6c1f5a52-9f0e-4c8a-9d3c-5a7f0b8e2d11")


class GraphFailure(Exception):
    """Raised inside handlers; ``handle`` turns it into Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        target: str | None = None,
        detail_code: str = "ObjectConflict",
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target
        self.detail_code = detail_code

    def response(self) -> GraphResponse:
        details: list[dict[str, Any]] | None = None
        if self.target and self.detail_code == "ObjectConflict":
            details = [{"code": "ObjectConflict", "message": self.message, "target": self.target}]
        elif self.target:
            details = [{"code": self.detail_code, "target": self.target}]
        return graph_error(self.status, self.code, self.message, details=details)


def bad_request(message: str) -> GraphFailure:
    return GraphFailure(400, "Request_BadRequest", message)


def not_found(key: str) -> GraphFailure:
    # Request_ResourceNotFound, as Graph answers for a missing directory object (e.g. user-get, group-delete-members;
    # github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/4847).
    return GraphFailure(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def required(prop: str, resource: str) -> GraphFailure:
    # Graph's wording for a missing required property ("Property mailNickname value is required but is empty or
    # missing.", microsoftgraph/MSGraph-SDK-Code-Generator#244, answered by the Graph PowerShell team; the same
    # pattern for applications' identifierUris). The message does not name the resource.
    del resource
    return bad_request(f"Property {prop} value is required but is empty or missing.")


def invalid_value(prop: str, resource: str) -> GraphFailure:
    # Graph answers 400 Request_BadRequest with details [{"code": "InvalidValue", "target": prop}]
    # (microsoftgraph/microsoft-graph-docs#5777, an invalid mailNickname on POST /users).
    return GraphFailure(
        400,
        "Request_BadRequest",
        f"Invalid value specified for property '{prop}' of resource '{resource}'.",
        target=prop,
        detail_code="InvalidValue",
    )


def conflict(prop: str) -> GraphFailure:
    # user-post-users: "Another object with the same value for property userPrincipalName already exists." with a
    # details entry {"code": "ObjectConflict", "target": prop}.
    return GraphFailure(
        400,
        "Request_BadRequest",
        f"Another object with the same value for property {prop} already exists.",
        target=prop,
    )


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def password_ok(password: Any) -> bool:
    """Entra's cloud password policy: 8-256 characters, three of lower, upper, digit, symbol.

    https://learn.microsoft.com/en-us/entra/identity/authentication/concept-password-ban-bad-combined-policy
    """
    if not isinstance(password, str) or not 8 <= len(password) <= 256:
        return False
    classes = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    )
    return sum(classes) >= 3


def ref_id(value: Any) -> str:
    """The object id of a directoryObject reference ``https://graph.microsoft.com/v1.0/directoryObjects/{id}``."""
    match = re.search(
        r"/(?:directoryObjects|users|groups)(?:/|\(')([0-9a-fA-F-]{36})(?:'\))?$",
        value if isinstance(value, str) else "",
    )
    if not match:
        # group-post-members: the body must hold an @odata.id reference to a directoryObject.
        raise bad_request(f"Invalid object identifier '{value}'.")
    return match.group(1).lower()


Handler = Callable[[GraphRequest, list[str]], GraphResponse]


@dataclass(frozen=True)
class Route:
    pattern: tuple[str, ...]
    """Literal segments, '*' for an id."""
    methods: dict[str, tuple[Handler, frozenset[str]]]


# ========================================================================================================
class TenantDirectory:
    """One tenant's directory. ``handle`` is called from one asyncio thread: no locking."""

    def __init__(
        self,
        tenant_id: str,
        display_name: str,
        domains: Iterable[dict[str, Any]],
        *,
        on_premises_sync_enabled: bool | None = None,
        clock: Clock,
        replication_lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.display_name = display_name
        self.on_premises_sync_enabled = on_premises_sync_enabled
        """organization.onPremisesSyncEnabled: true synced, false no longer synced, None never synced; only a
        synced tenant (true) has users mastered on-premises."""
        self.clock = clock
        self.created = clock()
        self.store = VersionedStore(clock, replication_lag)
        self.domains: dict[str, Data] = {}
        self.federation: dict[str, Data] = {}
        """domain id → its internalDomainFederation."""
        self._upn_index: dict[str, str] = {}
        self._nick_index: dict[str, str] = {}
        self._proxy_index: dict[str, str] = {}
        self._upn_seen: dict[str, set[str]] = {}
        """Every UPN a user ever had → ids: finds users by UPN on lagging replicas in O(1)."""
        self._groups_of: dict[str, set[str]] = {}
        self._seeded = 0
        self._delta = DeltaQuery(
            self.store,
            tenant_id,
            self._render_for_delta,
            self._select_for,
            # group-delta Example 1 (no $select) returns the default properties with members@delta.
            {"users": USER_DEFAULT, "groups": (*GROUP_OUTPUT, "members")},
        )
        self._add_domains(domains)
        self._routes = self._route_table()

    # ----------------------------------------------------------------------------------------------------
    # Public API
    # ----------------------------------------------------------------------------------------------------
    def user_count(self) -> int:
        return len(self._upn_index)

    def seed_users(self, n: int, *, synced: bool | None = None) -> list[Data]:
        """Deterministic users ``user0001…`` in the default domain, visible at once (no replication lag)."""
        created = []
        domain = self.default_domain()
        for _ in range(n):
            self._seeded += 1
            i = self._seeded
            created.append(self._store_user(self._seed_record(i, domain, synced), immediate=True))
        return [self._render_user(u, list(USER_PROPS.values())) for u in created]

    def default_domain(self) -> str:
        return str(next(d["id"] for d in self.domains.values() if d["isDefault"]))

    def handle(self, req: GraphRequest) -> GraphResponse:
        try:
            handler, args = self._dispatch(req)
            return handler(req, args)
        except GraphFailure as failure:
            return failure.response()
        except QueryError as exc:
            return graph_error(exc.status, exc.code, exc.message)

    # ----------------------------------------------------------------------------------------------------
    # Routing
    # ----------------------------------------------------------------------------------------------------
    def _route_table(self) -> list[Route]:
        def r(pattern: str, **methods: tuple[Handler, frozenset[str]]) -> Route:
            return Route(tuple(pattern.strip("/").split("/")), methods)

        delta_users: Handler = lambda req, _: self._delta.handle(req, "users")  # noqa: E731
        delta_groups: Handler = lambda req, _: self._delta.handle(req, "groups")  # noqa: E731
        return [
            r("users", GET=(self._list_users, USER_READ), POST=(self._create_user, USER_WRITE)),
            r("users/delta", GET=(delta_users, USER_READ)),
            r(
                "users/*",
                GET=(self._get_user, USER_READ),
                PATCH=(self._update_user, USER_PATCH),
                DELETE=(self._delete_user, USER_WRITE),
            ),
            r("users/*/revokeSignInSessions", POST=(self._revoke_sessions, USER_REVOKE)),
            r("users/*/manager", GET=(self._get_manager, USER_READ)),
            r(
                "users/*/manager/$ref",
                PUT=(self._set_manager, USER_WRITE),
                DELETE=(self._remove_manager, USER_WRITE),
            ),
            r("groups", GET=(self._list_groups, GROUP_READ), POST=(self._create_group, GROUP_WRITE)),
            r("groups/delta", GET=(delta_groups, GROUP_READ)),
            r(
                "groups/*",
                GET=(self._get_group, GROUP_READ),
                PATCH=(self._update_group, GROUP_WRITE),
                DELETE=(self._delete_group, GROUP_WRITE),
            ),
            r("groups/*/members", GET=(self._list_members, GROUP_READ)),
            r("groups/*/members/$ref", POST=(self._add_member, MEMBER_WRITE)),
            r("groups/*/members/*/$ref", DELETE=(self._remove_member, MEMBER_WRITE)),
            r("domains", GET=(self._list_domains, DOMAIN_READ)),
            r("domains/*", GET=(self._get_domain, DOMAIN_READ), PATCH=(self._update_domain, DOMAIN_WRITE)),
            r(
                "domains/*/federationConfiguration",
                GET=(self._list_federation, FED_READ),
                POST=(self._create_federation, FED_WRITE),
            ),
            r(
                "domains/*/federationConfiguration/*",
                GET=(self._get_federation, FED_READ),
                PATCH=(self._update_federation, FED_WRITE),
                DELETE=(self._delete_federation, FED_WRITE),
            ),
            r("organization", GET=(self._list_organization, ORG_READ)),
            r("organization/*", GET=(self._get_organization, ORG_READ)),
        ]

    @staticmethod
    def _segments(path: str) -> list[str]:
        segments = [s for s in path.strip("/").split("/") if s]
        aliases = {
            "delta()": "delta",
            "microsoft.graph.delta": "delta",
            "microsoft.graph.delta()": "delta",
            "microsoft.graph.revokesigninsessions": "revokeSignInSessions",
        }
        return [aliases.get(s.lower(), s) for s in segments]

    @staticmethod
    def _matches(pattern: tuple[str, ...], segments: list[str]) -> bool:
        return len(pattern) >= len(segments) and all(
            p == "*" or p.lower() == s.lower() for p, s in zip(pattern, segments, strict=False)
        )

    def _dispatch(self, req: GraphRequest) -> tuple[Handler, list[str]]:
        segments = self._segments(req.path)
        candidates = [r for r in self._routes if len(r.pattern) == len(segments)]
        literal_first = sorted(candidates, key=lambda r: r.pattern.count("*"))
        route = next((r for r in literal_first if self._matches(r.pattern, segments)), None)
        if route is None:
            for depth in range(1, len(segments) + 1):
                if not any(self._matches(r.pattern, segments[:depth]) for r in self._routes):
                    # Graph: 400 BadRequest "Resource not found for the segment 'x'."
                    raise GraphFailure(
                        400, "BadRequest", f"Resource not found for the segment '{segments[depth - 1]}'."
                    )
            raise GraphFailure(400, "BadRequest", f"Resource not found for the segment '{segments[-1]}'.")
        if req.method not in route.methods:
            raise GraphFailure(405, "Request_BadRequest", METHOD_NOT_ALLOWED)
        handler, permissions = route.methods[req.method]
        self._require(req, permissions)
        args = [s for p, s in zip(route.pattern, segments, strict=True) if p == "*"]
        return handler, args

    @staticmethod
    def _require(req: GraphRequest, permissions: frozenset[str]) -> None:
        granted = req.permissions
        if req.delegated and DELEGATED_ALL in granted:
            return
        if not granted & permissions:
            raise GraphFailure(403, "Authorization_RequestDenied", INSUFFICIENT)

    # ----------------------------------------------------------------------------------------------------
    # Shared query helpers: $select, $filter, paging
    # ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _query(req: GraphRequest) -> dict[str, str]:
        return {k.lower(): v for k, v in req.query.items()}

    def _select_for(self, kind: str, raw: str | None) -> list[str] | None:
        if kind == "users":
            return parse_select(raw, USER_PROPS, "microsoft.graph.user")
        return parse_select(raw, GROUP_PROPS, "microsoft.graph.group")

    @staticmethod
    def _advanced(req: GraphRequest, query: dict[str, str]) -> bool:
        # aad-advanced-queries: advanced query parameters = ConsistencyLevel: eventual + $count=true.
        eventual = req.headers.get("consistencylevel", "").lower() == "eventual"
        return eventual and query.get("$count", "").lower() == "true"

    def _collection(
        self,
        req: GraphRequest,
        kind: str,
        items: Callable[[str], Iterator[tuple[str, Data]]],
        render: Callable[[Data, list[str] | None], Data],
        schema: FilterSchema | None,
    ) -> GraphResponse:
        """One page of a directory collection: $filter, $select, $top, $skiptoken, $count. ``items(after)``:
        the collection in id order after an id ("" from the start). A page reads only as far as it shows (and
        one more to know there is a next page), as a 100,000-account tenant must be listable page by page;
        only ``$count`` walks the whole collection."""
        query = self._query(req)
        advanced = self._advanced(req, query)
        if "$orderby" in query or "$search" in query or "$skip" in query:
            option = next(o for o in ("$orderby", "$search", "$skip") if o in query)
            raise QueryError(
                "Request_UnsupportedQuery", f"The query option '{option}' is not supported by the simulator."
            )
        select = self._select_for(kind if kind in ("users", "groups") else "users", query.get("$select"))
        top = parse_top(query.get("$top"))
        predicate = (
            compile_filter(query["$filter"], schema, advanced=advanced)
            if ("$filter" in query and schema)
            else None
        )
        after = self._skiptoken(query)
        body: Data = {"@odata.context": self._context(req, kind, select)}
        if advanced:
            body["@odata.count"] = sum(1 for _, d in items("") if predicate is None or predicate(d))
        shown = itertools.islice(
            ((i, d) for i, d in items(after) if predicate is None or predicate(d)), top + 1
        )
        page = list(shown)
        more = len(page) > top
        page = page[:top]
        body["value"] = [render(d, select) for _, d in page]
        if more:
            params = {k: v for k, v in req.query.items() if k.lower() != "$skiptoken"}
            params["$skiptoken"] = encode_token({"after": page[-1][0]})
            body["@odata.nextLink"] = f"{req.base_url}{req.path}?{urlencode(params)}"
        return GraphResponse(200, body, {})

    def _visible_after(self, kind: str) -> Callable[[str], Iterator[tuple[str, Data]]]:
        return lambda after: self.store.visible_all(kind, after or None)

    @staticmethod
    def _skiptoken(query: dict[str, str]) -> str:
        if "$skiptoken" not in query:
            return ""
        state = decode_token(query["$skiptoken"])
        if state is None or not isinstance(state.get("after"), str):
            raise QueryError(
                "Request_BadRequest",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        return str(state["after"])

    @staticmethod
    def _context(req: GraphRequest, kind: str, select: list[str] | None) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return f"{req.base_url}/$metadata#{kind}{suffix}"

    # ----------------------------------------------------------------------------------------------------
    # Rendering
    # ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _render_user(data: Data, select: list[str] | None) -> Data:
        names = select if select is not None else USER_DEFAULT
        # user resource: passwordProfile is never returned (null on read).
        return {n: (None if n in ("passwordProfile", "manager") else data.get(n)) for n in names}

    @staticmethod
    def _render_group(data: Data, select: list[str] | None) -> Data:
        names = select if select is not None else GROUP_OUTPUT
        return {n: data.get(n) for n in names if n != "members"}

    def _render_for_delta(self, kind: str, data: Data, select: list[str] | None) -> Data:
        # user-delta: "The id property is always returned."
        rendered = self._render_user(data, select) if kind == "users" else self._render_group(data, select)
        return {**rendered, "id": data["id"]}

    def _render_object(self, data: Data, select: list[str] | None) -> Data:
        """A member of a group (directoryObject collection): user or group with its @odata.type."""
        if "userPrincipalName" in data:
            return {"@odata.type": "#microsoft.graph.user", **self._render_user(data, select)}
        group_select = [s for s in select if s in GROUP_OUTPUT] if select is not None else None
        return {"@odata.type": "#microsoft.graph.group", **self._render_group(data, group_select)}

    def _entity(
        self, req: GraphRequest, kind: str, body: Data, select: list[str] | None = None
    ) -> GraphResponse:
        # user-get with $select: "@odata.context": ".../$metadata#users(displayName,givenName,postalCode)/$entity"
        context = self._context(req, kind, select)
        return GraphResponse(200, {"@odata.context": f"{context}/$entity", **body}, {})

    # ----------------------------------------------------------------------------------------------------
    # Users
    # ----------------------------------------------------------------------------------------------------
    def _visible_user(self, key: str) -> Data:
        """A user on the replicas by object id or userPrincipalName (case-insensitive); 404 otherwise."""
        folded = key.lower()
        data = self.store.visible("users", folded)
        if data is None:
            for obj_id in self._upn_seen.get(folded, ()):
                candidate = self.store.visible("users", obj_id)
                if candidate is not None and candidate["userPrincipalName"].lower() == folded:
                    return candidate
            raise not_found(key)
        return data

    def _list_users(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # user-list: https://learn.microsoft.com/en-us/graph/api/user-list
        return self._collection(req, "users", self._visible_after("users"), self._render_user, USER_FILTER)

    def _get_user(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # user-get: https://learn.microsoft.com/en-us/graph/api/user-get
        user = self._visible_user(args[0])
        select = self._select_for("users", self._query(req).get("$select"))
        return self._entity(req, "users", self._render_user(user, select), select)

    def _create_user(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # user-post-users: https://learn.microsoft.com/en-us/graph/api/user-post-users
        body = self._body(req)
        self._check_keys(body, USER_WRITABLE, USER_READONLY)
        for prop in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName"):
            if body.get(prop) in (None, ""):
                raise required(prop, "User")
        federated = self._check_upn(body["userPrincipalName"])
        if not federated and body.get("passwordProfile") is None:
            raise required("passwordProfile", "User")
        if federated and not body.get("onPremisesImmutableId"):
            # user resource: onPremisesImmutableId "must be specified when creating a new user account if you're
            # using a federated domain for the user's userPrincipalName (UPN) property."
            raise required("onPremisesImmutableId", "User")
        self._check_values(body, None)
        user_id = str(uuid.uuid4())
        record = {
            "id": user_id,
            "createdDateTime": iso(self.clock()),
            "businessPhones": [],
            "otherMails": [],
            "proxyAddresses": [],
            "userType": "Member",
            "onPremisesSyncEnabled": None,
            **body,
        }
        record = self._store_user(self._with_mail(record, None), immediate=False)
        # Graph answers 201 with the user's default properties.
        response = self._entity(req, "users", self._render_user(record, None))
        response.status = 201
        return response

    def _update_user(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # user-update: https://learn.microsoft.com/en-us/graph/api/user-update (204 No Content)
        body = self._body(req)
        self._check_keys(body, USER_WRITABLE, USER_READONLY)
        self._check_property_permissions(req, body)
        primary = self._primary_of_visible("users", args[0])
        self._check_synced(primary, body)
        if "userPrincipalName" in body:
            self._check_upn(body["userPrincipalName"])
        self._check_values(body, primary["id"])
        self._store_user(self._with_mail({**primary, **body}, primary), immediate=False)
        return GraphResponse(204, None, {})

    def _check_property_permissions(self, req: GraphRequest, body: Data) -> None:
        """user-update: accountEnabled needs at least User.EnableDisableAccount.All; passwordProfile needs
        User-PasswordProfile.ReadWrite.All; every other property User.ReadWrite.All."""
        for prop in body:
            allowed = (
                USER_ENABLE
                if prop == "accountEnabled"
                else (USER_PASSWORD if prop == "passwordProfile" else USER_WRITE)
            )
            self._require(req, allowed)

    def _check_synced(self, user: Data, changes: Iterable[str]) -> None:
        synced = self.on_premises_sync_enabled is True and user.get("onPremisesSyncEnabled") is True
        if synced and any(prop not in SYNCED_CLOUD_EDITABLE for prop in changes):
            # user resource / user-update: users mastered on-premises refuse cloud edits of synced properties.
            raise bad_request(SYNCED_OBJECT)

    def _delete_user(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # user-delete: https://learn.microsoft.com/en-us/graph/api/user-delete (204; soft delete, restorable)
        primary = self._primary_of_visible("users", args[0])
        self._check_synced(primary, ["id"])
        self._unindex_user(primary)
        for group_id in sorted(self._groups_of.pop(primary["id"], set())):
            self._set_membership(group_id, [primary["id"]], added=False)
        self.store.write("users", primary["id"], None)
        return GraphResponse(204, None, {})

    def _revoke_sessions(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # user-revokesigninsessions: https://learn.microsoft.com/en-us/graph/api/user-revokesigninsessions
        user = self._primary_of_visible("users", args[0])
        self.store.write("users", user["id"], {**user, "signInSessionsValidFromDateTime": iso(self.clock())})
        return GraphResponse(
            200, {"@odata.context": f"{req.base_url}/$metadata#Edm.Boolean", "value": True}, {}
        )

    def _primary_of_visible(self, kind: str, key: str) -> Data:
        """The primary copy of an object the replicas already show: writes on a not-yet-replicated object are 404,
        as Graph answers right after a create."""
        visible = self._visible_user(key) if kind == "users" else self._visible_group(key)
        primary = self.store.primary(kind, visible["id"])
        if primary is None:
            raise not_found(key)
        return primary

    # -- manager (user-list-manager, user-post-manager, user-delete-manager) --------------------------------
    def _get_manager(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # https://learn.microsoft.com/en-us/graph/api/user-list-manager
        user = self._visible_user(args[0])
        manager = self.store.visible("users", user.get("_manager") or "")
        if manager is None:
            raise not_found("manager")
        body = {"@odata.type": "#microsoft.graph.user", **self._render_user(manager, None)}
        return self._entity(req, "directoryObjects", body)

    def _set_manager(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # https://learn.microsoft.com/en-us/graph/api/user-post-manager (PUT .../manager/$ref → 204)
        user = self._primary_of_visible("users", args[0])
        manager = self._visible_user(ref_id(self._body(req).get("@odata.id")))
        if manager["id"] == user["id"]:
            raise invalid_value("manager", "User")
        self.store.write("users", user["id"], {**user, "_manager": manager["id"]})
        return GraphResponse(204, None, {})

    def _remove_manager(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # https://learn.microsoft.com/en-us/graph/api/user-delete-manager (204)
        user = self._primary_of_visible("users", args[0])
        if not user.get("_manager"):
            raise not_found("manager")
        self.store.write("users", user["id"], {k: v for k, v in user.items() if k != "_manager"})
        return GraphResponse(204, None, {})

    # -- user validation -----------------------------------------------------------------------------------
    @staticmethod
    def _body(req: GraphRequest) -> Data:
        if not isinstance(req.body, dict):
            raise GraphFailure(400, "BadRequest", "Empty Payload. JSON content expected.")
        return {k: v for k, v in req.body.items() if k != "@odata.type"}

    @staticmethod
    def _check_keys(body: Data, writable: frozenset[str], readonly: frozenset[str]) -> None:
        for key in body:
            if key in readonly:
                raise bad_request(f"Property '{key}' is read-only and cannot be set.")
            if key not in writable:
                # Graph: 400 Request_BadRequest "Invalid property 'responseHeaders'." (pnp/PnP-Sites-Core#1807)
                raise bad_request(f"Invalid property '{key}'.")

    def _check_upn(self, upn: Any) -> bool:
        """A valid UPN in a verified domain of the tenant; True when that domain is federated."""
        # https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy#username-policies
        local, _, domain_name = upn.partition("@") if isinstance(upn, str) else ("", "", "")
        if (
            not isinstance(upn, str)
            or upn.count("@") != 1
            or not UPN_LOCAL.fullmatch(local)
            or local.endswith(".")
            or not domain_name
            or len(domain_name) > 48
            or len(upn) > 113
        ):
            raise bad_request("Property userPrincipalName is invalid.")
        domain = self.domains.get(domain_name.lower())
        if domain is None or not domain["isVerified"]:
            raise bad_request(UNVERIFIED_DOMAIN)
        return bool(domain["authenticationType"] == "Federated")

    def _check_values(self, body: Data, self_id: str | None) -> None:
        for prop, value in body.items():
            self._check_type(prop, value)
        nickname = body.get("mailNickname")
        if nickname is not None and (
            not nickname or any(c in MAILNICKNAME_FORBIDDEN or ord(c) > 127 for c in nickname)
        ):
            raise invalid_value("mailNickname", "User")
        immutable = body.get("onPremisesImmutableId")
        if immutable is not None and ("$" in immutable or "_" in immutable):
            # user resource: onPremisesImmutableId — "The $ and _ characters can't be used".
            raise invalid_value("onPremisesImmutableId", "User")
        if "passwordProfile" in body:
            self._check_password(body["passwordProfile"])
        self._check_unique(body, self_id)

    @staticmethod
    def _check_type(prop: str, value: Any) -> None:
        if value is None:
            ok = prop not in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName")
        elif prop in USER_BOOLS:
            ok = isinstance(value, bool)
        elif prop in USER_LISTS:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif prop == "passwordProfile":
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, str) and len(value) <= USER_MAX_LENGTHS.get(prop, len(value))
        if not ok:
            raise invalid_value(prop, "User")

    @staticmethod
    def _check_password(profile: Data) -> None:
        unknown = set(profile) - {
            "password",
            "forceChangePasswordNextSignIn",
            "forceChangePasswordNextSignInWithMfa",
        }
        if unknown:
            raise bad_request(f"Invalid property '{sorted(unknown)[0]}'.")
        if "password" not in profile:
            raise required("password", "PasswordProfile")
        if not password_ok(profile["password"]):
            # user-post-users / Entra password policy; message as Graph answers it.
            raise bad_request(PASSWORD_COMPLEXITY)

    def _check_unique(self, body: Data, self_id: str | None) -> None:
        """Uniqueness on the primary copy: UPN, mailNickname, and the addresses in proxyAddresses."""

        def taken(index: dict[str, str], value: Any) -> bool:
            return isinstance(value, str) and index.get(value.lower(), self_id) != self_id

        if taken(self._upn_index, body.get("userPrincipalName")):
            raise conflict("userPrincipalName")
        if taken(self._proxy_index, body.get("userPrincipalName")) or taken(
            self._proxy_index, body.get("mail")
        ):
            raise conflict("proxyAddresses")
        if taken(self._nick_index, body.get("mailNickname")):
            raise conflict("mailNickname")

    @staticmethod
    def _with_mail(record: Data, previous: Data | None) -> Data:
        """Setting mail makes it the primary SMTP proxy address; the old primary stays as a secondary one."""
        mail = record.get("mail")
        old = previous.get("mail") if previous else None
        if not mail or (old and old.lower() == mail.lower()):
            return record
        addresses = [a for a in record.get("proxyAddresses", []) if a.lower() != f"smtp:{mail.lower()}"]
        addresses = [f"smtp:{a[5:]}" if a.startswith("SMTP:") else a for a in addresses]
        return {**record, "proxyAddresses": [f"SMTP:{mail}", *addresses]}

    # -- user storage --------------------------------------------------------------------------------------
    def _store_user(self, record: Data, *, immediate: bool) -> Data:
        previous = self.store.primary("users", record["id"])
        if previous is not None:
            self._unindex_user(previous)
        self._upn_index[record["userPrincipalName"].lower()] = record["id"]
        self._nick_index[record["mailNickname"].lower()] = record["id"]
        for address in record.get("proxyAddresses", []):
            if address.lower().startswith("smtp:"):
                self._proxy_index[address[5:].lower()] = record["id"]
        self._upn_seen.setdefault(record["userPrincipalName"].lower(), set()).add(record["id"])
        self.store.write("users", record["id"], record, immediate=immediate)
        return record

    def _unindex_user(self, record: Data) -> None:
        self._upn_index.pop(record["userPrincipalName"].lower(), None)
        self._nick_index.pop(record["mailNickname"].lower(), None)
        for address in record.get("proxyAddresses", []):
            if address.lower().startswith("smtp:"):
                self._proxy_index.pop(address[5:].lower(), None)

    def _seed_record(self, i: int, domain: str, synced: bool | None) -> Data:
        given = GIVEN_NAMES[i % len(GIVEN_NAMES)]
        surname = SURNAMES[(i * 7) % len(SURNAMES)]
        nickname = f"user{i:04d}"
        mail = f"{nickname}@{domain}"
        is_synced = self.on_premises_sync_enabled is True if synced is None else synced
        user_id = str(uuid.uuid5(SEED_NAMESPACE, f"{self.tenant_id}/{nickname}"))
        return {
            "id": user_id,
            "createdDateTime": iso(self.created),
            "accountEnabled": True,
            "givenName": given,
            "surname": surname,
            "displayName": f"{given} {surname}",
            "mailNickname": nickname,
            "userPrincipalName": mail,
            "mail": mail,
            "proxyAddresses": [f"SMTP:{mail}"],
            "employeeId": f"E{i:04d}",
            "jobTitle": JOBS[i % len(JOBS)],
            "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            "businessPhones": [],
            "otherMails": [],
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": "en-US",
            "usageLocation": "US",
            "userType": "Member",
            "onPremisesSyncEnabled": True if is_synced else None,
            "onPremisesImmutableId": base64.b64encode(uuid.UUID(user_id).bytes).decode()
            if is_synced
            else None,
            "passwordProfile": {"password": f"Seed-{user_id[:8]}!", "forceChangePasswordNextSignIn": False},
        }

    # ----------------------------------------------------------------------------------------------------
    # Groups
    # ----------------------------------------------------------------------------------------------------
    def _visible_group(self, key: str) -> Data:
        data = self.store.visible("groups", key.lower())
        if data is None:
            raise not_found(key)
        return data

    def _visible_object(self, obj_id: str) -> Data:
        kind = self.store.kind_of(obj_id)
        data = self.store.visible(kind, obj_id) if kind else None
        if data is None:
            raise not_found(obj_id)
        return data

    def _list_groups(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # group-list: https://learn.microsoft.com/en-us/graph/api/group-list
        return self._collection(
            req, "groups", self._visible_after("groups"), self._render_group, GROUP_FILTER
        )

    def _get_group(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-get: https://learn.microsoft.com/en-us/graph/api/group-get
        select = self._select_for("groups", self._query(req).get("$select"))
        return self._entity(req, "groups", self._render_group(self._visible_group(args[0]), select), select)

    def _create_group(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # group-post-groups: https://learn.microsoft.com/en-us/graph/api/group-post-groups
        body = self._body(req)
        binds = self._binds(body, "members@odata.bind")
        self._binds(body, "owners@odata.bind")
        self._check_keys(body, GROUP_WRITABLE | GROUP_CREATE_ONLY, GROUP_READONLY)
        for prop in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(prop) is None:
                raise required(prop, "Group")
        self._check_group_values(body)
        unified = "Unified" in body.get("groupTypes", [])
        if body["mailEnabled"] and not unified:
            raise bad_request(MAIL_ENABLED_GROUP)
        group_id = str(uuid.uuid4())
        mail = f"{body['mailNickname']}@{self.default_domain()}" if unified else None
        record: Data = {
            "id": group_id,
            "createdDateTime": iso(self.clock()),
            "description": None,
            "groupTypes": [],
            "mail": mail,
            "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
            "visibility": "Public" if unified else None,
            **body,
            "_members": [],
        }
        self.store.write("groups", group_id, record)
        if binds:
            self._set_membership(group_id, binds, added=True)
        response = self._entity(req, "groups", self._render_group(record, None))
        response.status = 201
        return response

    def _binds(self, body: Data, key: str) -> list[str]:
        """Ids in ``members@odata.bind`` (at most 20 a request), each a visible directory object."""
        refs = body.pop(key, None)
        if refs is None:
            return []
        if not isinstance(refs, list):
            raise invalid_value(key, "Group")
        if len(refs) > MAX_BIND:
            # group-update: "up to 20 members in a single request"
            raise bad_request(
                f"The request contains {len(refs)} references in '{key}'; at most {MAX_BIND} "
                f"objects can be added in a single request."
            )
        ids = [ref_id(ref) for ref in refs]
        for obj_id in ids:
            self._visible_object(obj_id)
        return list(dict.fromkeys(ids))

    @staticmethod
    def _check_group_values(body: Data) -> None:
        for prop, kind in (
            ("mailEnabled", bool),
            ("securityEnabled", bool),
            ("displayName", str),
            ("description", str),
            ("visibility", str),
        ):
            if body.get(prop) is not None and not isinstance(body[prop], kind):
                raise invalid_value(prop, "Group")
        types = body.get("groupTypes", [])
        if not isinstance(types, list) or not set(types) <= {"Unified"}:
            raise invalid_value("groupTypes", "Group")
        nickname = body.get("mailNickname")
        if nickname is not None and (
            not isinstance(nickname, str)
            or not nickname
            or any(c in MAILNICKNAME_FORBIDDEN or ord(c) > 127 for c in nickname)
        ):
            raise invalid_value("mailNickname", "Group")
        # group resource: displayName "Maximum length is 256 characters", mailNickname "Maximum length is 64".
        for prop, limit in (("displayName", 256), ("mailNickname", 64)):
            if isinstance(body.get(prop), str) and len(body[prop]) > limit:
                raise invalid_value(prop, "Group")

    def _update_group(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-update: https://learn.microsoft.com/en-us/graph/api/group-update (204)
        body = self._body(req)
        binds = self._binds(body, "members@odata.bind")
        self._check_keys(body, GROUP_WRITABLE, GROUP_READONLY | GROUP_CREATE_ONLY)
        self._check_group_values(body)
        group = self._primary_of_visible("groups", args[0])
        members = set(group["_members"])
        if any(m in members for m in binds):
            raise bad_request(ALREADY_MEMBER)
        if body:
            self.store.write("groups", group["id"], {**group, **body})
        if binds:
            self._set_membership(group["id"], binds, added=True)
        return GraphResponse(204, None, {})

    def _delete_group(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-delete: https://learn.microsoft.com/en-us/graph/api/group-delete (204)
        group = self._primary_of_visible("groups", args[0])
        for member_id in group["_members"]:
            self._groups_of.get(member_id, set()).discard(group["id"])
        for parent in sorted(self._groups_of.pop(group["id"], set())):
            self._set_membership(parent, [group["id"]], added=False)
        self.store.write("groups", group["id"], None)
        return GraphResponse(204, None, {})

    def _list_members(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-list-members: https://learn.microsoft.com/en-us/graph/api/group-list-members
        group = self._visible_group(args[0])

        def members() -> Iterator[tuple[str, Data]]:
            for member_id in sorted(group["_members"]):
                kind = self.store.kind_of(member_id)
                data = self.store.visible(kind, member_id) if kind else None
                if data is not None:
                    yield member_id, data

        return self._collection(
            req,
            "directoryObjects",
            lambda after: ((i, d) for i, d in members() if i > after),
            self._render_object,
            None,
        )

    def _add_member(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-post-members: https://learn.microsoft.com/en-us/graph/api/group-post-members (204; an existing
        # member → 400 "One or more added object references already exist ...")
        member_id = ref_id(self._body(req).get("@odata.id"))
        group = self._primary_of_visible("groups", args[0])
        self._visible_object(member_id)
        if member_id in group["_members"]:
            raise bad_request(ALREADY_MEMBER)
        self._set_membership(group["id"], [member_id], added=True)
        return GraphResponse(204, None, {})

    def _remove_member(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # group-delete-members: https://learn.microsoft.com/en-us/graph/api/group-delete-members (204); a
        # non-member → 404 Request_ResourceNotFound naming the member (KelvinTegelaar/CIPP#2141).
        group = self._primary_of_visible("groups", args[0])
        member_id = args[1].lower()
        if member_id not in group["_members"]:
            raise not_found(args[1])
        self._set_membership(group["id"], [member_id], added=False)
        return GraphResponse(204, None, {})

    def _set_membership(self, group_id: str, member_ids: Iterable[str], *, added: bool) -> None:
        """Add or remove members in one write of the group (a PATCH binding 20 members copies its member
        list once, not 20 times)."""
        group = self.store.primary("groups", group_id)
        if group is None:
            return
        members = set(group["_members"])
        changed = list(dict.fromkeys(member_ids))
        for member_id in changed:
            if added:
                members.add(member_id)
                self._groups_of.setdefault(member_id, set()).add(group_id)
            else:
                members.discard(member_id)
                self._groups_of.get(member_id, set()).discard(group_id)
        self.store.write("groups", group_id, {**group, "_members": sorted(members)})
        for member_id in changed:
            self.store.member_change(group_id, member_id, added)

    # ----------------------------------------------------------------------------------------------------
    # Domains and federation
    # ----------------------------------------------------------------------------------------------------
    def _add_domains(self, domains: Iterable[dict[str, Any]]) -> None:
        for given in domains:
            self._add_domain(given)
        if not any(d["isInitial"] for d in self.domains.values()):
            prefix = re.sub(r"[^a-z0-9]", "", self.display_name.lower())[:27] or self.tenant_id[:8]
            self._add_domain({"id": f"{prefix}.onmicrosoft.com", "isInitial": True, "isVerified": True})
        if not any(d["isDefault"] for d in self.domains.values()):
            next(d for d in self.domains.values() if d["isInitial"])["isDefault"] = True

    def _add_domain(self, given: dict[str, Any]) -> None:
        domain_id = str(given["id"]).lower()
        verified = bool(given.get("isVerified", False))
        self.domains[domain_id] = {
            "id": domain_id,
            "authenticationType": "Managed",
            "availabilityStatus": None,
            "isAdminManaged": True,
            "isDefault": False,
            "isInitial": domain_id.endswith(".onmicrosoft.com"),
            "isRoot": True,
            "isVerified": verified,
            "passwordNotificationWindowInDays": 14,
            "passwordValidityPeriodInDays": NEVER_EXPIRES,
            "supportedServices": ["Email", "OfficeCommunicationsOnline"] if verified else [],
            "state": None,
            **{k: v for k, v in given.items() if k != "id"},
        }

    def _domain(self, key: str) -> Data:
        domain = self.domains.get(key.lower())
        if domain is None:
            raise not_found(key)
        return domain

    def _list_domains(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # domain-list: https://learn.microsoft.com/en-us/graph/api/domain-list
        value = [{k: d[k] for k in DOMAIN_OUTPUT} for d in self.domains.values()]
        return GraphResponse(200, {"@odata.context": f"{req.base_url}/$metadata#domains", "value": value}, {})

    def _get_domain(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # domain-get: https://learn.microsoft.com/en-us/graph/api/domain-get
        domain = self._domain(args[0])
        return self._entity(req, "domains", {k: domain[k] for k in DOMAIN_OUTPUT})

    def _update_domain(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # domain-update: https://learn.microsoft.com/en-us/graph/api/domain-update (204). Ranges per Entra's
        # password policy: validity 14-730 days or 2147483647 (never), notification 1-30 days.
        # https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy
        domain = self._domain(args[0])
        body = self._body(req)
        self._check_keys(body, DOMAIN_WRITABLE, frozenset(DOMAIN_OUTPUT) - DOMAIN_WRITABLE)
        validity = body.get("passwordValidityPeriodInDays", NEVER_EXPIRES)
        if not isinstance(validity, int) or not (14 <= validity <= 730 or validity == NEVER_EXPIRES):
            raise invalid_value("passwordValidityPeriodInDays", "Domain")
        window = body.get("passwordNotificationWindowInDays", 14)
        if not isinstance(window, int) or not 1 <= window <= 30:
            raise invalid_value("passwordNotificationWindowInDays", "Domain")
        if "isDefault" in body and (body["isDefault"] is not True or not domain["isVerified"]):
            raise invalid_value("isDefault", "Domain")
        if body.get("isDefault"):
            for other in self.domains.values():
                other["isDefault"] = False
        domain.update(body)
        return GraphResponse(204, None, {})

    def _fed_context(self, req: GraphRequest, domain: Data) -> str:
        return f"{req.base_url}/$metadata#domains('{domain['id']}')/federationConfiguration"

    def _list_federation(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # domain-list-federationconfiguration: collection of internalDomainFederation
        domain = self._domain(args[0])
        fed = self.federation.get(domain["id"])
        value = [fed] if fed else []
        return GraphResponse(200, {"@odata.context": self._fed_context(req, domain), "value": value}, {})

    def _fed_of(self, args: list[str]) -> tuple[Data, Data]:
        domain = self._domain(args[0])
        fed = self.federation.get(domain["id"])
        if fed is None or fed["id"] != args[1].lower():
            raise not_found(args[1])
        return domain, fed

    def _get_federation(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # internaldomainfederation-get
        domain, fed = self._fed_of(args)
        return GraphResponse(200, {"@odata.context": self._fed_context(req, domain) + "/$entity", **fed}, {})

    def _create_federation(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # domain-post-federationconfiguration: https://learn.microsoft.com/en-us/graph/api/
        # domain-post-federationconfiguration (201; the domain becomes Federated)
        domain = self._domain(args[0])
        body = self._body(req)
        self._check_keys(body, FED_FIELDS, frozenset({"id"}))
        self._check_federable(domain)
        for prop in FED_REQUIRED:
            if not body.get(prop):
                raise required(prop, "InternalDomainFederation")
        self._check_fed_values(body)
        fed: Data = {
            "@odata.type": "#microsoft.graph.internalDomainFederation",
            "id": str(uuid.uuid4()),
            **dict.fromkeys(sorted(FED_FIELDS)),
            "isSignedAuthenticationRequestRequired": False,
            "federatedIdpMfaBehavior": "acceptIfMfaDoneByFederatedIdp",
            "preferredAuthenticationProtocol": "wsFed",
            **body,
            "signingCertificateUpdateStatus": {
                "certificateUpdateResult": "Success",
                "lastRunDateTime": iso(self.clock()),
            },
        }
        self.federation[domain["id"]] = fed
        domain["authenticationType"] = "Federated"
        body_out = {"@odata.context": self._fed_context(req, domain) + "/$entity", **fed}
        return GraphResponse(201, body_out, {})

    def _check_federable(self, domain: Data) -> None:
        """Entra refuses to federate an unverified, the default or the initial domain, or one already federated."""
        if not domain["isVerified"]:
            raise bad_request(
                f"Domain '{domain['id']}' is not verified. Only verified domains can be federated."
            )
        if domain["isInitial"]:
            raise bad_request(f"The initial domain '{domain['id']}' cannot be federated.")
        if domain["isDefault"]:
            raise bad_request(
                f"The default domain '{domain['id']}' cannot be federated. Set another default domain first."
            )
        if domain["id"] in self.federation:
            raise bad_request(f"Domain '{domain['id']}' is already federated.")

    @staticmethod
    def _check_fed_values(body: Data) -> None:
        for prop, allowed in FED_ENUMS.items():
            if prop in body and body[prop] not in allowed:
                raise invalid_value(prop, "InternalDomainFederation")
        for prop in ("signingCertificate", "nextSigningCertificate"):
            if body.get(prop) is not None and not _parses_as_certificate(body[prop]):
                # The docs require a base64 X.509 certificate "compatible with the X509Certificate2 class"; a bad
                # one has left domains unmanageable (microsoft-graph-docs issue 20203), so refuse it up front.
                raise invalid_value(prop, "InternalDomainFederation")
        if "isSignedAuthenticationRequestRequired" in body and not isinstance(
            body["isSignedAuthenticationRequestRequired"], bool
        ):
            raise invalid_value("isSignedAuthenticationRequestRequired", "InternalDomainFederation")

    def _update_federation(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # internaldomainfederation-update: 200 OK with the updated object.
        domain, fed = self._fed_of(args)
        body = self._body(req)
        self._check_keys(body, FED_FIELDS, frozenset({"id"}))
        for prop in FED_REQUIRED:
            if prop in body and not body[prop]:
                raise required(prop, "InternalDomainFederation")
        self._check_fed_values(body)
        fed.update(body)
        return GraphResponse(200, {"@odata.context": self._fed_context(req, domain) + "/$entity", **fed}, {})

    def _delete_federation(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # internaldomainfederation-delete: 204 No Content; the domain is managed again.
        domain, _ = self._fed_of(args)
        del self.federation[domain["id"]]
        domain["authenticationType"] = "Managed"
        return GraphResponse(204, None, {})

    # ----------------------------------------------------------------------------------------------------
    # Organization (https://learn.microsoft.com/en-us/graph/api/resources/organization)
    # ----------------------------------------------------------------------------------------------------
    def _organization(self) -> Data:
        verified = [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": d["isDefault"],
                "isInitial": d["isInitial"],
                "name": d["id"],
                "type": d["authenticationType"],
            }
            for d in self.domains.values()
            if d["isVerified"]
        ]
        return {
            "id": self.tenant_id,
            "displayName": self.display_name,
            "createdDateTime": iso(self.created),
            "tenantType": "AAD",
            "countryLetterCode": "US",
            # organization (https://learn.microsoft.com/en-us/graph/api/resources/organization): onPremisesSyncEnabled
            # "true if this object is synced from an on-premises directory; false if this object was originally
            # synced from an on-premises directory but is no longer synced. Nullable. null if this object has never
            # been synced from an on-premises directory (default)" - the stored value, as it is.
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "verifiedDomains": verified,
        }

    def _list_organization(self, req: GraphRequest, _: list[str]) -> GraphResponse:
        # organization-list: https://learn.microsoft.com/en-us/graph/api/organization-list
        body = {"@odata.context": f"{req.base_url}/$metadata#organization", "value": [self._organization()]}
        return GraphResponse(200, body, {})

    def _get_organization(self, req: GraphRequest, args: list[str]) -> GraphResponse:
        # organization-get: https://learn.microsoft.com/en-us/graph/api/organization-get
        if args[0].lower() != self.tenant_id.lower():
            raise not_found(args[0])
        return self._entity(req, "organization", self._organization())


def _parses_as_certificate(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False
    return True
