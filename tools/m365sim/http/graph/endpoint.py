"""The aiohttp handler of ``/v1.0/…``: authenticate, parse, then one ``graph_call`` (or a ``$batch`` of them)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from aiohttp import web

from tools.m365sim.backends.entra.tokens import token_client_id
from tools.m365sim.http.context import base_url, log_unmetered, world_of
from tools.m365sim.http.graph.batch import run_batch
from tools.m365sim.http.graph.call import (
    authenticate,
    graph_call,
    graph_error_response,
    graph_http_response,
    request_for,
    unreadable_json,
)


def split_graph_url(raw: str) -> tuple[str, dict[str, str]]:
    """(decoded path below /v1.0, decoded query) of a raw path."""
    path_part, _, query = raw.partition("?")
    return urllib.parse.unquote(path_part), dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


async def graph_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    raw = request.raw_path
    path, query = split_graph_url(raw[len("/v1.0") :] or "/")
    auth = authenticate(request)
    if isinstance(auth, web.Response):
        log_unmetered(request, status=auth.status, kind="graph")
        return auth
    tenant, claims = auth
    base = f"{base_url(request)}/v1.0"
    if path.rstrip("/") == "/$batch":
        return await run_batch(request, tenant, claims, base, token_client_id(claims))
    body: Any = None
    raw_body = await request.read()
    if raw_body.strip():
        try:
            body = json.loads(raw_body)
        except ValueError:
            log_unmetered(
                request,
                status=400,
                kind="graph",
                tenant_id=tenant.tenant_id,
                client_id=token_client_id(claims),
            )
            return graph_error_response(unreadable_json(), request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    req = request_for(tenant, claims, request.method.upper(), path, query, headers, body, base)
    resp, ru = graph_call(world, tenant, claims, req, kind="graph", logged_path=raw)
    request["ru"] = ru
    return graph_http_response(resp, request)
