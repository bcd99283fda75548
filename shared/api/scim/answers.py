"""What a SCIM request is answered: a status, a body (``application/scim+json``) and headers; SCIM error bodies
(RFC 7644 §3.12) for the refusals of scim2-models, of pydantic and of the use cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Error,
    InvalidValueException,
    NotFoundException,
    NotImplementedException,
    PreconditionFailedException,
    SCIMException,
)

from shared.domain.errors import (
    ConcurrentUpdate,
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    NotImplementedYet,
    PreconditionFailed,
    Upstream,
)


@dataclass
class Response:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_response(exc: SCIMException, headers: Mapping[str, str] | None = None) -> Response:
    body = exc.to_error().model_dump()
    return Response(exc.status, body, dict(headers or {}))


def problem(status: int, detail: str, scim_type: str | None = None) -> Response:
    body = Error(status=status, scim_type=scim_type, detail=detail).model_dump()
    return Response(status, body)


def domain_error(exc: DomainError) -> SCIMException:
    """A use case's refusal in SCIM's words (RFC 7644 §3.12)."""
    from scim2_models import ConflictException, UniquenessException

    if isinstance(exc, NotFound):
        return NotFoundException(detail=exc.detail)
    if isinstance(exc, Conflict):
        return UniquenessException(detail=exc.detail)
    if isinstance(exc, Invalid):
        return InvalidValueException(detail=exc.detail)
    if isinstance(exc, PreconditionFailed):
        return PreconditionFailedException(detail=exc.detail)
    if isinstance(exc, ConcurrentUpdate):
        return ConflictException(detail=exc.detail)
    if isinstance(exc, NotImplementedYet):
        return NotImplementedException(detail=exc.detail)
    failed = SCIMException(detail=exc.detail)
    failed.status = 502 if isinstance(exc, Upstream) else 500
    return failed


def validation_error(exc: ValidationError) -> SCIMException:
    first = Error.from_validation_errors(exc)[0]
    return SCIMException.from_error(first)
