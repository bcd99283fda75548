"""The authorize endpoint and its development sign-in.

https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow : ``/authorize`` with
``client_id``, ``response_type=code``, ``redirect_uri``, ``scope``, ``state``, ``nonce``, ``code_challenge`` and
``response_mode`` redirects back with ``code`` and the echoed ``state``. Errors about the client or the redirect URI
are shown on Entra's own page (the redirect URI cannot be trusted yet, AADSTS50011); the others go back to the
redirect URI with ``error`` and ``error_description`` ("Error response").

There is no login page: the sign-in is the user named by ``login_hint`` (who must exist, AADSTS50034, and be
enabled, AADSTS50057), else the tenant's first user. Signing in records the user's consent to the client's scopes
(``tools.m365sim.backends.entra.grants``).
"""

from __future__ import annotations

import secrets
import urllib.parse
import uuid
from dataclasses import dataclass

from tools.m365sim.backends.clock import Clock
from tools.m365sim.backends.entra.errors import (
    missing_parameter,
    unknown_client,
    unknown_tenant,
    user_disabled,
)
from tools.m365sim.backends.entra.grants import AuthCode, Grants, SignedInUser
from tools.m365sim.backends.entra.keys import b64url
from tools.m365sim.backends.entra.token_endpoint import MULTI_TENANT_SEGMENTS, split_scopes
from tools.m365sim.backends.errors import EntraError, GraphError
from tools.m365sim.backends.graph.applications import AppRegistration
from tools.m365sim.backends.tenants import Tenant, Tenants

MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant of Microsoft accounts, which a guest with a consumer address signs in through."""


@dataclass(frozen=True)
class Redirect:
    """Where the browser goes next: ``params`` sent to ``uri`` in ``mode`` (query, fragment or form_post)."""

    uri: str
    mode: str
    params: dict[str, str]


class Authorizer:
    def __init__(self, tenants: Tenants, grants: Grants, clock: Clock) -> None:
        self.tenants = tenants
        self.grants = grants
        self.clock = clock

    def authorize(self, segment: str, params: dict[str, str]) -> Redirect:
        """The redirect an authorize request ends with; raises EntraError for the errors Entra shows on its own
        page."""
        tenant, app, redirect_uri = self._trusted(segment, params)
        state = params.get("state")
        mode = params.get("response_mode", "query")
        try:
            code = self._code(tenant, app, redirect_uri, params)
        except EntraError as err:
            out = {"error": err.error, "error_description": f"AADSTS{err.aadsts}: {err.message}"}
            if state:
                out["state"] = state
            return Redirect(
                redirect_uri, mode if mode in ("query", "fragment", "form_post") else "query", out
            )
        out = {"code": code}
        if state is not None:
            out["state"] = state
        out["session_state"] = str(uuid.uuid4())
        return Redirect(redirect_uri, mode, out)

    def _trusted(self, segment: str, params: dict[str, str]) -> tuple[Tenant, AppRegistration, str]:
        """The tenant, the client and its registered redirect URI; errors here are shown as a page."""
        tenant = self.tenants.resolve(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS:
            raise unknown_tenant(segment)
        client_id = params.get("client_id")
        if not client_id:
            raise missing_parameter("client_id")
        if tenant is None:
            tenant = self._tenant_for(client_id, params.get("login_hint"))
            if tenant is None:
                raise unknown_client(client_id, segment)
        app = tenant.app(client_id)
        if app is None:
            raise unknown_client(client_id, tenant.display_name)
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri and len(app.redirect_uris) == 1:
            redirect_uri = app.redirect_uris[0]
        if not redirect_uri or not self._redirect_allowed(app, redirect_uri):
            raise EntraError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri or ''}' specified in the request does not match the redirect "
                f"URIs configured for the application '{app.app_id}'. Make sure the redirect URI sent in the "
                "request matches one added to your application in the Azure portal.",
            )
        return tenant, app, redirect_uri

    def _code(self, tenant: Tenant, app: AppRegistration, redirect_uri: str, params: dict[str, str]) -> str:
        if params.get("response_type") != "code":
            raise EntraError(
                400,
                "unsupported_response_type",
                70005,
                "The provided value for the input parameter 'response_type' is not allowed for this request. "
                f"Expected value: 'code'. Actual value: '{params.get('response_type', '')}'.",
            )
        mode = params.get("response_mode", "query")
        if mode not in ("query", "fragment", "form_post"):
            raise EntraError(
                400,
                "invalid_request",
                70007,
                f"The provided value for the input parameter 'response_mode' is not valid: '{mode}'.",
            )
        scope = params.get("scope")
        if not scope:
            raise missing_parameter("scope")
        method = params.get("code_challenge_method", "plain" if params.get("code_challenge") else "")
        if params.get("code_challenge") and method not in ("S256", "plain"):
            raise EntraError(
                400, "invalid_request", 501491, f"The code_challenge_method '{method}' is not supported."
            )
        _, scp, _ = split_scopes(tenant, app, scope.split())  # validates the resources
        user = self._sign_in(tenant, params.get("login_hint"), params.get("prompt"))
        consent = self.grants.consent(tenant.tenant_id, app.app_id, user, scp.split(), self.clock())
        value = "1.A" + b64url(secrets.token_bytes(120))
        self.grants.add_code(
            value,
            AuthCode(
                tenant.tenant_id,
                app.app_id,
                redirect_uri,
                scope.split(),
                params.get("nonce"),
                params.get("code_challenge"),
                method or "plain",
                user,
                issued=self.clock(),
                consent_id=consent.id,
            ),
        )
        return value

    def _tenant_for(self, client_id: str, login_hint: str | None) -> Tenant | None:
        if login_hint and "@" in login_hint:
            t = self.tenants.resolve(login_hint.rsplit("@", 1)[1])
            if t is not None:
                return t
        owners = [t for t in self.tenants.all() if t.app(client_id) is not None]
        return owners[0] if len(owners) == 1 else None

    @staticmethod
    def _redirect_allowed(app: AppRegistration, redirect_uri: str) -> bool:
        if app.redirect_uris:
            return redirect_uri in app.redirect_uris
        u = urllib.parse.urlsplit(redirect_uri)
        return u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost")

    def _guest(self, guest: dict[str, object]) -> SignedInUser:
        """A B2B guest signs in with its own address, authenticated by its home tenant (the tenant holding the
        address's domain; a Microsoft account's otherwise: id-token-claims-reference, ``idp``)."""
        if guest.get("accountEnabled") is False:
            raise user_disabled()
        email = str(guest.get("mail") or "")
        home = self.tenants.resolve(email.rsplit("@", 1)[-1])
        return SignedInUser(
            str(guest["id"]),
            email,
            str(guest.get("displayName") or email),
            home.tenant_id if home is not None else MSA_TENANT_ID,
        )

    def _sign_in(self, tenant: Tenant, login_hint: str | None, prompt: str | None) -> SignedInUser:
        """The dev sign-in: the login_hint's user (must exist and be enabled), else the tenant's first user."""
        users = tenant.directory.users
        if login_hint:
            try:
                found = users.visible(login_hint)
            except GraphError:
                guest = users.by_guest_address(login_hint)
                if guest is not None:
                    return self._guest(guest)
                raise EntraError(
                    400,
                    "invalid_request",
                    50034,
                    f"The user account {login_hint} does not exist in the {tenant.display_name} directory. To "
                    "sign into this application, the account must be added to the directory.",
                ) from None
            current = users.current(found["id"]) or found
            if current.get("accountEnabled") is False:
                raise user_disabled()
            return SignedInUser(
                str(found["id"]),
                str(found.get("userPrincipalName") or login_hint),
                str(found.get("displayName") or login_hint),
            )
        if prompt == "none":
            raise EntraError(
                400, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."
            )
        first = next(users.after(""), None)
        if first is not None:
            data = first[1]
            return SignedInUser(
                str(data["id"]), str(data.get("userPrincipalName")), str(data.get("displayName"))
            )
        upn = f"admin@{tenant.default_domain()}"
        return SignedInUser(str(uuid.uuid5(uuid.UUID(int=1), f"{tenant.tenant_id}:{upn}")), upn, "Dev Admin")
