"""The simulated Entra ID token service, driven through MSAL and azure-identity.

Docs followed (each test names its page):
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
- https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from typing import Any

import httpx
import jwt
import msal  # type: ignore[import-untyped]
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from tests.sim.conftest import (
    CLIENT_ID,
    DOMAIN,
    GRAPH_SCOPE,
    OTHER_CLIENT_ID,
    REDIRECT,
    ROLES,
    SECRET,
    TENANT_ID,
    VAULT_SCOPE,
    SimTenant,
    client_credentials,
    create_tenant,
    http_session,
    tenant_body,
)

DAY = 86400


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def assert_aad_error(body: dict[str, Any], error: str, code: int) -> None:
    """reference-error-codes: error, error_description "AADSTSnnnn: …", error_codes, timestamp, trace_id,
    correlation_id, error_uri."""
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    for key in ("timestamp", "trace_id", "correlation_id", "error_uri"):
        assert body[key], key


def test_openid_configuration_and_jwks_verify_issued_tokens(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc : the discovery document
    names the issuer, endpoints and jwks_uri; the tenant may be named by its domain."""
    with tenant.http() as http:
        by_domain = http.get(f"/{DOMAIN}/v2.0/.well-known/openid-configuration").json()
        config = http.get(f"/{TENANT_ID}/v2.0/.well-known/openid-configuration").json()
        assert by_domain == config
        assert config["issuer"] == f"{tenant.sim.url}/{TENANT_ID}/v2.0"
        assert config["token_endpoint"] == f"{tenant.sim.url}/{TENANT_ID}/oauth2/v2.0/token"
        assert config["authorization_endpoint"] == f"{tenant.sim.url}/{TENANT_ID}/oauth2/v2.0/authorize"
        assert "RS256" in config["id_token_signing_alg_values_supported"]
        common = http.get("/common/v2.0/.well-known/openid-configuration").json()
        assert common["issuer"] == f"{tenant.sim.url}/{{tenantid}}/v2.0"
        jwks = http.get(config["jwks_uri"].removeprefix(tenant.sim.url)).json()
    token = tenant.token()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    verified = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=config["issuer"],
    )
    assert verified["tid"] == TENANT_ID


def test_unknown_tenant_is_aadsts90002(tenant: SimTenant) -> None:
    """reference-error-codes: AADSTS90002 InvalidTenantName, error invalid_request."""
    with tenant.http() as http:
        discovery = http.get("/nowhere.example/v2.0/.well-known/openid-configuration")
        assert discovery.status_code == 400
        assert_aad_error(discovery.json(), "invalid_request", 90002)
    token = tenant.token_request(client_credentials(), segment="nowhere.example")
    assert token.status_code == 400
    assert_aad_error(token.json(), "invalid_request", 90002)
    with pytest.raises(ValueError, match="authority"):
        tenant.msal(authority=f"{tenant.sim.url}/nowhere.example")


