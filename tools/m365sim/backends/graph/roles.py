"""Role management of a tenant's directory: role definitions, active assignments, PIM eligibility, the legacy
directoryRoles view of the same assignments, and the rule Graph enforces with them on sensitive user writes.

- roleDefinitions: https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roledefinitions (built-in
  roles; their ids are the template ids of https://learn.microsoft.com/en-us/entra/identity/role-based-access-control/permissions-reference)
- roleAssignments: rbacapplication-list-roleassignments ($filter on principalId / roleDefinitionId,
  $expand=principal), rbacapplication-post-roleassignments (201; roleDefinitionId, principalId, directoryScopeId
  ``/`` for the tenant), unifiedroleassignment-delete (204). An assignment's id is, as Graph's samples show, the
  base64url of the role definition's and the principal's GUIDs (little-endian bytes) and ``-1``.
- roleEligibilityScheduleInstances: rbacapplication-list-roleeligibilityscheduleinstances (PIM: eligible, not
  active, between startDateTime and endDateTime).
- directoryRoles: directoryrole-list, directoryrole-get (by id or ``roleTemplateId=``), directoryrole-list-members,
  directoryrole-post-members, directoryrole-delete-member: an activated role's members are the principals with an
  active tenant-wide assignment of it; Global Administrator is always activated.
- Sensitive attributes (resources/users, "Who can update sensitive attributes?" and "Who can reset passwords?"):
  accountEnabled, businessPhones, mobilePhone, onPremisesImmutableId, otherMails, passwordProfile and
  userPrincipalName of a user holding an admin role - and deleting them - are allowed only to callers holding a role
  the page's table lists for the target's roles; anyone else gets 403 Authorization_RequestDenied for that object.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tools.m365sim.backends.clock import iso, parse_iso
from tools.m365sim.backends.graph.errors import bad_request, forbidden, invalid_value, not_found, required
from tools.m365sim.backends.graph.store import Data

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_AUTH_ADMIN = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
AUTH_ADMIN = "c4e39bd9-1100-46d3-8c65-fb160da0071f"
HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
PASSWORD_ADMIN = "966707d0-3269-4727-9be2-8c3a10f19b9d"
GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
GUEST_INVITER = "95e79109-95c0-4d8e-aee3-d01accf2d47b"
MESSAGE_CENTER_READER = "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
USAGE_SUMMARY_READER = "75934031-6c7e-415a-99d7-48dbd49e875e"


@dataclass(frozen=True)
class RoleDefinition:
    template_id: str
    display_name: str
    description: str
    privileged: bool


# (template id, display name, description, PRIVILEGED label) as permissions-reference lists them.
ROLE_DEFINITIONS = tuple(
    RoleDefinition(*row)
    for row in (
        (
            GLOBAL_ADMIN,
            "Global Administrator",
            "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra "
            "identities.",
            True,
        ),
        (
            PRIVILEGED_ROLE_ADMIN,
            "Privileged Role Administrator",
            "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management.",
            True,
        ),
        (
            PRIVILEGED_AUTH_ADMIN,
            "Privileged Authentication Administrator",
            "Can access to view, set and reset authentication method information for any user (admin or "
            "non-admin).",
            True,
        ),
        (
            USER_ADMIN,
            "User Administrator",
            "Can manage all aspects of users and groups, including resetting passwords for limited admins.",
            True,
        ),
        (
            AUTH_ADMIN,
            "Authentication Administrator",
            "Can access to view, set and reset authentication method information for any non-admin user.",
            True,
        ),
        (
            HELPDESK_ADMIN,
            "Helpdesk Administrator",
            "Can reset passwords for non-administrators and Helpdesk Administrators.",
            True,
        ),
        (
            PASSWORD_ADMIN,
            "Password Administrator",
            "Can reset passwords for non-administrators and Password Administrators.",
            True,
        ),
        (
            GROUPS_ADMIN,
            "Groups Administrator",
            "Members of this role can create/manage groups, create/manage groups settings like naming and "
            "expiration policies, and view groups activity and audit reports.",
            False,
        ),
        (
            "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
            "Application Administrator",
            "Can create and manage all aspects of app registrations and enterprise apps.",
            True,
        ),
        (
            "158c047a-c907-4556-b7ef-446551a6b5f7",
            "Cloud Application Administrator",
            "Can create and manage all aspects of app registrations and enterprise apps except App Proxy.",
            True,
        ),
        (
            "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
            "Hybrid Identity Administrator",
            "Manage Active Directory to Microsoft Entra cloud provisioning, Microsoft Entra Connect, pass-through "
            "authentication (PTA), password hash synchronization (PHS), seamless single sign-on (seamless SSO), "
            "and federation settings.",
            True,
        ),
        (
            "8329153b-31d0-4727-b945-745eb3bc5f31",
            "Domain Name Administrator",
            "Can manage domain names in cloud and on-premises.",
            True,
        ),
        (
            "194ae4cb-b126-40b2-bd5b-6091b380977d",
            "Security Administrator",
            "Can read security information and reports, and manage configuration in Microsoft Entra ID and "
            "Office 365.",
            True,
        ),
        (
            "29232cdf-9323-42fd-ade2-1d097af3e4de",
            "Exchange Administrator",
            "Can manage all aspects of the Exchange product.",
            False,
        ),
        (
            "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
            "Global Reader",
            "Can read everything that a Global Administrator can, but not update anything.",
            True,
        ),
        (
            "0526716b-113d-4c15-b2c8-68e3c22b9f80",
            "Authentication Policy Administrator",
            "Can create and manage the authentication methods policy, tenant-wide MFA settings, password "
            "protection policy, and verifiable credentials.",
            False,
        ),
        (
            DIRECTORY_READERS,
            "Directory Readers",
            "Can read basic directory information. Commonly used to grant directory read access to applications "
            "and guests.",
            False,
        ),
        (
            "9360feb5-f418-4baa-8175-e2a00bac4301",
            "Directory Writers",
            "Can read and write basic directory information. For granting access to applications, not intended "
            "for users.",
            True,
        ),
        (
            GUEST_INVITER,
            "Guest Inviter",
            "Can invite guest users independent of the 'members can invite guests' setting.",
            False,
        ),
        (
            MESSAGE_CENTER_READER,
            "Message Center Reader",
            "Can read messages and updates for their organization in Office 365 Message Center only.",
            False,
        ),
        (REPORTS_READER, "Reports Reader", "Can read sign-in and audit reports.", False),
        (
            USAGE_SUMMARY_READER,
            "Usage Summary Reports Reader",
            "Read Usage reports and Adoption Score, but can't access user details.",
            False,
        ),
    )
)
DEFINITIONS = {d.template_id: d for d in ROLE_DEFINITIONS}

# resources/users, "Who can update sensitive attributes?": the target's role (row) → the caller roles (columns:
# Auth Admin, User Admin, Privileged Auth Admin, Global Admin) that may update its sensitive attributes. A user with
# no admin role is the row "User (no admin role)": every column. Roles the table does not list are treated as the
# privileged rows (Privileged Auth Admin and Global Admin only), and so is "member or owner of a role-assignable
# group".
TOP = frozenset({PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN})
ALL_COLUMNS = frozenset({AUTH_ADMIN, USER_ADMIN, PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN})
SENSITIVE_WRITERS: dict[str, frozenset[str]] = {
    AUTH_ADMIN: frozenset({AUTH_ADMIN}) | TOP,
    DIRECTORY_READERS: ALL_COLUMNS,
    GLOBAL_ADMIN: TOP,
    GROUPS_ADMIN: frozenset({USER_ADMIN}) | TOP,
    GUEST_INVITER: ALL_COLUMNS,
    HELPDESK_ADMIN: frozenset({USER_ADMIN}) | TOP,
    MESSAGE_CENTER_READER: ALL_COLUMNS,
    PASSWORD_ADMIN: ALL_COLUMNS,
    PRIVILEGED_AUTH_ADMIN: TOP,
    PRIVILEGED_ROLE_ADMIN: TOP,
    REPORTS_READER: ALL_COLUMNS,
    USER_ADMIN: frozenset({USER_ADMIN}) | TOP,
    USAGE_SUMMARY_READER: ALL_COLUMNS,
}
SENSITIVE_PROPERTIES = frozenset(
    {
        "accountEnabled",
        "businessPhones",
        "mobilePhone",
        "onPremisesImmutableId",
        "otherMails",
        "passwordProfile",
        "userPrincipalName",
    }
)
ASSIGNMENT_WRITABLE = frozenset({"roleDefinitionId", "principalId", "directoryScopeId"})


def assignment_id(role_id: str, principal_id: str) -> str:
    """``lAPpYvVpN0KRkAEhdxReEMmO4KwRqtpKkUWt3wOYIz4-1``: the ids of Graph's samples (rbacapplication-list-
    roleassignments) are the role's and the principal's GUIDs as little-endian bytes, base64url, and ``-1``."""

    def b64(value: str) -> str:
        return base64.urlsafe_b64encode(uuid.UUID(value).bytes_le).rstrip(b"=").decode()

    return f"{b64(role_id)}{b64(principal_id)}-1"


def definition_record(definition: RoleDefinition) -> Data:
    """unifiedRoleDefinition: https://learn.microsoft.com/en-us/graph/api/resources/unifiedroledefinition"""
    return {
        "id": definition.template_id,
        "templateId": definition.template_id,
        "displayName": definition.display_name,
        "description": definition.description,
        "isBuiltIn": True,
        "isEnabled": True,
        "isPrivileged": definition.privileged,
        "resourceScopes": ["/"],
        "version": "1",
        "rolePermissions": [],
    }


