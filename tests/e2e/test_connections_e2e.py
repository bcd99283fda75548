"""Connections that never lapse silently (SPEC rules 12, 17, 18, §3; issue 17), end to end through the local host,
Azurite, Key Vault and the simulated cloud - each test asserting what Graph and Key Vault show.

These tests move the simulated cloud's clock (refresh tokens lapse after 90 days without use on it), so they run
on a stack of their own (Azurite, simulator, functions host): no other test sees that clock move.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient
from standardwebhooks.webhooks import Webhook

from tests.conftest import DemoStack, remember_secret, running_sim
from tests.e2e.conftest import QUIET_TIMERS, WardenHost, unique
from tests.e2e.sync_support import Graph, drained, wait_for
from tools import demo, procs
from tools.selfsigned import self_signed

DAY = 86400
SCOPES = [*demo.DEMO_ROLES, "Application.Read.All"]


# ----------------------------------------------------------------------------------------------- the stack
@pytest.fixture(scope="module")
def conn(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenHost]:
    """Azurite, a simulated cloud with the demo world and a functions host, all this module's own."""
    root = tmp_path_factory.mktemp("connections")
    ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
    azurite = procs.start_azurite(root / "azurite", ports, log=root / "azurite.log")
    try:
        with running_sim(tls_dir, root) as sim:
            world = demo.seed(sim.url, Path(sim.ca))
            for secret in (
                world.local_identity_secret,
                world.demo_client_secret,
                *world.dev_client_secrets.values(),
            ):
                remember_secret(secret)
            stack = DemoStack(sim, world, world.warden_settings(ports.connection_string))
            port = procs.free_port()
            log = root / "funchost.log"
            env = {
                **os.environ,
                **stack.settings,
                **QUIET_TIMERS,
                "WARDEN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            }
            host = procs.start_funchost(port, env=env, log=log)
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            try:
                yield WardenHost(f"http://127.0.0.1:{port}", stack, http, log)
            finally:
                http.close()
                host.stop()
    finally:
        azurite.stop()


@pytest.fixture
def clock(conn: WardenHost) -> Iterator[Any]:
    """Moves the simulated cloud's clock; puts it back after the test."""

    def advance(seconds: float) -> None:
        conn.stack.sim.control("PUT", "/_sim/clock", json={"advanceSeconds": seconds}).raise_for_status()

    yield advance
    conn.stack.sim.control("PUT", "/_sim/clock", json={"offsetSeconds": 0}).raise_for_status()


# ----------------------------------------------------------------------------------------------- a tenant
@dataclass
class Tenant:
    """A simulated tenant with Warden's app registration (app permissions and delegated scopes) and an admin app
    the test uses as the tenant's administrator would."""

    id: str
    domain: str
    client_id: str
    secret: str
    admin: Graph
    name: str = field(default_factory=lambda: unique("T"))

    def user(self, n: int) -> str:
        return f"user{n:04d}@{self.domain}"


def make_tenant(
    conn: WardenHost, *, seed_users: int = 3, certificate_pem: str | None = None, app_roles: bool = True
) -> Tenant:
    """``app_roles=False``: Warden's app holds delegated scopes only, so whatever it writes, it writes with an
    administrator's delegated token (an app-only token would be refused)."""
    sim = conn.stack.sim
    tenant_id, client_id, admin_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    secret, admin_secret = (
        remember_secret(f"sec-{uuid.uuid4().hex}"),
        remember_secret(f"adm-{uuid.uuid4().hex}"),
    )
    domain = f"{unique('c')}.example"
    warden_app: dict[str, Any] = {
        "clientId": client_id,
        "clientSecret": secret,
        "roles": SCOPES if app_roles else [],
        "scopes": SCOPES,
        "displayName": "Warden",
    }
    if certificate_pem:
        warden_app["keyCredentials"] = [{"certificatePem": certificate_pem}]
    body = {
        "tenantId": tenant_id,
        "displayName": f"Tenant {domain}",
        "domains": [{"id": domain, "isDefault": True, "isVerified": True}],
        "clients": [
            warden_app,
            {
                "clientId": admin_id,
                "clientSecret": admin_secret,
                "roles": [*demo.DEMO_ROLES, "Application.ReadWrite.All"],
            },
        ],
        "seedUsers": seed_users,
    }
    created = sim.control("POST", "/_sim/tenants", json=body)
    assert created.status_code == 201, created.text
    return Tenant(tenant_id, domain, client_id, secret, Graph(sim, tenant_id, admin_id, admin_secret))


def connect(conn: WardenHost, t: Tenant, auth: dict[str, Any], **options: Any) -> httpx.Response:
    body = {"name": t.name, "tenantId": t.id, "auth": {"clientId": t.client_id, **auth}, "options": options}
    return conn.call("POST", "/directories", json=body)


def sign_in(conn: WardenHost, authorize_url: str, *, accept: str = "text/html") -> httpx.Response:
    """The administrator's browser: the simulated sign-in at ``authorize_url``, then Entra's redirect back to
    Warden's callback."""
    sim = conn.stack.sim
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca), timeout=30) as browser:
        answer = browser.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(conn.url + "/api/oauth/callback?"), location
    return conn.http.get(location.removeprefix(conn.url), headers={"Accept": accept})


