"""The tokens Entra issues, and their check as a resource (Graph, Key Vault) makes it.

- Access token claims: https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference
  (``aud``, ``iss``, ``iat``/``nbf``/``exp`` on the issuer's clock, ``tid``, ``oid``, ``roles`` or ``scp``,
  ``azp``/``appid``, ``idtyp``, v2.0); ID token claims: id-token-claims-reference.
- Resources allow five minutes of clock skew and check signature, lifetime, audience and issuer; a token expired
  on the simulator's clock is refused (Graph: 401 InvalidAuthenticationToken "Lifetime validation failed, the token
  is expired.").
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import jwt

from tools.m365sim.backends.clock import Clock
from tools.m365sim.backends.entra.grants import SignedInUser
from tools.m365sim.backends.entra.keys import KeyRing, b64url
from tools.m365sim.backends.errors import EntraError, InvalidToken
from tools.m365sim.backends.graph.applications import AppRegistration
from tools.m365sim.backends.tenants import GRAPH_APP_ID, GRAPH_RESOURCE, VAULT_RESOURCE, Tenant, Tenants

ACCESS_TOKEN_LIFETIME_S = 3599
RESOURCE_CLOCK_SKEW_S = 300


def issuer(base: str, tenant_id: str) -> str:
    return f"{base}/{tenant_id}/v2.0"


def pairwise_sub(client_id: str, oid: str) -> str:
    return b64url(hashlib.sha256(f"{client_id}:{oid}".encode()).digest())


def token_client_id(claims: dict[str, Any]) -> str:
    """The client (application) id an access token was issued to: v1 ``appid``, v2 ``azp``. The simulator's
    tokens carry both, with the same value."""
    return str(claims.get("appid") or claims.get("azp"))


class TokenIssuer:
    def __init__(self, keys: KeyRing, tenants: Tenants, clock: Clock) -> None:
        self.keys = keys
        self.tenants = tenants
        self.clock = clock

    def access_token(
        self,
        base: str,
        tenant: Tenant,
        app: AppRegistration,
        aud: str,
        *,
        roles: list[str] | None = None,
        scp: str | None = None,
        user: SignedInUser | None = None,
    ) -> str:
        now = int(self.clock())
        iss = issuer(base, tenant.tenant_id)
        claims: dict[str, Any] = {
            "aud": aud,
            "iss": iss,
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_TOKEN_LIFETIME_S,
            "aio": b64url(secrets.token_bytes(24)),
            "azp": app.app_id,
            "appid": app.app_id,
            "azpacr": "1",
            "appidacr": "1",
            "idp": iss,
            "rh": "0." + b64url(secrets.token_bytes(16)),
            "tid": tenant.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if user is None:
            sp = app.service_principal_id(tenant.tenant_id)
            claims.update({"oid": sp, "sub": sp, "idtyp": "app"})
            if roles:
                claims["roles"] = list(roles)
        else:
            if roles:
                claims["roles"] = list(roles)
            claims.update(
                {
                    "oid": user.id,
                    "sub": pairwise_sub(app.app_id, user.id),
                    "idtyp": "user",
                    "name": user.name,
                    "preferred_username": user.upn,
                    "upn": user.upn,
                    "scp": scp or "",
                }
            )
        return self.keys.sign(claims)

    def id_token(
        self,
        base: str,
        tenant: Tenant,
        app: AppRegistration,
        user: SignedInUser,
        nonce: str | None,
        roles: list[str] | None = None,
    ) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": app.app_id,
            "iss": issuer(base, tenant.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_TOKEN_LIFETIME_S,
            "name": user.name,
            "oid": user.id,
            "preferred_username": user.upn,
            "rh": "0." + b64url(secrets.token_bytes(16)),
            "sub": pairwise_sub(app.app_id, user.id),
            "tid": tenant.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        if roles:
            claims["roles"] = list(roles)
        if user.home_tenant_id and user.home_tenant_id != tenant.tenant_id:
            # id-token-claims-reference, idp: the issuer of the guest's home tenant (the v1 form Entra uses)
            claims["idp"] = f"https://sts.windows.net/{user.home_tenant_id}/"
        return self.keys.sign(claims)

    @staticmethod
    def resolve_resource(tenant: Tenant, resource: str) -> str:
        """The ``aud`` of a token for ``resource`` (the part of a scope before the permission).

        An app of the tenant, named by one of its identifierUris or by its client id, is an API: the token is a
        v2.0 one, so ``aud`` is the API's client id (access-token-claims-reference, ``aud``: "In v2.0 tokens, this
        value is always the client ID of the API"; the simulator's APIs behave as if their manifest had
        ``requestedAccessTokenVersion: 2``, reference-app-manifest). Any other ``api://`` resource is still
        answered with ``aud`` = that URI, as before API apps could be registered."""
        r = resource.rstrip("/")
        if r.lower() in (GRAPH_RESOURCE, "https://graph.microsoft.com/v1.0", GRAPH_APP_ID):
            return GRAPH_RESOURCE if r.lower() != GRAPH_APP_ID else GRAPH_APP_ID
        if r.lower() == VAULT_RESOURCE:
            return VAULT_RESOURCE
        api = tenant.api_app(r)
        if api is not None:
            return api.app_id
        if r.startswith("api://") and len(r) > len("api://"):
            return r
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You might have "
            "sent your authentication request to the wrong tenant.",
        )

    def validate(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        """Check an access token as a resource does. Raises InvalidToken(reason)."""
        try:
            claims = self.keys.verify(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("signature") from exc
        now = self.clock()
        if not isinstance(claims.get("exp"), int | float) or now > claims["exp"] + RESOURCE_CLOCK_SKEW_S:
            raise InvalidToken("expired")
        if isinstance(claims.get("nbf"), int | float) and now + RESOURCE_CLOCK_SKEW_S < claims["nbf"]:
            raise InvalidToken("not_yet_valid")
        if claims.get("aud") not in audiences:
            raise InvalidToken("audience")
        tid = claims.get("tid")
        iss = str(claims.get("iss", ""))
        if not isinstance(tid, str) or self.tenants.get(tid) is None or not iss.endswith(f"/{tid}/v2.0"):
            raise InvalidToken("issuer")
        return claims
