"""The errors use cases raise; the HTTP doors map each kind to one status (``functions/http.py``).

Messages are written for an admin and never carry a secret.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class Invalid(DomainError):
    """The request is well-formed but names something that cannot be (400)."""


class BadInput(DomainError):
    """The request cannot be acted on as given, for a reason its schema cannot say: a confirmation it lacks, a
    document unsafe to parse (400)."""


class NotFound(DomainError):
    """The resource does not exist (404)."""


class Conflict(DomainError):
    """It collides with existing state: a taken email, an overlapping domain (409)."""


class PreconditionFailed(DomainError):
    """``If-Match`` named a version that is no longer current (412)."""


class NotImplementedYet(DomainError):
    """A documented capability this version does not offer yet (501)."""


class Upstream(DomainError):
    """Entra ID, Graph or Key Vault refused or did not answer (502); the detail says which and why."""


class ConcurrentUpdate(DomainError):
    """A row changed between read and write (an ETag mismatch inside Warden's own retry loop)."""


class CredentialRefused(Upstream):
    """Entra ID refused a directory's credentials or refresh token (``invalid_grant``, ``invalid_client``, …): the
    connection lapsed and only an admin can restore it (rule 18: ``needs_reactivation``). Raised by the token
    adapters, wherever a token was needed; carries Entra's error and AADSTS codes, never a secret."""

    def __init__(
        self, directory_id: str, error: str, codes: tuple[int, ...] = (), description: str = ""
    ) -> None:
        self.directory_id = directory_id
        self.error = error
        self.codes = codes
        self.description = description
        code = f" AADSTS{codes[0]}" if codes else ""
        super().__init__(
            f"Entra ID refused the directory's connection ({error}{code})", directory=directory_id
        )
