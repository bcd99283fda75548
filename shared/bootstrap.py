"""The composition root: the one place where Warden's adapters are chosen, built and wired to the use cases.

Everything is built once per process, lazily, on first use (a cold start pays only for what the first
invocation needs) and shared by every invocation afterwards: storage clients and repositories, the Key Vault
client, the admin token validator, one Graph client per directory. Async clients are created inside the
running event loop that uses them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.adapters.graph import DirectoryClients, GraphConnection, GraphEndpoint, connect_graph, get_json
from shared.adapters.identity import client_secret_credential
from shared.adapters.keyvault import KeyVaultSecrets, read_secret, secret_client, vault_credential
from shared.config import DemoDirectory, Settings, load_settings
from shared.service.health import Degraded, HealthReport, Probe, check_health

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableServiceClient
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.queue.aio import QueueServiceClient

    from shared.adapters.admin_auth import EntraTokenValidator
    from shared.adapters.m365 import GraphM365
    from shared.adapters.queues import StorageGroupQueue, StorageReconcileQueue, StorageSyncQueue
    from shared.adapters.tables.base import TableStore
    from shared.domain.model import Directory
    from shared.service.bindings import Bindings
    from shared.service.context import Auditor
    from shared.service.dates import Dates
    from shared.service.directories import Directories
    from shared.service.drift import Drift
    from shared.service.group_sync import GroupSync
    from shared.service.groups import Groups
    from shared.service.hris import Hris
    from shared.service.imports import Imports
    from shared.service.leases import Leases
    from shared.service.links import Links
    from shared.service.ports import AuditLog, Clock
    from shared.service.reconcile import Reconciler
    from shared.service.sync import Sync
    from shared.service.users import Users


STORAGE_KEEPALIVE_SECONDS = 4.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def offset_clock(offset_seconds: float) -> Clock:
    """UTC now, moved by ``WARDEN_CLOCK_OFFSET_SECONDS`` (tests move Warden's clock instead of sleeping)."""
    if not offset_seconds:
        return utc_now
    delta = dt.timedelta(seconds=offset_seconds)
    return lambda: utc_now() + delta


def new_id() -> str:
    return str(uuid.uuid4())


class Container:
    def __init__(self, settings: Settings, *, clock: Clock = utc_now, real_clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        """The business clock (lifecycle dates, run and audit times), which tests may move."""
        self.real_clock = real_clock
        """Real UTC time, for what must expire as time really passes (leases)."""
        self._graph: dict[tuple[str, str], GraphConnection] = {}
        self._graph_lock = asyncio.Lock()
        self._vault_credential: AsyncTokenCredential | None = None

    # ------------------------------------------------------------------------------------------ clients
    @cached_property
    def graph_endpoint(self) -> GraphEndpoint:
        s = self.settings
        return GraphEndpoint(graph_url=s.graph_url, authority_host=s.authority_host, ca_bundle=s.ca_bundle)

    @cached_property
    def storage_http(self) -> aiohttp.ClientSession:
        """One connection pool for tables and queues. Idle connections are dropped after 4 s: Azurite (Node's
        default) closes them after 5 s, and reusing a connection the server is closing fails the request
        with "Server disconnected" — which the SDK cannot safely retry for an insert."""
        import aiohttp

        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS)
        )

    def _storage_transport(self) -> Any:
        from azure.core.pipeline.transport import AioHttpTransport

        return AioHttpTransport(session=self.storage_http, session_owner=False)

    @cached_property
    def tables(self) -> TableServiceClient:
        from azure.data.tables.aio import TableServiceClient

        return TableServiceClient.from_connection_string(
            self.settings.storage_connection, transport=self._storage_transport()
        )

    @cached_property
    def queues(self) -> QueueServiceClient:
        from azure.storage.queue.aio import QueueServiceClient

        return QueueServiceClient.from_connection_string(
            self.settings.storage_connection, transport=self._storage_transport()
        )

    @cached_property
    def secrets(self) -> SecretClient:
        self._vault_credential = vault_credential(self.settings)
        return secret_client(self.settings, self._vault_credential)

    @cached_property
    def secret_store(self) -> KeyVaultSecrets:
        return KeyVaultSecrets(self.secrets)

    @cached_property
    def directory_graph(self) -> DirectoryClients:
        return DirectoryClients(self.graph_endpoint, self.secret_store.get)

    @cached_property
    def m365(self) -> GraphM365:
        """Microsoft 365 through Graph, one client per directory (the ``M365`` port)."""
        from shared.adapters.m365 import GraphM365

        return GraphM365(self.directory_graph)

    @cached_property
    def token_validator(self) -> EntraTokenValidator:
        from shared.adapters.admin_auth import EntraTokenValidator

        s = self.settings
        return EntraTokenValidator(
            authority_host=s.authority_host,
            tenant_id=s.api_tenant_id,
            audiences=s.api_audiences,
            ca_bundle=s.ca_bundle,
        )

    # ------------------------------------------------------------------------------------- repositories
    @cached_property
    def store(self) -> TableStore:
        from shared.adapters.tables.base import TableStore

        return TableStore(self.tables, self.settings.table_prefix)

    @cached_property
    def repositories(self) -> dict[str, Any]:
        from shared.adapters.tables.audit import TableAuditLog
        from shared.adapters.tables.dates import TableDates
        from shared.adapters.tables.directories import TableDirectories
        from shared.adapters.tables.dirindex import TableDirectoryIndex
        from shared.adapters.tables.groups import TableGroups
        from shared.adapters.tables.runs import TableRuns
        from shared.adapters.tables.uniques import TableUniques
        from shared.adapters.tables.users import TableUsers

        return {
            "users": TableUsers(self.store),
            "groups": TableGroups(self.store),
            "directories": TableDirectories(self.store),
            "index": TableDirectoryIndex(self.store),
            "uniques": TableUniques(self.store),
            "audit": TableAuditLog(self.store),
            "runs": TableRuns(self.store),
            "dates": TableDates(self.store),
        }

    @property
    def audit_log(self) -> AuditLog:
        log: AuditLog = self.repositories["audit"]
        return log

    @cached_property
    def sync_queue(self) -> StorageSyncQueue:
        from shared.adapters.queues import StorageSyncQueue

        return StorageSyncQueue(self.queues)

    # -------------------------------------------------------------------------------------- use cases
    @cached_property
    def auditor(self) -> Auditor:
        from shared.service.context import Auditor

        return Auditor(self.audit_log, self.clock, new_id)

    @cached_property
    def bindings(self) -> Bindings:
        from shared.service.bindings import Bindings

        r = self.repositories
        return Bindings(r["users"], r["groups"], r["directories"], r["index"])

    @cached_property
    def users(self) -> Users:
        from shared.service.users import Users

        r = self.repositories
        return Users(
            r["users"],
            r["directories"],
            r["index"],
            r["uniques"],
            self.bindings,
            self.auditor,
            self.clock,
            new_id,
            self.sync_queue,
            r["dates"],
            self.secret_store,
        )

    @cached_property
    def groups(self) -> Groups:
        from shared.service.groups import Groups

        r = self.repositories
        return Groups(
            r["groups"],
            r["users"],
            r["directories"],
            r["uniques"],
            self.bindings,
            self.auditor,
            self.clock,
            new_id,
            self.sync_queue,
            self.group_queue,
        )

    @cached_property
    def group_queue(self) -> StorageGroupQueue:
        from shared.adapters.queues import StorageGroupQueue

        return StorageGroupQueue(self.queues)

    @cached_property
    def group_sync(self) -> GroupSync:
        from shared.service.group_sync import GroupSync

        r = self.repositories
        return GroupSync(
            r["groups"],
            r["users"],
            r["directories"],
            r["uniques"],
            self.m365,
            self.leases,
            self.auditor,
            self.clock,
        )

    @cached_property
    def leases(self) -> Leases:
        from shared.service.leases import Leases

        r = self.repositories
        return Leases(r["users"], r["groups"], self.real_clock)

    @cached_property
    def links(self) -> Links:
        from shared.service.links import Links

        r = self.repositories
        return Links(r["users"], r["uniques"], self.auditor, self.clock)

    @cached_property
    def imports(self) -> Imports:
        from shared.adapters.queues import StorageImportQueue
        from shared.adapters.tables.imports import TableImports
        from shared.service.imports import Imports

        r = self.repositories
        return Imports(
            TableImports(self.store),
            StorageImportQueue(self.queues),
            r["directories"],
            r["users"],
            r["uniques"],
            self.users,
            self.m365,
            self.clock,
            new_id,
            self.auditor,
        )

    @cached_property
    def sync(self) -> Sync:
        from shared.service.guard import SlidingGuard
        from shared.service.sync import Sync

        r = self.repositories
        return Sync(
            users=r["users"],
            directories=r["directories"],
            bindings=self.bindings,
            uniques=r["uniques"],
            m365=self.m365,
            links=self.links,
            leases=self.leases,
            auditor=self.auditor,
            clock=self.clock,
            guard=SlidingGuard(r["runs"], r["index"], self.clock, new_id),
            secrets=self.secret_store,
            mirrors=self.group_queue,
        )

    @cached_property
    def reconcile_queue(self) -> StorageReconcileQueue:
        from shared.adapters.queues import StorageReconcileQueue

        return StorageReconcileQueue(self.queues)

    @cached_property
    def reconciler(self) -> Reconciler:
        from shared.service.reconcile import Reconciler

        r = self.repositories
        return Reconciler(
            runs=r["runs"],
            directories=r["directories"],
            index=r["index"],
            users=r["users"],
            bindings=self.bindings,
            m365=self.m365,
            links=self.links,
            leases=self.leases,
            auditor=self.auditor,
            queue=self.reconcile_queue,
            sync_queue=self.sync_queue,
            clock=self.clock,
            ids=new_id,
            mirrors=self.group_queue,
        )

    @cached_property
    def drift(self) -> Drift:
        from shared.service.drift import Drift

        r = self.repositories
        return Drift(
            r["directories"],
            r["uniques"],
            self.m365,
            self.sync_queue,
            self.reconciler,
            r["runs"],
            self.clock,
            new_id,
            mirrors=self.group_queue,
        )

    @cached_property
    def dates(self) -> Dates:
        from shared.service.dates import Dates

        return Dates(self.repositories["dates"], self.repositories["users"], self.users, self.clock)

    @cached_property
    def directories(self) -> Directories:
        from shared.adapters.tenant import GraphTenantReader
        from shared.service.directories import Directories

        r = self.repositories
        return Directories(
            r["directories"],
            r["users"],
            r["groups"],
            r["index"],
            r["uniques"],
            self.secret_store,
            GraphTenantReader(self.graph_endpoint),
            self.directory_graph,
            r["runs"],
            self.auditor,
            self.clock,
            new_id,
        )

    @cached_property
    def hris(self) -> Hris:
        from shared.adapters.tables.receipts import TableReceipts
        from shared.adapters.webhook_secrets import KeyVaultSigningKeys, verify_signature
        from shared.service.hris import Hris

        r = self.repositories
        return Hris(
            self.users,
            self.groups,
            r["users"],
            r["groups"],
            r["directories"],
            r["uniques"],
            TableReceipts(self.store),
            KeyVaultSigningKeys(self.secrets),
            verify_signature,
            self.sync_queue,
            self.auditor,
            self.clock,
        )

    # ------------------------------------------------------------------------------------------- demo
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
        directory_graph = built.pop("directory_graph", None)
        if directory_graph is not None:
            await directory_graph.aclose()
        store = built.pop("store", None)
        if store is not None:
            await store.aclose()
        for name in ("tables", "queues", "secrets"):
            client = built.pop(name, None)
            if client is not None:
                await client.close()
        storage_http = built.pop("storage_http", None)
        if storage_http is not None:
            await storage_http.close()
        if self._vault_credential is not None:
            await self._vault_credential.close()
            self._vault_credential = None
        for name in (
            "repositories",
            "auditor",
            "bindings",
            "users",
            "groups",
            "directories",
            "hris",
            "secret_store",
            "sync_queue",
        ):
            built.pop(name, None)

    # ----------------------------------------------------------------------------------------- health
    async def health_probes(self) -> list[Probe]:
        probes = [
            Probe("tableStorage", self._probe_tables),
            Probe("queueStorage", self._probe_queues),
            Probe("keyVault", self._probe_key_vault),
            Probe("userSyncPoison", self._probe_poison),
        ]
        try:
            directories = await asyncio.wait_for(
                self.repositories["directories"].all(), self.settings.health_timeout_seconds
            )
        except (
            Exception
        ):  # the tableStorage probe reports the store; without it there is no directory to probe
            directories = []
        connected = {d.tenant_id for d in directories}
        for d in directories:
            probes.append(
                Probe("graph", self._directory_probe(d), {"directory": d.id, "tenantId": d.tenant_id})
            )
        demo = self.settings.demo_directory
        if demo is not None and demo.tenant_id not in connected:
            probes.append(
                Probe(
                    "graph",
                    lambda: self._probe_graph(demo),
                    {"directory": "demo", "tenantId": demo.tenant_id},
                )
            )
        return probes

    def _directory_probe(self, directory: Directory) -> Any:
        async def probe() -> None:
            await self.directory_graph.probe(directory)

        return probe

    async def health(self) -> HealthReport:
        return await check_health(await self.health_probes(), timeout=self.settings.health_timeout_seconds)

    async def _probe_tables(self) -> None:
        async for _ in self.tables.list_tables(results_per_page=1):
            break

    async def _probe_queues(self) -> None:
        await self.queues.get_service_properties()

    async def _probe_poison(self) -> None:
        """Messages whose sync failed every attempt: each is a user Warden could not converge (see the audit's
        ``sync.poisoned`` entries)."""
        count = await self.sync_queue.poisoned()
        if count:
            raise Degraded(f"{count} message(s) in user-sync-poison: their users failed to sync 5 times")

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
        settings = load_settings()
        _container = Container(
            settings, clock=offset_clock(settings.clock_offset_seconds), real_clock=utc_now
        )
    return _container
