"""One world across restarts: ``python -m tools.m365sim --state-dir`` keeps tenants, users, groups, apps and
their credentials, consents and refresh tokens, Key Vault secrets, delta history, signing keys and the clock.

Each test starts simulators of its own on a folder of its own (the session's simulator keeps nothing), stops one
and starts another on the same folder, and checks through MSAL, azure-keyvault-secrets and Graph that the second
is the same world as the first.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from tests.conftest import Sim
from tests.sim.conftest import (
    DOMAIN,
    GRAPH_SCOPE,
    REDIRECT,
    SECRET,
    TENANT_ID,
    SimTenant,
    create_tenant,
    tenant_body,
)
from tools import devca, procs
from tools.m365sim.backends.persistence import STATE_FILE

STRONG = "Str0ng!Passw0rd-7"


@contextmanager
def kept_sim(tls_dir: Path, state: Path, log: Path) -> Iterator[tuple[Sim, procs.Managed]]:
    port = procs.free_port()
    child = procs.start_sim(port, tls_dir, log=log, state_dir=state)
    ca = str(tls_dir / devca.CA_FILE)
    client = httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30, trust_env=False)
    try:
        yield Sim(url=f"https://127.0.0.1:{port}", ca=ca, client=client), child
    finally:
        client.close()
        child.stop()


def vault(tenant: SimTenant) -> SecretClient:
    credential = tenant.credential(ClientSecretCredential)
    return SecretClient(
        f"{tenant.sim.url}/", credential, verify_challenge_resource=False, connection_verify=tenant.sim.ca
    )


def delegated(tenant: SimTenant) -> dict[str, Any]:
    """An authorization-code sign-in of user0001 through MSAL (its consent, a refresh token)."""
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, login_hint=f"user0001@{DOMAIN}")
    with tenant.http() as http:
        resp = http.get(flow["auth_uri"].removeprefix(tenant.sim.url))
    assert resp.status_code == 302, resp.text
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    result = app.acquire_token_by_auth_code_flow(flow, query)
    assert "refresh_token" in result, result
    return dict(result)


def relative(link: str) -> str:
    """A nextLink/deltaLink below /v1.0 (the second simulator listens on another port)."""
    parts = urllib.parse.urlsplit(link)
    return parts.path.removeprefix("/v1.0") + "?" + parts.query


def test_a_restarted_simulator_is_the_same_world(tls_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "world"
    with kept_sim(tls_dir, state, tmp_path / "first.log") as (sim, _):
        tenant = create_tenant(sim, tenant_body())
        sim.control("PUT", "/_sim/clock", json={"offsetSeconds": 3600}).raise_for_status()
        token = tenant.token()
        created = tenant.graph(
            "POST",
            "/users",
            token,
            json={
                "accountEnabled": True,
                "displayName": "Kept",
                "mailNickname": "kept",
                "userPrincipalName": f"kept@{DOMAIN}",
                "passwordProfile": {"password": STRONG},
            },
        )
        assert created.status_code == 201, created.text
        group = tenant.graph(
            "POST",
            "/groups",
            token,
            json={
                "displayName": "Kept group",
                "mailEnabled": False,
                "mailNickname": "keptgroup",
                "securityEnabled": True,
                "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{created.json()['id']}"],
            },
        ).json()
        app = tenant.graph("GET", f"/applications(appId='{tenant.client_id}')", token).json()
        added = tenant.graph("POST", f"/applications/{app['id']}/addPassword", token, json={}).json()
        with vault(tenant) as kv:
            kv.set_secret("kept-secret", "kept-value")
        signed_in = delegated(tenant)
        page = tenant.graph("GET", "/users/delta?$select=id,displayName", token).json()
        while "@odata.deltaLink" not in page:
            page = tenant.graph("GET", relative(page["@odata.nextLink"]), token).json()
        delta_link = relative(page["@odata.deltaLink"])
        kid = sim.control("POST", "/_sim/keys/rotate").json()["kid"]
        newer_token = tenant.token()

    saved = state / STATE_FILE
    assert saved.exists() and (saved.stat().st_mode & 0o777) == 0o600
    text = saved.read_text()
    for secret in (SECRET, added["secretText"], signed_in["refresh_token"], token):
        assert secret not in text  # secrets are kept as digests; tokens not at all

    with kept_sim(tls_dir, state, tmp_path / "second.log") as (sim, _):
        tenant = SimTenant(sim)
        assert sim.control("GET", "/_sim/clock").json()["offsetSeconds"] == 3600
        (described,) = sim.control("GET", "/_sim/tenants").json()["value"]
        assert described["tenantId"] == TENANT_ID and described["userCount"] == 13
        # The signing keys survived: tokens issued before the restart (by either key) still validate.
        for before in (token, newer_token):
            assert tenant.graph("GET", "/users?$top=1", before).status_code == 200
        with tenant.http() as http:
            jwks = http.get(f"/{TENANT_ID}/discovery/v2.0/keys").json()
        assert kid in {k["kid"] for k in jwks["keys"]}
        # The credentials, old and added: MSAL gets tokens with both.
        assert "access_token" in tenant.msal().acquire_token_for_client([GRAPH_SCOPE])
        assert "access_token" in tenant.msal(secret=added["secretText"]).acquire_token_for_client(
            [GRAPH_SCOPE]
        )
        # The consent and its refresh token.
        refreshed = tenant.msal().acquire_token_by_refresh_token(signed_in["refresh_token"], ["User.Read"])
        assert "access_token" in refreshed, refreshed
        consents = sim.control("GET", f"/_sim/tenants/{TENANT_ID}/consents").json()["value"]
        assert [c["userPrincipalName"] for c in consents] == [f"user0001@{DOMAIN}"]
        # Key Vault, the directory and its delta history.
        with vault(tenant) as kv:
            assert kv.get_secret("kept-secret").value == "kept-value"
        members = tenant.graph("GET", f"/groups/{group['id']}/members?$select=userPrincipalName").json()
        assert [m["userPrincipalName"] for m in members["value"]] == [f"kept@{DOMAIN}"]
        tenant.graph("PATCH", f"/users/kept@{DOMAIN}", json={"displayName": "Kept, renamed"})
        changes = tenant.graph("GET", delta_link)
        assert changes.status_code == 200, changes.text
        assert [u["displayName"] for u in changes.json()["value"]] == ["Kept, renamed"]


def test_a_change_is_on_disk_within_a_second_so_a_crash_keeps_it(tls_dir: Path, tmp_path: Path) -> None:
    """The world is written after each change (at most once a second), not only at a clean stop: a simulator
    killed outright comes back with what it had answered."""
    state = tmp_path / "world"
    with kept_sim(tls_dir, state, tmp_path / "first.log") as (sim, child):
        create_tenant(sim, tenant_body())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: the positive sign is the tenant in the file
            saved = state / STATE_FILE
            if saved.exists() and TENANT_ID in json.loads(saved.read_text())["tenants"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"{state / STATE_FILE} never held the tenant")
        os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=10)
    with kept_sim(tls_dir, state, tmp_path / "second.log") as (sim, _):
        tenant = SimTenant(sim)
        assert "access_token" in tenant.msal().acquire_token_for_client([GRAPH_SCOPE])


def test_a_world_that_cannot_be_read_stops_the_start_and_says_so(tls_dir: Path, tmp_path: Path) -> None:
    """Nothing is silently discarded: an unreadable file, or one of another snapshot format, is refused."""
    state = tmp_path / "world"
    state.mkdir()
    for content in ("{not json", json.dumps({"format": 999})):
        (state / STATE_FILE).write_text(content)
        log = tmp_path / "refused.log"
        with pytest.raises(RuntimeError, match="exited"):
            procs.start_sim(procs.free_port(), tls_dir, log=log, state_dir=state)
        assert "cannot be restored" in log.read_text() and "make clean" in log.read_text()
        assert (state / STATE_FILE).read_text() == content  # left as it was
