"""What every HTTP door shares: authenticating and authorising its caller, validating its input with the
operation's models, and answering JSON or RFC 9457 problem+json. A door's own body is then a few lines: call one
thing in ``shared`` and shape the result. (``functions.routes`` registers the operations and loads this module,
and the door, with the first request.)

Errors map in one place: a request the OpenAPI document refuses (schema validation) → 400 naming each field;
``BadInput`` (a confirmation missing, a document unsafe to parse) → 400; ``Invalid`` (well-formed, but refused for a
reason the document cannot express: a cursor Warden did not issue, credentials Entra ID refuses...) → 422;
``NotFound`` → 404; ``Conflict`` → 409; ``PreconditionFailed`` → 412;
``NotImplementedYet`` → 501; ``Upstream`` → 502; a missing or invalid token → 401 with
``WWW-Authenticate: Bearer`` (RFC 6750); a token without the role → 403; misconfiguration → 503.
Anything else is logged with its correlation id and answered 500 without detail.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import azure.functions as func
from pydantic import BaseModel, ValidationError

from functions.responses import json_response, problem_response
from shared.api.operations import PATH_PATTERNS, Operation
from shared.api.problems import Problem
from shared.api.schemas import MAX_IF_MATCH
from shared.api.views import etag_header, if_match_etag
from shared.bootstrap import Container, get_container
from shared.config import ConfigError
from shared.domain.errors import (
    BadInput,
    ConcurrentUpdate,
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    NotImplementedYet,
    PreconditionFailed,
    Upstream,
)
from shared.logs import correlated, log_event
from shared.service.access import Principal, Role, Unauthenticated
from shared.service.context import Actor

log = logging.getLogger("warden.http")
MAX_BODY_BYTES = 64 * 1024
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
STATUS_OF: dict[type[DomainError], int] = {
    BadInput: 400,
    Invalid: 422,
    NotFound: 404,
    Conflict: 409,
    ConcurrentUpdate: 409,
    PreconditionFailed: 412,
    NotImplementedYet: 501,
    Upstream: 502,
}
"""The HTTP status of each kind of domain error (the first that matches), for the API and the console alike."""


B = TypeVar("B", bound=BaseModel | None)
Q = TypeVar("Q", bound=BaseModel | None)


@dataclass(frozen=True)
class Call(Generic[B, Q]):
    """One validated request, as a door's body sees it: ``body`` and ``query`` are the operation's models
    (``Operation.body_model`` / ``Operation.query_model``) as validated, or None when it declares none. A door
    declares them in its signature (``call: Call[s.GroupCreate, None]``); ``test_doors`` checks each against its
    operation."""

    principal: Principal | None
    actor: Actor
    params: dict[str, str]
    body: B
    query: Q
    if_match: str | None = None
    """The storage ETag ``If-Match`` names (None: no condition)."""
    raw: bytes = b""
    """The request body as received (for operations that verify a signature over it)."""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Result:
    status: int
    body: BaseModel | None = None
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    html: str | None = None
    """A page for a browser (operations declared ``html``), instead of ``body``."""


Handler = Callable[[Container, Call[B, Q]], Awaitable[Result]]
"""A door: ``(container, call) -> result``."""


def role_needed(role: Role) -> str:
    """The app roles that grant ``role``, as an answer names them."""
    return "Warden.Admin" if role == "admin" else "Warden.Reader or Warden.Admin"


def validation_problem(exc: ValidationError, where: str) -> Problem:
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"]) or where
        errors.append({"field": loc, "in": where, "message": e["msg"]})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(400, detail or f"invalid {where}", title="Invalid request", extensions={"errors": errors})


def _parse_body(op: Operation, req: func.HttpRequest) -> BaseModel | None:
    model = op.body_model
    if model is None:
        return None
    raw = req.get_body() or b""
    if not raw and not op.body_required:
        return model.model_validate({})  # an optional body left out: its defaults
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted")
    ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Problem(415, "the body must be JSON: send Content-Type: application/json")
    try:
        json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(
            400, f"the body is not valid JSON ({type(exc).__name__})", title="Invalid request"
        ) from None
    try:
        return model.model_validate_json(raw)  # strict: JSON types as the schema says, no coercion
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None


def _if_match(op: Operation, req: func.HttpRequest) -> str | None:
    header = req.headers.get("if-match")
    if header is None or not (op.etag and op.method in ("PATCH", "DELETE")):
        return None
    if len(header) > MAX_IF_MATCH:
        raise Problem(400, f"If-Match: at most {MAX_IF_MATCH} characters", title="Invalid request")
    return if_match_etag(header)


def _parse_query(op: Operation, req: func.HttpRequest) -> BaseModel | None:
    model = op.query_model
    if model is None:
        return None
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None


async def _authorise(container: Container, op: Operation, req: func.HttpRequest) -> Principal | None:
    if op.role is None:
        return None
    header = req.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    try:
        if not header:
            raise Unauthenticated("a bearer token is required", missing=True)
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = await container.token_validator.validate(token.strip())
    except Unauthenticated as exc:
        challenge = 'Bearer realm="warden"'
        if not exc.missing:
            challenge += f', error="invalid_token", error_description="{exc.reason}"'
        raise Problem(401, exc.reason, headers={"WWW-Authenticate": challenge}) from None
    if not principal.may(op.role):
        raise Problem(403, f"this operation needs the app role {role_needed(op.role)}")
    return principal


def _params(op: Operation, req: func.HttpRequest) -> dict[str, str]:
    params = {name: req.route_params.get(name, "") for name in op.path_params}
    for name, value in params.items():
        pattern = PATH_PATTERNS.get(name)
        named = re.fullmatch(pattern[0], value) and len(value) <= 253 if pattern else _GUID.match(value)
        if not named:  # ids are GUIDs (domains, domain names): anything else names nothing
            raise Problem(404, f"no resource with {name} '{value[:64]}'")
    return {k: v.lower() for k, v in params.items()}


def _render(op: Operation, result: Result) -> func.HttpResponse:
    headers = dict(result.headers)
    if result.html is not None:
        return func.HttpResponse(
            result.html,
            status_code=result.status,
            mimetype="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'", **headers},
        )
    if result.etag is not None and op.etag:
        headers["ETag"] = etag_header(result.etag)
    if result.status == 204 or result.body is None:
        return func.HttpResponse(status_code=result.status, headers={"Cache-Control": "no-store", **headers})
    return json_response(result.body.model_dump(mode="json"), result.status, headers)


async def serve(op: Operation, handler: Handler[B, Q], req: func.HttpRequest) -> func.HttpResponse:
    with correlated(req.headers.get("x-correlation-id")) as correlation_id:
        try:
            try:
                container = get_container()
            except ConfigError as exc:
                log_event(
                    log, "http.misconfigured", level=logging.ERROR, operation=op.name, problems=exc.problems
                )
                raise Problem(
                    503, "Warden is not configured: " + "; ".join(exc.problems), title="Configuration invalid"
                ) from None
            principal = await _authorise(container, op, req)
            # The models validated are the operation's; the door declares the same ones (``test_doors``).
            call: Call[B, Q] = Call(
                principal=principal,
                actor=Actor(principal.actor if principal else "anonymous", correlation_id),
                params=_params(op, req),
                body=cast(B, _parse_body(op, req)),
                query=cast(Q, _parse_query(op, req)),
                if_match=_if_match(op, req),
                raw=req.get_body() or b"",
                headers={k.lower(): v for k, v in req.headers.items()},
            )
            result = await handler(container, call)
        except Problem as problem:
            return problem_response(problem)
        except DomainError as exc:
            status = next(code for kind, code in STATUS_OF.items() if isinstance(exc, kind))
            if status >= 500:
                log_event(log, "http.upstream", level=logging.WARNING, operation=op.name, detail=exc.detail)
            extensions = {k: v for k, v in exc.extensions.items() if v is not None}
            return problem_response(Problem(status, exc.detail, extensions=extensions))
        except Exception as exc:
            log_event(log, "http.failed", level=logging.ERROR, operation=op.name, error=type(exc).__name__)
            log.exception("unhandled error in %s (correlation id %s)", op.name, correlation_id)
            return problem_response(Problem(500, f"unexpected error; correlation id {correlation_id}"))
        log_event(log, "http.served", operation=op.name, status=result.status)
        return _render(op, result)
