"""Warden's own adapters against Azurite and the simulated cloud: what `GET /api/health` reports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from shared.bootstrap import Container
from shared.config import load_settings
from tests.conftest import DemoStack, remember_secret
from tools import demo, procs

Factory = Callable[..., Container]


@pytest.fixture
async def container() -> AsyncIterator[Factory]:
    """Builds containers over the demo stack's settings (with overrides) and closes them afterwards."""
    built: list[Container] = []

    def build(stack: DemoStack, **overrides: str) -> Container:
        # Tables of their own: the end-to-end tests connect directories in the session's shared Azurite.
        settings = {**stack.settings, "WARDEN_TABLE_PREFIX": "healthit", **overrides}
        built.append(Container(load_settings(settings)))
        return built[-1]

    yield build
    for c in built:
        await c.aclose()


@pytest.fixture
def stack(demo_stack: DemoStack) -> Iterator[DemoStack]:
    yield demo_stack
    demo_stack.clear_faults()


def by_name(report: dict[str, object]) -> dict[str, dict[str, object]]:
    components = report["components"]
    assert isinstance(components, list)
    return {c["name"]: c for c in components}


async def test_every_component_is_up_for_the_demo_tenant(stack: DemoStack, container: Factory) -> None:
    report = (await container(stack).health()).to_json()
    assert report["status"] == "up", report
    components = by_name(report)
    poison = {"userSyncPoison", "groupSyncPoison", "reconcilePoison", "importPoison", "notificationsPoison"}
    assert set(components) == {"tableStorage", "queueStorage", "keyVault", "graph", *poison}
    assert components["graph"]["tenantId"] == demo.DEMO_TENANT_ID
    assert components["graph"]["directory"] == "demo"


async def test_graph_client_and_token_are_reused_across_checks(stack: DemoStack, container: Factory) -> None:
    """One Graph client per directory per process, and MSAL's token cache: three checks
    cost one token request for the demo app, and three Graph calls."""
    c = container(stack)
    stack.sim.control("DELETE", "/_sim/requests")
    for _ in range(3):
        assert (await c.health()).status == "up"
    log = stack.sim.requests()
    demo_tokens = [r for r in log if r["kind"] == "token" and r.get("clientId") == demo.DEMO_CLIENT_ID]
    org_calls = [r for r in log if r["kind"] == "graph" and r["path"].startswith("/v1.0/organization")]
    assert len(demo_tokens) == 1, log
    assert len(org_calls) == 3
    assert all("%24select=id" in r["path"] or "$select=id" in r["path"] for r in org_calls)
    assert await c.graph_for_demo(c.settings.demo_directory) is await c.graph_for_demo(  # type: ignore[arg-type]
        c.settings.demo_directory  # type: ignore[arg-type]
    )


async def test_missing_demo_secret_marks_graph_down_but_key_vault_up(
    stack: DemoStack, container: Factory
) -> None:
    report = (await container(stack, WARDEN_DEMO_SECRET_NAME="no-such-secret").health()).to_json()
    components = by_name(report)
    assert report["status"] == "degraded", "a tenant's Graph down is not Warden down (SPEC §3)"
    assert components["keyVault"]["status"] == "up"
    assert components["graph"]["status"] == "down"
    assert components["graph"]["detail"] == "HTTP 404 SecretNotFound"


async def test_wrong_vault_identity_secret_marks_key_vault_and_graph_down(
    stack: DemoStack, container: Factory
) -> None:
    report = (await container(stack, AZURE_CLIENT_SECRET="not-the-secret").health()).to_json()
    components = by_name(report)
    assert report["status"] == "down", "Key Vault is Warden's own: down (503)"
    assert components["keyVault"]["status"] == "down"
    assert components["keyVault"]["detail"] == "authentication failed"
    assert components["graph"]["status"] == "down"
    assert components["tableStorage"]["status"] == "up"
    assert "not-the-secret" not in str(report)


MI_CLIENT_ID = "7c3e9a51-0d2b-4f86-a1e4-5b9c0d7e3f21"


