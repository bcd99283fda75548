"""Microsoft Graph's error body, used for every error the simulator answers.

Shape per https://learn.microsoft.com/en-us/graph/errors :
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tools.m365sim.model import GraphResponse


def error_body(
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    client_request_id: str | None = None,
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": client_request_id or request_id,
        },
    }
    if details:
        error["details"] = details
    return {"error": error}


def unreadable_json_body() -> dict[str, Any]:
    """Graph's 400 for a request body (a call's, or a $batch payload) that is not JSON."""
    return error_body(
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and "
        "payload is of valid JSON format.",
    )


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> GraphResponse:
    return GraphResponse(
        status=status, body=error_body(code, message, details=details), headers=dict(headers or {})
    )
