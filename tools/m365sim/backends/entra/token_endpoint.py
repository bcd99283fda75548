"""The token endpoint's grants: client credentials, authorization code (with PKCE) and refresh token.

- Client credentials: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  (``scope`` is ``<resource>/.default``; the token carries the app's application permissions in ``roles``).
- Authorization code: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow (codes
  "expire after about 10 minutes", single use AADSTS54005, bound to the redirect URI and the PKCE challenge).
- Refresh tokens: https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens - replaced on each use,
  the old one not revoked (learn.microsoft.com/en-us/answers/questions/1158831), invalid after 90 days of
  inactivity on the simulator's clock (AADSTS700082); refused once the user's sessions are revoked
  (user-revokesigninsessions) or the consent is withdrawn (AADSTS50173), or the user is disabled (AADSTS50057).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import jwt

from tools.m365sim.backends.clock import Clock, parse_iso
from tools.m365sim.backends.entra.clientauth import ClientAuthenticator, ClientCredential
from tools.m365sim.backends.entra.errors import (
    invalid_grant,
    missing_parameter,
    sessions_revoked,
    unknown_tenant,
    user_disabled,
)
from tools.m365sim.backends.entra.grants import AuthCode, Grants, RefreshToken, SignedInUser
from tools.m365sim.backends.entra.keys import b64url
from tools.m365sim.backends.entra.tokens import ACCESS_TOKEN_LIFETIME_S, TokenIssuer
from tools.m365sim.backends.errors import EntraError
from tools.m365sim.backends.graph.applications import AppRegistration
from tools.m365sim.backends.tenants import GRAPH_APP_ID, GRAPH_RESOURCE, Tenant, Tenants

CODE_LIFETIME_S = 600  # "Authorization codes are short lived. Typically, they expire after about 10 minutes."
REFRESH_TOKEN_LIFETIME_S = 90 * 24 * 3600
# refresh-tokens: "The default lifetime ... is 24 hours for SPAs and 90 days for all other scenarios"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations"})
Grant = TypeVar("Grant", AuthCode, RefreshToken)


def split_scopes(tenant: Tenant, app: AppRegistration, scopes: list[str]) -> tuple[str, str, list[str]]:
    """(aud, scp claim, granted scopes as the response's ``scope``) for delegated scopes."""
    resource_scopes = [s for s in scopes if s.lower() not in OIDC_SCOPES]
    resources: dict[str, list[str]] = {}
    for s in resource_scopes:
        if "/" in s:
            res, _, perm = s.rpartition("/")
        elif _is_guid(s):
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid.",
            )
        else:
            res, perm = GRAPH_RESOURCE, s  # unqualified scopes are Microsoft Graph's
        resources.setdefault(TokenIssuer.resolve_resource(tenant, res), []).append(perm)
    if len(resources) > 1:
        raise EntraError(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more "
            "than one resource. Scope " + " ".join(scopes) + " is not valid.",
        )
    oidc = [s for s in scopes if s.lower() in OIDC_SCOPES - {"offline_access"}]
    if not resources:
        return GRAPH_RESOURCE, " ".join(oidc), scopes
    aud, perms = next(iter(resources.items()))
    granted: list[str] = []
    for p in perms:
        granted.extend(app.scopes if p == ".default" else [p])
    return aud, " ".join(dict.fromkeys(granted + oidc)), scopes


def _is_guid(value: str) -> bool:
    parts = value.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for c in value.replace("-", "")
    )


