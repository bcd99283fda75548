"""Helpers for the sync end-to-end tests: read Microsoft 365 back through Graph on the simulated cloud (with
the tenant's own app, as an admin would), make accounts there directly, watch the simulator's request log and
Warden's sync runs, and wait (bounded) for things to settle.

Nothing here writes to Warden's store except through its admin API.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from tests.conftest import Sim, remember_secret
from tests.e2e.conftest import WardenHost, new_user, unique
from tools import demo

T = TypeVar("T")

MAX_WAIT = 20.0
POLL = 0.15
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_BACK = (
    "id,userPrincipalName,mail,mailNickname,accountEnabled,givenName,surname,displayName,jobTitle,department,"
    "employeeId,onPremisesImmutableId,proxyAddresses,signInSessionsValidFromDateTime"
)


# ------------------------------------------------------------------------------------------------ waiting
def wait_for(
    observe: Callable[[], T],
    done: Callable[[T], object] = bool,
    *,
    timeout: float = MAX_WAIT,
    interval: float = POLL,
    what: str = "condition",
) -> T:
    """Call ``observe`` every ``interval`` seconds until ``done`` holds for what it returned (that is returned),
    at most ``timeout`` seconds (≤ 20): then fail naming ``what`` and the last state observed."""
    timeout = min(timeout, MAX_WAIT)
    deadline = time.monotonic() + timeout
    while True:
        seen = observe()
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            shown = repr(seen)
            shown = shown if len(shown) <= 2000 else shown[:2000] + " …"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {shown}")
        time.sleep(interval)


def wait_until(
    predicate: Callable[[], T], timeout: float = MAX_WAIT, interval: float = POLL, what: str = "condition"
) -> T:
    """``wait_for`` a ``predicate`` that returns the thing waited for once it is there (anything truthy)."""
    return wait_for(predicate, bool, timeout=timeout, interval=interval, what=what)


# ------------------------------------------------------------------------------------------------ queues
QUEUES = ("user-sync", "group-sync", "reconcile", "import")
"""The queues Warden's functions work (a message counts until its function has finished with it)."""


