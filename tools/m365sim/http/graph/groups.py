"""Graph's groups endpoints (group-list, group-get, group-post-groups, group-update, group-delete,
group-list-members, group-post-members, group-delete-members)."""

from __future__ import annotations

from tools.m365sim.backends.graph import groups, users
from tools.m365sim.backends.graph.directory import TenantDirectory, select_for
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.http.graph.render import body_of, collection, entity, no_expand
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

GROUP_TYPE = "microsoft.graph.group"


def directory_object(data: Data, select: list[str] | None) -> Data:
    """A member of a group (directoryObject collection): user or group with its @odata.type."""
    if "userPrincipalName" in data:
        return {"@odata.type": "#microsoft.graph.user", **users.project(data, select)}
    group_select = [s for s in select if s in groups.OUTPUT] if select is not None else None
    return {"@odata.type": f"#{GROUP_TYPE}", **groups.project(data, group_select)}


def list_groups(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # group-list: https://learn.microsoft.com/en-us/graph/api/group-list
    no_expand(req, GROUP_TYPE)
    select = select_for("groups", req.option("$select"))
    return collection(req, "groups", d.groups.after, groups.project, groups.FILTER, select)


def get_group(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-get: https://learn.microsoft.com/en-us/graph/api/group-get
    no_expand(req, GROUP_TYPE)
    select = select_for("groups", req.option("$select"))
    return entity(req, "groups", groups.project(d.groups.visible(args[0]), select), select)


def create_group(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # group-post-groups: 201 with the group
    record = d.groups.create(body_of(req))
    return entity(req, "groups", groups.project(record, None), status=201)


def update_group(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-update: 204
    d.groups.update(args[0], body_of(req))
    return GraphResponse(204)


def delete_group(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-delete: 204; a group holding roles holds none once deleted.
    d.roles.forget_principal(d.groups.delete(args[0]))
    return GraphResponse(204)


def list_members(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-list-members
    no_expand(req, "microsoft.graph.directoryObject")
    select = select_for("users", req.option("$select"))
    members = list(d.groups.members(args[0]))
    return collection(
        req,
        "directoryObjects",
        lambda after: ((i, m) for i, m in members if i > after),
        directory_object,
        None,
        select,
    )


def add_member(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-post-members: 204; an existing member → 400 "One or more added object references already exist ..."
    d.groups.add_member(args[0], body_of(req).get("@odata.id"))
    return GraphResponse(204)


def remove_member(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # group-delete-members: 204; a non-member → 404 Request_ResourceNotFound
    d.groups.remove_member(args[0], args[1])
    return GraphResponse(204)
