"""Graph's users endpoints: parse, call ``UsersBackend``, render (user-list, user-get, user-post-users,
user-update, user-delete, user-revokesigninsessions, user-list-manager / -post-manager / -delete-manager, and
``$expand=manager``)."""

from __future__ import annotations

from tools.m365sim.backends.graph import invitations, users
from tools.m365sim.backends.graph.directory import TenantDirectory, select_for
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.http.graph.render import Render, body_of, collection, entity, no_expand
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

USER_TYPE = "microsoft.graph.user"


def _renderer(d: TenantDirectory, expand: str | None) -> Render:
    def render(data: Data, select: list[str] | None) -> Data:
        out = users.project(data, select)
        if expand == "manager":
            # user-list-manager, "$expand=manager": the manager as a directoryObject, absent when there is none.
            manager = d.store.visible("users", data.get("_manager") or "")
            if manager is not None:
                out["manager"] = {"@odata.type": f"#{USER_TYPE}", **users.project(manager, None)}
        return out

    return render


def list_users(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # user-list: https://learn.microsoft.com/en-us/graph/api/user-list
    select = select_for("users", req.option("$select"))
    render = _renderer(d, no_expand(req, USER_TYPE, ("manager",)))
    return collection(req, "users", d.users.after, render, users.FILTER, select)


def get_user(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # user-get: https://learn.microsoft.com/en-us/graph/api/user-get
    user = d.users.visible(args[0])
    select = select_for("users", req.option("$select"))
    render = _renderer(d, no_expand(req, USER_TYPE, ("manager",)))
    return entity(req, "users", render(user, select), select)


def create_user(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # user-post-users: 201 with the user's default properties.
    record = d.users.create(body_of(req))
    return entity(req, "users", users.project(record, None), status=201)


def update_user(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # user-update: 204 No Content
    d.users.update(args[0], body_of(req), req.caller)
    return GraphResponse(204)


def delete_user(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # user-delete: 204 (soft delete, restorable)
    d.users.delete(args[0], req.caller)
    return GraphResponse(204)


def revoke_sessions(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # user-revokesigninsessions: v1.0 answers 200 {"value": true}
    d.users.revoke_sessions(args[0])
    return GraphResponse(200, {"@odata.context": f"{req.base_url}/$metadata#Edm.Boolean", "value": True})


def get_manager(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    manager = d.users.manager(args[0])
    return entity(req, "directoryObjects", {"@odata.type": f"#{USER_TYPE}", **users.project(manager, None)})


def set_manager(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # user-post-manager: PUT .../manager/$ref → 204
    d.users.set_manager(args[0], body_of(req).get("@odata.id"))
    return GraphResponse(204)


def remove_manager(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.users.remove_manager(args[0])
    return GraphResponse(204)


def create_invitation(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    # invitation-post: https://learn.microsoft.com/en-us/graph/api/invitation-post (201, the invitation)
    created = invitations.invite(d.users, d.domains, body_of(req), d.clock())
    return entity(req, "invitations", created, status=201)
