"""Graph's role management endpoints: roleDefinitions, roleAssignments (``$filter`` on principalId /
roleDefinitionId, ``$expand=principal``), roleEligibilityScheduleInstances, and directoryRoles with their members
(rbacapplication-list-roledefinitions, unifiedroledefinition-get, rbacapplication-list-roleassignments,
rbacapplication-post-roleassignments, unifiedroleassignment-get / -delete,
rbacapplication-list-roleeligibilityscheduleinstances, directoryrole-list, directoryrole-get,
directoryrole-post-directoryroles, directoryrole-list-members, directoryrole-post-members,
directoryrole-delete-member)."""

from __future__ import annotations

from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.backends.graph.odata import FilterSchema, parse_select
from tools.m365sim.backends.graph.roles import definition_record
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.backends.graph.users import ref_id
from tools.m365sim.http.graph.groups import directory_object
from tools.m365sim.http.graph.render import Render, body_of, collection, entity, listed, no_expand
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

ASSIGNMENT_TYPE = "microsoft.graph.unifiedRoleAssignment"
ASSIGNMENT_PROPERTIES = {
    n.lower(): n
    for n in (
        "id",
        "principalId",
        "roleDefinitionId",
        "directoryScopeId",
        "resourceScope",
        "principalOrganizationId",
    )
}
ASSIGNMENT_FILTER = FilterSchema(
    resource="UnifiedRoleAssignment",
    strings=frozenset({"id", "principalId", "roleDefinitionId", "directoryScopeId"}),
)
ELIGIBILITY_FILTER = FilterSchema(
    resource="UnifiedRoleEligibilityScheduleInstance",
    strings=frozenset({"id", "principalId", "roleDefinitionId", "directoryScopeId"}),
)
ROLE_ASSIGNMENTS = "roleManagement/directory/roleAssignments"


def _principal(d: TenantDirectory, principal_id: str) -> Data | None:
    found = d.principal(principal_id)
    if found is None:
        return None
    if found.get("@odata.type") == "#microsoft.graph.servicePrincipal":
        return found
    return directory_object({k: v for k, v in found.items() if k != "@odata.type"}, None)


def _assignment_renderer(d: TenantDirectory, expand: str | None) -> Render:
    def render(data: Data, select: list[str] | None) -> Data:
        names = (
            select
            if select is not None
            else ["id", "principalId", "resourceScope", "directoryScopeId", "roleDefinitionId"]
        )
        out = {n: data.get(n) for n in names}
        if expand == "principal":
            out["principal"] = _principal(d, data["principalId"])
        return out

    return render


def list_definitions(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    no_expand(req, "microsoft.graph.unifiedRoleDefinition")
    return collection(
        req, "roleManagement/directory/roleDefinitions", listed(d.roles.definitions()), _all, None, None
    )


def get_definition(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    return entity(
        req, "roleManagement/directory/roleDefinitions", definition_record(d.roles.definition(args[0]))
    )


def _all(data: Data, select: list[str] | None) -> Data:
    return dict(data)


def list_assignments(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    expand = no_expand(req, ASSIGNMENT_TYPE, ("principal",))
    select = parse_select(req.option("$select"), ASSIGNMENT_PROPERTIES, ASSIGNMENT_TYPE)
    kind = ROLE_ASSIGNMENTS + ("(principal())" if expand else "")
    render = _assignment_renderer(d, expand)
    return collection(req, kind, listed(d.roles.all_assignments()), render, ASSIGNMENT_FILTER, select)


def get_assignment(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    expand = no_expand(req, ASSIGNMENT_TYPE, ("principal",))
    select = parse_select(req.option("$select"), ASSIGNMENT_PROPERTIES, ASSIGNMENT_TYPE)
    render = _assignment_renderer(d, expand)
    return entity(req, ROLE_ASSIGNMENTS, render(d.roles.assignment(args[0]), select), select)


def create_assignment(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # rbacapplication-post-roleassignments: 201 with the assignment
    record = d.roles.create_assignment(body_of(req))
    return entity(req, ROLE_ASSIGNMENTS, _assignment_renderer(d, None)(record, None), status=201)


def delete_assignment(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.roles.delete_assignment(args[0])
    return GraphResponse(204)


def list_eligibility_instances(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    expand = no_expand(req, "microsoft.graph.unifiedRoleEligibilityScheduleInstance", ("principal",))
    values = d.roles.eligibility_instances(d.clock())

    def render(data: Data, select: list[str] | None) -> Data:
        out = {k: v for k, v in data.items() if select is None or k in select}
        if expand:
            out["principal"] = _principal(d, data["principalId"])
        return out

    return collection(
        req,
        "roleManagement/directory/roleEligibilityScheduleInstances",
        listed(values),
        render,
        ELIGIBILITY_FILTER,
        None,
    )


def list_directory_roles(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    return collection(req, "directoryRoles", listed(d.roles.directory_roles()), _all, None, None)


def get_directory_role(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    return entity(req, "directoryRoles", d.roles.directory_role(args[0]))


def activate_directory_role(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # directoryrole-post-directoryroles: {"roleTemplateId": …} → 201
    template = body_of(req).get("roleTemplateId")
    return entity(req, "directoryRoles", d.roles.activate(str(template or "")), status=201)


def list_directory_role_members(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    members = [m for m in (_principal(d, i) for i in d.roles.member_ids(args[0])) if m is not None]
    return collection(req, "directoryObjects", listed(members), _all, None, None)


def add_directory_role_member(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # directoryrole-post-members: {"@odata.id": ".../directoryObjects/{id}"} → 204
    d.roles.add_member(args[0], ref_id(body_of(req).get("@odata.id")))
    return GraphResponse(204)


def remove_directory_role_member(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.roles.remove_member(args[0], args[1])
    return GraphResponse(204)
