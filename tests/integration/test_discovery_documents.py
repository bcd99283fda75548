"""Tenants' OpenID configurations kept in Table Storage (issue 17, the refresh round's "≤ 2 requests per directory"
when cold), through Warden's real adapters against Azurite and the simulated cloud:

- a directory connected by one instance, then used by another (a fresh composition root: a new process, or another
  instance), costs that one a token request and no OpenID configuration request; its first MSAL build read the
  stored documents in one query;
- what is stored is the public document only: no row holds the client secret, a token or anything shaped like a JWT.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.adapters.tables.discovery import PARTITION, TABLE, document_key
from shared.bootstrap import Container
from shared.config import load_settings
from shared.domain.model import DirectoryOptions
from shared.service.context import Actor
from shared.service.store.directories import ConnectDirectory
from tests.conftest import DemoStack
from tests.integration.tenants import sim_tenant
from tools import demo

ADMIN = Actor("admin:test")
SCOPES = [*demo.DEMO_ROLES, "Application.Read.All"]
GRAPH = "https://graph.microsoft.com/.default"


@dataclass
class Connected:
    directory_id: str
    tenant_id: str
    secret: str
    prefix: str


def instance(stack: DemoStack, prefix: str) -> Container:
    settings = {**stack.settings, "WARDEN_TABLE_PREFIX": prefix, "WARDEN_PUBLIC_URL": "http://127.0.0.1:7999"}
    return Container(load_settings(settings))


def sim_requests(stack: DemoStack, tenant_id: str, since: int) -> list[dict[str, Any]]:
    response = stack.sim.control("GET", f"/_sim/requests?since={since}")
    response.raise_for_status()
    return [r for r in response.json()["value"] if r["tenantId"] == tenant_id.lower()]


def last_seq(stack: DemoStack) -> int:
    value = stack.sim.control("GET", "/_sim/requests").json()["value"]
    return int(value[-1]["seq"]) if value else 0


@pytest.fixture
async def connected(demo_stack: DemoStack) -> AsyncIterator[Connected]:
    """An app-only directory connected through a first instance, which is closed again."""
    prefix = "dd" + uuid.uuid4().hex[:8]
    t = sim_tenant(demo_stack, "Discovery", roles=SCOPES, scopes=SCOPES)
    tenant_id, client_id, secret = t.tenant_id, t.client_id, t.secret
    first = instance(demo_stack, prefix)
    since = last_seq(demo_stack)
    try:
        command = ConnectDirectory(
            "Discovery", tenant_id, "app", client_id, secret, None, None, DirectoryOptions(), None
        )
        view = await first.directories.connect(command, ADMIN)
        assert view.directory.status == "active"
    finally:
        await first.aclose()
    kinds = [r["kind"] for r in sim_requests(demo_stack, tenant_id, since)]
    assert kinds.count("openid") == 1, f"connecting read the OpenID configuration once: {kinds}"
    yield Connected(view.directory.id, tenant_id, secret, prefix)


async def test_another_instance_takes_a_token_without_reading_the_openid_configuration_again(
    demo_stack: DemoStack, connected: Connected
) -> None:
    second = instance(demo_stack, connected.prefix)  # nothing in memory: a new process
    try:
        found = await second.stores.directories.get(connected.directory_id)
        assert found is not None
        since = last_seq(demo_stack)
        connection = await second.directory_graph.connection(found[0])
        token = await connection.credential.get_token(GRAPH)
        assert token.token
        kinds = [r["kind"] for r in sim_requests(demo_stack, connected.tenant_id, since)]
        assert kinds == ["token"], f"the OpenID configuration came from the store: {kinds}"
        # and a forced refresh (a claims challenge) still asks for nothing but a token
        since = last_seq(demo_stack)
        await connection.credential.fresh()
        kinds = [r["kind"] for r in sim_requests(demo_stack, connected.tenant_id, since)]
        assert kinds == ["token"], kinds
    finally:
        await second.aclose()


async def test_the_refresh_round_of_a_new_instance_makes_two_requests_for_the_directory(
    demo_stack: DemoStack, connected: Connected
) -> None:
    second = instance(demo_stack, connected.prefix)
    try:
        since = last_seq(demo_stack)
        done = await second.token_refresh.round(Actor("timer:token_refresh"))
        mine = next(r for r in done.results if r.directory_id == connected.directory_id)
        assert mine.outcome == "checked", mine
        kinds = [r["kind"] for r in sim_requests(demo_stack, connected.tenant_id, since)]
        assert [k for k in kinds if k != "batch-item"] == ["token", "batch"], kinds
    finally:
        await second.aclose()


async def test_the_stored_documents_hold_no_secret_and_no_token(
    demo_stack: DemoStack, connected: Connected
) -> None:
    second = instance(demo_stack, connected.prefix)
    try:
        found = await second.stores.directories.get(connected.directory_id)
        assert found is not None
        connection = await second.directory_graph.connection(found[0])
        token = (await connection.credential.get_token(GRAPH)).token
        table = await second.store.table(TABLE)
        rows = [dict(e) async for e in table.list_entities()]
        assert rows, "the connect stored the tenant's OpenID configuration"
        url = f"{demo_stack.settings['WARDEN_AUTHORITY_HOST'].rstrip('/')}/{connected.tenant_id}"
        url += "/v2.0/.well-known/openid-configuration"
        mine = [r for r in rows if r["RowKey"] == document_key(url)]
        assert len(mine) == 1 and mine[0]["PartitionKey"] == PARTITION and mine[0]["Url"] == url
        assert json.loads(mine[0]["Document"])["token_endpoint"].startswith(url.split("/v2.0/")[0])
        assert set(mine[0]) == {"PartitionKey", "RowKey", "Url", "Document", "FetchedAt"}
        text = json.dumps(rows, default=str)
        assert connected.secret not in text, "never the client secret"
        assert token not in text and token.split(".")[1] not in text, "never the token"
        assert "eyJ" not in text, "nothing shaped like a JWT"
        assert "access_token" not in text and "refresh_token" not in text
    finally:
        await second.aclose()
