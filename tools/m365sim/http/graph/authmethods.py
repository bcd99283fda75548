"""Graph's Temporary Access Pass endpoints: authentication-post-temporaryaccesspassmethods (201, the pass shown
once), authentication-list-temporaryaccesspassmethods, temporaryaccesspassauthenticationmethod-get / -delete (204),
and the tenant's policy (temporaryaccesspassauthenticationmethodconfiguration-get / -update, 204)."""

from __future__ import annotations

from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.http.graph.render import body_of, entity
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

TAP_KIND = "temporaryAccessPassMethods"


def _user_id(d: TenantDirectory, key: str) -> str:
    return str(d.users.visible(key)["id"])


def create_pass(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    user_id = _user_id(d, args[0])
    method, secret = d.temporary_access_passes.create(user_id, body_of(req) if req.body is not None else {})
    kind = f"users('{user_id}')/authentication/{TAP_KIND}"
    return entity(req, kind, {**method, "temporaryAccessPass": secret}, status=201)


def list_passes(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    user_id = _user_id(d, args[0])
    body = {
        "@odata.context": f"{req.base_url}/$metadata#users('{user_id}')/authentication/{TAP_KIND}",
        "value": d.temporary_access_passes.list(user_id),
    }
    return GraphResponse(200, body)


def get_pass(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    user_id = _user_id(d, args[0])
    kind = f"users('{user_id}')/authentication/{TAP_KIND}"
    return entity(req, kind, d.temporary_access_passes.get(user_id, args[1]))


def delete_pass(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.temporary_access_passes.delete(_user_id(d, args[0]), args[1])
    return GraphResponse(204)


def get_policy(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    kind = "policies/authenticationMethodsPolicy/authenticationMethodConfigurations"
    return entity(req, kind, d.temporary_access_passes.policy)


def update_policy(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    d.temporary_access_passes.update_policy(body_of(req))
    return GraphResponse(204)