def test_client_credentials_token_for_graph_carries_app_roles(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    "Successful response": token_type Bearer, expires_in, access_token; app-only tokens carry ``roles``."""
    result = tenant.msal().acquire_token_for_client([GRAPH_SCOPE])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    c = claims(result["access_token"])
    assert c["aud"] == "https://graph.microsoft.com"
    assert c["iss"] == f"{tenant.sim.url}/{TENANT_ID}/v2.0"
    assert c["tid"] == TENANT_ID
    assert c["azp"] == c["appid"] == CLIENT_ID
    assert c["oid"] == c["sub"]
    assert sorted(c["roles"]) == sorted(ROLES)
    assert "scp" not in c
    assert c["ver"] == "2.0"
    assert c["exp"] - c["iat"] == 3599 and c["nbf"] == c["iat"]
    assert jwt.get_unverified_header(result["access_token"])["alg"] == "RS256"


def test_client_credentials_for_key_vault_and_by_domain_authority(tenant: SimTenant) -> None:
    """v2-oauth2-client-creds-grant-flow: ``scope`` is ``<resource>/.default``; the tenant segment may be a
    domain name. A Key Vault token has aud https://vault.azure.net and no Graph roles."""
    result = tenant.msal(authority=f"{tenant.sim.url}/{DOMAIN}").acquire_token_for_client([VAULT_SCOPE])
    c = claims(result["access_token"])
    assert c["aud"] == "https://vault.azure.net"
    assert c["tid"] == TENANT_ID
    assert "roles" not in c


def test_every_registered_secret_works_and_basic_auth_is_accepted(tenant: SimTenant) -> None:
    """v2-oauth2-client-creds-grant-flow: an app may hold several secrets; RFC 6749 2.3.1 client_secret_basic
    (form-url-encoded id and secret in the Authorization header) is advertised in the discovery document."""
    assert claims(tenant.token(secret=SECRET + "-2"))["azp"] == CLIENT_ID
    basic = base64.b64encode(
        f"{urllib.parse.quote_plus(CLIENT_ID)}:{urllib.parse.quote_plus(SECRET)}".encode()
    ).decode()
    resp = tenant.token_request(
        {"grant_type": "client_credentials", "scope": GRAPH_SCOPE},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["ext_expires_in"] == 3599


def test_wrong_secret_and_unknown_client_are_refused(tenant: SimTenant) -> None:
    """reference-error-codes: AADSTS7000215 invalid client secret (401 invalid_client); AADSTS700016
    application not found in the directory (unauthorized_client)."""
    bad = tenant.msal(secret="wrong").acquire_token_for_client([GRAPH_SCOPE])
    assert bad["error"] == "invalid_client" and bad["error_codes"] == [7000215]
    unknown = tenant.msal(client_id="99999999-9999-4999-8999-999999999999").acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert unknown["error"] == "unauthorized_client" and unknown["error_codes"] == [700016]
    resp = tenant.token_request(client_credentials(client_secret="wrong"))
    missing = tenant.token_request(
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "scope": GRAPH_SCOPE}
    )
    assert resp.status_code == 401
    assert_aad_error(resp.json(), "invalid_client", 7000215)
    assert missing.status_code == 401
    assert_aad_error(missing.json(), "invalid_client", 7000218)


def test_bad_scopes_grants_and_common_endpoint(tenant: SimTenant) -> None:
    """reference-error-codes: a client-credentials scope without /.default is invalid_scope (AADSTS1002012),
    an unknown resource invalid_resource (AADSTS500011), an unknown grant unsupported_grant_type (AADSTS70003),
    client credentials over /common AADSTS9001023."""

    def post(segment: str, **data: str) -> Any:
        return tenant.token_request(
            {"client_id": CLIENT_ID, "client_secret": SECRET, **data}, segment=segment
        )

    r = post(TENANT_ID, grant_type="client_credentials", scope="https://graph.microsoft.com/User.Read.All")
    assert r.status_code == 400
    assert_aad_error(r.json(), "invalid_scope", 1002012)
    r = post(TENANT_ID, grant_type="client_credentials", scope="https://unknown.example/.default")
    assert_aad_error(r.json(), "invalid_resource", 500011)
    r = post(TENANT_ID, grant_type="client_credentials")
    assert_aad_error(r.json(), "invalid_request", 900144)
    r = post(TENANT_ID, grant_type="password")
    assert_aad_error(r.json(), "unsupported_grant_type", 70003)
    r = post("common", grant_type="client_credentials", scope=GRAPH_SCOPE)
    assert_aad_error(r.json(), "invalid_request", 9001023)
    r = post(TENANT_ID, grant_type="client_credentials", scope=f"api://{OTHER_CLIENT_ID}/.default")
    assert r.status_code == 200 and claims(r.json()["access_token"])["aud"] == f"api://{OTHER_CLIENT_ID}"


def test_azure_identity_client_secret_credential(tenant: SimTenant) -> None:
    """azure-identity's ClientSecretCredential (MSAL underneath) against the simulated authority host; a wrong
    secret surfaces as ClientAuthenticationError carrying AADSTS7000215
    (v2-oauth2-client-creds-grant-flow, reference-error-codes)."""
    cred = tenant.credential(ClientSecretCredential)
    token = cred.get_token(VAULT_SCOPE)
    assert claims(token.token)["aud"] == "https://vault.azure.net"
    bad = tenant.credential(ClientSecretCredential, secret="wrong")
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        bad.get_token(GRAPH_SCOPE)


def _first_upn(tenant: SimTenant) -> tuple[str, str]:
    user = tenant.graph("GET", "/users?$top=1&$select=id,userPrincipalName").json()["value"][0]
    return str(user["id"]), str(user["userPrincipalName"])


def _location_query(resp: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))


