"""RFC 9457 problem details: every error Warden answers over HTTP has this shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An HTTP error to answer as problem+json.

    A plain exception class (not a frozen dataclass): Python sets ``__traceback__`` and ``__context__`` on an
    exception as it propagates, which a frozen dataclass refuses.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str = "",
        type: str = "about:blank",
        extensions: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
