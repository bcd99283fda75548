"""Entra ID (the Microsoft identity platform, v2.0 endpoints) as one service: discovery, keys, the token and
authorize endpoints, consents, and the token check resources make.

- OpenID Connect discovery and keys: https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc
- signing keys: ``tools.m365sim.backends.entra.keys``; grants: ``token_endpoint``; sign-in: ``authorize``;
  client authentication: ``clientauth``; tokens: ``tokens``.
"""

from __future__ import annotations

from typing import Any

from tools.m365sim.backends.clock import Clock
from tools.m365sim.backends.entra.authorize import Authorizer, Redirect
from tools.m365sim.backends.entra.clientauth import ClientAuthenticator
from tools.m365sim.backends.entra.errors import unknown_tenant
from tools.m365sim.backends.entra.grants import Consent, Grants
from tools.m365sim.backends.entra.keys import KeyRing
from tools.m365sim.backends.entra.token_endpoint import MULTI_TENANT_SEGMENTS, TokenEndpoint
from tools.m365sim.backends.entra.tokens import TokenIssuer, issuer
from tools.m365sim.backends.tenants import Tenants

CLAIMS_SUPPORTED = [
    "sub",
    "iss",
    "cloud_instance_name",
    "cloud_instance_host_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "acr",
    "nonce",
    "preferred_username",
    "name",
    "tid",
    "ver",
    "at_hash",
    "c_hash",
    "email",
]


class Entra:
    def __init__(self, tenants: Tenants, clock: Clock) -> None:
        self.tenants = tenants
        self.clock = clock
        self.keys = KeyRing()
        self.grants = Grants()
        self.issuer = TokenIssuer(self.keys, tenants, clock)
        self.tokens = TokenEndpoint(tenants, self.grants, self.issuer, ClientAuthenticator(clock), clock)
        self.authorizer = Authorizer(tenants, self.grants, clock)

    def reset(self) -> None:
        """Forget codes, refresh tokens and consents; the signing keys stay."""
        self.grants.clear()

    # -- discovery --------------------------------------------------------------------------------------------
    def openid_configuration(self, base: str, segment: str) -> dict[str, Any]:
        """v2-protocols-oidc "Find your app's OpenID configuration document URI"; for common/organizations the
        issuer carries the literal ``{tenantid}`` placeholder, as Entra's does."""
        tenant = self.tenants.resolve(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS:
            raise unknown_tenant(segment)
        path_segment = tenant.tenant_id if tenant else segment.lower()
        tid = tenant.tenant_id if tenant else "{tenantid}"
        root = f"{base}/{path_segment}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer(base, tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": CLAIMS_SUPPORTED,
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self, base: str, segment: str) -> dict[str, Any]:
        tenant = self.tenants.resolve(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS:
            raise unknown_tenant(segment)
        return self.keys.jwks(issuer(base, tenant.tenant_id if tenant else "{tenantid}"))

    # -- endpoints --------------------------------------------------------------------------------------------
    def token(
        self, base: str, segment: str, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[dict[str, Any], str | None, str | None]:
        return self.tokens.token(base, segment, form, basic)

    def managed_identity(self, base: str, identity_header: str, resource: str) -> dict[str, Any]:
        return self.tokens.managed_identity(base, identity_header, resource)

    def authorize(self, segment: str, params: dict[str, str]) -> Redirect:
        return self.authorizer.authorize(segment, params)

    def validate(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        return self.issuer.validate(token, audiences)

    # -- consents (the control API's view of them) ------------------------------------------------------------
    def consents(self, tenant_id: str, client_id: str | None, user_id: str | None) -> list[Consent]:
        return self.grants.find_consents(tenant_id, client_id, user_id)

    def revoke_consents(self, tenant_id: str, client_id: str | None, user_id: str | None) -> int:
        """An admin withdraws consents: every refresh token issued under them is refused from now on
        (AADSTS50173)."""
        return self.grants.revoke([c.id for c in self.grants.find_consents(tenant_id, client_id, user_id)])