def _authorize_get(
    http: httpx.Client,
    client_id: str,
    redirect_uri: str,
    scope: str,
    response_type: str = "code",
    **extra: str,
) -> httpx.Response:
    """GET the tenant's /authorize with the given parameters (in the order a browser would carry them)."""
    return http.get(
        f"/{TENANT_ID}/oauth2/v2.0/authorize",
        params={
            "client_id": client_id,
            "response_type": response_type,
            "redirect_uri": redirect_uri,
            "scope": scope,
            **extra,
        },
    )


def _authorize(tenant: SimTenant, flow: dict[str, Any]) -> dict[str, str]:
    with tenant.http() as http:
        resp = http.get(flow["auth_uri"].removeprefix(tenant.sim.url))
    assert resp.status_code == 302, resp.text
    assert resp.headers["Location"].startswith(REDIRECT + "?")
    return _location_query(resp)


def test_authorization_code_flow_with_pkce_and_nonce(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow : /authorize
    redirects back with ``code`` and the echoed ``state``; redeeming the code (with the PKCE verifier) returns
    an access token with ``scp``, a refresh token and an ID token carrying the request's ``nonce`` (MSAL checks
    state, nonce, iss and aud itself)."""
    oid, upn = _first_upn(tenant)
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(
        ["https://graph.microsoft.com/User.Read"], redirect_uri=REDIRECT, login_hint=upn
    )
    auth_response = _authorize(tenant, flow)
    assert auth_response["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    assert "access_token" in result, result
    # MSAL sends the SHA-256 of its nonce and checks the ID token's nonce against that.
    assert result["id_token_claims"]["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert result["id_token_claims"]["preferred_username"] == upn
    at = claims(result["access_token"])
    assert at["aud"] == "https://graph.microsoft.com" and at["oid"] == oid
    assert "User.Read" in at["scp"].split() and "roles" not in at
    assert result["refresh_token"]
    # Graph accepts it as a delegated token (authorization is then the directory's business).
    me = tenant.graph("GET", f"/users/{oid}", token=result["access_token"])
    assert me.status_code != 401, me.text


def test_code_is_single_use_short_lived_and_pkce_bound(tenant: SimTenant) -> None:
    """reference-error-codes: AADSTS54005 code already redeemed, AADSTS70008 expired grant, AADSTS501481
    code_verifier mismatch; v2-oauth2-auth-code-flow: codes live about 10 minutes."""
    _, upn = _first_upn(tenant)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

    def get_code() -> str:
        with tenant.http() as http:
            resp = _authorize_get(
                http,
                CLIENT_ID,
                REDIRECT,
                "openid offline_access User.Read",
                state="s1",
                login_hint=upn,
                code_challenge=challenge,
                code_challenge_method="S256",
            )
        assert resp.status_code == 302, resp.text
        return _location_query(resp)["code"]

    def redeem(code: str, code_verifier: str = verifier) -> Any:
        return tenant.token_request(
            {
                "grant_type": "authorization_code",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": code_verifier,
            }
        )

    code = get_code()
    wrong = redeem(code, "not-the-verifier")
    assert wrong.status_code == 400
    assert_aad_error(wrong.json(), "invalid_grant", 501481)
    assert redeem(code).status_code == 200
    again = redeem(code)
    assert_aad_error(again.json(), "invalid_grant", 54005)
    late = get_code()
    tenant.clock(11 * 60)
    assert_aad_error(redeem(late).json(), "invalid_grant", 70008)


def test_authorize_refuses_untrusted_redirects_and_redirects_trusted_errors(tenant: SimTenant) -> None:
    """v2-oauth2-auth-code-flow "Error response": errors go back to the redirect URI with ``error`` and
    ``error_description`` - but only to a registered one (AADSTS50011 otherwise, shown as a page)."""
    with tenant.http() as http:
        untrusted = _authorize_get(http, CLIENT_ID, "https://evil.example/cb", "openid")
        assert untrusted.status_code == 400 and "AADSTS50011" in untrusted.text
        bad_type = _authorize_get(http, CLIENT_ID, REDIRECT, "openid", response_type="token", state="xyz")
        assert bad_type.status_code == 302
        q = _location_query(bad_type)
        assert q["error"] == "unsupported_response_type" and q["state"] == "xyz"
        unknown = _authorize_get(http, "99999999-9999-4999-8999-999999999999", REDIRECT, "openid")
        assert unknown.status_code == 400 and "AADSTS700016" in unknown.text
        # A client with no registered redirect URIs may use a loopback one (dev consent).
        loopback = _authorize_get(http, OTHER_CLIENT_ID, "http://127.0.0.1:9/cb", "openid")
        assert loopback.status_code == 302 and "code=" in loopback.headers["Location"]


def test_refresh_tokens_rotate_and_expire_after_90_days_of_inactivity(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens : refresh tokens are replaced
    on each use, the old one is not revoked (learn.microsoft.com/en-us/answers/questions/1158831), and each
    expires after 90 days without use (AADSTS700082)."""
    _, upn = _first_upn(tenant)
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, login_hint=upn)
    first = app.acquire_token_by_auth_code_flow(flow, _authorize(tenant, flow))
    rt1 = first["refresh_token"]
    second = app.acquire_token_by_refresh_token(rt1, ["User.Read"])
    assert "access_token" in second, second
    rt2 = second["refresh_token"]
    assert rt2 != rt1
    replay = app.acquire_token_by_refresh_token(rt1, ["User.Read"])
    assert "access_token" in replay, replay  # still valid until its own lifetime ends
    tenant.clock(89 * DAY)
    third = app.acquire_token_by_refresh_token(rt2, ["User.Read"])
    assert "access_token" in third, third
    tenant.clock(89 * DAY + 91 * DAY)
    expired = app.acquire_token_by_refresh_token(third["refresh_token"], ["User.Read"])
    assert expired["error"] == "invalid_grant" and expired["error_codes"] == [700082]
    stale = app.acquire_token_by_refresh_token(rt1, ["User.Read"])
    assert stale["error"] == "invalid_grant" and stale["error_codes"] == [700082]


