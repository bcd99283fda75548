"""The simulator's aiohttp application: routing, Graph authentication and dispatch, faults, logging.

Graph behaviour followed here:
- errors: https://learn.microsoft.com/en-us/graph/errors (``{"error": {"code", "message", "innerError"}}``);
- response headers ``request-id``, ``client-request-id`` (echoed), ``x-ms-ags-diagnostic``, and the OData JSON
  content type ``application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;
  charset=utf-8`` (https://learn.microsoft.com/en-us/graph/json-batching shows it on every inner response);
- authentication: https://learn.microsoft.com/en-us/graph/auth/auth-concepts (bearer token with
  ``aud`` https://graph.microsoft.com or 00000003-0000-0000-c000-000000000000); failures are
  ``401 InvalidAuthenticationToken`` with Graph's messages ("Access token is empty.", "Lifetime validation
  failed, the token is expired.", "Access token validation failure. Invalid audience.") and a
  ``WWW-Authenticate: Bearer realm="", authorization_uri=".../common/oauth2/authorize",
  client_id="00000003-0000-0000-c000-000000000000"`` header, as Graph sends them;
- throttling: tools/m365sim/throttle.py; $batch: tools/m365sim/batch.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import struct
import sys
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tools.m365sim.entra import (
    AadError,
    Entra,
    TokenInvalid,
    aad_error_body,
    aad_error_response,
    token_client_id,
)
from tools.m365sim.errors import error_body, unreadable_json_body
from tools.m365sim.faults import Faults
from tools.m365sim.keyvault import KvError, Vault
from tools.m365sim.model import GraphRequest, GraphResponse
from tools.m365sim.state import GRAPH_APP_ID, GRAPH_RESOURCE, RequestLog, SimClock, Tenant
from tools.m365sim.throttle import Throttler, tenant_ru_budget, too_many_requests_body

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


class Simulator:
    """Everything the simulated cloud knows; one per process, emptied by ``POST /_sim/reset``."""

    def __init__(self) -> None:
        self.clock = SimClock()
        self.tenants: dict[str, Tenant] = {}
        self.vault_tenant_id: str | None = None
        self.faults = Faults()
        self.throttle = Throttler(self.clock)
        self.log = RequestLog(self.clock)
        self.entra = Entra(self)
        self.vault = Vault(self)

    def reset(self) -> None:
        self.clock.offset = 0.0
        self.tenants.clear()
        self.vault_tenant_id = None
        self.faults.reset()
        self.throttle.reset()
        self.log.clear()
        self.entra.reset()
        self.vault.reset()

    # ------------------------------------------------------------------ lookups
    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"https://{request.host}"

    def resolve_tenant(self, segment: str) -> Tenant | None:
        """A tenant by id or by one of its domain names (case-insensitive)."""
        seg = segment.lower()
        for t in self.tenants.values():
            if t.tenant_id.lower() == seg or seg in t.domain_names():
                return t
        return None

    def vault_tenant(self) -> Tenant | None:
        return self.tenants.get(self.vault_tenant_id) if self.vault_tenant_id else None

    def ru_budget(self, tenant: Tenant) -> int:
        override = self.faults.config.resourceUnitsPer10s
        return override if override is not None else tenant_ru_budget(tenant.directory.user_count())

    def directory_get(self, tenant: Tenant, path: str, query: dict[str, str]) -> GraphResponse | None:
        """A privileged internal read (the sign-in service looking a user up), not charged or logged."""
        req = GraphRequest(
            method="GET",
            path=path,
            query=query,
            headers={},
            body=None,
            tenant_id=tenant.tenant_id,
            app_id=GRAPH_APP_ID,
            permissions=frozenset({"User.Read.All", "Directory.Read.All"}),
            base_url="https://graph.microsoft.com/v1.0",
        )
        try:
            resp = tenant.directory.handle(req)
        except Exception:  # the directory's own bug must not break sign-in
            traceback.print_exc(file=sys.stderr)
            return None
        return resp if isinstance(resp, GraphResponse) else None

    # ------------------------------------------------------------------ Graph
    async def graph_call(
        self,
        tenant: Tenant,
        claims: dict[str, Any],
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        base_url: str,
        *,
        kind: str,
        logged_path: str,
    ) -> tuple[GraphResponse, int]:
        """Throttle, then hand the request to the tenant's directory; returns (response, RU charged)."""
        app_id = token_client_id(claims)
        decision = self.throttle.charge(tenant.tenant_id, app_id, method, path, query, self.ru_budget(tenant))
        if not decision.allowed:
            resp = GraphResponse(429, too_many_requests_body(), dict(decision.headers))
            ru = 0
        else:
            ru = decision.cost
            perms = claims.get("roles") if "scp" not in claims else str(claims.get("scp", "")).split()
            req = GraphRequest(
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                tenant_id=tenant.tenant_id,
                app_id=app_id,
                permissions=frozenset(perms or []),
                base_url=base_url,
                delegated="scp" in claims,
            )
            try:
                result: Any = tenant.directory.handle(req)
                if inspect.isawaitable(result):
                    result = await result
                resp = result
            except Exception:
                traceback.print_exc(file=sys.stderr)
                resp = GraphResponse(
                    500, error_body("generalException", "An unspecified error has occurred.")
                )
            resp.headers = {**resp.headers, **decision.headers}
        self.log.add(
            method=method,
            path=logged_path,
            status=resp.status,
            resource_units=ru,
            tenant_id=tenant.tenant_id,
            client_id=app_id,
            kind=kind,
        )
        return resp, ru


