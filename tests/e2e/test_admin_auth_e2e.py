"""Who may call the admin API, through the local functions host: the bearer-token matrix.

Each refused token differs from a fully valid one in exactly one respect: the claims of a real admin token
(client credentials from the dev admin client), decoded without verification, re-signed by the simulated
cloud's current key (``POST /_sim/tokens``) after changing the one claim under test. A minted copy with no
change is accepted (the control case), so each refusal isolates one check of ``EntraTokenValidator``.

Every 401 carries ``WWW-Authenticate: Bearer realm="warden"`` (RFC 6750 section 3), with
``error="invalid_token"`` only when a token was presented; a valid token without the operation's app role is
403. Both are RFC 9457 problem+json.

The signing-key rotation runs last in this module and only once: the simulator's JWKS keeps the new and the
previous key, so the tokens ``WardenHost`` caches for the rest of the session stay valid.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import WardenHost, unique
from tools import demo

DOORS = {"read": ("GET", "/users?limit=1"), "write": ("POST", "/groups")}
"""A reader operation and an admin one."""
GRAPH = "https://graph.microsoft.com"
DROP = object()
"""A claim value meaning: leave the claim out."""


# ------------------------------------------------------------------------------------------- helpers
def knock(
    warden: WardenHost, door: str, *, token: str | None = None, authorization: str | None = None
) -> httpx.Response:
    """Call ``door`` ("read" or "write") with ``Authorization: Bearer <token>``, a raw header, or nothing."""
    method, path = DOORS[door]
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    body = {"name": unique("auth-g")} if method == "POST" else None
    return warden.call(method, path, role=None, headers=headers, json=body)


def real_claims(warden: WardenHost, role: str = "admin") -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(warden.token(role), options={"verify_signature": False})
    return claims


def valid_claims(warden: WardenHost, **changes: Any) -> dict[str, Any]:
    """A real admin token's claims, timed from now (the host checks against real time), with ``changes``."""
    claims = real_claims(warden)
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + 3600)
    for name, value in changes.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def mint(warden: WardenHost, claims: dict[str, Any], tenant_id: str = demo.HOME_TENANT_ID) -> str:
    """``claims`` exactly, signed by the simulated cloud's current key (its kid is in the tenant's JWKS)."""
    response = warden.stack.sim.control(
        "POST", "/_sim/tokens", json={"tenantId": tenant_id, "claims": claims}
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def client_credentials(warden: WardenHost, tenant_id: str, client_id: str, secret: str, scope: str) -> str:
    """A real client-credentials access token from the simulated cloud."""
    response = warden.stack.sim.client.post(
        f"{warden.stack.sim.url}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope,
        },
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def jwks_kids(warden: WardenHost) -> list[str]:
    response = warden.stack.sim.control("GET", f"/{demo.HOME_TENANT_ID}/discovery/v2.0/keys")
    response.raise_for_status()
    return [k["kid"] for k in response.json()["keys"]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def refused(response: httpx.Response, reason: str) -> dict[str, Any]:
    """401 for a presented but invalid token: an RFC 6750 ``invalid_token`` challenge; ``reason`` in detail."""
    body = problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="warden"'), challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert reason in body["detail"], body["detail"]
    assert f'error_description="{body["detail"]}"' in challenge, challenge
    return body


# --------------------------------------------------------------------------------- anonymous doors
def test_health_answers_without_a_token(warden: WardenHost) -> None:
    response = warden.call("GET", "/health", role=None)
    assert response.status_code in (200, 503) and "www-authenticate" not in response.headers
    assert response.json()["status"] in ("up", "down")


def test_openapi_document_answers_without_a_token(warden: WardenHost) -> None:
    response = warden.call("GET", "/openapi.json", role=None)
    assert response.status_code == 200 and "www-authenticate" not in response.headers
    assert response.json()["openapi"].startswith("3.")


def test_anonymous_doors_ignore_an_invalid_token(warden: WardenHost) -> None:
    response = warden.call("GET", "/openapi.json", role=None, headers={"Authorization": "Bearer abc"})
    assert response.status_code == 200


# -------------------------------------------------------------------------------------- no token
@pytest.mark.parametrize("door", DOORS)
def test_no_token_is_401_with_a_bare_bearer_challenge(warden: WardenHost, door: str) -> None:
    response = knock(warden, door)
    body = problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="warden"'), challenge
    assert "error=" not in challenge, "RFC 6750 3.1: no error code when the request had no authentication"
    assert "bearer token is required" in body["detail"]


# ---------------------------------------------------------------------------- malformed headers
@pytest.mark.parametrize("door", DOORS)
def test_a_token_that_is_not_a_jwt_is_401_invalid_token(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token="abc"), "not a JWT")


@pytest.mark.parametrize("door", DOORS)
def test_a_basic_authorization_scheme_is_401_invalid_token(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, authorization="Basic xyz"), "'Bearer <token>'")


@pytest.mark.parametrize("door", DOORS)
def test_a_bearer_scheme_without_a_token_is_401_invalid_token(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, authorization="Bearer"), "'Bearer <token>'")


