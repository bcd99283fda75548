"""Client authentication at the token endpoint: a secret, or a certificate's signed client assertion.

- Secrets (client_secret_post, client_secret_basic): checked against the app's passwordCredentials and each
  one's validity window on the simulator's clock. A wrong secret is 401 invalid_client AADSTS7000215; the right one
  past its ``endDateTime`` is AADSTS7000222 ("The provided client secret keys for app '…' are expired.", as
  Entra words it); none at all AADSTS7000218.
- Certificates: https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials - a JWT client
  assertion (RFC 7523, ``client_assertion_type`` ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``) signed
  with the certificate's key (RS256 or PS256), naming it by ``x5t`` (base64url SHA-1 thumbprint) or ``x5t#S256``
  (SHA-256; MSAL Python sends it since 1.35), with ``aud`` the token endpoint, ``iss`` = ``sub`` = the client id,
  ``exp``/``nbf``, ``jti``. An unknown or expired keyCredential or a bad signature is AADSTS700027; a wrong
  issuer AADSTS700021; a wrong audience AADSTS700023; an assertion out of its time range AADSTS700024. The
  assertion's own ``exp``/``nbf`` are checked against the real clock the client minted it on (with Entra's five
  minutes of skew); the keyCredential's window, the cloud's record, against the simulator's clock.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from tools.m365sim.backends.clock import Clock
from tools.m365sim.backends.entra.errors import invalid_assertion, unknown_client
from tools.m365sim.backends.errors import EntraError
from tools.m365sim.backends.graph.applications import AppRegistration, KeyCredential, secret_digest
from tools.m365sim.backends.tenants import Tenant

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SKEW_S = 300


@dataclass(frozen=True)
class ClientCredential:
    """What a token request presents to authenticate its client."""

    client_id: str
    secret: str | None = None
    assertion: str | None = None
    assertion_type: str | None = None


def missing_credential() -> EntraError:
    return EntraError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


class ClientAuthenticator:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def authenticate(
        self, tenant: Tenant, credential: ClientCredential, grant: str, token_endpoints: set[str]
    ) -> AppRegistration:
        """The app a token request authenticates as. ``token_endpoints``: the URLs this tenant's token endpoint
        answers at (an assertion's ``aud`` must be one of them)."""
        app = tenant.app(credential.client_id)
        if app is None:
            raise unknown_client(credential.client_id, tenant.display_name)
        if credential.assertion is not None:
            self._check_assertion(app, credential, token_endpoints)
        elif credential.secret:
            self._check_secret(app, credential.secret)
        elif grant == "client_credentials" or app.passwords or app.keys:
            raise missing_credential()
        return app

    def _check_secret(self, app: AppRegistration, secret: str) -> None:
        now = self.clock()
        digest = secret_digest(secret)
        matching = [p for p in app.passwords if secrets.compare_digest(p.digest, digest)]
        if any(p.start <= now <= p.end for p in matching):
            return
        if any(now > p.end for p in matching):
            raise EntraError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{app.app_id}' are expired. Visit the Azure portal to "
                "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
                "credentials for added security: https://aka.ms/certCreds.",
            )
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app '{app.app_id}'.",
        )

    def _check_assertion(
        self, app: AppRegistration, credential: ClientCredential, endpoints: set[str]
    ) -> None:
        if credential.assertion_type != JWT_BEARER:
            raise EntraError(
                400,
                "invalid_request",
                900144 if not credential.assertion_type else 50027,
                f"The request body must contain the following parameter: 'client_assertion_type' with the value "
                f"'{JWT_BEARER}'.",
            )
        assertion = str(credential.assertion)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise invalid_assertion("[Reason - The assertion is not a JWT.]") from None
        key = self._key_of(app, header)
        now = self.clock()
        if not key.start <= now <= key.end:
            raise invalid_assertion(
                f"[Reason - The key used is expired., Thumbprint of key used by client: '{key.thumbprints()[0]}']"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.certificate().public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise invalid_assertion("[Reason - The signature is not valid.]") from None
        if str(claims.get("iss", "")).lower() != app.app_id:
            raise EntraError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        if str(claims.get("sub", "")).lower() != app.app_id:
            raise EntraError(
                401, "invalid_client", 700021, "Client assertion subject doesn't match 'client_id'."
            )
        if str(claims.get("aud", "")).rstrip("/").lower() not in endpoints:
            raise EntraError(
                401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer."
            )
        real_now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if (
            not isinstance(exp, int | float)
            or real_now > exp + ASSERTION_SKEW_S
            or (isinstance(nbf, int | float) and real_now + ASSERTION_SKEW_S < nbf)
        ):
            raise EntraError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )

    @staticmethod
    def _key_of(app: AppRegistration, header: dict[str, Any]) -> KeyCredential:
        # RFC 7515 says base64url; MSAL Python pads it with "=": compare without padding.
        sha256 = str(header.get("x5t#S256") or "").rstrip("=")
        sha1 = str(header.get("x5t") or "").rstrip("=")
        for key in app.keys:
            key_sha1, key_sha256 = key.thumbprints()
            if (sha256 and sha256 == key_sha256) or (sha1 and sha1 == key_sha1):
                return key
        raise invalid_assertion(
            f"[Reason - The key was not found., Thumbprint of key used by client: '{sha256 or sha1 or ''}']"
        )