def log_unmetered(
    sim: Simulator,
    request: web.Request,
    *,
    status: int,
    kind: str,
    tenant_id: str | None = None,
    client_id: str | None = None,
    path: str | None = None,
) -> None:
    """Log an HTTP request that charged no resource units (refused, faulted, or not Graph): the request's
    method, and its raw path with the query unless ``path`` says otherwise."""
    sim.log.add(
        method=request.method,
        path=request.raw_path if path is None else path,
        status=status,
        resource_units=0,
        tenant_id=tenant_id,
        client_id=client_id,
        kind=kind,
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


def graph_auth_error(request: web.Request, message: str) -> web.Response:
    resp = GraphResponse(
        401,
        error_body("InvalidAuthenticationToken", message),
        {
            "WWW-Authenticate": f'Bearer realm="", authorization_uri="{Simulator.base_url(request)}/common/oauth2/'
            f'authorize", client_id="{GRAPH_APP_ID}"'
        },
    )
    return graph_http_response(resp, request)


GRAPH_TOKEN_MESSAGES = {
    "signature": "Access token validation failure.",
    "expired": "Lifetime validation failed, the token is expired.",
    "not_yet_valid": "Access token has expired or is not yet valid.",
    "audience": "Access token validation failure. Invalid audience.",
    "issuer": "Access token validation failure. Invalid issuer.",
}


def authenticate_graph(sim: Simulator, request: web.Request) -> tuple[Tenant, dict[str, Any]] | web.Response:
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not token:
        return graph_auth_error(request, "Access token is empty.")
    try:
        claims = sim.entra.validate(token, (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID))
    except TokenInvalid as exc:
        return graph_auth_error(request, GRAPH_TOKEN_MESSAGES[exc.reason])
    return sim.tenants[claims["tid"]], claims


def split_graph_url(raw: str) -> tuple[str, dict[str, str], str]:
    """(decoded path below /v1.0, decoded query, path-with-query for the log) of a raw path."""
    path_part, _, query = raw.partition("?")
    path = urllib.parse.unquote(path_part)
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return path, params, raw


async def graph_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    raw = request.raw_path
    below = raw[len("/v1.0") :] or "/"
    path, query, _ = split_graph_url(below)
    auth = authenticate_graph(sim, request)
    if isinstance(auth, web.Response):
        log_unmetered(sim, request, status=auth.status, kind="graph")
        return auth
    tenant, claims = auth
    base_url = f"{sim.base_url(request)}/v1.0"
    if path.rstrip("/") == "/$batch":
        from tools.m365sim.batch import run_batch

        return await run_batch(sim, request, tenant, claims, base_url)
    body: Any = None
    raw_body = await request.read()
    if raw_body.strip():
        try:
            body = json.loads(raw_body)
        except ValueError:
            resp = GraphResponse(400, unreadable_json_body())
            log_unmetered(
                sim,
                request,
                status=400,
                kind="graph",
                tenant_id=tenant.tenant_id,
                client_id=token_client_id(claims),
            )
            return graph_http_response(resp, request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    resp, ru = await sim.graph_call(
        tenant,
        claims,
        request.method.upper(),
        path,
        query,
        headers,
        body,
        base_url,
        kind="graph",
        logged_path=raw,
    )
    request["ru"] = ru
    return graph_http_response(resp, request)


# ---------------------------------------------------------------------- Entra routes
async def token_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    resp, tenant_id, client_id = await sim.entra.token_endpoint(request, request.match_info["tenant"])
    log_unmetered(
        sim,
        request,
        status=resp.status,
        kind="token",
        tenant_id=tenant_id,
        client_id=client_id,
        path=request.path,
    )
    return resp


async def authorize_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    return await sim.entra.authorize(request, request.match_info["tenant"])


async def openid_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    try:
        return web.json_response(
            sim.entra.openid_configuration(sim.base_url(request), request.match_info["tenant"])
        )
    except AadError as err:
        return aad_error_response(sim, err)


async def jwks_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    try:
        return web.json_response(sim.entra.jwks(sim.base_url(request), request.match_info["tenant"]))
    except AadError as err:
        return aad_error_response(sim, err)


async def keyvault_handler(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    resp, tenant_id, client_id = await sim.vault.handle(request)
    log_unmetered(sim, request, status=resp.status, kind="keyvault", tenant_id=tenant_id, client_id=client_id)
    return resp


# ---------------------------------------------------------------------- faults & logging
def request_kind(path: str) -> str | None:
    """Which simulated service a path belongs to (faults apply to these only)."""
    if path.startswith("/v1.0/") or path == "/v1.0":
        return "graph"
    if path.endswith("/oauth2/v2.0/token"):
        return "token"
    if path.startswith(("/secrets", "/deletedsecrets")):
        return "keyvault"
    return None


def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def fault_response(sim: Simulator, request: web.Request, kind: str, fault: str) -> web.Response:
    retry = str(sim.faults.config.retryAfterSeconds)
    if kind == "graph":
        if fault == "500":
            r = GraphResponse(500, error_body("generalException", "An unspecified error has occurred."))
        else:
            r = GraphResponse(
                503,
                error_body(
                    "serviceNotAvailable",
                    "The service is temporarily unavailable for maintenance or is overloaded. "
                    "You may repeat the request after a delay, the length of which may be specified in a Retry-After "
                    "header.",
                ),
                {"Retry-After": retry},
            )
        return graph_http_response(r, request)
    if kind == "token":
        err = (
            AadError(
                500,
                "server_error",
                50000,
                "There was an error issuing a token or an issue with our sign-in service.",
            )
            if fault == "500"
            else AadError(
                503,
                "temporarily_unavailable",
                90024,
                "RequestBudgetExceededError - A transient error has occurred. Try again.",
            )
        )
        headers = {"Retry-After": retry} if fault == "503" else {}
        return web.json_response(aad_error_body(sim, err), status=err.status, headers=headers)
    if fault == "500":
        return KvError(500, "InternalServerError", "An unexpected error occurred.").response()
    return KvError(
        503, "ServiceUnavailable", "The service is temporarily unavailable.", headers={"Retry-After": retry}
    ).response()


SIM = web.AppKey("sim", Simulator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def sim_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim: Simulator = request.app[SIM]
    started = time.perf_counter()
    status: int | str = 500
    try:
        kind = request_kind(request.path)
        if kind is not None:
            cfg = sim.faults.config
            if cfg.latencyMs > 0:
                await asyncio.sleep(cfg.latencyMs / 1000)
            fault = sim.faults.pick()
            if fault is not None:
                log_kind = "batch" if request.path.rstrip("/").endswith("/$batch") else kind
                if fault in ("reset", "timeout"):
                    status = fault
                    log_unmetered(sim, request, status=0, kind=log_kind)
                    if fault == "timeout":
                        await asyncio.sleep(cfg.timeoutMs / 1000)
                    _reset_connection(request)
                    raise asyncio.CancelledError()
                resp = fault_response(sim, request, kind, fault)
                log_unmetered(sim, request, status=resp.status, kind=log_kind)
                status = resp.status
                return resp
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        ru = request.get("ru", 0)
        # Path only: queries may carry login hints or codes; never a token, secret or body.
        print(f"{request.method} {request.path} {status} RU={ru} {ms:.1f}ms", file=sys.stderr, flush=True)


async def not_found(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": {"code": "NotFound", "message": f"No simulated endpoint at {request.path}."}}, status=404
    )


def create_app(sim: Simulator | None = None) -> web.Application:
    from tools.m365sim.control import add_control_routes

    app = web.Application(middlewares=[sim_middleware], client_max_size=4 * 1024 * 1024)
    app[SIM] = sim or Simulator()
    add_control_routes(app)
    r = app.router
    r.add_route("*", "/v1.0", graph_handler)
    r.add_route("*", "/v1.0/{tail:.*}", graph_handler)
    r.add_route("*", "/secrets", keyvault_handler)
    r.add_route("*", "/secrets/{tail:.*}", keyvault_handler)
    r.add_route("*", "/deletedsecrets", keyvault_handler)
    r.add_route("*", "/deletedsecrets/{tail:.*}", keyvault_handler)
    r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_handler)
    r.add_get("/{tenant}/discovery/v2.0/keys", jwks_handler)
    r.add_route("*", "/{tenant}/oauth2/v2.0/token", token_handler)
    r.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", authorize_handler)
    r.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", authorize_handler)
    r.add_route("*", "/{tail:.*}", not_found)
    return app
