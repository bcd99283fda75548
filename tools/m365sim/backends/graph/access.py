"""Who calls Graph, and the permissions each operation needs.

Permissions follow https://learn.microsoft.com/en-us/graph/permissions-reference and each API page's table. The
HTTP layer checks the one an operation needs (its route names the set); backends check the finer rules that depend
on the body or the target (a property that needs its own permission, a privileged user only some roles may change).
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.m365sim.backends.graph.errors import forbidden


@dataclass(frozen=True)
class Caller:
    """The caller of one Graph request, from its access token."""

    tenant_id: str
    app_id: str
    permissions: frozenset[str]
    """Application roles (app-only token) or delegated scopes (``scp``) granted to the caller."""
    delegated: bool = False
    principal_id: str | None = None
    """The object whose directory roles count: the signed-in user (delegated) or the app's service principal
    (app-only); None for the simulator's own internal reads."""


DELEGATED_ALL = "Directory.AccessAsUser.All"

DIR_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
DIR_WRITE = frozenset({"Directory.ReadWrite.All"})
USER_READ = DIR_READ | {"User.Read.All", "User.ReadWrite.All"}
USER_WRITE = DIR_WRITE | {"User.ReadWrite.All"}
USER_ENABLE = USER_WRITE | {"User.EnableDisableAccount.All"}
USER_PASSWORD = frozenset({"User-PasswordProfile.ReadWrite.All"})
USER_REVOKE = USER_WRITE | {"User.RevokeSessions.All"}
USER_PATCH = USER_ENABLE | USER_PASSWORD
# invitation-post: User.Invite.All (least privileged), Directory.ReadWrite.All, User.ReadWrite.All.
USER_INVITE = USER_WRITE | {"User.Invite.All"}
GROUP_READ = DIR_READ | {"Group.Read.All", "GroupMember.Read.All", "Group.ReadWrite.All"}
GROUP_WRITE = DIR_WRITE | {"Group.ReadWrite.All"}
MEMBER_WRITE = GROUP_WRITE | {"GroupMember.ReadWrite.All"}
DOMAIN_READ = DIR_READ | {"Domain.Read.All", "Domain.ReadWrite.All"}
DOMAIN_WRITE = frozenset({"Domain.ReadWrite.All"})
FED_WRITE = frozenset({"Domain-InternalFederation.ReadWrite.All", "Domain.ReadWrite.All"})
FED_READ = DOMAIN_READ | FED_WRITE | {"Domain-InternalFederation.Read.All"}
ORG_READ = DIR_READ | {"Organization.Read.All", "Organization.ReadWrite.All"}
# application-get / application-list: Application.Read.All, Application.ReadWrite.All, Directory.Read.All (the
# OwnedBy permissions act on the apps the caller owns; the simulator keeps no owners, so they grant nothing here).
APP_READ = DIR_READ | {"Application.Read.All", "Application.ReadWrite.All"}
# application-addpassword / -removepassword / -update: Application.ReadWrite.All, Directory.ReadWrite.All.
APP_WRITE = DIR_WRITE | {"Application.ReadWrite.All"}
# rbacapplication-list-roleassignments, unifiedroledefinition-get, directoryrole-list(-members).
ROLE_READ = DIR_READ | {
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
}
# rbacapplication-post-roleassignments, unifiedroleassignment-delete, directoryrole-post-members.
ROLE_WRITE = frozenset({"RoleManagement.ReadWrite.Directory"})
# rbacapplication-list-roleeligibilityscheduleinstances.
ELIGIBILITY_READ = frozenset(
    {
        "RoleEligibilitySchedule.Read.Directory",
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleManagement.ReadWrite.Directory",
    }
)
# authentication-list-temporaryaccesspassmethods / -post- / temporaryaccesspassauthenticationmethod-delete.
AUTH_METHOD_READ = frozenset({"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"})
AUTH_METHOD_WRITE = frozenset({"UserAuthenticationMethod.ReadWrite.All"})
# temporaryaccesspassauthenticationmethodconfiguration-get / -update.
AUTH_POLICY_READ = frozenset({"Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"})
AUTH_POLICY_WRITE = frozenset({"Policy.ReadWrite.AuthenticationMethod"})


def require(caller: Caller, permissions: frozenset[str]) -> None:
    """403 Authorization_RequestDenied unless the caller holds one of ``permissions``. A delegated caller with
    Directory.AccessAsUser.All acts as the signed-in user and passes (its roles are checked where they matter)."""
    if caller.delegated and DELEGATED_ALL in caller.permissions:
        return
    if not caller.permissions & permissions:
        raise forbidden()
