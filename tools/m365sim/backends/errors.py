"""The simulated cloud's one error family: every error it answers on the wire is a ``SimError``.

Like moto's ``RESTError`` (getmoto/moto ``moto/core/exceptions.py``: an HTTP status, a service code and a message,
rendered in the service's own body shape), a ``SimError`` carries the status, the service's error code and message,
headers the answer must carry, and renders the body its service uses:

- Microsoft Graph (https://learn.microsoft.com/en-us/graph/errors):
  ``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}, "details"?}}``;
- Entra ID's token and authorize endpoints
  (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes#handling-error-codes-in-your-application):
  ``{"error", "error_description": "AADSTSnnnn: …", "error_codes", "timestamp", "trace_id", "correlation_id",
  "error_uri"}``;
- Key Vault (https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes):
  ``{"error": {"code", "message", "innererror"?: {"code"}}}``;
- the control API ``/_sim``: ``{"error": {"code", "message"}}``.

Backends raise these; the HTTP layer renders them with ``body(now)`` (``now`` on the simulator's clock).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


class SimError(Exception):
    """An error as a simulated service answers it: status, code, message, headers, and its body shape."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self, now: float) -> dict[str, Any]:
        """The service's JSON error body."""
        return {"error": {"code": self.code, "message": self.message}}


class GraphError(SimError):
    """Microsoft Graph's error (https://learn.microsoft.com/en-us/graph/errors)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        detail_code: str = "ObjectConflict",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, headers=headers)
        self.target = target
        self.detail_code = detail_code

    def details(self) -> list[dict[str, Any]] | None:
        if not self.target:
            return None
        if self.detail_code == "ObjectConflict":
            return [{"code": "ObjectConflict", "message": self.message, "target": self.target}]
        return [{"code": self.detail_code, "target": self.target}]

    def body(self, now: float) -> dict[str, Any]:
        return graph_error_body(self.code, self.message, now, details=self.details())


def graph_error_body(
    code: str, message: str, now: float, *, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Graph's error body; the HTTP layer replaces the innerError's request ids with the answer's own."""
    request_id = str(uuid.uuid4())
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": request_id,
        },
    }
    if details:
        error["details"] = details
    return {"error": error}


class SyncStateNotFound(GraphError):
    """delta-query-overview, "Synchronization reset": 410 ``syncStateNotFound``; the HTTP layer adds the
    ``Location`` of the initial delta URL of ``kind``."""

    MESSAGE = "The sync state generation is not found. The delta token is expired and data must be synchronized again."

    def __init__(self, kind: str) -> None:
        super().__init__(410, "syncStateNotFound", self.MESSAGE)
        self.kind = kind


class EntraError(SimError):
    """An Entra ID (Microsoft identity platform) error: OAuth ``error`` and AADSTS code."""

    def __init__(
        self, status: int, error: str, aadsts: int, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, error, message, headers=headers)
        self.error = error
        self.aadsts = aadsts

    def __str__(self) -> str:
        return f"AADSTS{self.aadsts}: {self.message}"

    def body(self, now: float) -> dict[str, Any]:
        ts = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.message}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {corr}\r\nTimestamp: {ts}",
            "error_codes": [self.aadsts],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


class InvalidToken(SimError):
    """A bearer token a resource (Graph, Key Vault) refuses; ``reason`` is one of ``signature``, ``expired``,
    ``not_yet_valid``, ``audience``, ``issuer``. Each resource words it its own way (``GRAPH_TOKEN_MESSAGES``,
    Key Vault's AKV100xx)."""

    GRAPH_MESSAGES = {
        "signature": "Access token validation failure.",
        "expired": "Lifetime validation failed, the token is expired.",
        "not_yet_valid": "Access token has expired or is not yet valid.",
        "audience": "Access token validation failure. Invalid audience.",
        "issuer": "Access token validation failure. Invalid issuer.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(401, "InvalidAuthenticationToken", self.GRAPH_MESSAGES[reason])
        self.reason = reason

    def body(self, now: float) -> dict[str, Any]:
        return graph_error_body(self.code, self.message, now)


class VaultError(SimError):
    """Key Vault's error (https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, headers=headers)
        self.inner = inner

    def body(self, now: float) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return {"error": err}


class ControlError(SimError):
    """A refusal of the control API (``/_sim``): 400 bad input, 404 unknown object, 409 conflict."""

    CODES = {400: "BadRequest", 404: "NotFound", 409: "Conflict"}

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, self.CODES[status], message)
