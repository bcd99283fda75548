"""Graph's applications endpoints: application-list, application-get (``/applications/{id}`` and
``/applications(appId='{appId}')``, ``$select``), application-update, application-addpassword (200 with the new
passwordCredential and its ``secretText``, shown once), application-removepassword (204)."""

from __future__ import annotations

from tools.m365sim.backends.graph.applications import APP_DEFAULT, APP_PROPERTIES
from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.backends.graph.odata import parse_select
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.http.graph.render import body_of, collection, entity, listed, no_expand
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

APP_TYPE = "microsoft.graph.application"


def _project(app: Data, select: list[str] | None) -> Data:
    return {name: app.get(name) for name in (select if select is not None else APP_DEFAULT)}


def list_applications(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    no_expand(req, APP_TYPE)
    select = parse_select(req.option("$select"), APP_PROPERTIES, APP_TYPE)
    values = [app.graph() for app in d.applications.all()]
    return collection(req, "applications", listed(values), _project, None, select)


def get_application(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    no_expand(req, APP_TYPE)
    select = parse_select(req.option("$select"), APP_PROPERTIES, APP_TYPE)
    # keyCredential.key: "Returned only on $select for a single object ... otherwise, it's always null."
    app = d.applications.get(args[0]).graph(with_keys=select is not None and "keyCredentials" in select)
    return entity(req, "applications", _project(app, select), select)


def update_application(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.applications.update(args[0], body_of(req))
    return GraphResponse(204)


def add_password(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    credential, secret_text = d.applications.add_password(args[0], req.body if req.body is not None else {})
    body = {
        "@odata.context": f"{req.base_url}/$metadata#microsoft.graph.passwordCredential",
        **credential.graph(),
        "secretText": secret_text,
    }
    return GraphResponse(200, body)


def remove_password(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    d.applications.remove_password(args[0], body_of(req))
    return GraphResponse(204)
