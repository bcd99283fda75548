"""The control API's token helpers: ``POST /_sim/tokens`` (sign given claims) and ``POST /_sim/keys/rotate``.

Docs followed:
- https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover : "There's always more than one
  valid key available in the OpenID Connect discovery document ... one key may be rolled soon, another may be its
  replacement"; keys roll periodically or at once in an emergency, and validators pick the key by ``kid``.
- https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference : header ``kid``/``x5t``,
  ``alg`` RS256.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import Sim
from tests.sim.conftest import CLIENT_ID, GRAPH_SCOPE, TENANT_ID, VAULT_SCOPE, SimTenant

GRAPH_INVALID_SIGNATURE = "Access token validation failure."


def jwks(sim: Sim, segment: str = TENANT_ID) -> dict[str, dict[str, Any]]:
    """The published keys by kid."""
    keys = sim.control("GET", f"/{segment}/discovery/v2.0/keys").json()["keys"]
    return {k["kid"]: k for k in keys}


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def rotate(sim: Sim) -> str:
    resp = sim.control("POST", "/_sim/keys/rotate")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"kid"}
    return str(body["kid"])


def vault_list(tenant: SimTenant, token: str) -> httpx.Response:
    with tenant.http() as http:
        return http.get(
            "/secrets", params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {token}"}
        )


def graph_claims(tenant: SimTenant, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": "https://graph.microsoft.com",
        "iss": f"{tenant.sim.url}/{TENANT_ID}/v2.0",
        "tid": TENANT_ID,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 600,
        "azp": CLIENT_ID,
        "roles": ["User.Read.All"],
        "xms_custom": {"nested": [1, "two", None]},
        **extra,
    }


def test_sim_tokens_signs_exactly_the_given_claims_with_a_published_key(tenant: SimTenant) -> None:
    """POST /_sim/tokens → {"token"}: the payload is the claims given and nothing else, the header names a kid the
    tenant's JWKS publishes (signing-key-rollover), and the signature verifies with that key. Graph accepts it
    like an issued token: it was signed by the simulator's current key."""
    given = graph_claims(tenant)
    resp = tenant.sim.control("POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": given})
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"token"}
    token = resp.json()["token"]
    assert jwt.decode(token, options={"verify_signature": False}) == given
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["x5t"] == header["kid"]
    key = jwks(tenant.sim)[header["kid"]]
    verified = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert verified == given
    assert header["kid"] == kid(tenant.token())  # the key that signs issued tokens
    listed = tenant.graph("GET", "/users?$top=1", token=token)
    assert listed.status_code == 200, listed.text


def test_sim_tokens_adds_nothing_so_resources_judge_the_claims_given(tenant: SimTenant) -> None:
    """Nothing is added: a token without ``exp`` has none, and Graph refuses it as expired; claims a PyJWT encode
    would refuse (a non-string ``iss``) are signed as given too; a wrong audience is refused by Graph."""
    bare = tenant.sim.control(
        "POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": {"hello": "world"}}
    )
    assert bare.status_code == 200, bare.text
    assert jwt.decode(bare.json()["token"], options={"verify_signature": False}) == {"hello": "world"}
    no_exp = {k: v for k, v in graph_claims(tenant).items() if k != "exp"}
    token = tenant.sim.control("POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": no_exp}).json()
    refused = tenant.graph("GET", "/users", token=token["token"])
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "Lifetime validation failed, the token is expired."
    odd = tenant.sim.control("POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": {"iss": 42}})
    assert odd.status_code == 200, odd.text
    assert jwt.decode(odd.json()["token"], options={"verify_signature": False}) == {"iss": 42}
    wrong_aud = graph_claims(tenant, aud="https://vault.azure.net")
    vault_token = tenant.sim.control(
        "POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": wrong_aud}
    ).json()["token"]
    wrong = tenant.graph("GET", "/users", token=vault_token)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "Access token validation failure. Invalid audience."


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"tenantId": "99999999-9999-4999-8999-999999999999", "claims": {}}, 404, "does not exist"),
        ({"tenantId": TENANT_ID, "claims": ["aud"]}, 400, "'claims' must be a JSON object"),
        ({"tenantId": TENANT_ID}, 400, "'claims' must be a JSON object"),
        ({"claims": {}}, 400, "'tenantId' must be a GUID"),
        ({"tenantId": TENANT_ID, "claims": {}, "kid": "x"}, 400, "unknown keys"),
        ([1], 400, "tenantId"),
    ],
)
def test_sim_tokens_validates_its_body(tenant: SimTenant, body: Any, status: int, needle: str) -> None:
    resp = tenant.sim.control("POST", "/_sim/tokens", json=body)
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["error"]["message"]


def test_rotation_publishes_new_and_previous_key_and_drops_older_ones(tenant: SimTenant) -> None:
    """signing-key-rollover: after a roll the new key signs and the previous one stays published, so tokens it
    signed still validate at Graph and Key Vault; the simulator keeps the two newest keys, so a second roll
    retires the first key and its tokens fail signature validation (Graph "Access token validation failure.",
    Key Vault "AKV10021: Invalid token signature."). POST /_sim/reset does not change the keys."""
    sim = tenant.sim
    old_graph, old_vault = tenant.token(GRAPH_SCOPE), tenant.token(VAULT_SCOPE)
    first = kid(old_graph)
    assert first in jwks(sim)

    second = rotate(sim)
    assert second != first
    assert set(jwks(sim)) == {first, second}
    assert set(jwks(sim, "common")) == {first, second}
    new_graph = tenant.token(GRAPH_SCOPE)
    assert kid(new_graph) == second
    minted = sim.control("POST", "/_sim/tokens", json={"tenantId": TENANT_ID, "claims": {"a": 1}}).json()
    assert kid(minted["token"]) == second
    assert tenant.graph("GET", "/users?$top=1", token=old_graph).status_code == 200
    assert tenant.graph("GET", "/users?$top=1", token=new_graph).status_code == 200
    assert vault_list(tenant, old_vault).status_code == 200

    third = rotate(sim)
    assert set(jwks(sim)) == {second, third}
    stale = tenant.graph("GET", "/users?$top=1", token=old_graph)
    assert stale.status_code == 401
    assert stale.json()["error"]["message"] == GRAPH_INVALID_SIGNATURE
    stale_vault = vault_list(tenant, old_vault)
    assert stale_vault.status_code == 401
    assert stale_vault.json()["error"]["message"] == "AKV10021: Invalid token signature."
    assert tenant.graph("GET", "/users?$top=1", token=new_graph).status_code == 200
    assert kid(tenant.token()) == third

    sim.reset()
    assert set(jwks(sim, "common")) == {second, third}