class TokenEndpoint:
    def __init__(
        self,
        tenants: Tenants,
        grants: Grants,
        issuer: TokenIssuer,
        clients: ClientAuthenticator,
        clock: Clock,
    ) -> None:
        self.tenants = tenants
        self.grants = grants
        self.issuer = issuer
        self.clients = clients
        self.clock = clock

    def token(
        self, base: str, segment: str, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """The answer to a token request: (body, tenant id, client id); raises EntraError. ``basic``: the client
        id and secret of an ``Authorization: Basic`` header (RFC 6749 2.3.1)."""
        grant = form.get("grant_type")
        if not grant:
            raise missing_parameter("grant_type")
        client_id, secret = basic if basic else (form.get("client_id"), form.get("client_secret"))
        if not client_id:
            raise missing_parameter("client_id")
        credential = ClientCredential(
            client_id.lower(), secret, form.get("client_assertion"), form.get("client_assertion_type")
        )
        tenant = self.tenants.resolve(segment)
        seg = segment.lower()
        if tenant is None and seg not in MULTI_TENANT_SEGMENTS:
            raise unknown_tenant(segment)
        if grant == "client_credentials":
            if tenant is None:
                raise EntraError(
                    400,
                    "invalid_request",
                    9001023 if seg == "common" else 90019,
                    "The grant type isn't supported over the /common or /consumers endpoints. "
                    "Please use the /organizations or tenant-specific endpoint."
                    if seg == "common"
                    else "No tenant-identifying information found in either the request or implied by "
                    "any provided credentials.",
                )
            app = self.clients.authenticate(tenant, credential, grant, self._endpoints(base, tenant, segment))
            body = self._client_credentials(base, tenant, app, form.get("scope"))
            tenant_id = tenant.tenant_id
        elif grant == "authorization_code":
            body, tenant_id = self._redeem_code(base, segment, tenant, credential, form)
        elif grant == "refresh_token":
            body, tenant_id = self._redeem_refresh(base, segment, tenant, credential, form)
        else:
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if form.get("client_info") == "1" and "id_token" in body:
            claims = jwt.decode(body["id_token"], options={"verify_signature": False})
            body["client_info"] = b64url(json.dumps({"uid": claims["oid"], "utid": claims["tid"]}).encode())
        return body, tenant_id, client_id

    @staticmethod
    def _endpoints(base: str, tenant: Tenant, segment: str) -> set[str]:
        names = {tenant.tenant_id, segment.lower(), *tenant.domain_names()}
        return {f"{base}/{n}/oauth2/v2.0/token".lower() for n in names}

    def _client_credentials(
        self, base: str, tenant: Tenant, app: AppRegistration, scope: str | None
    ) -> dict[str, Any]:
        if not scope:
            raise missing_parameter("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            # AADSTS1002012 is what Entra answers a client-credentials scope without /.default.
            raise EntraError(
                400,
                "invalid_scope",
                1002012 if len(scopes) == 1 else 70011,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI)."
                if len(scopes) == 1
                else f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is "
                "not valid.",
            )
        aud = self.issuer.resolve_resource(tenant, scopes[0][: -len("/.default")])
        if aud in (GRAPH_RESOURCE, GRAPH_APP_ID):
            roles = app.roles
        else:
            # howto-add-app-roles-in-apps: the token carries the app roles granted to the caller on the API it is
            # for; the claim is left out when there are none (claims are "present only if a value exists to fill
            # it", access-token-claims-reference).
            roles = app.app_role_assignments.get(aud.lower(), [])
        token = self.issuer.access_token(base, tenant, app, aud, roles=roles)
        return {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME_S,
            "access_token": token,
        }

    def managed_identity(self, base: str, identity_header: str, resource: str) -> dict[str, Any]:
        """App Service's managed identity endpoint (overview-managed-identity, "REST endpoint reference"): the
        app whose ``identityHeader`` the request carries gets a token for ``resource`` from its tenant, as
        client credentials would give it; the answer in App Service's shape (``expires_on`` in epoch seconds, as a
        string, ``resource``, ``client_id``). Raises EntraError with the status App Service answers."""
        found = [
            (t, a)
            for t in self.tenants.all()
            for a in t.directory.applications.all()
            if a.identity_header and secrets.compare_digest(a.identity_header, identity_header)
        ]
        if not found:
            raise EntraError(
                401, "invalid_identity_header", 0, "The X-IDENTITY-HEADER is missing or not valid."
            )
        tenant, app = found[0]
        if not resource:
            raise missing_parameter("resource")
        body = self._client_credentials(base, tenant, app, f"{resource.rstrip('/')}/.default")
        return {
            "access_token": body["access_token"],
            "expires_on": str(int(self.clock()) + int(body["expires_in"])),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": app.app_id,
        }

    def delegated_tokens(
        self,
        base: str,
        tenant: Tenant,
        app: AppRegistration,
        user: SignedInUser,
        scopes: list[str],
        nonce: str | None,
        auth_time: float,
        consent_id: str,
    ) -> dict[str, Any]:
        aud, scp, granted = split_scopes(tenant, app, scopes)
        # howto-add-app-roles-in-apps: app roles assigned to the user on the API appear in the ``roles`` claim of
        # its access tokens for that API, and in the ID tokens of that app itself.
        api = tenant.api_app(aud) if aud not in (GRAPH_RESOURCE, GRAPH_APP_ID) else None
        roles = api.user_app_roles.get(user.id, []) if api is not None else []
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in granted if s.lower() != "offline_access"),
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME_S,
            "access_token": self.issuer.access_token(base, tenant, app, aud, scp=scp, user=user, roles=roles),
        }
        rt = "1." + b64url(secrets.token_bytes(96))
        self.grants.add_refresh_token(
            rt,
            RefreshToken(
                tenant.tenant_id, app.app_id, user, list(scopes), self.clock(), auth_time, consent_id
            ),
        )
        body["refresh_token"] = rt
        if "openid" in {s.lower() for s in scopes}:
            own = app.user_app_roles.get(user.id, [])
            body["id_token"] = self.issuer.id_token(base, tenant, app, user, nonce, roles=own)
        return body

    def _presented(
        self, form: dict[str, str], param: str, lookup: Callable[[str], Grant | None], tenant: Tenant | None
    ) -> tuple[Grant, Tenant]:
        """The code or refresh token a request presents in ``param``, and the tenant it was issued in; one that is
        unknown, or was issued in another tenant than the one addressed, is AADSTS9002313."""
        value = form.get(param)
        if not value:
            raise missing_parameter(param)
        grant = lookup(value)
        if grant is None or (tenant is not None and grant.tenant_id != tenant.tenant_id):
            raise invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        issued_in = self.tenants.get(grant.tenant_id)
        if issued_in is None:
            raise unknown_tenant(grant.tenant_id)
        return grant, issued_in

    def _grant_app(
        self,
        base: str,
        segment: str,
        tenant: Tenant,
        credential: ClientCredential,
        grant_type: str,
        client: str,
    ) -> AppRegistration:
        """The authenticated client redeeming a grant issued to ``client``; another client is AADSTS70000."""
        app = self.clients.authenticate(
            tenant, credential, grant_type, self._endpoints(base, tenant, segment)
        )
        if client.lower() != app.app_id:
            raise invalid_grant(70000, "Provided grant is invalid or malformed.")
        return app

    def _redeem_code(
        self,
        base: str,
        segment: str,
        tenant: Tenant | None,
        credential: ClientCredential,
        form: dict[str, str],
    ) -> tuple[dict[str, Any], str]:
        code, real_tenant = self._presented(form, "code", self.grants.code, tenant)
        app = self._grant_app(base, segment, real_tenant, credential, "authorization_code", code.client_id)
        if code.used:
            raise invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
                "use an existing refresh token.",
            )
        if self.clock() > code.issued + CODE_LIFETIME_S:
            raise invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a "
                "new interactive authorization request for this user and resource.",
            )
        if form.get("redirect_uri") != code.redirect_uri:
            raise invalid_grant(
                50148 if not form.get("redirect_uri") else 500117,
                "The redirect URI in the token request does not match the one used to obtain the "
                "authorization code.",
            )
        self._check_pkce(code, form.get("code_verifier"))
        code.used = True
        scopes = form.get("scope", "").split() or code.scopes
        body = self.delegated_tokens(
            base, real_tenant, app, code.user, scopes, code.nonce, code.issued, code.consent_id
        )
        return body, real_tenant.tenant_id

    @staticmethod
    def _check_pkce(code: AuthCode, verifier: str | None) -> None:
        if not code.challenge:
            return
        if not verifier:
            raise invalid_grant(
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for "
                "PKCE.",
            )
        computed = (
            b64url(hashlib.sha256(verifier.encode()).digest())
            if code.challenge_method == "S256"
            else verifier
        )
        if not secrets.compare_digest(computed.encode(), code.challenge.encode()):
            raise invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )

    def _redeem_refresh(
        self,
        base: str,
        segment: str,
        tenant: Tenant | None,
        credential: ClientCredential,
        form: dict[str, str],
    ) -> tuple[dict[str, Any], str]:
        rt, real_tenant = self._presented(form, "refresh_token", self.grants.refresh_token, tenant)
        app = self._grant_app(base, segment, real_tenant, credential, "refresh_token", rt.client_id)
        now = self.clock()
        if now > rt.issued + REFRESH_TOKEN_LIFETIME_S:
            issued = dt.datetime.fromtimestamp(rt.issued, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
            inactive = dt.timedelta(seconds=int(now - rt.issued))
            raise invalid_grant(
                700082,
                f"The refresh token has expired due to inactivity. The token was issued on {issued} and was "
                f"inactive for {inactive}.",
            )
        self._check_user_still_may(real_tenant, rt)
        scopes = form.get("scope", "").split() or rt.scopes
        body = self.delegated_tokens(
            base, real_tenant, app, rt.user, scopes, None, rt.auth_time, rt.consent_id
        )
        return body, real_tenant.tenant_id

    def _check_user_still_may(self, tenant: Tenant, rt: RefreshToken) -> None:
        """A refresh token dies with its consent (withdrawn by an admin), its user (deleted or disabled) and the
        user's sessions (user-revokesigninsessions: "invalidates all the refresh tokens issued to applications
        for a user ... by resetting the signInSessionsValidFromDateTime user property to the current date-time")."""
        if rt.consent_id not in self.grants.consents:
            raise sessions_revoked()
        user = tenant.directory.users.current(rt.user.id)
        if user is None:
            raise invalid_grant(
                50034,
                f"The user account {rt.user.upn} does not exist in the {tenant.display_name} directory.",
            )
        if user.get("accountEnabled") is False:
            raise user_disabled()
        valid_from = user.get("_sessionsValidFrom")
        if not isinstance(valid_from, int | float):
            valid_from = parse_iso(user.get("signInSessionsValidFromDateTime"))
        if valid_from is not None and rt.auth_time < valid_from:
            raise sessions_revoked()
