"""Graph's HTTP envelope in the simulator: authentication, headers, error shape, body parsing.

Raw httpx on purpose: these are the headers and error bodies the SDKs hide.
"""

from __future__ import annotations

import jwt

from tests.sim.conftest import VAULT_SCOPE, SimTenant

ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)


def _assert_invalid_token(resp: object, message: str) -> None:
    r = resp  # httpx.Response
    assert r.status_code == 401, r.text  # type: ignore[attr-defined]
    err = r.json()["error"]  # type: ignore[attr-defined]
    assert err["code"] == "InvalidAuthenticationToken"
    assert err["message"] == message
    assert err["innerError"]["request-id"] == r.headers["request-id"]  # type: ignore[attr-defined]
    challenge = r.headers["WWW-Authenticate"]  # type: ignore[attr-defined]
    assert (
        challenge.startswith('Bearer realm=""')
        and 'client_id="00000003-0000-0000-c000-000000000000"' in challenge
    )


def test_missing_token_is_401_access_token_is_empty(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/errors : 401 InvalidAuthenticationToken; Graph's message for no
    token is "Access token is empty." and it sends a WWW-Authenticate Bearer challenge."""
    with tenant.http() as http:
        _assert_invalid_token(http.get("/v1.0/users"), "Access token is empty.")


def test_wrong_audience_forged_and_expired_tokens_are_refused(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/auth/auth-concepts : Graph only accepts tokens issued for it
    ("Access token validation failure. Invalid audience."), signed by the issuer, within their lifetime
    ("Lifetime validation failed, the token is expired.")."""
    vault_token = tenant.token(VAULT_SCOPE)
    _assert_invalid_token(
        tenant.graph("GET", "/users", token=vault_token), "Access token validation failure. Invalid audience."
    )
    good = tenant.token()
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-key", algorithm="HS256")
    _assert_invalid_token(tenant.graph("GET", "/users", token=forged), "Access token validation failure.")
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    _assert_invalid_token(tenant.graph("GET", "/users", token=tampered), "Access token validation failure.")
    tenant.clock(3599 + 301)  # past exp plus the five minutes of skew resources allow
    _assert_invalid_token(
        tenant.graph("GET", "/users", token=good), "Lifetime validation failed, the token is expired."
    )


def test_success_headers_and_client_request_id_echo(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/json-batching shows Graph's JSON content type and
    x-ms-resource-unit; https://learn.microsoft.com/en-us/graph/best-practices-concept : request-id,
    client-request-id (echoed) and x-ms-ags-diagnostic on every response."""
    resp = tenant.graph("GET", "/users?$top=2", headers={"client-request-id": "abc-123"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == ODATA_JSON
    assert resp.headers["client-request-id"] == "abc-123"
    assert resp.headers["request-id"] != "abc-123"
    assert "ServerInfo" in resp.headers["x-ms-ags-diagnostic"]
    assert resp.headers["x-ms-resource-unit"] == "1"  # GET users 2, $top < 20 -1
    assert len(resp.json()["value"]) == 2


def test_invalid_json_body_is_400_bad_request(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/errors : a malformed request is 400 BadRequest."""
    resp = tenant.graph("POST", "/users", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"
    assert "JSON" in resp.json()["error"]["message"]


def test_204_has_no_body_and_tenant_comes_from_the_token(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update : PATCH answers 204 No Content. The tenant is
    the token's ``tid`` (two tenants, two directories)."""
    user = tenant.graph("GET", "/users?$top=1&$select=id").json()["value"][0]
    resp = tenant.graph("PATCH", f"/users/{user['id']}", json={"jobTitle": "Pilot"})
    assert resp.status_code == 204, resp.text
    assert resp.content == b"" and "content-type" not in resp.headers
    from tests.sim.conftest import create_tenant, tenant_body

    other = tenant_body(
        tenant_id="11111111-2222-4333-8444-555555555555",
        domain="fabrikam.example",
        keyVault=False,
        seedUsers=3,
    )
    fabrikam = create_tenant(tenant.sim, other)
    listed = fabrikam.graph("GET", "/users?$select=userPrincipalName").json()["value"]
    assert len(listed) == 3 and all(u["userPrincipalName"].endswith("@fabrikam.example") for u in listed)


def test_delta_minimal_preference_is_applied_over_http(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("Alternative: return only the changed
    properties"): with ``Prefer: return=minimal`` a deltaLink round carries only the changed properties and the
    response says ``Preference-Applied: return=minimal`` — through the server, not just the directory model."""
    link = None
    url = "/users/delta?$select=displayName,jobTitle,accountEnabled"
    while link is None:
        page = tenant.graph("GET", url).json()
        link = page.get("@odata.deltaLink")
        url = page.get("@odata.nextLink", "").split("/v1.0", 1)[-1]
    user = page["value"][0] if page["value"] else tenant.graph("GET", "/users?$top=1").json()["value"][0]
    patched = tenant.graph("PATCH", f"/users/{user['id']}", json={"accountEnabled": False})
    assert patched.status_code == 204
    changes = tenant.graph("GET", link.split("/v1.0", 1)[-1], headers={"Prefer": "return=minimal"})
    assert changes.status_code == 200
    assert changes.headers["Preference-Applied"] == "return=minimal"
    assert changes.json()["value"] == [{"id": user["id"], "accountEnabled": False}]