def queue_length(warden: WardenHost, name: str) -> int:
    """Messages in the queue, those being processed or waiting out a retry included (0: the queue does not exist
    yet, so nothing was ever sent to it). Any other storage error fails the test."""
    with QueueClient.from_connection_string(warden.stack.settings["AzureWebJobsStorage"], name) as client:
        try:
            return int(client.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0


def drained(warden: WardenHost, *names: str, timeout: float = MAX_WAIT) -> None:
    """Wait until every named queue (default: all of Warden's) is empty: whatever was queued has run. The positive
    sign to wait for before asserting that something queued did *not* happen."""
    wait_for(
        lambda: {name: queue_length(warden, name) for name in names or QUEUES},
        lambda lengths: not any(lengths.values()),
        timeout=timeout,
        what="the queues to drain",
    )


# ------------------------------------------------------------------------------------------------- Graph
def odata(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Graph:
    """Microsoft Graph of one simulated tenant, called with an app of that tenant (client credentials).

    Calls retry a few times on connection errors and 5xx (the tests inject faults into the same simulator)."""

    sim: Sim
    tenant_id: str
    client_id: str
    secret: str
    _token: str | None = None
    _expires: float = 0.0
    _http: httpx.Client | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never the secret
        return f"Graph(tenant_id={self.tenant_id!r})"

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(verify=ssl.create_default_context(cafile=self.sim.ca), timeout=30)
        return self._http

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        last: Exception | None = None
        for attempt in range(6):
            try:
                response = self.http.request(method, url, **kw)
            except httpx.TransportError as exc:
                last = exc
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                last = AssertionError(f"{method} {url}: {response.status_code} {response.text[:300]}")
            time.sleep(0.2 * (attempt + 1))
        assert last is not None
        raise last

    def token(self) -> str:
        if self._token is None or time.monotonic() > self._expires:
            response = self._send(
                "POST",
                f"{self.sim.url}/{self.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.secret,
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 3600)) - 120
        return self._token

    def call(self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None) -> Any:
        """``path`` below /v1.0; the JSON answer (None for 204); fails on any other 4xx."""
        response = self.request(method, path, params=params, json=json)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> httpx.Response:
        return self._send(
            method,
            f"{self.sim.url}/v1.0{path}",
            params=params,
            json=json,
            headers={"Authorization": f"Bearer {self.token()}"},
        )

    def get_user(self, m365_id: str, select: str = READ_BACK) -> dict[str, Any] | None:
        response = self.request("GET", f"/users/{m365_id}", params={"$select": select})
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def users_where(self, flt: str, select: str = READ_BACK) -> list[dict[str, Any]]:
        body = self.call("GET", "/users", params={"$filter": flt, "$select": select, "$top": "999"})
        value: list[dict[str, Any]] = body["value"]
        return value

    def users_by_upn(self, upn: str) -> list[dict[str, Any]]:
        return self.users_where(f"userPrincipalName eq {odata(upn)}")

    def users_matching(self, email: str) -> list[dict[str, Any]]:
        """Every account that has ``email`` as UPN, mail or an smtp proxy address (case-insensitive)."""
        e = odata(email)
        return self.users_where(
            f"userPrincipalName eq {e} or mail eq {e} or proxyAddresses/any(p:p eq {odata('smtp:' + email)})"
        )

    def manager_of(self, m365_id: str) -> str | None:
        response = self.request("GET", f"/users/{m365_id}/manager", params={"$select": "id"})
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def create_user(self, upn: str, *, mail: str | None = None, **props: Any) -> dict[str, Any]:
        """An account made directly in the tenant, as one of its admins would (with a password of its own)."""
        local = upn.split("@")[0]
        password = remember_secret(f"Pre-{uuid.uuid4().hex[:12]}!A1")
        body = {
            "accountEnabled": True,
            "displayName": props.pop("displayName", f"Pre-existing {local}"),
            "mailNickname": props.pop("mailNickname", f"pre{uuid.uuid4().hex[:10]}"),
            "userPrincipalName": upn,
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True},
            **({"mail": mail} if mail else {}),
            **props,
        }
        response = self.request("POST", "/users", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def patch_user(self, m365_id: str, body: dict[str, Any]) -> None:
        response = self.request("PATCH", f"/users/{m365_id}", json=body)
        assert response.status_code == 204, response.text


def demo_graph(warden: WardenHost) -> Graph:
    return Graph(
        warden.stack.sim, demo.DEMO_TENANT_ID, demo.DEMO_CLIENT_ID, warden.stack.world.demo_client_secret
    )


# --------------------------------------------------------------------------------------------- a tenant
@dataclass
class Tenant:
    """A simulated tenant made for a test, connected to Warden as a directory."""

    graph: Graph
    domains: list[str]
    directory: dict[str, Any]
    name: str

    @property
    def id(self) -> str:
        return str(self.directory["id"])


def make_tenant(
    warden: WardenHost, verified: list[str], unverified: tuple[str, ...] = (), name: str | None = None
) -> Tenant:
    """A new tenant whose first ``verified`` domain is the default, with the demo app's permissions, connected
    to Warden (app-only). The secret is remembered for the secrets scan."""
    sim = warden.stack.sim
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    secret = remember_secret(f"sec-{uuid.uuid4().hex}")
    name = name or f"Tenant {unique('t')}"
    domains = [{"id": d, "isDefault": i == 0, "isVerified": True} for i, d in enumerate(verified)]
    domains += [{"id": d, "isDefault": False, "isVerified": False} for d in unverified]
    body = {
        "tenantId": tenant_id,
        "displayName": name,
        "domains": domains,
        "clients": [{"clientId": client_id, "clientSecret": secret, "roles": demo.DEMO_ROLES}],
    }
    created = sim.control("POST", "/_sim/tenants", json=body)
    assert created.status_code == 201, created.text
    connect = {
        "name": name,
        "tenantId": tenant_id,
        "auth": {"mode": "app", "clientId": client_id, "clientSecret": secret},
    }
    directory = warden.ok("POST", "/directories", 201, json=connect)
    return Tenant(Graph(sim, tenant_id, client_id, secret), list(verified), directory, name)


def drop_tenant(warden: WardenHost, tenant: Tenant) -> None:
    warden.call("DELETE", f"/directories/{tenant.id}", params={"confirm": tenant.name})


# ---------------------------------------------------------------------------------------------- Warden
def user(warden: WardenHost, user_id: str) -> dict[str, Any]:
    body: dict[str, Any] = warden.ok("GET", f"/users/{user_id}", 200)
    return body


def link_of(body: dict[str, Any], directory_id: str) -> dict[str, Any] | None:
    return next((d for d in body.get("directories", []) if d["directoryId"] == directory_id), None)


def wait_link(
    warden: WardenHost,
    user_id: str,
    directory_id: str,
    status: str | tuple[str, ...],
    *,
    check: Callable[[dict[str, Any]], bool] = lambda _: True,
    timeout: float = MAX_WAIT,
) -> dict[str, Any]:
    """The user's link to ``directory_id`` once its status is ``status`` and ``check`` holds."""
    wanted = (status,) if isinstance(status, str) else status

    def settled(link: dict[str, Any] | None) -> bool:
        return link is not None and link["status"] in wanted and check(link)

    link = wait_for(
        lambda: link_of(user(warden, user_id), directory_id),
        settled,
        timeout=timeout,
        what=f"user {user_id}'s link to {directory_id} to be {' or '.join(wanted)}",
    )
    assert link is not None
    return link


def audit(warden: WardenHost, user_id: str) -> list[dict[str, Any]]:
    """Every audit entry about the user, oldest first."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"userId": user_id, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = warden.ok("GET", "/audit", 200, params=params)
        out.extend(page["items"])
        cursor = page.get("next")
        if not cursor:
            break
    return sorted(out, key=lambda e: e["at"])


def audit_actions(warden: WardenHost, user_id: str, action: str) -> list[dict[str, Any]]:
    return [e for e in audit(warden, user_id) if e["action"] == action]


def new_correlation() -> str:
    return f"e2e-{uuid.uuid4()}"


def act(
    warden: WardenHost,
    method: str,
    path: str,
    *waiting_for: str,
    status: int | tuple[int, ...] = (200, 201, 204),
    **kw: Any,
) -> Any:
    """An admin call under a correlation id of its own; then wait until the sync run it queued for each of
    ``waiting_for`` (user ids) has finished (the queue message carries the request's correlation id)."""
    correlation = new_correlation()
    body = warden.ok(method, path, status, headers={"x-correlation-id": correlation}, **kw)
    for user_id in waiting_for:
        wait_sync_done(warden, user_id, correlation_id=correlation)
    return body


# ------------------------------------------------------------------------------------- the request log
class RequestLog:
    """The simulator's request log, read from a mark on (``GET /_sim/requests?since=seq``)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.seq = 0

    def _since(self, seq: int) -> list[dict[str, Any]]:
        response = self.sim.control("GET", f"/_sim/requests?since={seq}")
        response.raise_for_status()
        value: list[dict[str, Any]] = response.json()["value"]
        return value

    def mark(self) -> int:
        """The newest entry's sequence number: ``entries(mark)`` shows only what came later."""
        entries = self._since(self.seq)
        if entries:
            self.seq = max(e["seq"] for e in entries)
        return self.seq

    def entries(self, since: int, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._since(since) if tenant_id is None or e["tenantId"] == tenant_id]

    def writes(self, since: int, tenant_id: str) -> list[dict[str, Any]]:
        """Graph writes (direct or inside ``$batch``) to the tenant since the mark; the ``$batch`` envelope
        itself (a POST carrying only what it carries) is not one."""
        return [
            e
            for e in self.entries(since, tenant_id)
            if e["method"] in WRITES and e["kind"] in ("graph", "batch-item")
        ]


def requests_log(warden: WardenHost) -> RequestLog:
    return RequestLog(warden.stack.sim)


# -------------------------------------------------------------------------------------- Warden's runs
def sync_events(warden: WardenHost, user_id: str) -> list[dict[str, Any]]:
    """``sync.done`` / ``sync.failed`` events of the user's sync runs, from the functions host's log."""
    out: list[dict[str, Any]] = []
    if warden.log is None:
        return out
    with open(warden.log, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace")
            if user_id not in line or '"event":"sync.' not in line:
                continue
            start = line.find('{"event":"sync.')
            try:
                event, _ = json.JSONDecoder().raw_decode(line[start:])
            except ValueError:
                continue
            if event.get("userId") == user_id:
                out.append(event)
    return out


def wait_sync_done(
    warden: WardenHost,
    user_id: str,
    after: int = 0,
    *,
    correlation_id: str | None = None,
    timeout: float = MAX_WAIT,
) -> dict[str, Any]:
    """The first ``sync.done`` of the user after its ``after`` earlier sync events (and carrying
    ``correlation_id`` when given: the run a door's request woke)."""

    def finished(e: dict[str, Any]) -> bool:
        return e["event"] == "sync.done" and correlation_id in (None, e.get("correlationId"))

    fresh = wait_for(
        lambda: sync_events(warden, user_id)[after:],
        lambda events: any(finished(e) for e in events),
        timeout=timeout,
        what=f"a sync run of user {user_id} to finish"
        + (f" (correlation id {correlation_id})" if correlation_id else ""),
    )
    return next(e for e in fresh if finished(e))


@contextmanager
def faults(warden: WardenHost, **knobs: Any) -> Iterator[None]:
    """Simulator faults for the block; always cleared after it."""
    try:
        warden.stack.set_faults(**knobs)
        yield
    finally:
        warden.stack.clear_faults()


def keys_of(value: Any) -> Iterator[str]:
    """Every key of every object nested in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from keys_of(v)
    elif isinstance(value, list):
        for v in value:
            yield from keys_of(v)


def provision(warden: WardenHost, t: Tenant, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` users bound to the tenant's directory, each synced (linked to a new account): (user id, link). Both of
    each user's runs (create, then bind) are done, so that nothing queued undoes what a test edits next."""
    users = [new_user(warden, email=f"{uuid.uuid4().hex[:10]}@{t.domains[0]}") for _ in range(n)]
    for u in users:
        warden.ok("PUT", f"/users/{u['id']}/directories/{t.id}", 201)
    links = [(u["id"], wait_link(warden, u["id"], t.id, "synced")) for u in users]
    for u in users:
        wait_for(
            lambda u=u: [e for e in sync_events(warden, u["id"]) if e["event"] == "sync.done"],
            lambda done: len(done) >= 2,
            what="both sync runs",
        )
    return links
