"""JSON batching: ``POST /v1.0/$batch``.

Follows https://learn.microsoft.com/en-us/graph/json-batching :
- the body has one required property, ``requests``; each request has ``id`` (required, unique, "Not
  case-sensitive"), ``method``, relative ``url`` ("/users"), optional ``headers``, ``body`` (which requires a
  ``Content-Type`` header) and ``dependsOn``;
- "JSON batch requests are currently limited to 20 individual requests";
- "If the batch request itself is malformed, the status code is 400. If the batch request is parseable, the
  status code is 200" and each response carries its own ``status``;
- "Individual responses might appear in a different order than the requests" (shuffled here unless dependsOn
  sequences them);
- "If an individual request fails, any request that depends on that request fails with status code 424";
- "Requests in a batch are evaluated individually against the applicable throttling limits and if any request
  exceeds the limits, it fails with a status of 429".
Each inner request is authorized with the outer token and goes through the same ``graph_call`` as a lone request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import random
import urllib.parse
from typing import Any

from aiohttp import web

from tools.m365sim.backends.entra.tokens import token_client_id
from tools.m365sim.backends.errors import GraphError, graph_error_body
from tools.m365sim.backends.tenants import Tenant
from tools.m365sim.backends.world import World
from tools.m365sim.http.context import log_unmetered, world_of
from tools.m365sim.http.graph.call import graph_call, graph_http_response, request_for, unreadable_json
from tools.m365sim.http.graph.request import GraphResponse

MAX_REQUESTS = 20
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _validate(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _bad("Invalid batch payload format.")
    items: list[dict[str, Any]] = payload["requests"]
    if not items:
        raise _bad("Invalid batch payload format. The batch must contain at least one request.")
    if len(items) > MAX_REQUESTS:
        # Graph's wording for this case is not on the page; the limit and the 400 are.
        raise _bad(f"Number of batch requests exceeds the maximum of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise _bad("Invalid batch payload format.")
        rid = item.get("id")
        # json-batching: id is "Required. String."; a number is refused like a missing id (our choice of message).
        if not isinstance(rid, str) or rid == "":
            raise _bad("Invalid batch payload format. Every request must have a string id.")
        key = str(rid).lower()
        if key in seen:
            raise _bad(f"Batch request contains duplicate id '{rid}'. Ids must be unique.")
        seen.add(key)
        method = item.get("method")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise _bad(f"Invalid batch payload format. Request '{rid}' has a missing or invalid method.")
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            raise _bad(f"Invalid batch payload format. Request '{rid}' has a missing url.")
        if urllib.parse.urlsplit(url).scheme:
            raise _bad(f"Invalid request url for request '{rid}': the url must be relative.")
        headers = item.get("headers")
        if headers is not None and (
            not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
        ):
            raise _bad(
                f"Invalid batch payload format. The headers of request '{rid}' must be an object of strings."
            )
        if "body" in item and item["body"] is not None:
            names = {k.lower() for k in (headers or {})}
            if "content-type" not in names:
                raise _bad(
                    f"Content-Type header must be specified for request '{rid}' because it has a body."
                )
    for item in items:
        deps = item.get("dependsOn")
        if deps is None:
            continue
        # json-batching: dependsOn "is an array of strings that references the id of a different individual request".
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise _bad(
                f"Invalid batch payload format. dependsOn of request '{item['id']}' must be a list of ids."
            )
        for d in deps:
            if str(d).lower() not in seen:
                raise _bad(f"Request '{item['id']}' depends on request '{d}', which is not in the batch.")
            if str(d).lower() == str(item["id"]).lower():
                raise _bad(f"Request '{item['id']}' cannot depend on itself.")
    return items


def _order(items: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """A topological order (dependencies first); independent requests in random order."""
    by_id = {str(i["id"]).lower(): i for i in items}
    pending = list(items)
    rng.shuffle(pending)
    done: set[str] = set()
    out: list[dict[str, Any]] = []
    while pending:
        ready = [i for i in pending if all(str(d).lower() in done for d in (i.get("dependsOn") or []))]
        if not ready:
            raise _bad("Invalid batch payload format. dependsOn contains a cycle.")
        nxt = ready[0]
        pending.remove(nxt)
        done.add(str(nxt["id"]).lower())
        out.append(nxt)
    assert len(out) == len(by_id)
    return out


def _inner_response(rid: str, resp: GraphResponse) -> dict[str, Any]:
    headers: dict[str, str] = {"Cache-Control": "no-cache"}
    headers.update(resp.headers)
    out: dict[str, Any] = {"id": rid, "status": resp.status, "headers": headers}
    if resp.status != 204 and resp.body is not None:
        headers.setdefault(
            "Content-Type",
            "application/json;odata.metadata=minimal;odata.streaming=true;"
            "IEEE754Compatible=false;charset=utf-8",
        )
        headers.setdefault("OData-Version", "4.0")
        out["body"] = resp.body
    return out


async def run_batch(
    request: web.Request, tenant: Tenant, claims: dict[str, Any], base_url: str, app_id: str
) -> web.Response:
    world = world_of(request)

    def outer(status: int, body: Any) -> web.Response:
        log_unmetered(request, status=status, kind="batch", tenant_id=tenant.tenant_id, client_id=app_id)
        return graph_http_response(GraphResponse(status, body), request)

    now = world.clock()
    if request.method != "POST":
        method_error = GraphError(
            405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
        )
        return outer(405, method_error.body(now))
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return outer(400, unreadable_json().body(now))
    try:
        items = _validate(payload)
        rng = (
            random.Random(world.faults.config.seed)
            if world.faults.config.seed is not None
            else random.Random()
        )
        ordered = _order(items, rng)
    except GraphError as exc:
        return outer(400, exc.body(now))

    results: dict[str, GraphResponse] = {}
    responses: list[dict[str, Any]] = []
    total_ru = 0
    for item in ordered:
        rid = str(item["id"])
        failed = [str(d) for d in (item.get("dependsOn") or []) if results[str(d).lower()].status >= 400]
        if failed:
            resp = GraphResponse(
                424,
                graph_error_body(
                    "FailedDependency", f"The request depends on request '{failed[0]}', which failed.", now
                ),
            )
            world.log.add(
                method=str(item["method"]).upper(),
                path="/v1.0/" + str(item["url"]).lstrip("/"),
                status=424,
                resource_units=0,
                tenant_id=tenant.tenant_id,
                client_id=app_id,
                kind="batch-item",
            )
        else:
            resp, ru = _run_item(world, tenant, claims, item, base_url)
            total_ru += ru
        results[rid.lower()] = resp
        responses.append(_inner_response(rid, resp))
    request["ru"] = total_ru
    return outer(200, {"responses": responses})


def _run_item(
    world: World, tenant: Tenant, claims: dict[str, Any], item: dict[str, Any], base_url: str
) -> tuple[GraphResponse, int]:
    url = str(item["url"]).strip()
    rel = "/" + url.lstrip("/")
    if rel.lower().startswith(("/v1.0/", "/beta/")):
        rel = rel[rel.index("/", 1) :]
    path_part, _, query_part = rel.partition("?")
    path = urllib.parse.unquote(path_part)
    query = dict(urllib.parse.parse_qsl(query_part, keep_blank_values=True))
    method = str(item["method"]).upper()
    logged = "/v1.0" + rel
    if path.rstrip("/").lower() == "/$batch":
        nested = GraphError(400, "BadRequest", "Nested batch requests are not supported.")
        resp = GraphResponse(400, nested.body(world.clock()))
        world.log.add(
            method=method,
            path=logged,
            status=400,
            resource_units=0,
            tenant_id=tenant.tenant_id,
            client_id=token_client_id(claims),
            kind="batch-item",
        )
        return resp, 0
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    body = item.get("body")
    if isinstance(body, str) and "json" in headers.get("content-type", ""):
        # "Might be a JSON object or a base64 URL-encoded value" (msgraph-core sends non-object JSON so).
        with contextlib.suppress(ValueError, binascii.Error):
            body = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    req = request_for(tenant, claims, method, path, query, headers, body, base_url)
    return graph_call(world, tenant, claims, req, kind="batch-item", logged_path=logged)
