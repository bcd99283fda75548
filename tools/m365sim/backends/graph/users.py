"""The users of a tenant's directory.

- user resource: https://learn.microsoft.com/en-us/graph/api/resources/user (properties, maximum lengths,
  ``onPremisesImmutableId`` required on a federated domain and without ``$`` or ``_``, ``passwordProfile`` "cannot be
  used for federated users", on-premises mastered users);
- user-post-users (201; required properties; UPN in a verified domain; duplicates 400 ObjectConflict),
  user-update (204; per-property permissions), user-delete (204), user-revokesigninsessions (200 ``value: true``),
  user-list-manager / user-post-manager / user-delete-manager;
- username and password policy: https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy
  and concept-password-ban-bad-combined-policy;
- sensitive attributes of admins: resources/users ("Who can update sensitive attributes?"), enforced by
  ``RoleManagementBackend.check_sensitive_write``.

Writes go to the primary copy; reads (and writes, which first find the object) see the lagging replicas.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tools.m365sim.backends.clock import Clock, iso
from tools.m365sim.backends.graph.access import USER_ENABLE, USER_PASSWORD, USER_WRITE, Caller, require
from tools.m365sim.backends.graph.domains import DomainsBackend
from tools.m365sim.backends.graph.errors import (
    bad_request,
    conflict,
    invalid_property,
    invalid_value,
    not_found,
    read_only,
    required,
)
from tools.m365sim.backends.graph.odata import FilterSchema
from tools.m365sim.backends.graph.roles import RoleManagementBackend
from tools.m365sim.backends.graph.store import Data, VersionedStore

DEFAULT_PROPERTIES = (
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
WRITABLE = frozenset(
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
READONLY = frozenset(
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
PROPERTIES = {n.lower(): n for n in WRITABLE | READONLY | {"manager"}}
LISTS = frozenset({"businessPhones", "otherMails", "proxyAddresses"})
BOOLS = frozenset({"accountEnabled", "showInAddressList"})
MAX_LENGTHS = {
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
MAILNICKNAME_FORBIDDEN = set('@()\\[]";:<>, ')
FILTER = FilterSchema(
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
PASSWORD_COMPLEXITY = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)
SYNCED_OBJECT = (
    "Unable to update the specified properties for on-premises mastered Directory Sync objects or "
    "objects currently undergoing migration."
)
FEDERATED_PASSWORD = (
    "Property passwordProfile cannot be used for users of a federated domain: their password belongs to the "
    "federated identity provider."
)
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


def project(data: Data, select: list[str] | None) -> Data:
    """A user as Graph returns it: the default properties, or the ``$select``ed ones. ``passwordProfile`` is never
    returned (null on read, user resource), nor ``manager`` (a navigation property)."""
    names = select if select is not None else DEFAULT_PROPERTIES
    return {n: (None if n in ("passwordProfile", "manager") else data.get(n)) for n in names}


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
        r"/(?:directoryObjects|users|groups|servicePrincipals)(?:/|\(')([0-9a-fA-F-]{36})(?:'\))?$",
        value if isinstance(value, str) else "",
    )
    if not match:
        # group-post-members: the body must hold an @odata.id reference to a directoryObject.
        raise bad_request(f"Invalid object identifier '{value}'.")
    return match.group(1).lower()


def check_keys(body: Data) -> None:
    for key in body:
        if key in READONLY:
            raise read_only(key)
        if key not in WRITABLE:
            raise invalid_property(key)


def check_upn_syntax(upn: Any) -> str:
    """The domain part of a valid UPN (concept-sspr-policy, "Username policies")."""
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
    return domain_name


def check_values(body: Data) -> None:
    for prop, value in body.items():
        _check_type(prop, value)
    nickname = body.get("mailNickname")
    if nickname is not None and (
        not nickname or any(c in MAILNICKNAME_FORBIDDEN or ord(c) > 127 for c in nickname)
    ):
        raise invalid_value("mailNickname", "User")
    immutable = body.get("onPremisesImmutableId")
    if immutable is not None and ("$" in immutable or "_" in immutable):
        # user resource: onPremisesImmutableId - "The $ and _ characters can't be used".
        raise invalid_value("onPremisesImmutableId", "User")
    if "passwordProfile" in body:
        _check_password(body["passwordProfile"])


def _check_type(prop: str, value: Any) -> None:
    if value is None:
        ok = prop not in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName")
    elif prop in BOOLS:
        ok = isinstance(value, bool)
    elif prop in LISTS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif prop == "passwordProfile":
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, str) and len(value) <= MAX_LENGTHS.get(prop, len(value))
    if not ok:
        raise invalid_value(prop, "User")


def _check_password(profile: Data) -> None:
    unknown = set(profile) - {
        "password",
        "forceChangePasswordNextSignIn",
        "forceChangePasswordNextSignInWithMfa",
    }
    if unknown:
        raise invalid_property(sorted(unknown)[0])
    if "password" not in profile:
        raise required("password")
    if not password_ok(profile["password"]):
        # user-post-users / Entra password policy; message as Graph answers it.
        raise bad_request(PASSWORD_COMPLEXITY)


def with_mail(record: Data, previous: Data | None) -> Data:
    """Setting mail makes it the primary SMTP proxy address; the old primary stays as a secondary one."""
    mail = record.get("mail")
    old = previous.get("mail") if previous else None
    if not mail or (old and old.lower() == mail.lower()):
        return record
    addresses = [a for a in record.get("proxyAddresses", []) if a.lower() != f"smtp:{mail.lower()}"]
    addresses = [f"smtp:{a[5:]}" if a.startswith("SMTP:") else a for a in addresses]
    return {**record, "proxyAddresses": [f"SMTP:{mail}", *addresses]}


def property_permissions(caller: Caller, body: Data) -> None:
    """user-update: accountEnabled needs at least User.EnableDisableAccount.All; passwordProfile needs
    User-PasswordProfile.ReadWrite.All; every other property User.ReadWrite.All."""
    for prop in body:
        allowed = (
            USER_ENABLE
            if prop == "accountEnabled"
            else (USER_PASSWORD if prop == "passwordProfile" else USER_WRITE)
        )
        require(caller, allowed)


class UsersBackend:
    """One tenant's users. Called from one asyncio thread: no locking."""

    def __init__(
        self,
        tenant_id: str,
        store: VersionedStore,
        domains: DomainsBackend,
        roles: RoleManagementBackend,
        clock: Clock,
        synced_tenant: Callable[[], bool],
        created: float,
    ) -> None:
        self.tenant_id = tenant_id
        self.created = created
        """The tenant's creation time: the seeded users' createdDateTime."""
        self.store = store
        self.domains = domains
        self.roles = roles
        self.clock = clock
        self.synced_tenant = synced_tenant
        """organization.onPremisesSyncEnabled is true: users marked synced are mastered on-premises."""
        self.on_delete: list[Callable[[str], None]] = []
        """Called with a deleted user's id (its memberships and roles go with it)."""
        self.seeded = 0
        self._upn_index: dict[str, str] = {}
        self._nick_index: dict[str, str] = {}
        self._proxy_index: dict[str, str] = {}
        self._upn_seen: dict[str, set[str]] = {}
        """Every UPN a user ever had → ids: finds users by UPN on lagging replicas in O(1)."""

    # -- reads ------------------------------------------------------------------------------------------------
    def count(self) -> int:
        return len(self._upn_index)

    def visible(self, key: str) -> Data:
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

    def primary_of_visible(self, key: str) -> Data:
        """The primary copy of a user the replicas already show: a write on a not-yet-replicated user is 404, as
        Graph answers right after a create."""
        primary = self.store.primary("users", self.visible(key)["id"])
        if primary is None:
            raise not_found(key)
        return primary

    def current(self, user_id: str) -> Data | None:
        """The primary copy, for the sign-in service (which reads the directory's source of truth)."""
        return self.store.primary("users", user_id.lower())

    def after(self, after: str) -> Iterator[tuple[str, Data]]:
        """Visible users in id order after ``after`` ("" from the start)."""
        return self.store.visible_all("users", after or None)

    # -- writes -----------------------------------------------------------------------------------------------
    def create(self, body: Data) -> Data:
        check_keys(body)
        for prop in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName"):
            if body.get(prop) in (None, ""):
                raise required(prop)
        federated = self._federated_upn(body["userPrincipalName"])
        if federated:
            if not body.get("onPremisesImmutableId"):
                # user resource: onPremisesImmutableId "must be specified when creating a new user account if
                # you're using a federated domain for the user's userPrincipalName (UPN) property."
                raise required("onPremisesImmutableId")
            if body.get("passwordProfile") is not None:
                raise bad_request(FEDERATED_PASSWORD)
        elif body.get("passwordProfile") is None:
            raise required("passwordProfile")
        check_values(body)
        self._check_unique(body, None)
        record = {
            "id": str(uuid.uuid4()),
            "createdDateTime": iso(self.clock()),
            "businessPhones": [],
            "otherMails": [],
            "proxyAddresses": [],
            "userType": "Member",
            "onPremisesSyncEnabled": None,
            **body,
        }
        return self._store(with_mail(record, None), immediate=False)

    def add_guest(self, upn: str, email: str, display_name: str, now: float) -> Data:
        """A B2B guest (invitation-post): its external UPN, its address as mail; the existing guest with that
        address when there is one."""
        for obj_id in self._upn_seen.get(upn.lower(), ()):
            existing = self.store.primary("users", obj_id)
            if existing is not None and existing.get("userType") == "Guest":
                return existing
        record = {
            "id": str(uuid.uuid4()),
            "createdDateTime": iso(now),
            "accountEnabled": True,
            "displayName": display_name,
            "userPrincipalName": upn,
            "mail": email,
            "mailNickname": re.sub(r"[^A-Za-z0-9]", "_", upn.split("#EXT#")[0])[:64],
            "businessPhones": [],
            "otherMails": [email],
            "proxyAddresses": [f"SMTP:{email}"],
            "userType": "Guest",
            "creationType": "Invitation",
            "externalUserState": "PendingAcceptance",
            "onPremisesSyncEnabled": None,
        }
        return self._store(record, immediate=True)

    def by_guest_address(self, email: str) -> Data | None:
        """The guest whose address is ``email`` (a guest signs in with its own address, not its #EXT# UPN)."""
        folded = email.lower()
        for _, data in self.after(""):
            if data.get("userType") == "Guest" and str(data.get("mail", "")).lower() == folded:
                return data
        return None

    def update(self, key: str, body: Data, caller: Caller) -> Data:
        check_keys(body)
        property_permissions(caller, body)
        primary = self.primary_of_visible(key)
        self.roles.check_sensitive_write(caller.principal_id, primary["id"], body)
        self._check_synced(primary, body)
        upn = body.get("userPrincipalName", primary["userPrincipalName"])
        federated = (
            self._federated_upn(upn) if "userPrincipalName" in body else self._federated_upn(upn, False)
        )
        if federated and "passwordProfile" in body:
            raise bad_request(FEDERATED_PASSWORD)
        if (
            federated
            and "userPrincipalName" in body
            and not (body.get("onPremisesImmutableId") or primary.get("onPremisesImmutableId"))
        ):
            raise required("onPremisesImmutableId")
        check_values(body)
        self._check_unique(body, primary["id"])
        return self._store(with_mail({**primary, **body}, primary), immediate=False)

    def delete(self, key: str, caller: Caller) -> None:
        primary = self.primary_of_visible(key)
        self.roles.check_sensitive_write(caller.principal_id, primary["id"], ["*"])
        self._check_synced(primary, ["id"])
        self._unindex(primary)
        for hook in self.on_delete:
            hook(primary["id"])
        self.store.write("users", primary["id"], None)

    def revoke_sessions(self, key: str) -> None:
        """user-revokesigninsessions: refresh tokens and session cookies issued before now are void."""
        user = self.primary_of_visible(key)
        now = self.clock()
        # The property shows seconds; the exact instant (kept aside) decides which refresh tokens predate it.
        revoked = {"signInSessionsValidFromDateTime": iso(now), "_sessionsValidFrom": now}
        self.store.write("users", user["id"], {**user, **revoked})

    # -- manager (user-list-manager, user-post-manager, user-delete-manager) ----------------------------------
    def manager(self, key: str) -> Data:
        user = self.visible(key)
        manager = self.store.visible("users", user.get("_manager") or "")
        if manager is None:
            raise not_found("manager")
        return manager

    def set_manager(self, key: str, reference: Any) -> None:
        user = self.primary_of_visible(key)
        manager = self.visible(ref_id(reference))
        if manager["id"] == user["id"]:
            raise invalid_value("manager", "User")
        self.store.write("users", user["id"], {**user, "_manager": manager["id"]})

    def remove_manager(self, key: str) -> None:
        user = self.primary_of_visible(key)
        if not user.get("_manager"):
            raise not_found("manager")
        self.store.write("users", user["id"], {k: v for k, v in user.items() if k != "_manager"})

    # -- seeding ------------------------------------------------------------------------------------------------
    def seed(self, n: int, *, synced: bool | None = None) -> list[Data]:
        """Deterministic users ``user0001…`` in the default domain, visible at once (no replication lag)."""
        created = []
        domain = self.domains.default_domain()
        for _ in range(n):
            self.seeded += 1
            created.append(self._store(self._seed_record(self.seeded, domain, synced), immediate=True))
        return created

    def _seed_record(self, i: int, domain: str, synced: bool | None) -> Data:
        given = GIVEN_NAMES[i % len(GIVEN_NAMES)]
        surname = SURNAMES[(i * 7) % len(SURNAMES)]
        nickname = f"user{i:04d}"
        mail = f"{nickname}@{domain}"
        is_synced = self.synced_tenant() if synced is None else synced
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

    # -- rules and indices --------------------------------------------------------------------------------------
    def _federated_upn(self, upn: Any, check: bool = True) -> bool:
        """True when the UPN's (verified) domain is federated; ``check`` validates the UPN first."""
        if not check:
            return self.domains.is_federated(str(upn).rpartition("@")[2])
        domain = self.domains.for_upn(check_upn_syntax(upn))
        return bool(domain["authenticationType"] == "Federated")

    def _check_synced(self, user: Data, changes: Iterable[str]) -> None:
        synced = self.synced_tenant() and user.get("onPremisesSyncEnabled") is True
        if synced and any(prop not in SYNCED_CLOUD_EDITABLE for prop in changes):
            # user resource / user-update: users mastered on-premises refuse cloud edits of synced properties.
            raise bad_request(SYNCED_OBJECT)

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

    def _store(self, record: Data, *, immediate: bool) -> Data:
        previous = self.store.primary("users", record["id"])
        if previous is not None:
            self._unindex(previous)
        self._index(record)
        self.store.write("users", record["id"], record, immediate=immediate)
        return record

    def _index(self, record: Data) -> None:
        self._upn_index[record["userPrincipalName"].lower()] = record["id"]
        self._nick_index[record["mailNickname"].lower()] = record["id"]
        for address in record.get("proxyAddresses", []):
            if address.lower().startswith("smtp:"):
                self._proxy_index[address[5:].lower()] = record["id"]
        self._upn_seen.setdefault(record["userPrincipalName"].lower(), set()).add(record["id"])

    def _unindex(self, record: Data) -> None:
        self._upn_index.pop(record["userPrincipalName"].lower(), None)
        self._nick_index.pop(record["mailNickname"].lower(), None)
        for address in record.get("proxyAddresses", []):
            if address.lower().startswith("smtp:"):
                self._proxy_index.pop(address[5:].lower(), None)

    def reindex(self, seeded: int) -> None:
        """Rebuild the indices from the store (after a restore)."""
        self.seeded = seeded
        for user_id in self.store.ids("users"):
            primary = self.store.primary("users", user_id)
            if primary is not None:
                self._index(primary)
            visible = self.store.visible("users", user_id)
            if visible is not None:
                self._upn_seen.setdefault(visible["userPrincipalName"].lower(), set()).add(user_id)
