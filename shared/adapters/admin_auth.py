"""Validation of the admin API's bearer tokens: Entra ID access tokens for Warden's API app registration.

Checks, in order, with PyJWT (no hand-rolled parsing): RS256 signature with a key from the tenant's JWKS
(``PyJWKClient``: the key set is cached for 5 minutes and re-read once when a token names an unknown ``kid``,
which is how Entra's key rollover reaches us), then ``exp``/``nbf`` with a small leeway, ``iss`` (the
tenant's v2.0 issuer, or the v1.0 ``sts.windows.net`` one for the public cloud), ``aud`` (the API's App ID URI
or client id) and ``tid``.
https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-tokens
https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import jwt

from shared.adapters.tls import ssl_context
from shared.service.access import Principal, Unauthenticated

LEEWAY_SECONDS = 60
PUBLIC_CLOUD = "https://login.microsoftonline.com"


def issuers(authority_host: str, tenant_id: str) -> list[str]:
    found = [f"{authority_host.rstrip('/')}/{tenant_id}/v2.0"]
    if authority_host.rstrip("/") == PUBLIC_CLOUD:
        found.append(f"https://sts.windows.net/{tenant_id}/")
    return found


class EntraTokenValidator:
    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        audiences: Sequence[str],
        ca_bundle: Path | None,
        jwks_cooldown_seconds: float = 30.0,
    ) -> None:
        self.tenant_id = tenant_id.lower()
        self.audiences = list(audiences)
        self.issuers = issuers(authority_host, self.tenant_id)
        self.jwks = jwt.PyJWKClient(
            f"{authority_host.rstrip('/')}/{self.tenant_id}/discovery/v2.0/keys",
            cache_jwk_set=True,
            lifespan=300,
            timeout=10,
            ssl_context=ssl_context(ca_bundle),
            cooldown_duration=jwks_cooldown_seconds,
        )

    async def validate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthenticated("the token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("the token must be signed with RS256")
        try:
            # The key set is fetched with urllib: off the event loop, and only when the cache is cold or
            # the token names a key the cache does not have.
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError):
            # Unreachable, or an answer that is not a usable key set: nothing to validate against.
            raise Unauthenticated("the token's signing keys could not be fetched; try again") from None
        except (jwt.PyJWKClientError, jwt.DecodeError):
            raise Unauthenticated("the token's signing key is not one of the tenant's") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audiences,
                issuer=self.issuers,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token was not issued by this API's tenant (issuer)") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is invalid") from None
        if str(claims["tid"]).lower() != self.tenant_id:
            raise Unauthenticated("the token was not issued by this API's tenant (tid)")
        roles = claims.get("roles") or []
        return Principal(
            object_id=str(claims["oid"]),
            app_id=str(claims.get("azp") or claims.get("appid") or "") or None,
            roles=frozenset(r for r in roles if isinstance(r, str))
            if isinstance(roles, list)
            else frozenset(),
        )
