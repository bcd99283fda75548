"""The Graph errors the directory answers, each with the source of its wording."""

from __future__ import annotations

from tools.m365sim.backends.errors import GraphError

INSUFFICIENT = "Insufficient privileges to complete the operation."


def bad_request(message: str) -> GraphError:
    return GraphError(400, "Request_BadRequest", message)


def not_found(key: str) -> GraphError:
    # Request_ResourceNotFound, as Graph answers for a missing directory object (e.g. user-get, group-delete-members;
    # github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/4847).
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def required(prop: str) -> GraphError:
    # Graph's wording for a missing required property ("Property mailNickname value is required but is empty or
    # missing.", microsoftgraph/MSGraph-SDK-Code-Generator#244, answered by the Graph PowerShell team; the same
    # pattern for applications' identifierUris). The message does not name the resource.
    return bad_request(f"Property {prop} value is required but is empty or missing.")


def invalid_value(prop: str, resource: str) -> GraphError:
    # Graph answers 400 Request_BadRequest with details [{"code": "InvalidValue", "target": prop}]
    # (microsoftgraph/microsoft-graph-docs#5777, an invalid mailNickname on POST /users).
    return GraphError(
        400,
        "Request_BadRequest",
        f"Invalid value specified for property '{prop}' of resource '{resource}'.",
        target=prop,
        detail_code="InvalidValue",
    )


def conflict(prop: str) -> GraphError:
    # user-post-users: "Another object with the same value for property userPrincipalName already exists." with a
    # details entry {"code": "ObjectConflict", "target": prop}.
    return GraphError(
        400,
        "Request_BadRequest",
        f"Another object with the same value for property {prop} already exists.",
        target=prop,
    )


def forbidden() -> GraphError:
    """403 Authorization_RequestDenied "Insufficient privileges to complete the operation." (Graph's answer to a
    caller without the permission, and to a write on a user its roles do not allow: user-update, resources/users
    "Who can update sensitive attributes?")."""
    return GraphError(403, "Authorization_RequestDenied", INSUFFICIENT)


def read_only(prop: str) -> GraphError:
    return bad_request(f"Property '{prop}' is read-only and cannot be set.")


def invalid_property(prop: str) -> GraphError:
    # Graph: 400 Request_BadRequest "Invalid property 'responseHeaders'." (pnp/PnP-Sites-Core#1807)
    return bad_request(f"Invalid property '{prop}'.")


def unsupported_query(message: str) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)
