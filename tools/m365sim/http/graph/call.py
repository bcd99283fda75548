"""One Graph call on the wire: authentication, throttling, dispatch, the request log and the response headers.

- errors: https://learn.microsoft.com/en-us/graph/errors (``{"error": {"code", "message", "innerError"}}``);
- response headers ``request-id``, ``client-request-id`` (echoed), ``x-ms-ags-diagnostic``, and the OData JSON
  content type ``application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;
  charset=utf-8`` (https://learn.microsoft.com/en-us/graph/json-batching shows it on every inner response);
- authentication: https://learn.microsoft.com/en-us/graph/auth/auth-concepts (bearer token with ``aud``
  https://graph.microsoft.com or 00000003-0000-0000-c000-000000000000); failures are ``401
  InvalidAuthenticationToken`` with Graph's messages and a ``WWW-Authenticate: Bearer realm="",
  authorization_uri=".../common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`` header;
- throttling: ``tools.m365sim.backends.throttle``.
"""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from typing import Any

from aiohttp import web

from tools.m365sim.backends.entra.tokens import token_client_id
from tools.m365sim.backends.errors import GraphError, InvalidToken
from tools.m365sim.backends.tenants import GRAPH_APP_ID, GRAPH_RESOURCE, Tenant
from tools.m365sim.backends.throttle import too_many_requests_body
from tools.m365sim.backends.world import World
from tools.m365sim.http.context import base_url, world_of
from tools.m365sim.http.graph.render import error_response
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse
from tools.m365sim.http.graph.router import handle

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
AGS_DIAGNOSTIC = json.dumps(
    {
        "ServerInfo": {
            "DataCenter": "Local Simulator",
            "Slice": "E",
            "Ring": "5",
            "ScaleUnit": "000",
            "RoleInstance": "M365SIM",
        }
    },
    separators=(",", ":"),
)
UNREADABLE_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON "
    "format."
)


def unreadable_json() -> GraphError:
    """Graph's 400 for a request body (a call's, or a $batch payload) that is not JSON."""
    return GraphError(400, "BadRequest", UNREADABLE_JSON)


def graph_call(
    world: World,
    tenant: Tenant,
    claims: dict[str, Any],
    req: GraphRequest,
    *,
    kind: str,
    logged_path: str,
) -> tuple[GraphResponse, int]:
    """Throttle, then hand the request to the tenant's directory; returns (response, RU charged)."""
    app_id = req.app_id
    decision = world.throttle.charge(
        tenant.tenant_id, app_id, req.method, req.path, req.query, world.ru_budget(tenant)
    )
    if not decision.allowed:
        resp = GraphResponse(429, too_many_requests_body(world.clock()), dict(decision.headers))
        ru = 0
    else:
        ru = decision.cost
        try:
            resp = handle(tenant.directory, req)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            resp = error_response(
                GraphError(500, "generalException", "An unspecified error has occurred."), 0
            )
        resp.headers = {**resp.headers, **decision.headers}
    world.log.add(
        method=req.method,
        path=logged_path,
        status=resp.status,
        resource_units=ru,
        tenant_id=tenant.tenant_id,
        client_id=app_id,
        kind=kind,
    )
    return resp, ru


def request_for(
    tenant: Tenant,
    claims: dict[str, Any],
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: Any,
    base: str,
) -> GraphRequest:
    perms = claims.get("roles") if "scp" not in claims else str(claims.get("scp", "")).split()
    oid = claims.get("oid")
    return GraphRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        tenant_id=tenant.tenant_id,
        app_id=token_client_id(claims),
        permissions=frozenset(perms or []),
        base_url=base,
        delegated="scp" in claims,
        principal_id=str(oid).lower() if isinstance(oid, str) else None,
    )


def graph_http_response(resp: GraphResponse, request: web.Request) -> web.Response:
    request_id = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id") or request_id
    headers = {
        "request-id": request_id,
        "client-request-id": client_request_id,
        "x-ms-ags-diagnostic": AGS_DIAGNOSTIC,
        "Cache-Control": "no-cache",
        "Strict-Transport-Security": "max-age=31536000",
    }
    headers.update(resp.headers)
    body = resp.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"].get("innerError")
        if isinstance(inner, dict):
            inner["request-id"] = request_id
            inner["client-request-id"] = client_request_id
    if resp.status == 204 or body is None:
        headers.pop("Content-Type", None)
        return web.Response(status=resp.status, headers=headers)
    headers["Content-Type"] = headers.get("Content-Type", GRAPH_CONTENT_TYPE)
    headers.setdefault("OData-Version", "4.0")
    return web.Response(status=resp.status, body=json.dumps(body).encode(), headers=headers)


def graph_error_response(error: GraphError, request: web.Request) -> web.Response:
    return graph_http_response(error_response(error, world_of(request).clock()), request)


def authenticate(request: web.Request) -> tuple[Tenant, dict[str, Any]] | web.Response:
    """The caller's tenant and token claims, or Graph's 401."""
    world = world_of(request)
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    challenge = {
        "WWW-Authenticate": f'Bearer realm="", authorization_uri="{base_url(request)}/common/oauth2/authorize", '
        f'client_id="{GRAPH_APP_ID}"'
    }
    if not token:
        error = GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge)
        return graph_error_response(error, request)
    try:
        claims = world.entra.validate(token, (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID))
    except InvalidToken as exc:
        error = GraphError(401, exc.code, exc.message, headers=challenge)
        return graph_error_response(error, request)
    tenant = world.tenants.get(claims["tid"])
    assert tenant is not None  # validate() checked it
    return tenant, claims