def test_token_lifetime_follows_the_simulator_clock(tenant: SimTenant) -> None:
    """access-token-claims-reference: iat/nbf/exp are on the issuer's clock; PUT /_sim/clock moves it."""
    tenant.clock(10 * DAY)
    c = claims(tenant.token())
    import time

    assert c["iat"] > time.time() + 9 * DAY
    assert msal.__version__


MI_CLIENT_ID = "0f6a2b7c-3d4e-4f50-8a61-7b2c9d0e1f32"


def test_managed_identity_endpoint_as_app_service_answers_it(clean_sim: Any) -> None:
    """overview-managed-identity, "REST endpoint reference": GET IDENTITY_ENDPOINT?resource=…&api-version=
    2019-08-01 with X-IDENTITY-HEADER answers access_token, expires_on (epoch seconds, a string), resource,
    token_type, client_id; the token is the identity's, for the resource. MSAL's ManagedIdentityClient takes it
    from there; an unknown header, or another api-version, is refused."""
    header = "identity-header-" + secrets.token_hex(8)
    mi = {"clientId": MI_CLIENT_ID, "identityHeader": header}
    tenant = create_tenant(clean_sim, tenant_body(clients=[mi]))
    with tenant.http() as http:
        query = {"resource": "https://vault.azure.net", "api-version": "2019-08-01"}
        answer = http.get("/msi/token", params=query, headers={"X-IDENTITY-HEADER": header})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
        assert (body["resource"], body["token_type"], body["client_id"]) == (
            query["resource"],
            "Bearer",
            MI_CLIENT_ID,
        )
        assert isinstance(body["expires_on"], str) and int(body["expires_on"]) > 0
        token = claims(body["access_token"])
        assert (token["aud"], token["appid"], token["tid"]) == (
            "https://vault.azure.net",
            MI_CLIENT_ID,
            TENANT_ID,
        )
        refused = http.get("/msi/token", params=query, headers={"X-IDENTITY-HEADER": "not-it"})
        assert refused.status_code == 401 and set(refused.json()) >= {"statusCode", "message"}
        old = http.get(
            "/msi/token", params={**query, "api-version": "2017-09-01"}, headers={"X-IDENTITY-HEADER": header}
        )
        assert old.status_code == 400


def test_msal_managed_identity_client_on_app_service(clean_sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL's ManagedIdentityClient with App Service's variables takes its token from the endpoint, then from its
    cache."""
    header = "identity-header-" + secrets.token_hex(8)
    tenant = create_tenant(
        clean_sim, tenant_body(clients=[{"clientId": MI_CLIENT_ID, "identityHeader": header}])
    )
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{tenant.sim.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", header)
    client = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=http_session(tenant.sim.ca)
    )
    first = client.acquire_token_for_client(resource="https://graph.microsoft.com")
    assert claims(first["access_token"])["aud"] == "https://graph.microsoft.com", first
    again = client.acquire_token_for_client(resource="https://graph.microsoft.com")
    assert again["access_token"] == first["access_token"] and again["token_source"] == "cache"
