"""The SCIM 2.0 service provider (``/api/scim/v2/...``, RFC 7644): one function for the whole protocol, whose
routing, discovery, queries, writes, ETags and Bulk are SCIM's own (``shared.api.scim.server``).

The door authenticates the SCIM source by its bearer token, bounds the body, checks its media type, and answers
``application/scim+json`` — SCIM error bodies included (a 401 carries ``WWW-Authenticate: Bearer``). SCIM's
models, and Warden's own modules, are imported on the first SCIM request, never at the app's start (import-light:
the standard library, ``azure.functions`` and ``shared.logs``).
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.scim")

SCIM_JSON = "application/scim+json"
MAX_BODY = 1024 * 1024
"""ServiceProviderConfig's bulk.maxPayloadSize; no other SCIM request comes near it."""
ROUTE = "scim/v2/{*path}"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _answer(
    status: int, body: dict[str, object] | None, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    h = {"Cache-Control": "no-store", **(headers or {})}
    if body is None:
        return func.HttpResponse(status_code=status, headers=h)
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=SCIM_JSON, headers=h)


def _error(
    status: int, detail: str, headers: dict[str, str] | None = None, scim_type: str | None = None
) -> func.HttpResponse:
    body: dict[str, object] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
    if scim_type:
        body["scimType"] = scim_type
    return _answer(status, body, headers)


def _base(url: str) -> str:
    """The absolute URL of ``/scim/v2`` as the client called it (locations and ``$ref`` values point there)."""
    path_start = url.find("/", url.find("//") + 2)
    lowered = url.lower()
    at = lowered.find("/scim/v2", path_start)
    return url[: at + len("/scim/v2")] if at >= 0 else url.split("?", 1)[0].rstrip("/")


@bp.function_name("scim")
@bp.route(route=ROUTE, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
async def scim(req: func.HttpRequest) -> func.HttpResponse:
    """SCIM 2.0 (RFC 7643/7644) for HR sources of kind scim, with the source's bearer token."""
    from shared.bootstrap import get_container
    from shared.config import ConfigError

    with correlated(req.headers.get("x-correlation-id")) as correlation_id:
        try:
            app = get_container()
        except ConfigError as exc:
            log_event(log, "scim.misconfigured", level=logging.ERROR, problems=exc.problems)
            return _error(503, "Warden is not configured: " + "; ".join(exc.problems))
        try:
            response = await _serve(app, req, correlation_id)
        except Exception as exc:  # never a stack to the client: logged with the correlation id
            log_event(log, "scim.failed", level=logging.ERROR, error=type(exc).__name__)
            log.exception("unhandled SCIM error (correlation id %s)", correlation_id)
            return _error(500, f"unexpected error; correlation id {correlation_id}")
        log_event(log, "scim.served", method=req.method, status=response.status_code)
        return response


async def _serve(app: object, req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    from shared.api.scim.server import ScimServer
    from shared.bootstrap import Container
    from shared.service.context import Actor
    from shared.service.hr.sources import SourceRefused

    assert isinstance(app, Container)
    header = req.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="scim"'}
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401, "a SCIM source's bearer token is required (Authorization: Bearer <token>)", challenge
        )
    try:
        source = await app.sources.scim_source(token.strip())
    except SourceRefused as exc:
        if exc.status == 401:
            challenge["WWW-Authenticate"] += f', error="invalid_token", error_description="{exc.reason}"'
            return _error(401, exc.reason, challenge)
        return _error(exc.status, exc.reason)
    body = req.get_body() or b""
    declared = (req.headers.get("content-length") or "").strip()
    if max(len(body), int(declared) if declared.isdigit() else 0) > MAX_BODY:
        return _error(413, f"the body is larger than {MAX_BODY} bytes", scim_type=None)
    if body:
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype not in (SCIM_JSON, "application/json"):
            return _error(415, "send the body as application/scim+json (or application/json)")
    server = ScimServer(app.scim, source, _base(req.url), Actor(source.actor, correlation_id))
    path = req.route_params.get("path", "") or ""
    query = {k: v for k, v in req.params.items()}
    headers = {k.lower(): v for k, v in req.headers.items()}
    answer = await server.handle(req.method, path, query, headers, body)
    return _answer(answer.status, answer.body, answer.headers)
