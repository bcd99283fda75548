"""App roles of a custom API (the Warden admin API) in client-credentials tokens.

Docs followed:
- https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps : app roles are defined on
  the API's app registration; assigned to another application's service principal they are application
  permissions, and the API's tokens carry them in ``roles``.
- https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference : ``aud`` "In v2.0
  tokens, this value is always the client ID of the API"; ``roles`` "The client credential flow uses this set of
  permission in place of user scopes for application tokens"; claims "are present only if a value exists to fill
  it".
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow : the scope is
  ``<App ID URI>/.default``.
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-app-manifest : ``identifierUris`` (App ID
  URIs), ``appRoles``.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from azure.identity import ClientSecretCredential

from tests.conftest import Sim
from tests.sim.conftest import (
    CLIENT_ID,
    GRAPH_SCOPE,
    ROLES,
    SECRET,
    TENANT_ID,
    SimTenant,
    create_tenant,
    tenant_body,
)

API_ID = "6c1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
API_URI = "api://warden-local"
READER_ID = "7d2f3a4b-5c6d-4e7f-8a81-92a3b4c5d6e7"
NOBODY_ID = "8e3a4b5c-6d7e-4f80-9b92-a3b4c5d6e7f8"
API_SCOPE = f"{API_URI}/.default"


def api_clients() -> list[dict[str, Any]]:
    """The Warden API (roles defined, no secret needed), an admin client granted Warden.Admin by App ID URI, a
    reader granted Warden.Reader by the API's client id, and a client granted nothing."""
    return [
        {
            "clientId": API_ID,
            "displayName": "Warden API",
            "identifierUris": [API_URI],
            "appRoles": ["Warden.Admin", "Warden.Reader"],
        },
        {
            "clientId": CLIENT_ID,
            "clientSecret": SECRET,
            "roles": ROLES,
            "appRoleAssignments": {API_URI: ["Warden.Admin"]},
        },
        {
            "clientId": READER_ID,
            "clientSecret": "reader-secret",
            "appRoleAssignments": {API_ID: ["Warden.Reader"]},
        },
        {"clientId": NOBODY_ID, "clientSecret": "nobody-secret"},
    ]


@pytest.fixture
def api_tenant(clean_sim: Sim) -> SimTenant:
    return create_tenant(clean_sim, tenant_body(clients=api_clients()))


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_admin_token_for_the_app_id_uri_has_the_api_client_id_as_aud_and_its_roles(
    api_tenant: SimTenant,
) -> None:
    """howto-add-app-roles-in-apps + access-token-claims-reference: a client-credentials token for
    ``api://warden-local/.default`` is a v2.0 token for the API: ``aud`` is the API's client id (not the URI),
    ``roles`` the app roles granted to the caller (not its Graph permissions); it verifies against the JWKS with
    that audience."""
    result = api_tenant.msal().acquire_token_for_client([API_SCOPE])
    assert "access_token" in result, result
    token = result["access_token"]
    c = claims(token)
    assert c["aud"] == API_ID
    assert c["roles"] == ["Warden.Admin"]
    assert c["azp"] == c["appid"] == CLIENT_ID
    assert c["idtyp"] == "app" and c["ver"] == "2.0" and "scp" not in c
    with api_tenant.http() as http:
        jwks = http.get(f"/{TENANT_ID}/discovery/v2.0/keys").json()
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    verified = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=API_ID,
        issuer=f"{api_tenant.sim.url}/{TENANT_ID}/v2.0",
    )
    assert verified["roles"] == ["Warden.Admin"]
    # The same client's Graph token still carries its Graph permissions, not the API's roles.
    graph = claims(api_tenant.token(GRAPH_SCOPE))
    assert sorted(graph["roles"]) == sorted(ROLES) and "Warden.Admin" not in graph["roles"]


def test_reader_token_by_the_api_client_id_through_azure_identity(api_tenant: SimTenant) -> None:
    """v2-oauth2-client-creds-grant-flow: the resource may also be named by its application (client) id,
    ``<appId>/.default``; the assignment was given by client id and yields the Warden.Reader role."""
    cred = api_tenant.credential(ClientSecretCredential, "reader-secret", client_id=READER_ID)
    by_id = claims(cred.get_token(f"{API_ID}/.default").token)
    assert by_id["aud"] == API_ID and by_id["roles"] == ["Warden.Reader"] and by_id["azp"] == READER_ID
    by_uri = claims(cred.get_token(API_SCOPE).token)
    assert by_uri["aud"] == API_ID and by_uri["roles"] == ["Warden.Reader"]


