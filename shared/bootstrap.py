"""The composition root: the one place where Warden's adapters are chosen, built and wired.

Everything is built once per process, lazily, on first use (a cold start pays only for what the first
invocation needs) and shared by every invocation afterwards: storage clients, the Key Vault client and
one Graph client per directory. Async clients are created inside the running event loop that uses them.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.adapters.graph import GraphConnection, GraphEndpoint, connect_graph, get_json
from shared.adapters.identity import client_secret_credential
from shared.adapters.keyvault import read_secret, secret_client, vault_credential
from shared.config import DemoDirectory, Settings, load_settings
from shared.service.health import HealthReport, Probe, check_health

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableServiceClient
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.queue.aio import QueueServiceClient


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._graph: dict[tuple[str, str], GraphConnection] = {}
        self._graph_lock = asyncio.Lock()
        self._vault_credential: AsyncTokenCredential | None = None

    @cached_property
    def graph_endpoint(self) -> GraphEndpoint:
        s = self.settings
        return GraphEndpoint(graph_url=s.graph_url, authority_host=s.authority_host, ca_bundle=s.ca_bundle)

    @cached_property
    def tables(self) -> TableServiceClient:
        from azure.data.tables.aio import TableServiceClient

        return TableServiceClient.from_connection_string(self.settings.storage_connection)

    @cached_property
    def queues(self) -> QueueServiceClient:
        from azure.storage.queue.aio import QueueServiceClient

        return QueueServiceClient.from_connection_string(self.settings.storage_connection)

    @cached_property
    def secrets(self) -> SecretClient:
        self._vault_credential = vault_credential(self.settings)
        return secret_client(self.settings, self._vault_credential)

    async def graph_for_demo(self, demo: DemoDirectory) -> Any:
        """The demo directory's Graph client; its client secret is read from Key Vault once."""
        key = (demo.tenant_id, demo.client_id)
        async with self._graph_lock:
            if key not in self._graph:
                secret = await read_secret(self.secrets, demo.secret_name)
                endpoint = self.graph_endpoint
                credential = client_secret_credential(
                    endpoint.authority_host, endpoint.ca_bundle, demo.tenant_id, demo.client_id, secret
                )
                self._graph[key] = connect_graph(endpoint, credential)
            return self._graph[key].client

    async def aclose(self) -> None:
        """Close every client built so far (tests and benchmarks; the Functions host never recycles)."""
        for connection in self._graph.values():
            await connection.aclose()
        self._graph.clear()
        built = self.__dict__
        for name in ("tables", "queues", "secrets"):
            client = built.pop(name, None)
            if client is not None:
                await client.close()
        if self._vault_credential is not None:
            await self._vault_credential.close()
            self._vault_credential = None

    def health_probes(self) -> list[Probe]:
        probes = [
            Probe("tableStorage", self._probe_tables),
            Probe("queueStorage", self._probe_queues),
            Probe("keyVault", self._probe_key_vault),
        ]
        demo = self.settings.demo_directory
        if demo is not None:
            probes.append(
                Probe(
                    "graph",
                    lambda: self._probe_graph(demo),
                    {"directory": "demo", "tenantId": demo.tenant_id},
                )
            )
        return probes

    async def health(self) -> HealthReport:
        return await check_health(self.health_probes(), timeout=self.settings.health_timeout_seconds)

    async def _probe_tables(self) -> None:
        async for _ in self.tables.list_tables(results_per_page=1):
            break

    async def _probe_queues(self) -> None:
        await self.queues.get_service_properties()

    async def _probe_key_vault(self) -> None:
        async for _ in self.secrets.list_properties_of_secrets(max_page_size=1):
            break

    async def _probe_graph(self, demo: DemoDirectory) -> None:
        client = await self.graph_for_demo(demo)
        body = await get_json(client, "/organization", {"$select": "id"})
        if not isinstance(body, dict) or not body.get("value"):
            raise LookupError("Graph answered /organization without the tenant")


_container: Container | None = None


def get_container() -> Container:
    """The process's container, built on first use from the environment's settings."""
    global _container
    if _container is None:
        _container = Container(load_settings())
    return _container
