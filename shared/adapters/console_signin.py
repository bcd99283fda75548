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
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from shared.adapters.identity import Authority, built, in_thread
from shared.domain.errors import Upstream
from shared.service.connections.ports import ClientCredential

_AADSTS = re.compile(r"AADSTS(\d+)")


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

    async def complete(self, credential: ClientCredential, flow: str, response: Mapping[str, str]) -> str:
        """The access token for Warden's API the code in ``response`` redeems. Raises ``SignInRefused``."""
        a = self.app
        msal_app = await built(self.authority, a.tenant_id, a.client_id, credential)
        import requests

        try:
            result = await in_thread(
                lambda: msal_app.acquire_token_by_auth_code_flow(json.loads(flow), dict(response))
            )
        except requests.RequestException:
            raise Upstream("Entra ID could not be reached to redeem the sign-in's code") from None
        except ValueError:  # MSAL's checks of the answer: state, nonce, the ID token's issuer and audience
            raise SignInRefused("the sign-in's answer did not pass MSAL's checks (state or nonce)") from None
        if "error" in result or "access_token" not in result:
            description = str(result.get("error_description") or "")
            code = _AADSTS.search(description)
            error = str(result.get("error") or "unknown_error")
            raise SignInRefused(
                f"Entra ID refused the sign-in: {error}" + (f" (AADSTS{code.group(1)})" if code else "")
            )
        return str(result["access_token"])
