"""Signing people in to the admin console through Entra ID, as a confidential client (the backend-for-frontend
pattern): MSAL's authorization-code flow with PKCE S256, ``state`` and ``nonce``, for an access token to Warden's
own API (``<client id>/.default``), which the admin API's validator then checks like any bearer token — the same
tenant, audience and app roles. The token is read for who the person is and which roles they hold, then dropped:
the browser never sees it and nothing stores it.
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
https://learn.microsoft.com/en-us/entra/msal/python/getting-started/acquiring-tokens (auth code flow)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.adapters.identity import Authority, built, redeem
from shared.service.connections.ports import ClientCredential, ConsentRefused


class SignInRefused(Exception):
    """Entra ID (or MSAL's checks of its answer) refused the sign-in; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConsoleApp:
    """Warden's API app registration as the console's client."""

    tenant_id: str
    client_id: str
    redirect_uri: str

    @property
    def scopes(self) -> list[str]:
        return [f"{self.client_id}/.default"]


class MsalSignIn:
    def __init__(self, authority: Authority, app: ConsoleApp) -> None:
        self.authority = authority
        self.app = app

    async def begin(self, credential: ClientCredential, login_hint: str | None) -> tuple[str, str]:
        """(the authorize URL, MSAL's flow as JSON: it holds the PKCE verifier, a secret)."""
        a = self.app
        msal_app = await built(self.authority, a.tenant_id, a.client_id, credential)
        # A GET callback with the code in its query, as the delegated consent's: PKCE, a confidential client, a
        # single-use state bound to the browser's pre-sign-in cookie, and a no-store, no-referrer callback answer
        # make a leaked code useless, so MSAL's form_post recommendation is silenced for this call.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
            flow = msal_app.initiate_auth_code_flow(
                a.scopes,
                redirect_uri=a.redirect_uri,
                login_hint=login_hint,
                response_mode="query",
            )
        return str(flow["auth_uri"]), json.dumps(flow)

    async def complete(
        self, credential: ClientCredential, flow: str, response: Mapping[str, str]
    ) -> tuple[str, dict[str, Any]]:
        """(the access token for Warden's API the code in ``response`` redeems, the ID token's claims, which MSAL
        has checked: issuer, audience, nonce). Raises ``SignInRefused``, or ``Upstream`` when Entra is out of
        reach."""
        a = self.app
        msal_app = await built(self.authority, a.tenant_id, a.client_id, credential)
        try:
            result = await redeem(msal_app, flow, response)
        except ConsentRefused as refused:
            code = f" (AADSTS{refused.codes[0]})" if refused.codes else ""
            raise SignInRefused(f"Entra ID refused the sign-in: {refused.error}{code}") from None
        return str(result["access_token"]), dict(result.get("id_token_claims") or {})