PrincipalLookup = Callable[[str], Data | None]
"""A principal id → the visible user, group or service principal (with its ``@odata.type``), or None."""
GroupsOf = Callable[[str], Iterable[str]]
"""An object id → the ids of the groups it is a direct member of."""


class RoleManagementBackend:
    def __init__(self, tenant_id: str, principal: PrincipalLookup, groups_of: GroupsOf) -> None:
        self.tenant_id = tenant_id
        self.principal = principal
        self.groups_of = groups_of
        self.assignments: dict[str, Data] = {}
        self.eligibilities: dict[str, Data] = {}
        self.activated: dict[str, str] = {GLOBAL_ADMIN: self._role_object_id(GLOBAL_ADMIN)}
        """Activated directoryRoles: template id → the directoryRole's object id."""

    # -- definitions ----------------------------------------------------------------------------------------
    @staticmethod
    def definitions() -> list[Data]:
        return [definition_record(d) for d in ROLE_DEFINITIONS]

    @staticmethod
    def definition(key: str) -> RoleDefinition:
        definition = DEFINITIONS.get(key.lower())
        if definition is None:
            raise not_found(key)
        return definition

    # -- assignments ----------------------------------------------------------------------------------------
    def all_assignments(self) -> list[Data]:
        return sorted(self.assignments.values(), key=lambda a: a["id"])

    def assignment(self, key: str) -> Data:
        found = self.assignments.get(key)
        if found is None:
            raise not_found(key)
        return found

    def create_assignment(self, body: Data) -> Data:
        for prop in body:
            if prop not in ASSIGNMENT_WRITABLE:
                raise bad_request(f"Invalid property '{prop}'.")
        for prop in ("roleDefinitionId", "principalId"):
            if not isinstance(body.get(prop), str) or not body[prop]:
                raise required(prop)
        scope = body.get("directoryScopeId")
        if scope is None:
            raise required("directoryScopeId")
        if scope != "/":
            # Scopes below the tenant (administrative units, applications) are not modelled: refused, not ignored.
            raise invalid_value("directoryScopeId", "UnifiedRoleAssignment")
        definition = self.definition(body["roleDefinitionId"])
        principal = self._principal(body["principalId"])
        return self.assign(definition.template_id, principal)

    def assign(self, role_id: str, principal: Data) -> Data:
        """An active tenant-wide assignment (idempotent: assigning a role twice changes nothing)."""
        if principal.get("@odata.type") == "#microsoft.graph.group" and not principal.get(
            "isAssignableToRole"
        ):
            # rbacapplication-post-roleassignments / groups-concept-overview: only role-assignable groups
            # (isAssignableToRole true) can be assigned Microsoft Entra roles.
            raise bad_request(
                f"Group '{principal['id']}' is not role-assignable: only groups with isAssignableToRole true can "
                "be assigned a role."
            )
        key = assignment_id(role_id, principal["id"])
        record = {
            "id": key,
            "roleDefinitionId": role_id,
            "principalId": principal["id"],
            "directoryScopeId": "/",
            "resourceScope": "/",
            "principalOrganizationId": self.tenant_id,
        }
        self.assignments[key] = record
        self.activated.setdefault(role_id, self._role_object_id(role_id))
        return record

    def delete_assignment(self, key: str) -> None:
        self.assignment(key)
        del self.assignments[key]

    def forget_principal(self, principal_id: str) -> None:
        """A deleted principal holds no role any more."""
        for key in [k for k, a in self.assignments.items() if a["principalId"] == principal_id]:
            del self.assignments[key]
        for key in [k for k, e in self.eligibilities.items() if e["principalId"] == principal_id]:
            del self.eligibilities[key]

    def _principal(self, principal_id: str) -> Data:
        principal = self.principal(principal_id.lower())
        if principal is None:
            raise not_found(principal_id)
        return principal

    # -- eligibility (PIM) ------------------------------------------------------------------------------------
    def add_eligibility(self, role_id: str, principal: Data, start: float, end: float | None) -> Data:
        definition = self.definition(role_id)
        key = f"{assignment_id(definition.template_id, principal['id'])}-e"
        record = {
            "id": key,
            "principalId": principal["id"],
            "roleDefinitionId": definition.template_id,
            "directoryScopeId": "/",
            "appScopeId": None,
            "startDateTime": iso(start),
            "endDateTime": iso(end) if end is not None else None,
            "memberType": "Direct",
            "roleEligibilityScheduleId": str(uuid.uuid5(uuid.UUID(int=0), key)),
        }
        self.eligibilities[key] = record
        return record

    def eligibility_instances(self, now: float) -> list[Data]:
        """The eligibilities in force now (an instance exists between its start and end)."""

        def current(e: Data) -> bool:
            start = parse_iso(e["startDateTime"]) or 0.0
            end = parse_iso(e["endDateTime"])
            return start <= now and (end is None or now < end)

        return [e for e in sorted(self.eligibilities.values(), key=lambda e: e["id"]) if current(e)]

    # -- directoryRoles -------------------------------------------------------------------------------------
    def _role_object_id(self, template_id: str) -> str:
        return str(uuid.uuid5(uuid.UUID(self.tenant_id), f"directoryRole:{template_id}"))

    def directory_roles(self) -> list[Data]:
        return [self._directory_role(t) for t in sorted(self.activated)]

    def directory_role(self, key: str) -> Data:
        """A directoryRole by object id, or ``roleTemplateId=<id>`` (directoryrole-get)."""
        lowered = key.lower()
        if lowered.startswith("roletemplateid="):
            template = lowered.partition("=")[2].strip("'")
            if template in self.activated:
                return self._directory_role(template)
            raise not_found(key)
        for template, object_id in self.activated.items():
            if object_id == lowered:
                return self._directory_role(template)
        raise not_found(key)

    def _directory_role(self, template_id: str) -> Data:
        definition = DEFINITIONS[template_id]
        return {
            "id": self.activated[template_id],
            "displayName": definition.display_name,
            "description": definition.description,
            "roleTemplateId": template_id,
        }

    def activate(self, template_id: str) -> Data:
        """directoryrole-post-directoryroles: activate a role from its template (201)."""
        definition = self.definition(template_id)
        if definition.template_id in self.activated:
            raise bad_request(
                "A conflicting object with one or more of the specified property values is present in the "
                f"directory: role template '{definition.template_id}' is already activated."
            )
        self.activated[definition.template_id] = self._role_object_id(definition.template_id)
        return self._directory_role(definition.template_id)

    def member_ids(self, key: str) -> list[str]:
        template = self.directory_role(key)["roleTemplateId"]
        return sorted(
            a["principalId"] for a in self.assignments.values() if a["roleDefinitionId"] == template
        )

    def add_member(self, key: str, principal_id: str) -> None:
        template = self.directory_role(key)["roleTemplateId"]
        if assignment_id(template, principal_id) in self.assignments:
            raise bad_request(
                "One or more added object references already exist for the following modified properties: "
                "'members'."
            )
        self.assign(template, self._principal(principal_id))

    def remove_member(self, key: str, principal_id: str) -> None:
        template = self.directory_role(key)["roleTemplateId"]
        assignment = assignment_id(template, principal_id.lower())
        if assignment not in self.assignments:
            raise not_found(principal_id)
        del self.assignments[assignment]

    # -- the rule on sensitive writes ---------------------------------------------------------------------------
    def roles_of(self, principal_id: str) -> set[str]:
        """Template ids of the roles a principal holds actively: its own assignments and those of the
        role-assignable groups it is a member of."""
        holders = {principal_id, *self.groups_of(principal_id)}
        return {a["roleDefinitionId"] for a in self.assignments.values() if a["principalId"] in holders}

    def check_sensitive_write(
        self, caller_principal: str | None, target_id: str, props: Iterable[str]
    ) -> None:
        """403 Authorization_RequestDenied when ``props`` touch a sensitive attribute of ``target_id`` (or the write
        is a delete, ``props`` containing ``"*"``) and the caller's roles may not change that user's."""
        touched = set(props)
        if not (touched & SENSITIVE_PROPERTIES or "*" in touched):
            return
        target_roles = self.roles_of(target_id)
        in_role_group = any(
            (self.principal(g) or {}).get("isAssignableToRole") is True for g in self.groups_of(target_id)
        )
        if not target_roles and not in_role_group:
            return
        allowed = ALL_COLUMNS
        for role in target_roles:
            allowed = allowed & SENSITIVE_WRITERS.get(role, TOP)
        if in_role_group:
            allowed = allowed & TOP
        caller_roles = self.roles_of(caller_principal) if caller_principal else set()
        if not caller_roles & allowed:
            raise forbidden()

    # -- persistence ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "assignments": self.assignments,
            "eligibilities": self.eligibilities,
            "activated": self.activated,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.assignments = dict(state["assignments"])
        self.eligibilities = dict(state["eligibilities"])
        self.activated = dict(state["activated"])
