"""Delegated connections through Warden's real adapters against Azurite, Key Vault and the simulated cloud, with
Warden's business clock moved instead of waited on (the simulator's own clock is left alone: the session shares it).

- the token refresh round redeems the refresh token once its last use is older than the setting, and costs at most
  one request to Entra and one to Graph per directory (issue 17: "≤ 2");
- two instances refreshing the same directory at once both get a token, and the token cache Key Vault keeps is one
  of theirs, never an older one (the version pointer's ETag decides; the loser's version is disabled).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.bootstrap import Container
from shared.config import load_settings
from shared.domain.model import DirectoryOptions
from shared.service.context import Actor
from shared.service.ports import AuditQuery
from shared.service.store.directories import ConnectDirectory
from tests.conftest import DemoStack
from tests.integration.tenants import sim_tenant
from tools import demo

ADMIN = Actor("admin:test")
SCOPES = [*demo.DEMO_ROLES, "Application.Read.All"]


class MovableClock:
    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@dataclass
class Delegated:
    directory_id: str
    tenant_id: str
    client_id: str


def instance(stack: DemoStack, prefix: str, clock: MovableClock) -> Container:
    settings = {**stack.settings, "WARDEN_TABLE_PREFIX": prefix, "WARDEN_PUBLIC_URL": "http://127.0.0.1:7999"}
    return Container(load_settings(settings), clock=clock)


@pytest.fixture
async def world(demo_stack: DemoStack) -> AsyncIterator[tuple[Container, Container, MovableClock, Delegated]]:
    """Two instances of Warden on one store, and a delegated directory connected through the first."""
    prefix = "cn" + uuid.uuid4().hex[:8]
    clock = MovableClock()
    first, second = instance(demo_stack, prefix, clock), instance(demo_stack, prefix, clock)
    sim = demo_stack.sim
    t = sim_tenant(demo_stack, "Delegated", roles=[], scopes=SCOPES, seed_users=2)
    tenant_id, client_id, secret, domain = t.tenant_id, t.client_id, t.secret, t.domain
    command = ConnectDirectory(
        "Delegated",
        tenant_id,
        "delegated",
        client_id,
        secret,
        None,
        None,
        DirectoryOptions(),
        f"user0001@{domain}",
    )
    view = await first.directories.connect(command, ADMIN)
    assert view.authorize_url and view.directory.status == "pending_consent"
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=sim.ca), timeout=30) as browser:
        redirect = await browser.get(view.authorize_url, follow_redirects=False)
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect.headers["Location"]).query))
    done = await first.consent.complete(answer, ADMIN)
    assert done.directory.status == "active"
    try:
        yield first, second, clock, Delegated(view.directory.id, tenant_id, client_id)
    finally:
        await first.aclose()
        await second.aclose()


def requests_of(stack: DemoStack, tenant_id: str, since: int) -> list[dict[str, Any]]:
    response = stack.sim.control("GET", f"/_sim/requests?since={since}")
    response.raise_for_status()
    return [r for r in response.json()["value"] if r["tenantId"] == tenant_id]


def last_seq(stack: DemoStack) -> int:
    value = stack.sim.control("GET", "/_sim/requests").json()["value"]
    return int(value[-1]["seq"]) if value else 0


def _role_read(r: dict[str, Any]) -> bool:
    """One of the round's reads of the directory's role holders (definitions, assignments, eligibilities)."""
    return "/roleManagement/directory/" in str(r.get("path", ""))


async def test_the_round_redeems_the_refresh_token_once_it_is_a_week_old_in_two_requests(
    demo_stack: DemoStack, world: tuple[Container, Container, MovableClock, Delegated]
) -> None:
    first, _, clock, d = world
    refresh = first.token_refresh
    since = last_seq(demo_stack)
    young = await refresh.round(Actor("timer:token_refresh"))
    mine = next(r for r in young.results if r.directory_id == d.directory_id)
    assert mine.outcome == "checked", "refreshed at consent: not a week old yet"
    sent = requests_of(demo_stack, d.tenant_id, since)
    kinds = [r["kind"] for r in sent if r["kind"] != "batch-item"]
    # The cached token, one $batch: the organization, the app registration and rule 23's role holders
    assert kinds == ["batch"], kinds
    assert len([r for r in sent if r["kind"] == "batch-item" and _role_read(r)]) == 3, (
        "role holders inside it"
    )
    roles = await first.stores.protected.roles_read(d.directory_id)
    assert roles is not None and roles.at >= clock() - dt.timedelta(minutes=1), "and taken as read"

    clock.offset = dt.timedelta(days=7, minutes=1)
    since = last_seq(demo_stack)
    old = await refresh.round(Actor("timer:token_refresh"))
    mine = next(r for r in old.results if r.directory_id == d.directory_id)
    assert mine.outcome == "refreshed"
    kinds = [r["kind"] for r in requests_of(demo_stack, d.tenant_id, since) if r["kind"] != "batch-item"]
    assert kinds == ["token", "batch"], kinds
    stored = await first.stores.directories.get(d.directory_id)
    assert stored is not None and stored[0].token_refreshed_at is not None
    assert stored[0].token_refreshed_at >= clock() - dt.timedelta(minutes=1)
    assert old.run.counts["refreshed"] >= 1 and old.run.status == "done"
    rounds = await refresh.rounds(5)
    assert rounds[0].id == old.run.id, "the round is a run record, newest first"


async def test_two_instances_refreshing_at_once_never_store_an_older_cache(
    world: tuple[Container, Container, MovableClock, Delegated],
) -> None:
    first, second, _, d = world
    found = await first.stores.directories.get(d.directory_id)
    assert found is not None
    directory = found[0]
    credentials = [
        (await first.directory_graph.connection(directory)).credential,
        (await second.directory_graph.connection(directory)).credential,
    ]
    for c in credentials:  # each instance has read the same cache version
        await c.get_token("https://graph.microsoft.com/.default")
    pointer_before = await first.stores.directories.read_state(d.directory_id, "tokencache")
    assert pointer_before is not None
    refreshed = await asyncio.gather(*(c.fresh() for c in credentials))  # type: ignore[attr-defined]
    assert refreshed == [True, True], "both redeemed the refresh token and got a token"
    pointer = await first.stores.directories.read_state(d.directory_id, "tokencache")
    assert pointer is not None and pointer[0] != pointer_before[0]
    name = f"directory-{d.directory_id}-token-cache"
    versions = [v async for v in first.secrets.list_properties_of_secret_versions(name)]
    newer = [v for v in versions if v.version != pointer_before[0]]
    assert [v.version for v in newer if v.enabled] == [pointer[0]], (
        "one new version is current; a loser's, if it stored one, is disabled"
    )
    # Whoever lost adopted the winner's cache: a third refresh, from either instance, works.
    assert await credentials[1].fresh() is True  # type: ignore[attr-defined]
    assert await credentials[0].fresh() is True  # type: ignore[attr-defined]


async def test_a_first_consent_does_what_connecting_does_at_once_role_holders_read_and_drift_baselines(
    demo_stack: DemoStack, world: tuple[Container, Container, MovableClock, Delegated]
) -> None:
    """A delegated directory is usable only once consented: then, not at connect, its role holders are read
    (rule 23: a take-over waits while they are unknown) and drift's deltaLinks taken."""
    first, _, _, d = world
    read = await first.stores.protected.roles_read(d.directory_id)
    assert read is not None, "role holders read when the consent made the directory usable"
    entries = (await first.stores.audit.page(AuditQuery(directory_id=d.directory_id), None, 50)).items
    completed = [e for e in entries if e.action == "directory.connect.completed"]
    assert len(completed) == 1 and completed[0].after is not None
    assert "deltaBaseline" not in completed[0].after, "drift's baselines taken at consent"
    assert completed[0].after["status"] == "active"