@pytest.mark.parametrize("door", DOORS)
def test_an_unsigned_alg_none_token_is_401(warden: WardenHost, door: str) -> None:
    token = jwt.encode(valid_claims(warden), "", algorithm="none")
    refused(knock(warden, door, token=token), "RS256")


# ------------------------------------------------------------------------------ the control case
@pytest.mark.parametrize(("door", "status"), [("read", 200), ("write", 201)])
def test_a_minted_copy_of_a_real_admin_token_is_accepted(warden: WardenHost, door: str, status: int) -> None:
    """The control for every refusal below: the minted tokens are valid but for the one claim changed."""
    response = knock(warden, door, token=mint(warden, valid_claims(warden)))
    assert response.status_code == status, response.text


# ------------------------------------------------------------------------------------- signature
@pytest.mark.parametrize("door", DOORS)
def test_a_real_token_with_an_altered_signature_is_401(warden: WardenHost, door: str) -> None:
    header, payload, signature = warden.token("admin").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01  # one bit in the middle (the last base64 character may be padding bits)
    tampered = f"{header}.{payload}.{b64url(bytes(raw))}"
    refused(knock(warden, door, token=tampered), "signature is invalid")


@pytest.mark.parametrize("door", DOORS)
def test_a_real_token_with_an_altered_payload_is_401(warden: WardenHost, door: str) -> None:
    header, _, signature = warden.token("reader").split(".")
    claims = real_claims(warden, "reader") | {"roles": ["Warden.Admin"]}
    escalated = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    refused(knock(warden, door, token=escalated), "signature is invalid")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_signed_by_a_key_the_tenant_does_not_publish_is_401(warden: WardenHost, door: str) -> None:
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"not-published-{uuid.uuid4().hex}"
    assert kid not in jwks_kids(warden)
    token = jwt.encode(valid_claims(warden), own_key, algorithm="RS256", headers={"kid": kid})
    refused(knock(warden, door, token=token), "signing key is not one of the tenant's")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_signed_by_a_foreign_key_under_a_published_kid_is_401(warden: WardenHost, door: str) -> None:
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(warden.token("admin"))["kid"]
    assert kid in jwks_kids(warden)
    token = jwt.encode(valid_claims(warden), own_key, algorithm="RS256", headers={"kid": kid})
    refused(knock(warden, door, token=token), "signature is invalid")


# ------------------------------------------------------------------------------------------ time
@pytest.mark.parametrize("door", DOORS)
def test_an_expired_token_is_401_expired(warden: WardenHost, door: str) -> None:
    now = int(time.time())
    claims = valid_claims(warden, iat=now - 3 * 3600, nbf=now - 3 * 3600, exp=now - 2 * 3600)
    refused(knock(warden, door, token=mint(warden, claims)), "expired")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_not_valid_before_an_hour_from_now_is_401(warden: WardenHost, door: str) -> None:
    claims = valid_claims(warden, nbf=int(time.time()) + 3600)
    refused(knock(warden, door, token=mint(warden, claims)), "not valid yet")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_without_exp_is_401(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token=mint(warden, valid_claims(warden, exp=DROP))), "'exp'")


# ---------------------------------------------------------------------------- issuer and audience
@pytest.mark.parametrize("door", DOORS)
def test_a_token_from_the_wrong_issuer_is_401(warden: WardenHost, door: str) -> None:
    claims = valid_claims(warden, iss=f"https://login.microsoftonline.com/{demo.HOME_TENANT_ID}/v2.0")
    refused(knock(warden, door, token=mint(warden, claims)), "(issuer)")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_for_another_audience_is_401(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token=mint(warden, valid_claims(warden, aud=GRAPH))), "(audience)")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_without_aud_is_401(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token=mint(warden, valid_claims(warden, aud=DROP))), "'aud'")


@pytest.mark.parametrize("door", DOORS)
def test_the_app_id_uri_is_an_accepted_audience(warden: WardenHost, door: str) -> None:
    """v1.0 tokens carry the App ID URI as ``aud`` (v2.0 ones the client id): both are configured."""
    response = knock(warden, door, token=mint(warden, valid_claims(warden, aud=demo.API_URI)))
    assert response.status_code in (200, 201), response.text


# ------------------------------------------------------------------------------------ other tenant
@pytest.mark.parametrize("door", DOORS)
def test_a_real_graph_token_from_another_tenant_is_401(warden: WardenHost, door: str) -> None:
    """Signed by a key the home tenant publishes too (one signing key set for the whole cloud, as Entra's)."""
    token = client_credentials(
        warden,
        demo.DEMO_TENANT_ID,
        demo.DEMO_CLIENT_ID,
        warden.stack.world.demo_client_secret,
        f"{GRAPH}/.default",
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == demo.DEMO_TENANT_ID
    assert jwt.get_unverified_header(token)["kid"] in jwks_kids(warden)
    body = refused(knock(warden, door, token=token), "")
    assert "(issuer)" in body["detail"] or "(audience)" in body["detail"], body["detail"]


@pytest.mark.parametrize("door", DOORS)
def test_a_token_issued_by_another_tenant_for_this_api_is_401(warden: WardenHost, door: str) -> None:
    other = f"{warden.stack.sim.url}/{demo.DEMO_TENANT_ID}/v2.0"
    claims = valid_claims(warden, iss=other, idp=other, tid=demo.DEMO_TENANT_ID)
    refused(knock(warden, door, token=mint(warden, claims, demo.DEMO_TENANT_ID)), "(issuer)")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_whose_tid_is_another_tenant_is_401(warden: WardenHost, door: str) -> None:
    """The issuer is right and only ``tid`` differs: the tenant check is its own."""
    claims = valid_claims(warden, tid=demo.DEMO_TENANT_ID)
    refused(knock(warden, door, token=mint(warden, claims)), "(tid)")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_without_tid_is_401(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token=mint(warden, valid_claims(warden, tid=DROP))), "'tid'")