async def test_in_azure_key_vault_is_read_with_the_function_apps_managed_identity(
    stack: DemoStack, container: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AZURE_* client secret (as in Azure): Warden's own Key Vault token comes from App Service's managed
    identity endpoint (IDENTITY_ENDPOINT with IDENTITY_HEADER, the platform's; overview-managed-identity), one
    request for every Key Vault read; a header the endpoint does not know is "authentication failed", secret-free."""
    header = remember_secret("mi-header-" + MI_CLIENT_ID[:8])
    client = {
        "clientId": MI_CLIENT_ID,
        "displayName": "warden-func (managed identity)",
        "identityHeader": header,
    }
    stack.sim.control("PUT", f"/_sim/tenants/{demo.HOME_TENANT_ID}/clients/{MI_CLIENT_ID}", json=client)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{stack.sim.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", header)
    no_secret = {"AZURE_TENANT_ID": "", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": ""}
    built = container(stack, **no_secret)
    stack.sim.control("DELETE", "/_sim/requests")
    for _ in range(2):
        report = (await built.health()).to_json()
        assert by_name(report)["keyVault"]["status"] == "up", report
    log = stack.sim.requests()
    msi = [r for r in log if r["kind"] == "msi"]
    assert [(r["status"], r.get("clientId")) for r in msi] == [(200, MI_CLIENT_ID)], "one token, cached"
    assert not [r for r in log if r["kind"] == "token" and r.get("clientId") == demo.LOCAL_IDENTITY_CLIENT_ID]

    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    report = (await container(stack, **no_secret).health()).to_json()
    vault = by_name(report)["keyVault"]
    assert (vault["status"], vault["detail"]) == ("down", "authentication failed"), report
    assert header not in str(report)


async def test_unreachable_storage_is_down_within_the_deadline(stack: DemoStack, container: Factory) -> None:
    dead = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port()).connection_string
    c = container(stack, AzureWebJobsStorage=dead, WARDEN_HEALTH_TIMEOUT_SECONDS="2")
    report = (await c.health()).to_json()
    components = by_name(report)
    assert components["tableStorage"]["status"] == "down"
    assert components["queueStorage"]["status"] == "down"
    assert components["tableStorage"]["latencyMs"] < 2500
    assert components["keyVault"]["status"] == "up"


async def test_graph_outage_is_reported_per_directory(stack: DemoStack, container: Factory) -> None:
    # Long enough for msgraph-core's retry handler to give up on the 503s (it honours Retry-After).
    c = container(stack, WARDEN_HEALTH_TIMEOUT_SECONDS="30")
    assert (await c.health()).status == "up"  # token cached, client built
    stack.set_faults(errorRate=1.0, errorKinds=["503"])
    report = (await c.health()).to_json()
    components = by_name(report)
    assert components["graph"]["status"] == "down"
    assert components["graph"]["detail"].startswith("HTTP 503")
    assert components["tableStorage"]["status"] == "up"


async def test_get_json_maps_graph_errors_to_odata_errors(stack: DemoStack, container: Factory) -> None:
    """Warden's JSON reads keep msgraph-sdk's error mapping: a Graph 404 is an ODataError with Graph's code."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    from shared.adapters.graph import get_json

    c = container(stack)
    client = await c.graph_for_demo(c.settings.demo_directory)  # type: ignore[arg-type]
    users = await get_json(client, "/users", {"$select": "id,userPrincipalName", "$top": "5"})
    assert len(users["value"]) == 5 and set(users["value"][0]) >= {"id", "userPrincipalName"}
    with pytest.raises(ODataError) as caught:
        await get_json(client, f"/users/nobody@{demo.DEMO_DOMAIN}")
    assert caught.value.response_status_code == 404
    assert caught.value.error is not None and caught.value.error.code == "Request_ResourceNotFound"


async def test_a_poisoned_sync_message_marks_health_down_naming_the_queue(
    stack: DemoStack, container: Factory
) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue.aio import QueueClient

    c = container(stack, WARDEN_TABLE_PREFIX="poisonit")
    poison = QueueClient.from_connection_string(stack.settings["AzureWebJobsStorage"], "user-sync-poison")
    async with poison:
        with contextlib.suppress(ResourceExistsError):
            await poison.create_queue()
        sent = await poison.send_message("eyJ1c2VySWQiOiAieCJ9")
        try:
            components = by_name((await c.health()).to_json())
            assert components["userSyncPoison"]["status"] == "down"
            assert "in user-sync-poison" in str(components["userSyncPoison"]["detail"])
        finally:
            await poison.delete_message(sent)
    assert by_name((await c.health()).to_json())["userSyncPoison"]["status"] == "up"