def test_a_client_without_assignments_gets_a_token_without_roles(api_tenant: SimTenant) -> None:
    """access-token-claims-reference: claims are present only if a value exists to fill them - an app granted no
    role on the API still gets a token for it (aud the API), with no ``roles`` claim at all; the API decides."""
    c = claims(api_tenant.token(API_SCOPE, client_id=NOBODY_ID, secret="nobody-secret"))
    assert c["aud"] == API_ID
    assert "roles" not in c


def test_api_tokens_are_not_graph_tokens_and_unregistered_api_uris_keep_their_uri(
    api_tenant: SimTenant,
) -> None:
    """Graph refuses a token whose aud is the Warden API (Graph's "Invalid audience"); an ``api://`` resource no
    app of the tenant claims is still answered with aud = that URI and no roles (the simulator's behaviour before
    API apps existed)."""
    api_token = api_tenant.token(API_SCOPE)
    refused = api_tenant.graph("GET", "/users", token=api_token)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "Access token validation failure. Invalid audience."
    other = claims(api_tenant.token("api://someone-else/.default"))
    assert other["aud"] == "api://someone-else" and "roles" not in other


def test_describe_lists_identifier_uris_app_roles_and_assignments_by_client_id(clean_sim: Sim) -> None:
    """GET /_sim/tenants (and the 201 of POST): each client's identifierUris, appRoles and appRoleAssignments,
    assignments keyed by the resource's client id even when given by App ID URI; never a secret."""
    created = clean_sim.control("POST", "/_sim/tenants", json=tenant_body(clients=api_clients()))
    assert created.status_code == 201, created.text
    listed = clean_sim.control("GET", "/_sim/tenants")
    for text, body in ((created.text, created.json()), (listed.text, listed.json()["value"][0])):
        by_id = {c["clientId"]: c for c in body["clients"]}
        assert by_id[API_ID]["identifierUris"] == [API_URI]
        assert by_id[API_ID]["appRoles"] == ["Warden.Admin", "Warden.Reader"]
        assert by_id[API_ID]["appRoleAssignments"] == {}
        assert by_id[CLIENT_ID]["appRoleAssignments"] == {API_ID: ["Warden.Admin"]}
        assert by_id[READER_ID]["appRoleAssignments"] == {API_ID: ["Warden.Reader"]}
        assert by_id[NOBODY_ID]["identifierUris"] == [] and by_id[NOBODY_ID]["appRoles"] == []
        assert SECRET not in text and "reader-secret" not in text


def _with(index: int, **fields: Any) -> list[dict[str, Any]]:
    clients = api_clients()
    clients[index] = {**clients[index], **fields}
    return clients


@pytest.mark.parametrize(
    "clients, needle",
    [
        (_with(1, appRoleAssignments={"api://nowhere": ["Warden.Admin"]}), "'api://nowhere' names no app"),
        (
            _with(1, appRoleAssignments={"99999999-9999-4999-8999-999999999999": ["Warden.Admin"]}),
            "names no app of this tenant",
        ),
        (_with(1, appRoleAssignments={API_URI: ["Warden.Owner"]}), "defines no app role 'Warden.Owner'"),
        (_with(1, appRoleAssignments={NOBODY_ID: ["Warden.Admin"]}), f"app {NOBODY_ID} defines no app role"),
        (_with(1, appRoleAssignments=["Warden.Admin"]), "appRoleAssignments must be an object"),
        (_with(1, appRoleAssignments={API_URI: "Warden.Admin"}), "must be a list of non-empty strings"),
        (_with(0, identifierUris=["warden-local"]), "must be an api:// or https:// URI"),
        (_with(0, identifierUris=["api://"]), "must be an api:// or https:// URI"),
        (_with(0, identifierUris=["https://graph.microsoft.com"]), "is a Microsoft resource"),
        (_with(3, identifierUris=[API_URI]), "is used by two apps"),
        (_with(0, appRoles=["Warden Admin"]), "must not contain spaces"),
        (_with(0, appRoles=["Warden.Admin", "Warden.Admin"]), "twice"),
        (_with(1, appRoleAssignments={API_URI: ["warden.admin"]}), "defines no app role 'warden.admin'"),
        (_with(0, appRole=["Warden.Admin"]), "unknown keys"),
    ],
)
def test_app_roles_are_validated(clean_sim: Sim, clients: list[dict[str, Any]], needle: str) -> None:
    """An assignment must name an app of the same tenant (by client id or App ID URI) and roles that app defines;
    App ID URIs are URIs, unique in the tenant; role values have no spaces (howto-add-app-roles-in-apps)."""
    resp = clean_sim.control("POST", "/_sim/tenants", json=tenant_body(clients=clients))
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]
    assert clean_sim.control("GET", "/_sim/tenants").json()["value"] == []