@pytest.mark.parametrize("door", DOORS)
def test_a_token_without_oid_is_401(warden: WardenHost, door: str) -> None:
    refused(knock(warden, door, token=mint(warden, valid_claims(warden, oid=DROP))), "'oid'")


# ------------------------------------------------------------------------------------------ roles
def test_a_reader_may_read(warden: WardenHost) -> None:
    for path, key in (("/users?limit=1", "items"), ("/directories", "items")):
        response = warden.call("GET", path, role="reader")
        assert response.status_code == 200, f"{path}: {response.text}"
        assert key in response.json()


def test_a_reader_may_not_write_403_naming_warden_admin(warden: WardenHost) -> None:
    name = unique("auth-g")
    response = warden.call("POST", "/groups", role="reader", json={"name": name})
    body = problem(response, 403)
    assert "Warden.Admin" in body["detail"] and "Warden.Reader" not in body["detail"]
    assert 'error="invalid_token"' not in response.headers.get("www-authenticate", "")


def test_an_admin_may_write(warden: WardenHost) -> None:
    name = unique("auth-g")
    response = warden.call("POST", "/groups", role="admin", json={"name": name})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == name
    fetched = warden.call("GET", f"/groups/{created['id']}", role="reader")
    assert fetched.status_code == 200 and fetched.json()["name"] == name


def test_an_admin_may_read(warden: WardenHost) -> None:
    for path in ("/users?limit=1", "/directories"):
        response = warden.call("GET", path, role="admin")
        assert response.status_code == 200, f"{path}: {response.text}"


@pytest.mark.parametrize(
    ("door", "needed"), [("read", "Warden.Reader or Warden.Admin"), ("write", "Warden.Admin")]
)
def test_a_valid_token_without_roles_is_403(warden: WardenHost, door: str, needed: str) -> None:
    response = knock(warden, door, token=mint(warden, valid_claims(warden, roles=DROP)))
    body = problem(response, 403)
    assert needed in body["detail"], body["detail"]


@pytest.mark.parametrize("door", DOORS)
def test_a_real_token_of_a_client_granted_no_app_role_is_403(warden: WardenHost, door: str) -> None:
    """Warden's local identity may get a token for the API (Entra issues it) but holds none of its roles."""
    world = warden.stack.world
    token = client_credentials(
        warden,
        demo.HOME_TENANT_ID,
        demo.LOCAL_IDENTITY_CLIENT_ID,
        world.local_identity_secret,
        demo.API_SCOPE,
    )
    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    problem(knock(warden, door, token=token), 403)


@pytest.mark.parametrize("door", DOORS)
def test_a_role_of_another_api_is_not_a_warden_role(warden: WardenHost, door: str) -> None:
    claims = valid_claims(warden, roles=["User.ReadWrite.All", "warden.admin", "Warden.Admin "])
    problem(knock(warden, door, token=mint(warden, claims)), 403)


# ------------------------------------------------------------------------- key rotation (run last)
def test_after_key_rotation_a_token_signed_by_the_previous_key_is_still_accepted(warden: WardenHost) -> None:
    """Entra rolls its signing keys without notice and publishes the previous one meanwhile: a token signed
    before the rotation stays valid. Rotates the session's simulator once; the new key itself is exercised in
    tests/integration/test_admin_token_validator.py (the host's JWKS cooldown would need a 30 s sleep here)."""
    for role in ("admin", "reader"):  # WardenHost caches these for the session: signed before the rotation
        warden.token(role)
    before = mint(warden, valid_claims(warden))
    old_kid = jwt.get_unverified_header(before)["kid"]
    deadline = (
        time.monotonic() + 40
    )  # the host may be inside its JWKS cooldown if its cache predates this key
    while (
        response := knock(warden, "read", token=before)
    ).status_code != 200 and time.monotonic() < deadline:
        time.sleep(2)
    assert response.status_code == 200, response.text

    rotated = warden.stack.sim.control("POST", "/_sim/keys/rotate")
    rotated.raise_for_status()
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid and jwks_kids(warden) == [new_kid, old_kid]

    assert knock(warden, "read", token=before).status_code == 200
    assert knock(warden, "write", token=before).status_code == 201
    assert warden.call(*DOORS["read"], role="reader").status_code == 200
    after = mint(warden, valid_claims(warden))
    assert jwt.get_unverified_header(after)["kid"] == new_kid
