"""Delegated consent as Entra does it, through MSAL (and msgraph-sdk where Graph takes part).

Pages followed (each test names its own):
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow (authorize, PKCE, code)
- https://learn.microsoft.com/en-us/graph/api/resources/oauth2permissiongrant (a consent per client, user, scopes)
- https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens (rotation, 90 days of inactivity,
  revocation)
- https://learn.microsoft.com/en-us/graph/api/user-revokesigninsessions
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes (AADSTS700082, 50173, 50057)
- https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference (exp) and
  https://learn.microsoft.com/en-us/graph/errors (401 InvalidAuthenticationToken)
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import msal  # type: ignore[import-untyped]
import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User

from tests.sim.conftest import DOMAIN, REDIRECT, TENANT_ID, SimTenant, StaticToken, graph_client

DAY = 86400
READ_ALL = ["https://graph.microsoft.com/User.Read.All"]


def sign_in(
    tenant: SimTenant, upn: str, scopes: list[str] | None = None
) -> tuple[msal.ClientApplication, Any]:
    """The authorization-code flow MSAL runs (PKCE S256, state, nonce), with the simulator's dev sign-in as the
    browser: the authorize endpoint signs ``upn`` in and redirects back with the code."""
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(scopes or ["User.Read"], redirect_uri=REDIRECT, login_hint=upn)
    assert "code_challenge_method=S256" in flow["auth_uri"]
    with tenant.http() as http:
        resp = http.get(flow["auth_uri"].removeprefix(tenant.sim.url))
    assert resp.status_code == 302, resp.text
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    return app, app.acquire_token_by_auth_code_flow(flow, query)


def consents(tenant: SimTenant, **query: str) -> list[dict[str, Any]]:
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    resp = tenant.sim.control("GET", f"/_sim/tenants/{TENANT_ID}/consents{suffix}")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["value"])


def refresh(tenant: SimTenant, token: str, scopes: list[str] | None = None) -> dict[str, Any]:
    return dict(tenant.msal().acquire_token_by_refresh_token(token, scopes or ["User.Read"]))


def test_signing_in_records_a_consent_per_client_and_user(tenant: SimTenant) -> None:
    """v2-oauth2-auth-code-flow / oauth2permissiongrant: the sign-in records the user's consent to the client and
    the scopes granted; another user is another consent, more scopes widen the same one."""
    _, first = sign_in(tenant, f"user0001@{DOMAIN}")
    assert "access_token" in first and first["refresh_token"]
    _, second = sign_in(tenant, f"user0002@{DOMAIN}")
    assert "access_token" in second
    _, wider = sign_in(tenant, f"user0001@{DOMAIN}", ["User.Read", "Mail.Read"])
    assert "access_token" in wider
    recorded = sorted(consents(tenant), key=lambda c: c["userPrincipalName"])
    assert [c["userPrincipalName"] for c in recorded] == [f"user0001@{DOMAIN}", f"user0002@{DOMAIN}"]
    assert {"User.Read", "Mail.Read"} <= set(recorded[0]["scopes"]) and "Mail.Read" not in recorded[1][
        "scopes"
    ]
    assert consents(tenant, user=f"user0002@{DOMAIN}")[0]["clientId"] == tenant.client_id


def test_a_refreshed_grant_never_lapses_but_one_left_90_days_does(tenant: SimTenant) -> None:
    """refresh-tokens: each use returns a new refresh token whose 90-day inactivity window starts again, so a
    grant refreshed every 80 days lives on (240 days here); one left unused for 91 days is invalid_grant
    AADSTS700082 - all on the simulator's clock."""
    _, result = sign_in(tenant, f"user0003@{DOMAIN}")
    token = result["refresh_token"]
    for step in range(1, 4):
        tenant.clock(step * 80 * DAY)
        refreshed = refresh(tenant, token)
        assert "access_token" in refreshed, (step, refreshed)
        assert refreshed["refresh_token"] != token
        token = refreshed["refresh_token"]
    tenant.clock(3 * 80 * DAY + 91 * DAY)
    lapsed = refresh(tenant, token)
    assert "error" in lapsed, lapsed
    assert lapsed["error"] == "invalid_grant" and lapsed["error_codes"] == [700082]


