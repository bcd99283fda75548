"""The published OpenAPI 3.1 document (``GET /api/openapi.json``), generated from ``shared.api.operations``
and the pydantic models that validate requests and shape responses. A test checks that every HTTP route the
app registers is described here and nothing else.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api import schemas
from shared.api.operations import OPERATIONS, PATH_PATTERNS, Operation

PROBLEM_JSON = "application/problem+json"
REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "invalid input: `detail` names each bad field (problem+json)",
    401: "no valid bearer token (problem+json; `WWW-Authenticate: Bearer`)",
    403: "the token lacks the app role this operation needs (problem+json)",
    404: "no such resource (problem+json)",
    409: "conflicts with existing state (problem+json)",
    412: "`If-Match` does not match the current ETag (problem+json)",
    413: "the body is larger than Warden accepts (problem+json)",
    415: "the body must be application/json (problem+json)",
    422: "well-formed, but refused for a reason the document cannot express (a cursor Warden did not issue, "
    "credentials Entra ID refuses, a confirmation that does not match...): `detail` says which (problem+json)",
    501: "not available in this version (problem+json)",
    502: "Entra ID or Graph refused or did not answer (problem+json)",
    503: "Warden is misconfigured or a dependency is down (problem+json)",
}


_WEBHOOK_HEADERS: list[dict[str, Any]] = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "the message id, the same on every retry: a repeated id is a no-op answered 202",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "when this attempt was sent, in Unix seconds; more than 5 minutes off is refused (401)",
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks)",
        "schema": {"type": "string", "maxLength": 4096},
    },
]
_SOURCE_HEADERS: list[dict[str, Any]] = [
    {**h, "required": False, "description": "a standard source: " + h["description"]}
    for h in _WEBHOOK_HEADERS
] + [
    {
        "name": "X-BambooHR-Timestamp",
        "in": "header",
        "required": False,
        "description": "a BambooHR source: when BambooHR sent the delivery (Unix seconds or ISO 8601); more than "
        "5 minutes off is refused (401)",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": "X-BambooHR-Signature",
        "in": "header",
        "required": False,
        "description": "a BambooHR source: hex HMAC-SHA256 of the raw body followed by X-BambooHR-Timestamp, "
        "keyed with the webhook's private key",
        "schema": {"type": "string", "maxLength": 128},
    },
]
SCIM_ROUTE = "/scim/v2/{*path}"
SCIM_METHODS = ("get", "post", "put", "patch", "delete")
SCIM: dict[str, Any] = {
    "basePath": "/scim/v2",
    "route": SCIM_ROUTE,
    "methods": [m.upper() for m in SCIM_METHODS],
    "contentType": "application/scim+json",
    "description": "Warden's SCIM 2.0 service provider (RFC 7643/7644) for HR sources of kind scim: "
    "ServiceProviderConfig, ResourceTypes, Schemas, Users (core and enterprise extension), Groups, Bulk, /.search. "
    "Authenticated with the source's bearer token, not an Entra token; errors are SCIM error bodies. SCIM describes "
    "itself (RFC 7644 §4): its resources and what it supports are served by its discovery endpoints, which "
    "scim2-tester checks in make test, so its paths are not repeated here.",
}
"""SCIM is its own protocol with its own discovery: one function serves it, described here by reference."""
CONSOLE: dict[str, Any] = {
    "route": "/console/{*path}",
    "methods": ["GET", "POST"],
    "contentType": "text/html",
    "description": "The admin console: server-rendered pages for a browser, signed in through Entra ID (authorization "
    "code + PKCE) with the admin API's app roles, its forms protected by CSRF tokens. Every page and action runs an "
    "operation of this document in-process, so its paths are not repeated here.",
}
"""The console is for browsers, not API clients: one function serves it, described here by reference."""
_SIGNED_401 = "the signature is missing or wrong, its timestamp is more than 5 minutes off, or no signing secret is configured (problem+json)"


def _ref(model: str) -> dict[str, str]:
    """A reference to the schema of ``model`` (its name in ``shared.api.schemas``)."""
    return {"$ref": REF.format(model=model)}


def _problem(status: int) -> dict[str, Any]:
    return {"description": _ERROR_TEXT[status], "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": f"{PATH_PATTERNS[name][1]}; any other value names nothing (404)",
            "schema": {"type": "string", "maxLength": 253, "pattern": PATH_PATTERNS[name][0]},
        }
        if name in PATH_PATTERNS
        else {
            "name": name,
            "in": "path",
            "required": True,
            "description": "a Warden id (GUID); any other value names nothing (404)",
            "schema": {"type": "string", "format": "uuid", "pattern": schemas.GUID_PATTERN},
        }
        for name in op.path_params
    ]
    query = op.query_model
    if query is not None:
        props = query.model_json_schema(ref_template=REF)
        required = set(props.get("required", []))
        for name, prop in props["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            schemas._not_null(prop)  # a query parameter is left out, never null
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if name not in required:
                # The Functions host drops a query parameter whose value is empty before the app sees it
                # (GrpcMessageConversionExtensions.ToRpcHttp): `?name=` is the same as leaving it out.
                param["allowEmptyValue"] = True
            params.append(param)
    if op.signed_body is not None:
        params.extend(_WEBHOOK_HEADERS if op.signature == "standard" else _SOURCE_HEADERS)
    if op.etag and op.method in ("PATCH", "DELETE"):
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "the ETag last read (or `*`): the change applies only if the resource is unchanged "
                "since; any other value is a precondition that does not hold (412)",
                "schema": {"type": "string", "maxLength": schemas.MAX_IF_MATCH},
            }
        )
    return params


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    headers = (
        {"ETag": {"schema": {"type": "string"}, "description": "the resource's version"}} if op.etag else {}
    )
    oks = [op.ok] + ([201] if op.method == "PUT" else [])
    for status in oks:
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if op.response is not None and status != 204:
            entry["content"] = {"application/json": {"schema": _ref(op.response)}}
            if op.html:
                entry["content"]["text/html"] = {"schema": {"type": "string"}}
        if headers and status != 204:
            entry["headers"] = headers
        responses[str(status)] = entry
    errors = set(op.errors) | {503}
    if op.role is not None:
        errors |= {401, 403}
    if op.body is not None or op.signed_body is not None:
        errors |= {400, 413, 415}
    if op.etag and op.method in ("PATCH", "DELETE"):
        errors |= {400, 412}
    if op.signed_body is not None:
        errors |= {401}
    if op.query is not None or op.path_params:
        errors |= {400} if op.query is not None else set()
        errors |= {404} if op.path_params else set()
    for status in sorted(errors):
        responses[str(status)] = _problem(status)
        if op.html and status in (400, 422, 502):
            responses[str(status)]["content"]["text/html"] = {"schema": {"type": "string"}}
            responses[str(status)]["description"] += "; a page saying the same to a browser"
    if op.signed_body is not None:
        responses["401"]["description"] = _SIGNED_401
    body: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": responses,
        "security": [] if op.role is None else [{"entra": []}],
    }
    if op.role is not None:
        body["x-warden-role"] = "Warden.Admin" if op.role == "admin" else "Warden.Reader or Warden.Admin"
        body["description"] = f"Requires the app role {body['x-warden-role']}."
    if op.signed_body is not None and op.signature == "standard":
        body["description"] = (
            "No bearer token: the body is signed per Standard Webhooks (HMAC-SHA256 with the secret from "
            "POST /hris/secret). Checked in this order: size (at most 256 KiB, else 413), content type (415), "
            "signature (401), JSON and fields (400)."
        )
    elif op.signed_body is not None:
        body["description"] = (
            "No bearer token: signed by the source. A standard source's body is an HR event signed per Standard "
            "Webhooks with the source's secret; a BambooHR source's is BambooHR's field-based delivery, signed "
            "with the webhook's private key. Checked in this order: size (at most 256 KiB, else 413), content "
            "type (415), the source (404; 422 for a SCIM source, which calls /scim/v2), signature (401), the "
            "source enabled (403), JSON and fields (400)."
        )
    request = op.body or op.signed_body
    if request is not None:
        body["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(request)}},
        }
    return body


_HEALTH_PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Reachability of storage, queues, Key Vault, poison queues and each directory's connection",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "up, or degraded: a directory is unreachable or needs reactivation, or messages "
                    "wait in a poison queue (that component down, with its reason)",
                    "content": {"application/json": {"schema": _ref("Health")}},
                },
                "503": {
                    "description": "down: Table Storage, Queue Storage or Key Vault fails (Health), or Warden is "
                    "misconfigured (Problem)",
                    "content": {
                        "application/json": {"schema": _ref("Health")},
                        PROBLEM_JSON: {"schema": _ref("Problem")},
                    },
                },
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


def _models() -> list[tuple[type[BaseModel], Any]]:
    """Request bodies as pydantic validates them, responses as it serializes them."""
    found: dict[str, tuple[type[BaseModel], Any]] = {
        m.__name__: (m, "serialization") for m in (schemas.Problem, schemas.Health)
    }
    for op in OPERATIONS:
        for request in (op.body_model, op.signed_body_model):
            if request is not None:
                found[request.__name__] = (request, "validation")
        response = op.response_model
        if response is not None:
            found[response.__name__] = (response, "serialization")
    return list(found.values())


@cache
def document(server_url: str = "/api") -> dict[str, Any]:
    models = _models()
    _, defs = models_json_schema(models, ref_template=REF)
    components = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {p: dict(v) for p, v in _HEALTH_PATHS.items()}
    for op in OPERATIONS:
        paths.setdefault(f"/{op.route}", {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Warden",
            "version": "0.2.0",
            "description": "HR-fed identity store as the authority for Microsoft 365 / Entra ID accounts. "
            "Errors are RFC 9457 problem details; lists take `cursor` and `limit` and answer `{items, next}`.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "entra": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Entra ID access token for the Warden API (app roles Warden.Admin, Warden.Reader)",
                }
            },
        },
        "security": [{"entra": []}],
        "tags": [
            {
                "name": "scim",
                "description": SCIM["description"],
                "externalDocs": {"url": "https://www.rfc-editor.org/rfc/rfc7644", "description": "RFC 7644"},
            }
        ],
        "x-scim": SCIM,
        "x-console": CONSOLE,
    }