def delegated(conn: WardenHost, t: Tenant, upn: str, **options: Any) -> dict[str, Any]:
    """A delegated directory, consented by ``upn``: active."""
    created = connect(conn, t, {"mode": "delegated", "clientSecret": t.secret, "loginHint": upn}, **options)
    assert created.status_code == 201, created.text
    d: dict[str, Any] = created.json()
    assert d["status"] == "pending_consent" and d["authorizeUrl"]
    page = sign_in(conn, d["authorizeUrl"])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html") and "Connected" in page.text
    active: dict[str, Any] = conn.ok("GET", f"/directories/{d['id']}")
    assert active["status"] == "active", active
    return active


def vault(conn: WardenHost) -> SecretClient:
    s = conn.stack.settings
    credential = ClientSecretCredential(
        s["AZURE_TENANT_ID"],
        s["AZURE_CLIENT_ID"],
        s["AZURE_CLIENT_SECRET"],
        authority=s["WARDEN_AUTHORITY_HOST"],
        connection_verify=s["WARDEN_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    return SecretClient(
        s["WARDEN_KEY_VAULT_URL"],
        credential,
        verify_challenge_resource=False,
        connection_verify=s["WARDEN_CA_BUNDLE"],
    )


def vault_names(conn: WardenHost, prefix: str) -> tuple[list[str], list[str]]:
    """(live, soft-deleted) secret names starting with ``prefix``."""
    client = vault(conn)
    live = [p.name for p in client.list_properties_of_secrets() if p.name and p.name.startswith(prefix)]
    gone = [p.name for p in client.list_deleted_secrets() if p.name and p.name.startswith(prefix)]
    return live, gone


def new_user(conn: WardenHost, domain: str) -> dict[str, Any]:
    name = unique("u")
    body = {"username": name, "email": f"{name}@{domain}", "firstName": "Ada", "lastName": "Lovelace"}
    created: dict[str, Any] = conn.ok("POST", "/users", 201, json=body)
    return created


def synced(conn: WardenHost, user_id: str, directory_id: str) -> dict[str, Any]:
    def link() -> dict[str, Any] | None:
        body = conn.ok("GET", f"/users/{user_id}")
        return next((d for d in body["directories"] if d["directoryId"] == directory_id), None)

    found: dict[str, Any] = wait_for(
        link, lambda x: bool(x) and x["status"] == "synced", what="the link synced"
    )
    return found


def poisoned(conn: WardenHost) -> int:
    with QueueClient.from_connection_string(
        conn.stack.settings["AzureWebJobsStorage"], "user-sync-poison"
    ) as q:
        try:
            return int(q.get_queue_properties().approximate_message_count or 0)
        except Exception:  # never created: nothing was ever poisoned
            return 0


def audit(conn: WardenHost, directory_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = conn.ok(
        "GET", "/audit", params={"directoryId": directory_id, "limit": "200"}
    )["items"]
    return items


# ------------------------------------------------------------------------------------------ notifications
class Receiver:
    """A notify URL on this machine that records what it is sent (http://127.0.0.1, allowed outside Azure)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/warden"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, kind: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if json.loads(b)["type"] == kind]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ------------------------------------------------------------------------------------------------- tests
def test_delegated_connect_consent_and_a_bind_provisions_with_the_delegated_token(conn: WardenHost) -> None:
    t = make_tenant(conn, app_roles=False)
    admin = t.user(1)
    d = delegated(conn, t, admin)
    assert d["auth"]["mode"] == "delegated" and d["auth"]["consentedBy"]["userPrincipalName"] == admin
    assert d["domains"] and {x["id"] for x in d["domains"]} >= {t.domain}
    assert d["auth"]["credentialExpirySource"] == "graph", (
        "the client secret's end, read with the delegated token"
    )
    live, _ = vault_names(conn, f"directory-{d['id']}-")
    assert sorted(live) == [f"directory-{d['id']}-client-secret", f"directory-{d['id']}-token-cache"], (
        "the consent flow's secret is gone once used; the token cache is kept"
    )
    cache = vault(conn).get_secret(f"directory-{d['id']}-token-cache")
    assert cache.properties.content_type == "application/vnd.msal.token-cache+json"
    assert "RefreshToken" in (cache.value or ""), "an MSAL token cache"
    conn.stack.sim.control("DELETE", "/_sim/requests").raise_for_status()
    u = new_user(conn, t.domain)
    conn.ok("PUT", f"/users/{u['id']}/directories/{d['id']}", 201)
    link = synced(conn, u["id"], d["id"])
    account = t.admin.get_user(link["m365UserId"])
    assert account and account["userPrincipalName"] == u["email"] and account["accountEnabled"] is True
    mine = [r for r in conn.stack.sim.requests() if r["tenantId"] == t.id and r["clientId"] == t.client_id]
    assert any(r["method"] == "POST" and r["path"].endswith("/users") for r in mine), (
        "Warden's app created the account; it holds no application permission, so it did with the delegated token"
    )


def test_with_the_timer_200_days_never_lapse_and_without_it_91_do_and_hr_events_wait_then_land(
    conn: WardenHost, clock: Any
) -> None:
    t = make_tenant(conn)
    d = delegated(conn, t, t.user(1), createMissingUsers=True)
    before = new_user(conn, t.domain)
    conn.ok("PUT", f"/users/{before['id']}/directories/{d['id']}", 201)
    synced(conn, before["id"], d["id"])
    for _ in range(5):  # 200 days in steps of 40, the timer running in between
        clock(40 * DAY)
        conn.run_timer("token_refresh")
        assert conn.ok("GET", f"/directories/{d['id']}")["status"] == "active"
    after = new_user(conn, t.domain)
    conn.ok("PUT", f"/users/{after['id']}/directories/{d['id']}", 201)
    synced(conn, after["id"], d["id"])  # still writing with the refreshed delegated token
    drained(conn, "user-sync")  # the binding's second sync too: nothing of before the lapse is left to defer

    clock(91 * DAY)  # no timer for 91 days: the refresh token lapses
    conn.run_timer("token_refresh")
    lapsed = conn.ok("GET", f"/directories/{d['id']}")
    assert (lapsed["status"], lapsed["reasonCode"]) == ("needs_reactivation", "AADSTS700082")
    assert "90 days" in lapsed["reason"] and "reactivate" in lapsed["reason"]
    secret = remember_secret(conn.ok("POST", "/hris/secret", 201)["secret"])
    hired = []
    for _ in range(3):
        name = unique("h")
        data = {
            "employeeId": unique("E"),
            "email": f"{name}@{t.domain}",
            "firstName": "Grace",
            "lastName": "Hopper",
            "directories": [d["id"]],
        }
        raw = json.dumps({"type": "employee.hired", "data": data}).encode()
        msg_id, now = f"msg_{uuid.uuid4().hex}", dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, raw.decode()),
        }
        response = conn.call("POST", "/hris/events", role=None, content=raw, headers=headers)
        assert response.status_code == 202, response.text
        hired.append(response.json()["userId"])
    waiting = wait_for(
        lambda: conn.ok("GET", f"/directories/{d['id']}"),
        lambda x: x["deferred"] == 3,
        what="the three hires deferred",
    )
    assert any("wait for this directory" in w for w in waiting["warnings"])
    assert poisoned(conn) == 0
    for user_id in hired:
        assert t.admin.users_by_upn(conn.ok("GET", f"/users/{user_id}")["email"]) == []

    again = conn.ok("POST", f"/directories/{d['id']}/reactivate", json={"loginHint": t.user(2)})
    assert again["status"] == "needs_reactivation" and again["authorizeUrl"]
    done = sign_in(conn, again["authorizeUrl"], accept="application/json")
    assert done.status_code == 200, done.text
    assert done.json()["reactivated"] is True and done.json()["replayed"] == 3
    back = conn.ok("GET", f"/directories/{d['id']}")
    assert back["status"] == "active" and back["auth"]["consentedBy"]["userPrincipalName"] == t.user(2)
    for user_id in hired:
        link = synced(conn, user_id, d["id"])
        assert t.admin.get_user(link["m365UserId"]) is not None
    for kept in (before, after):  # nobody was unbound
        body = conn.ok("GET", f"/users/{kept['id']}")
        assert [x["via"] for x in body["directories"] if x["directoryId"] == d["id"]] == [["direct"]]
    assert poisoned(conn) == 0
    actions = [e["action"] for e in audit(conn, d["id"])]
    assert {"directory.needs_reactivation", "directory.reactivated", "run.start"} <= set(actions)


def test_a_withdrawn_consent_lapses_at_the_next_round_notifies_degrades_health_and_others_keep_syncing(
    conn: WardenHost, clock: Any, receiver: Receiver
) -> None:
    notify_secret = remember_secret(conn.ok("POST", "/notifications/secret", 201)["secret"])
    t = make_tenant(conn)
    d = delegated(conn, t, t.user(1), notify={"url": receiver.url})
    other = make_tenant(conn)
    created = connect(conn, other, {"mode": "app", "clientSecret": other.secret})
    assert created.status_code == 201, created.text
    sim = conn.stack.sim
    revoked = sim.control("DELETE", f"/_sim/tenants/{t.id}/consents?clientId={t.client_id}&user={t.user(1)}")
    assert revoked.json() == {"revoked": 1}
    clock(2 * 3600)  # the access token's hour is up: the next round has to redeem the refresh token
    conn.run_timer("token_refresh")
    lapsed = conn.ok("GET", f"/directories/{d['id']}")
    assert (lapsed["status"], lapsed["reasonCode"]) == ("needs_reactivation", "AADSTS50173")
    assert "withdrew the consent" in lapsed["reason"]

    headers, body = wait_for(
        lambda: receiver.events("directory.needs_reactivation"), bool, what="the notification"
    )[0]
    event = Webhook(notify_secret).verify(
        body, {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    )
    assert event["data"]["directoryId"] == d["id"] and event["data"]["code"] == "AADSTS50173"

    health = conn.http.get("/api/health")
    assert health.status_code == 200, health.text
    report = health.json()
    assert report["status"] == "degraded"
    mine = next(c for c in report["components"] if c.get("directory") == d["id"])
    assert mine["status"] == "down" and mine["detail"].startswith("needs_reactivation:")
    theirs = next(c for c in report["components"] if c.get("directory") == created.json()["id"])
    assert theirs["status"] == "up"

    u = new_user(conn, other.domain)
    conn.ok("PUT", f"/users/{u['id']}/directories/{created.json()['id']}", 201)
    link = synced(conn, u["id"], created.json()["id"])
    assert other.admin.get_user(link["m365UserId"]) is not None


def test_a_secret_added_through_graph_expiring_in_5_days_is_read_from_graph_and_warned(
    conn: WardenHost, receiver: Receiver
) -> None:
    t = make_tenant(conn)
    app = t.admin.call("GET", f"/applications(appId='{t.client_id}')", params={"$select": "id"})
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).replace(microsecond=0)
    added = t.admin.call(
        "POST",
        f"/applications/{app['id']}/addPassword",
        json={
            "passwordCredential": {
                "displayName": "short",
                "endDateTime": end.isoformat().replace("+00:00", "Z"),
            }
        },
    )
    secret = remember_secret(added["secretText"])
    d = connect(conn, t, {"mode": "app", "clientSecret": secret}, notify={"url": receiver.url})
    assert d.status_code == 201, d.text
    view = d.json()
    assert view["auth"]["credentialExpirySource"] == "graph"
    assert dt.datetime.fromisoformat(view["auth"]["credentialExpiresAt"]) == end
    assert any("expires within 5 days" in w for w in view["warnings"]), view["warnings"]
    conn.run_timer("token_refresh")
    actions = [e for e in audit(conn, view["id"]) if e["action"] == "directory.credential_expiring"]
    assert len(actions) == 1 and actions[0]["after"]["source"] == "graph"
    conn.run_timer("token_refresh")
    assert len([e for e in audit(conn, view["id"]) if e["action"] == "directory.credential_expiring"]) == 1, (
        "announced once per expiry"
    )
    wait_for(lambda: receiver.events("directory.credential_expiring"), bool, what="the expiry notification")
    rounds = conn.ok("GET", "/token-refresh/rounds", role="reader")["items"]
    assert rounds[0]["counts"]["expiring"] >= 1 and rounds[0]["counts"]["checked"] >= 1


def test_certificate_connect_rotation_by_reactivate_and_bad_pems_refused(conn: WardenHost) -> None:
    first = self_signed("Warden first", days=60)
    t = make_tenant(conn, certificate_pem=first.cert_pem)
    before, _ = vault_names(conn, "directory-")
    bad_key = self_signed("Other", days=60)
    expired = self_signed("Old", days=-1, not_before_days=-30)
    for pem, words in (
        (
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----",
            "cannot be read",
        ),
        (first.cert_pem + bad_key.key_pem, "does not match"),
        (expired.cert_pem + expired.key_pem, "expired on"),
        (first.cert_pem, "exactly one private key"),
    ):
        refused = connect(conn, t, {"mode": "app", "certificatePem": pem})
        assert refused.status_code == 422, refused.text
        assert words in refused.json()["detail"] and "PRIVATE" not in refused.json()["detail"]
    assert vault_names(conn, "directory-")[0] == before, "nothing stored"

    d = connect(conn, t, {"mode": "app", "certificatePem": first.cert_pem + first.key_pem})
    assert d.status_code == 201, d.text
    view = d.json()
    assert view["auth"]["credential"] == "certificate" and view["auth"]["credentialExpirySource"] == "graph"
    assert view["auth"]["certificateThumbprint"] == hashlib.sha256(first.der).hexdigest()
    stored = vault(conn).get_secret(f"directory-{view['id']}-certificate")
    assert stored.value == first.cert_pem + first.key_pem

    second = self_signed("Warden second", days=90)
    t.admin.call(
        "PATCH",
        f"/applications(appId='{t.client_id}')",
        json={
            "keyCredentials": [
                {"keyId": k["keyId"]}
                for k in t.admin.call(
                    "GET", f"/applications(appId='{t.client_id}')", params={"$select": "keyCredentials"}
                )["keyCredentials"]
            ]
            + [
                {
                    "type": "AsymmetricX509Cert",
                    "usage": "Verify",
                    "key": base64.b64encode(second.der).decode(),
                }
            ]
        },
    )
    unknown = self_signed("Not registered", days=90)
    refused = conn.call(
        "POST",
        f"/directories/{view['id']}/reactivate",
        json={"certificatePem": unknown.cert_pem + unknown.key_pem},
    )
    assert refused.status_code == 422 and "AADSTS700027" in refused.json()["detail"]
    assert (
        vault(conn).get_secret(f"directory-{view['id']}-certificate").value == first.cert_pem + first.key_pem
    )
    rotated = conn.ok(
        "POST",
        f"/directories/{view['id']}/reactivate",
        json={"certificatePem": second.cert_pem + second.key_pem},
    )
    assert (
        rotated["status"] == "active"
        and rotated["auth"]["certificateThumbprint"] != view["auth"]["certificateThumbprint"]
    )
    end = dt.datetime.fromisoformat(rotated["auth"]["credentialExpiresAt"])
    assert dt.timedelta(days=89) < end - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
    assert (
        vault(conn).get_secret(f"directory-{view['id']}-certificate").value
        == second.cert_pem + second.key_pem
    )
    u = new_user(conn, t.domain)
    conn.ok("PUT", f"/users/{u['id']}/directories/{view['id']}", 201)
    synced(conn, u["id"], view["id"])


def test_deactivation_leaves_no_secret_of_the_directory_in_key_vault_and_m365_as_it_was(
    conn: WardenHost,
) -> None:
    t = make_tenant(conn)
    d = delegated(conn, t, t.user(1))
    group = conn.ok("POST", "/groups", 201, json={"name": unique("G")})
    users = [new_user(conn, t.domain) for _ in range(2)]
    conn.ok("PUT", f"/users/{users[0]['id']}/directories/{d['id']}", 201)
    conn.ok("PUT", f"/groups/{group['id']}/members/{users[1]['id']}", (200, 201))
    conn.ok("PUT", f"/groups/{group['id']}/directories/{d['id']}", (200, 201))
    accounts = {u["id"]: synced(conn, u["id"], d["id"])["m365UserId"] for u in users}
    snapshot = {m: t.admin.get_user(m) for m in accounts.values()}
    started = conn.ok("POST", f"/directories/{d['id']}/reactivate", json={})  # an unused consent flow too
    assert started["authorizeUrl"]
    live, _ = vault_names(conn, f"directory-{d['id']}-")
    assert len(live) == 3, live  # client secret, token cache, the pending flow
    conn.ok("DELETE", f"/directories/{d['id']}", 204, params={"confirm": t.name})
    live, deleted = vault_names(conn, f"directory-{d['id']}-")
    assert live == [] and deleted == [], "every secret of the directory deleted and purged"
    assert conn.call("GET", f"/directories/{d['id']}").status_code == 404
    for u in users:
        assert all(x["directoryId"] != d["id"] for x in conn.ok("GET", f"/users/{u['id']}")["directories"])
    assert conn.ok("GET", f"/groups/{group['id']}")["directories"] == []
    for m365_id, was in snapshot.items():
        assert t.admin.get_user(m365_id) == was, "M365 untouched"
    assert (
        next(e for e in audit(conn, d["id"]) if e["action"] == "directory.deactivate")["after"][
            "secretsRemoved"
        ]
        == 3
    )


# ------------------------------------------------------------------------------------------------ bad input
def test_a_callback_with_an_unknown_state_is_a_page_and_problem_json_for_clients(conn: WardenHost) -> None:
    params = {"state": f"{uuid.uuid4()}.{uuid.uuid4().hex}", "code": "1.Anothing"}
    page = conn.http.get("/api/oauth/callback", params=params, headers={"Accept": "text/html"})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "Not connected" in page.text and "<script" not in page.text
    assert page.headers["content-security-policy"] == "default-src 'none'"
    problem = conn.http.get(
        "/api/oauth/callback", params={**params, "state": "garbage"}, headers={"Accept": "application/json"}
    )
    assert problem.status_code == 422 and problem.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert "unknown state" in problem.json()["detail"]
    assert conn.http.get("/api/oauth/callback", params={"code": "x"}).status_code == 400, "state is required"


def test_a_replayed_callback_and_access_denied_leave_the_directory_pending_and_audited(
    conn: WardenHost,
) -> None:
    t = make_tenant(conn)
    d = connect(conn, t, {"mode": "delegated", "clientSecret": t.secret, "loginHint": t.user(1)}).json()
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(d["authorizeUrl"]).query))["state"]
    denied = conn.http.get(
        "/api/oauth/callback",
        params={
            "state": state,
            "error": "access_denied",
            "error_description": "AADSTS65004: User declined to consent to access the app.",
        },
        headers={"Accept": "application/json"},
    )
    assert denied.status_code == 422 and "declined" in denied.json()["detail"]
    assert conn.ok("GET", f"/directories/{d['id']}")["status"] == "pending_consent"
    again = conn.ok("POST", f"/directories/{d['id']}/reactivate", json={"loginHint": t.user(1)})
    sim = conn.stack.sim
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca), timeout=30) as browser:
        location = browser.get(again["authorizeUrl"], follow_redirects=False).headers["Location"]
    first = conn.http.get(location.removeprefix(conn.url), headers={"Accept": "application/json"})
    assert first.status_code == 200, first.text
    replayed = conn.http.get(location.removeprefix(conn.url), headers={"Accept": "application/json"})
    assert replayed.status_code == 422 and "already used" in replayed.json()["detail"]
    assert conn.ok("GET", f"/directories/{d['id']}")["status"] == "active", "the replay changed nothing"
    failed = [
        e
        for e in audit(conn, d["id"])
        if e["action"] == "directory.consent" and e["result"].startswith("failed")
    ]
    assert len(failed) == 2 and any("access_denied" in str(e["after"]) for e in failed)


def test_a_sign_in_at_another_tenant_is_refused_and_the_directory_stays_pending(conn: WardenHost) -> None:
    t = make_tenant(conn)
    elsewhere = make_tenant(conn)
    # The same (multi-tenant) app registered in the other tenant too: its administrator can sign in to it.
    put = conn.stack.sim.control(
        "PUT",
        f"/_sim/tenants/{elsewhere.id}/clients/{t.client_id}",
        json={"clientId": t.client_id, "clientSecret": t.secret, "scopes": SCOPES},
    )
    assert put.status_code in (200, 201), put.text
    d = connect(conn, t, {"mode": "delegated", "clientSecret": t.secret}).json()
    wrong = d["authorizeUrl"].replace(f"/{t.id}/", f"/{elsewhere.id}/") + "&login_hint=" + elsewhere.user(1)
    page = sign_in(conn, wrong)
    assert page.status_code == 422 and "Not connected" in page.text
    assert "not at this directory&#x27;s tenant" in page.text and "AADSTS9002313" in page.text
    assert conn.ok("GET", f"/directories/{d['id']}")["status"] == "pending_consent"


def test_a_consent_by_a_guest_from_another_tenant_is_refused_even_signed_in_at_this_one(
    conn: WardenHost,
) -> None:
    """Reactivation too: the connection must not live on an account another tenant controls (its ID token's
    ``idp`` names its home tenant)."""
    t = make_tenant(conn)
    home = make_tenant(conn)
    guest_address = home.user(1)
    t.admin.call(
        "POST",
        "/invitations",
        json={"invitedUserEmailAddress": guest_address, "inviteRedirectUrl": "https://myapps.example"},
    )
    d = delegated(conn, t, t.user(1))
    again = conn.ok("POST", f"/directories/{d['id']}/reactivate", json={"loginHint": guest_address})
    refused = sign_in(conn, again["authorizeUrl"], accept="application/json")
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert f"belongs to tenant {home.id}" in detail and "guest" in detail
    after = conn.ok("GET", f"/directories/{d['id']}")
    assert after["status"] == "active" and after["auth"]["consentedBy"]["userPrincipalName"] == t.user(1), (
        "the earlier consent stands"
    )


def test_what_was_bound_while_consent_was_pending_lands_once_it_is_given(conn: WardenHost) -> None:
    t = make_tenant(conn)
    created = connect(conn, t, {"mode": "delegated", "clientSecret": t.secret, "loginHint": t.user(1)})
    assert created.status_code == 201, created.text
    d = created.json()
    u = new_user(conn, t.domain)
    member = new_user(conn, t.domain)
    group = conn.ok("POST", "/groups", 201, json={"name": unique("G")})
    conn.ok("PUT", f"/groups/{group['id']}/members/{member['id']}", (200, 201))
    conn.ok("PUT", f"/groups/{group['id']}/directories/{d['id']}", (200, 201))
    conn.ok("PUT", f"/users/{u['id']}/directories/{d['id']}", 201)
    waiting = wait_for(
        lambda: conn.ok("GET", f"/directories/{d['id']}"),
        lambda x: x["deferred"] == 2,
        what="both users' syncs deferred",
    )
    assert waiting["status"] == "pending_consent" and poisoned(conn) == 0
    done = sign_in(conn, d["authorizeUrl"], accept="application/json")
    assert done.status_code == 200 and done.json()["replayed"] == 2, done.text
    for user in (u, member):
        assert t.admin.get_user(synced(conn, user["id"], d["id"])["m365UserId"]) is not None
    mirrored = wait_for(
        lambda: next(
            x for x in conn.ok("GET", f"/groups/{group['id']}")["directories"] if x["directoryId"] == d["id"]
        ),
        lambda x: x["status"] == "synced" and x.get("m365GroupId"),
        what="the group mirrored",
    )
    wait_for(
        lambda: t.admin.call("GET", f"/groups/{mirrored['m365GroupId']}/members", params={"$select": "id"})[
            "value"
        ],
        lambda members: len(members) == 1,
        what="the member in the mirrored group",
    )