async def test_revoking_the_users_sessions_voids_its_refresh_tokens(tenant: SimTenant) -> None:
    """user-revokesigninsessions (through msgraph-sdk): refresh tokens issued before it are invalid_grant
    AADSTS50173; a new sign-in afterwards works."""
    _, result = sign_in(tenant, f"user0004@{DOMAIN}")
    async with graph_client(tenant) as graph:
        revoked = await graph.users.by_user_id(f"user0004@{DOMAIN}").revoke_sign_in_sessions.post()
        assert revoked is not None and revoked.value is True
    refused = refresh(tenant, result["refresh_token"])
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50173]
    _, again = sign_in(tenant, f"user0004@{DOMAIN}")
    assert "access_token" in refresh(tenant, again["refresh_token"])


def test_an_admin_withdrawing_the_consent_voids_its_refresh_tokens(tenant: SimTenant) -> None:
    """refresh-tokens "Revocation": a grant withdrawn by an admin (the control API's DELETE of the consent, as
    deleting the oauth2PermissionGrant) makes every refresh token under it invalid_grant AADSTS50173; other users'
    grants are untouched; consenting again starts a new grant."""
    _, mine = sign_in(tenant, f"user0005@{DOMAIN}")
    _, theirs = sign_in(tenant, f"user0006@{DOMAIN}")
    resp = tenant.sim.control(
        "DELETE", f"/_sim/tenants/{TENANT_ID}/consents?clientId={tenant.client_id}&user=user0005@{DOMAIN}"
    )
    assert resp.status_code == 200 and resp.json() == {"revoked": 1}
    refused = refresh(tenant, mine["refresh_token"])
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50173]
    assert "access_token" in refresh(tenant, theirs["refresh_token"])
    assert [c["userPrincipalName"] for c in consents(tenant)] == [f"user0006@{DOMAIN}"]
    _, renewed = sign_in(tenant, f"user0005@{DOMAIN}")
    assert "access_token" in refresh(tenant, renewed["refresh_token"])
    assert refresh(tenant, mine["refresh_token"])["error_codes"] == [50173]  # the old grant stays void


async def test_a_disabled_user_can_neither_refresh_nor_sign_in(tenant: SimTenant) -> None:
    """reference-error-codes AADSTS50057 (UserDisabled): once the consenting user is disabled (user-update,
    through msgraph-sdk), the refresh is invalid_grant 50057 and a sign-in comes back with the same code."""
    _, result = sign_in(tenant, f"user0007@{DOMAIN}")
    async with graph_client(tenant) as graph:
        await graph.users.by_user_id(f"user0007@{DOMAIN}").patch(User(account_enabled=False))
    refused = refresh(tenant, result["refresh_token"])
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50057]
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, login_hint=f"user0007@{DOMAIN}")
    with tenant.http() as http:
        resp = http.get(flow["auth_uri"].removeprefix(tenant.sim.url))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    assert query["error"] == "invalid_grant" and query["error_description"].startswith("AADSTS50057")
    assert query["state"] == flow["state"]


async def test_access_tokens_expire_on_the_simulators_clock(tenant: SimTenant) -> None:
    """access-token-claims-reference (exp) and graph/errors: a delegated token past its exp on the simulator's
    clock is 401 InvalidAuthenticationToken at Graph (msgraph-sdk sends it as it is); the refresh token gets a new
    one."""
    _, result = sign_in(tenant, f"user0008@{DOMAIN}", READ_ALL)
    oid = result["id_token_claims"]["oid"]
    async with graph_client(tenant, StaticToken(result["access_token"])) as graph:
        me = await graph.users.by_user_id(oid).get()
        assert me is not None and me.user_principal_name == f"user0008@{DOMAIN}"
        tenant.clock(2 * 3600)
        with pytest.raises(ODataError) as expired:
            await graph.users.by_user_id(oid).get()
        assert expired.value.response_status_code == 401
        assert expired.value.error is not None and expired.value.error.code == "InvalidAuthenticationToken"
        assert expired.value.error.message == "Lifetime validation failed, the token is expired."
    renewed = refresh(tenant, result["refresh_token"], READ_ALL)
    async with graph_client(tenant, StaticToken(renewed["access_token"])) as graph:
        again = await graph.users.by_user_id(oid).get()
        assert again is not None and again.id == oid
