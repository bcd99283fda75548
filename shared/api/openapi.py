"""The published OpenAPI 3.1 document of Warden's HTTP API (``GET /api/openapi.json``).

Each HTTP function's contract is declared here, next to the others; a test checks that every HTTP route the
app registers is described and that nothing described is missing from the app.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}

_COMPONENT_HEALTH: dict[str, Any] = {
    "type": "object",
    "required": ["name", "status", "latencyMs"],
    "properties": {
        "name": {"type": "string", "examples": ["tableStorage", "queueStorage", "keyVault", "graph"]},
        "status": {"enum": ["up", "down"]},
        "latencyMs": {"type": "number", "minimum": 0},
        "detail": {"type": "string", "description": "why it is down, in a few secret-free words"},
        "directory": {"type": "string", "description": "graph probes: the directory checked"},
        "tenantId": {"type": "string", "description": "graph probes: the directory's tenant"},
    },
}

_HEALTH: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checkedAt", "components"],
    "properties": {
        "status": {"enum": ["up", "down"]},
        "checkedAt": {"type": "string", "format": "date-time"},
        "components": {"type": "array", "items": {"$ref": "#/components/schemas/ComponentHealth"}},
    },
}

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def _json(schema: dict[str, Any], description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


PATHS: dict[str, dict[str, Any]] = {
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Reachability of storage, Key Vault and each directory's Graph",
            "security": [],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Health"}, "every component is up"),
                "503": {
                    "description": "a component is down (Health), or Warden is misconfigured (Problem)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}},
                        "application/problem+json": {"schema": PROBLEM},
                    },
                },
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    },
}


def document(server_url: str = "/api") -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Warden",
            "version": "0.1.0",
            "description": "HR-fed identity store as the authority for Microsoft 365 / Entra ID accounts.",
        },
        "servers": [{"url": server_url}],
        "paths": PATHS,
        "components": {
            "schemas": {"Health": _HEALTH, "ComponentHealth": _COMPONENT_HEALTH, "Problem": _PROBLEM_SCHEMA},
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
    }
