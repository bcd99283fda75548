"""Graph's URL table (moto's ``urls.py``): each path pattern, method, the permission it needs and its handler.

A request for a path no route matches answers Graph's 400 "Resource not found for the segment '…'."; a route
without the method, 405. The permission check is the route's (each API page's "Permissions" table); backends check
the finer rules that depend on the body or the target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tools.m365sim.backends import errors as sim_errors
from tools.m365sim.backends.graph import access as perm
from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.http.graph import applications, authmethods, delta, domains, groups, roles, users
from tools.m365sim.http.graph.render import error_response
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

Handler = Callable[[TenantDirectory, GraphRequest, list[str]], GraphResponse]
METHOD_NOT_ALLOWED = "Specified HTTP method is not allowed for the request target."
ALIASES = {
    "delta()": "delta",
    "microsoft.graph.delta": "delta",
    "microsoft.graph.delta()": "delta",
    "microsoft.graph.revokesigninsessions": "revokeSignInSessions",
    "microsoft.graph.addpassword": "addPassword",
    "microsoft.graph.removepassword": "removePassword",
}
KEY_SEGMENT = re.compile(r"^([A-Za-z]+)\((.+)\)$")
"""``applications(appId='…')``, ``directoryRoles(roleTemplateId='…')``: an entity set addressed by an alternate key."""


@dataclass(frozen=True)
class Route:
    pattern: tuple[str, ...]
    """Literal segments, '*' for an id."""
    methods: dict[str, tuple[Handler, frozenset[str]]]


def route(pattern: str, **methods: tuple[Handler, frozenset[str]]) -> Route:
    return Route(tuple(pattern.strip("/").split("/")), methods)


RM = "roleManagement/directory"
TAP = "users/*/authentication/temporaryAccessPassMethods"
ROUTES = [
    route("users", GET=(users.list_users, perm.USER_READ), POST=(users.create_user, perm.USER_WRITE)),
    route("users/delta", GET=(delta.users_delta, perm.USER_READ)),
    route("invitations", POST=(users.create_invitation, perm.USER_INVITE)),
    route(
        "users/*",
        GET=(users.get_user, perm.USER_READ),
        PATCH=(users.update_user, perm.USER_PATCH),
        DELETE=(users.delete_user, perm.USER_WRITE),
    ),
    route("users/*/revokeSignInSessions", POST=(users.revoke_sessions, perm.USER_REVOKE)),
    route("users/*/manager", GET=(users.get_manager, perm.USER_READ)),
    route(
        "users/*/manager/$ref",
        PUT=(users.set_manager, perm.USER_WRITE),
        DELETE=(users.remove_manager, perm.USER_WRITE),
    ),
    route(
        TAP,
        GET=(authmethods.list_passes, perm.AUTH_METHOD_READ),
        POST=(authmethods.create_pass, perm.AUTH_METHOD_WRITE),
    ),
    route(
        f"{TAP}/*",
        GET=(authmethods.get_pass, perm.AUTH_METHOD_READ),
        DELETE=(authmethods.delete_pass, perm.AUTH_METHOD_WRITE),
    ),
    route("groups", GET=(groups.list_groups, perm.GROUP_READ), POST=(groups.create_group, perm.GROUP_WRITE)),
    route("groups/delta", GET=(delta.groups_delta, perm.GROUP_READ)),
    route(
        "groups/*",
        GET=(groups.get_group, perm.GROUP_READ),
        PATCH=(groups.update_group, perm.GROUP_WRITE),
        DELETE=(groups.delete_group, perm.GROUP_WRITE),
    ),
    route("groups/*/members", GET=(groups.list_members, perm.GROUP_READ)),
    route("groups/*/members/$ref", POST=(groups.add_member, perm.MEMBER_WRITE)),
    route("groups/*/members/*/$ref", DELETE=(groups.remove_member, perm.MEMBER_WRITE)),
    route("domains", GET=(domains.list_domains, perm.DOMAIN_READ)),
    route(
        "domains/*",
        GET=(domains.get_domain, perm.DOMAIN_READ),
        PATCH=(domains.update_domain, perm.DOMAIN_WRITE),
    ),
    route(
        "domains/*/federationConfiguration",
        GET=(domains.list_federation, perm.FED_READ),
        POST=(domains.create_federation, perm.FED_WRITE),
    ),
    route(
        "domains/*/federationConfiguration/*",
        GET=(domains.get_federation, perm.FED_READ),
        PATCH=(domains.update_federation, perm.FED_WRITE),
        DELETE=(domains.delete_federation, perm.FED_WRITE),
    ),
    route("organization", GET=(domains.list_organization, perm.ORG_READ)),
    route("organization/*", GET=(domains.get_organization, perm.ORG_READ)),
    route("applications", GET=(applications.list_applications, perm.APP_READ)),
    route(
        "applications/*",
        GET=(applications.get_application, perm.APP_READ),
        PATCH=(applications.update_application, perm.APP_WRITE),
    ),
    route("applications/*/addPassword", POST=(applications.add_password, perm.APP_WRITE)),
    route("applications/*/removePassword", POST=(applications.remove_password, perm.APP_WRITE)),
    route(f"{RM}/roleDefinitions", GET=(roles.list_definitions, perm.ROLE_READ)),
    route(f"{RM}/roleDefinitions/*", GET=(roles.get_definition, perm.ROLE_READ)),
    route(
        f"{RM}/roleAssignments",
        GET=(roles.list_assignments, perm.ROLE_READ),
        POST=(roles.create_assignment, perm.ROLE_WRITE),
    ),
    route(
        f"{RM}/roleAssignments/*",
        GET=(roles.get_assignment, perm.ROLE_READ),
        DELETE=(roles.delete_assignment, perm.ROLE_WRITE),
    ),
    route(
        f"{RM}/roleEligibilityScheduleInstances",
        GET=(roles.list_eligibility_instances, perm.ELIGIBILITY_READ),
    ),
    route(
        "directoryRoles",
        GET=(roles.list_directory_roles, perm.ROLE_READ),
        POST=(roles.activate_directory_role, perm.ROLE_WRITE),
    ),
    route("directoryRoles/*", GET=(roles.get_directory_role, perm.ROLE_READ)),
    route("directoryRoles/*/members", GET=(roles.list_directory_role_members, perm.ROLE_READ)),
    route("directoryRoles/*/members/$ref", POST=(roles.add_directory_role_member, perm.ROLE_WRITE)),
    route("directoryRoles/*/members/*/$ref", DELETE=(roles.remove_directory_role_member, perm.ROLE_WRITE)),
    route(
        "policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
        GET=(authmethods.get_policy, perm.AUTH_POLICY_READ),
        PATCH=(authmethods.update_policy, perm.AUTH_POLICY_WRITE),
    ),
]


def segments(path: str) -> list[str]:
    out: list[str] = []
    for raw in (s for s in path.strip("/").split("/") if s):
        key = KEY_SEGMENT.match(raw)
        if key and key.group(1).lower() in ("applications", "directoryroles"):
            out += [key.group(1), key.group(2)]
        else:
            out.append(ALIASES.get(raw.lower(), raw))
    return out


def _matches(pattern: tuple[str, ...], parts: list[str]) -> bool:
    return len(pattern) >= len(parts) and all(
        p == "*" or p.lower() == s.lower() for p, s in zip(pattern, parts, strict=False)
    )


def dispatch(req: GraphRequest) -> tuple[Handler, list[str]]:
    parts = segments(req.path)
    candidates = [r for r in ROUTES if len(r.pattern) == len(parts)]
    literal_first = sorted(candidates, key=lambda r: r.pattern.count("*"))
    found = next((r for r in literal_first if _matches(r.pattern, parts)), None)
    if found is None:
        for depth in range(1, len(parts) + 1):
            if not any(_matches(r.pattern, parts[:depth]) for r in ROUTES):
                # Graph: 400 BadRequest "Resource not found for the segment 'x'."
                raise sim_errors.GraphError(
                    400, "BadRequest", f"Resource not found for the segment '{parts[depth - 1]}'."
                )
        raise sim_errors.GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[-1]}'.")
    if req.method not in found.methods:
        raise sim_errors.GraphError(405, "Request_BadRequest", METHOD_NOT_ALLOWED)
    handler, permissions = found.methods[req.method]
    perm.require(req.caller, permissions)
    args = [s for p, s in zip(found.pattern, parts, strict=True) if p == "*"]
    return handler, args


def handle(directory: TenantDirectory, req: GraphRequest) -> GraphResponse:
    """The answer to one Graph request on one tenant's directory; every refusal in Graph's error shape."""
    try:
        handler, args = dispatch(req)
        return handler(directory, req, args)
    except sim_errors.GraphError as error:
        return error_response(error, directory.clock())
