"""The simulator's aiohttp application: routes, injected faults and latency, the access log, and keeping the world.

Faults apply to Graph, token and Key Vault requests, never to ``/_sim``; inside a ``$batch`` only the outer request
is subject to them. Their bodies follow each service's own error format:
- Graph: https://learn.microsoft.com/en-us/graph/errors (500 ``generalException`` "An unspecified error has
  occurred."; 503 ``serviceNotAvailable`` with ``Retry-After``);
- Entra's token endpoint: https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
  (``temporarily_unavailable``; AADSTS90024 RequestBudgetExceededError "A transient error has occurred");
- Key Vault: https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes.

When the world is kept in a file (``--state-dir``), a change is written within a second and again when the
application stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from tools.m365sim.backends.errors import EntraError, GraphError, SimError, VaultError
from tools.m365sim.backends.world import World
from tools.m365sim.http.context import KEEPING, WORLD, Keeping, json_error, log_unmetered, world_of
from tools.m365sim.http.control import add_control_routes
from tools.m365sim.http.entra import (
    authorize_handler,
    jwks_handler,
    managed_identity_handler,
    openid_handler,
    token_handler,
)
from tools.m365sim.http.graph.call import graph_error_response
from tools.m365sim.http.graph.endpoint import graph_handler
from tools.m365sim.http.keyvault import keyvault_handler

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAVE_INTERVAL_S = 1.0
READ_ONLY_CONTROL = frozenset(
    {"/_sim/health", "/_sim/requests", "/_sim/faults", "/_sim/clock", "/_sim/tenants"}
)


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


def fault_response(world: World, request: web.Request, kind: str, fault: str) -> web.Response:
    retry = {"Retry-After": str(world.faults.config.retryAfterSeconds)}
    if kind == "graph":
        if fault == "500":
            return graph_error_response(
                GraphError(500, "generalException", "An unspecified error has occurred."), request
            )
        unavailable = GraphError(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request "
            "after a delay, the length of which may be specified in a Retry-After header.",
            headers=retry,
        )
        return graph_error_response(unavailable, request)
    error: SimError
    if kind == "token":
        error = (
            EntraError(
                500,
                "server_error",
                50000,
                "There was an error issuing a token or an issue with our sign-in service.",
            )
            if fault == "500"
            else EntraError(
                503,
                "temporarily_unavailable",
                90024,
                "RequestBudgetExceededError - A transient error has occurred. Try again.",
                headers=retry,
            )
        )
    elif fault == "500":
        error = VaultError(500, "InternalServerError", "An unexpected error occurred.")
    else:
        error = VaultError(
            503, "ServiceUnavailable", "The service is temporarily unavailable.", headers=retry
        )
    return json_error(error, world.clock())


def changes_world(request: web.Request) -> bool:
    """Whether a request may have changed the world (what a restart must keep)."""
    if request.path.startswith("/_sim/"):
        return not (request.method == "GET" and request.path in READ_ONLY_CONTROL)
    return request.method != "GET" or request.path.endswith("/oauth2/v2.0/authorize")


@web.middleware
async def sim_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = world_of(request)
    started = time.perf_counter()
    status: int | str = 500
    try:
        kind = request_kind(request.path)
        if kind is not None:
            cfg = world.faults.config
            if cfg.latencyMs > 0:
                await asyncio.sleep(cfg.latencyMs / 1000)
            aimed = world.faults.aimed(request.method, request.path, "before") if kind == "graph" else None
            fault = str(aimed.status) if aimed is not None else world.faults.pick()
            if fault is not None:
                log_kind = "batch" if request.path.rstrip("/").endswith("/$batch") else kind
                if fault in ("reset", "timeout"):
                    status = fault
                    log_unmetered(request, status=0, kind=log_kind)
                    if fault == "timeout":
                        await asyncio.sleep(cfg.timeoutMs / 1000)
                    _reset_connection(request)
                    raise asyncio.CancelledError()
                resp = fault_response(world, request, kind, fault)
                log_unmetered(request, status=resp.status, kind=log_kind)
                status = resp.status
                return resp
        response = await handler(request)
        status = response.status
        if changes_world(request):
            request.app[KEEPING].dirty = True
        if kind == "graph":
            lost = world.faults.aimed(request.method, request.path, "after")
            if lost is not None:  # processed, then its answer lost
                status = lost.status
                return fault_response(world, request, kind, str(lost.status))
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


async def keep_world(app: web.Application) -> AsyncIterator[None]:
    """Write the world after changes (at most once a second) and when the application stops."""
    keeping = app[KEEPING]
    world = app[WORLD]
    if keeping.file is None:
        yield
        return
    file = keeping.file

    def save() -> None:
        keeping.dirty = False
        file.save(world)

    async def loop() -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S)
            if keeping.dirty:
                save()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        save()


def create_app(world: World | None = None, keeping: Keeping | None = None) -> web.Application:
    app = web.Application(middlewares=[sim_middleware], client_max_size=4 * 1024 * 1024)
    app[WORLD] = world or World()
    app[KEEPING] = keeping or Keeping()
    app.cleanup_ctx.append(keep_world)
    add_control_routes(app)
    r = app.router
    r.add_route("*", "/v1.0", graph_handler)
    r.add_route("*", "/v1.0/{tail:.*}", graph_handler)
    r.add_route("*", "/secrets", keyvault_handler)
    r.add_route("*", "/secrets/{tail:.*}", keyvault_handler)
    r.add_route("*", "/deletedsecrets", keyvault_handler)
    r.add_route("*", "/deletedsecrets/{tail:.*}", keyvault_handler)
    r.add_get("/msi/token", managed_identity_handler)
    r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_handler)
    r.add_get("/{tenant}/discovery/v2.0/keys", jwks_handler)
    r.add_route("*", "/{tenant}/oauth2/v2.0/token", token_handler)
    r.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", authorize_handler)
    r.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", authorize_handler)
    r.add_route("*", "/{tail:.*}", not_found)
    return app
