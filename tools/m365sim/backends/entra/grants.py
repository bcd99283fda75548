"""What Entra remembers of delegated sign-ins: consents, authorization codes and refresh tokens.

- A consent is recorded per (tenant, client, user) with the scopes granted, when the user signs in through the
  authorize endpoint (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow; the
  admin's view of it is an oauth2PermissionGrant, https://learn.microsoft.com/en-us/graph/api/resources/
  oauth2permissiongrant). An admin's revocation (control API) removes it: every refresh token issued under it is
  refused from then on (AADSTS50173), and the next sign-in records a new one.
- Codes are single-use and short-lived; refresh tokens are replaced on each use, the old one staying valid until
  its own 90 days of inactivity end (https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
Codes and refresh tokens are kept by their SHA-256 digest only.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SignedInUser:
    id: str
    upn: str
    name: str
    home_tenant_id: str | None = None
    """A guest's home tenant (its ID token's ``idp``); None for a member of the tenant signed into."""


@dataclass
class Consent:
    id: str
    tenant_id: str
    client_id: str
    user_id: str
    user_upn: str
    scopes: list[str]
    granted: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenantId": self.tenant_id,
            "clientId": self.client_id,
            "userId": self.user_id,
            "userPrincipalName": self.user_upn,
            "scopes": list(self.scopes),
            "grantedAt": self.granted,
        }


@dataclass
class AuthCode:
    tenant_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    challenge: str | None
    challenge_method: str
    user: SignedInUser
    issued: float
    consent_id: str
    used: bool = False


@dataclass
class RefreshToken:
    tenant_id: str
    client_id: str
    user: SignedInUser
    scopes: list[str]
    issued: float
    auth_time: float
    consent_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class Grants:
    def __init__(self) -> None:
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.consents: dict[str, Consent] = {}

    def clear(self) -> None:
        self.codes.clear()
        self.refresh_tokens.clear()
        self.consents.clear()

    # -- consents ---------------------------------------------------------------------------------------------
    def consent(
        self, tenant_id: str, client_id: str, user: SignedInUser, scopes: list[str], now: float
    ) -> Consent:
        """Record (or widen) the user's consent to the client: the scopes granted so far and these."""
        for existing in self.consents.values():
            if (existing.tenant_id, existing.client_id, existing.user_id) == (tenant_id, client_id, user.id):
                existing.scopes = list(dict.fromkeys([*existing.scopes, *scopes]))
                existing.granted = now
                return existing
        created = Consent(str(uuid.uuid4()), tenant_id, client_id, user.id, user.upn, list(scopes), now)
        self.consents[created.id] = created
        return created

    def find_consents(
        self, tenant_id: str | None = None, client_id: str | None = None, user_id: str | None = None
    ) -> list[Consent]:
        return [
            c
            for c in self.consents.values()
            if (tenant_id is None or c.tenant_id == tenant_id)
            and (client_id is None or c.client_id == client_id)
            and (user_id is None or c.user_id == user_id)
        ]

    def revoke(self, consent_ids: list[str]) -> int:
        for consent_id in consent_ids:
            del self.consents[consent_id]
        return len(consent_ids)

    # -- codes and refresh tokens ----------------------------------------------------------------------------
    def add_code(self, value: str, code: AuthCode) -> None:
        self.codes[digest(value)] = code

    def add_refresh_token(self, value: str, token: RefreshToken) -> None:
        self.refresh_tokens[digest(value)] = token

    def code(self, value: str) -> AuthCode | None:
        return self.codes.get(digest(value))

    def refresh_token(self, value: str) -> RefreshToken | None:
        return self.refresh_tokens.get(digest(value))

    # -- persistence ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "codes": {k: asdict(v) for k, v in self.codes.items()},
            "refreshTokens": {k: asdict(v) for k, v in self.refresh_tokens.items()},
            "consents": {k: asdict(v) for k, v in self.consents.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.codes = {
            k: AuthCode(**{**v, "user": SignedInUser(**v["user"])}) for k, v in state["codes"].items()
        }
        self.refresh_tokens = {
            k: RefreshToken(**{**v, "user": SignedInUser(**v["user"])})
            for k, v in state["refreshTokens"].items()
        }
        self.consents = {k: Consent(**v) for k, v in state["consents"].items()}
