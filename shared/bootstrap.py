"""The composition root: the one place where Warden's adapters are chosen, built and wired to the use cases.

Everything is built once per process, lazily, on first use (a cold start pays only for what the first invocation
needs: this module imports no SDK, and each property imports what it builds) and shared by every invocation
afterwards: storage clients and repositories, the Key Vault client, the admin token validator, one Graph client per
directory. Async clients are created inside the running event loop that uses them.

What it hands out is typed: the use cases (``users``, ``sync``, ``reconciler``, …), the store's repositories
(``stores``), the queues, the clocks. Tests and benchmarks build a ``Container`` of their own (and may replace a
queue before first use, e.g. ``container.__dict__["reconcile_queue"] = recorder``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import cached_property
from typing import TYPE_CHECKING

from shared.config import Settings, load_settings

if TYPE_CHECKING:
    import aiohttp
    from azure.data.tables.aio import TableServiceClient
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.queue.aio import QueueServiceClient

    from shared.adapters.admin_auth import EntraTokenValidator
    from shared.adapters.alerts import LogAlerts
    from shared.adapters.graph import DirectoryClients, GraphEndpoint, TenantClients
    from shared.adapters.identity import Authority
    from shared.adapters.keyvault import KeyVaultSecrets, KeyVaultTokenCaches, RenewingCredential
    from shared.adapters.m365 import GraphM365
    from shared.adapters.m365.tenant import GraphTenant
    from shared.adapters.notifications import HttpWebhookSender, StorageNotificationQueue
    from shared.adapters.queues import (
        StorageGroupQueue,
        StorageImportQueue,
        StorageReconcileQueue,
        StorageSyncQueue,
    )
    from shared.adapters.tables.audit import TableAuditLog
    from shared.adapters.tables.base import TableStore
    from shared.adapters.tables.dates import TableDates
    from shared.adapters.tables.deferred import TableDeferrals
    from shared.adapters.tables.directories import TableDirectories
    from shared.adapters.tables.dirindex import TableDirectoryIndex
    from shared.adapters.tables.discovery import TableDiscoveryDocuments
    from shared.adapters.tables.groups import TableGroups
    from shared.adapters.tables.imports import TableImports
    from shared.adapters.tables.receipts import TableReceipts
    from shared.adapters.tables.runs import TableRuns
    from shared.adapters.tables.sessions import TableSessions
    from shared.adapters.tables.sources import TableSourceRecords, TableSources
    from shared.adapters.tables.tenant import TableManagedSettings, TableProtectedAccounts
    from shared.adapters.tables.uniques import TableUniques
    from shared.adapters.tables.users import TableUsers
    from shared.adapters.tenant import TenantConnections
    from shared.adapters.webhook_secrets import KeyVaultSigningKeys
    from shared.config import DemoDirectory
    from shared.service.connections.consent import Consent
    from shared.service.connections.refresh import TokenRefresh
    from shared.service.connections.status import ConnectionStatus
    from shared.service.context import Auditor
    from shared.service.health import Health, HealthReport
    from shared.service.hr.events import Hris
    from shared.service.hr.intake import SourceEvents
    from shared.service.hr.scim import Scim
    from shared.service.hr.sources import Sources
    from shared.service.notifications import Deliveries, Notifier
    from shared.service.ports import Clock
    from shared.service.runs.drift import Drift
    from shared.service.runs.imports import Imports
    from shared.service.runs.reconcile import Reconciler
    from shared.service.store.bindings import Bindings
    from shared.service.store.dates import Dates
    from shared.service.store.directories import Directories
    from shared.service.store.groups import Groups
    from shared.service.store.users import Users
    from shared.service.sync.group import GroupSync
    from shared.service.sync.leases import Leases
    from shared.service.sync.links import Links
    from shared.service.sync.user import Sync
    from shared.service.tenant.federation import Federations
    from shared.service.tenant.password_policy import PasswordPolicy
    from shared.service.tenant.protection import Protections
    from shared.service.tenant.settings import TenantSettings


STORAGE_KEEPALIVE_SECONDS = 4.0
NOTIFICATIONS_SECRET = "notifications-signing-secrets"


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


class Stores:
    """The identity store's repositories on Table Storage (``shared.adapters.tables``), each built on first use
    over one ``TableStore``."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    @cached_property
    def users(self) -> TableUsers:
        from shared.adapters.tables.users import TableUsers

        return TableUsers(self.store)

    @cached_property
    def groups(self) -> TableGroups:
        from shared.adapters.tables.groups import TableGroups

        return TableGroups(self.store)

    @cached_property
    def directories(self) -> TableDirectories:
        from shared.adapters.tables.directories import TableDirectories

        return TableDirectories(self.store)

    @cached_property
    def index(self) -> TableDirectoryIndex:
        from shared.adapters.tables.dirindex import TableDirectoryIndex

        return TableDirectoryIndex(self.store)

    @cached_property
    def uniques(self) -> TableUniques:
        from shared.adapters.tables.uniques import TableUniques

        return TableUniques(self.store)

    @cached_property
    def audit(self) -> TableAuditLog:
        from shared.adapters.tables.audit import TableAuditLog

        return TableAuditLog(self.store)

    @cached_property
    def runs(self) -> TableRuns:
        from shared.adapters.tables.runs import TableRuns

        return TableRuns(self.store)

    @cached_property
    def dates(self) -> TableDates:
        from shared.adapters.tables.dates import TableDates

        return TableDates(self.store)

    @cached_property
    def imports(self) -> TableImports:
        from shared.adapters.tables.imports import TableImports

        return TableImports(self.store)

    @cached_property
    def receipts(self) -> TableReceipts:
        from shared.adapters.tables.receipts import TableReceipts

        return TableReceipts(self.store)

    @cached_property
    def deferrals(self) -> TableDeferrals:
        from shared.adapters.tables.deferred import TableDeferrals

        return TableDeferrals(self.store)

    @cached_property
    def protected(self) -> TableProtectedAccounts:
        from shared.adapters.tables.tenant import TableProtectedAccounts

        return TableProtectedAccounts(self.store)

    @cached_property
    def managed_settings(self) -> TableManagedSettings:
        from shared.adapters.tables.tenant import TableManagedSettings

        return TableManagedSettings(self.store)

    # ---------------------------------------------------------------------------------- HR sources (#19)
    @cached_property
    def sources(self) -> TableSources:
        from shared.adapters.tables.sources import TableSources

        return TableSources(self.store)

    @cached_property
    def source_records(self) -> TableSourceRecords:
        from shared.adapters.tables.sources import TableSourceRecords

        return TableSourceRecords(self.store)

    # ---------------------------------------------------------------------------------- the console (#20)
    @cached_property
    def sessions(self) -> TableSessions:
        from shared.adapters.tables.sessions import TableSessions

        return TableSessions(self.store)

    @cached_property
    def discovery(self) -> TableDiscoveryDocuments:
        """Entra tenants' OpenID configurations, kept for every process (``DiscoveryDocuments``)."""
        from shared.adapters.tables.discovery import TableDiscoveryDocuments

        return TableDiscoveryDocuments(self.store)


class Container:
    def __init__(self, settings: Settings, *, clock: Clock = utc_now, real_clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        """The business clock (lifecycle dates, run and audit times), which tests may move."""
        self.real_clock = real_clock
        """Real UTC time, for what must expire as time really passes (leases, stale claims and receipts)."""
        self._vault_credential: RenewingCredential | None = None

    # ------------------------------------------------------------------------------------------ clients
    @cached_property
    def storage_http(self) -> aiohttp.ClientSession:
        """One connection pool for tables and queues. Idle connections are dropped after 4 s: Azurite (Node's
        default) closes them after 5 s, and reusing a connection the server is closing fails the request
        with "Server disconnected" — which the SDK cannot safely retry for an insert."""
        import aiohttp

        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS)
        )

    def storage_transport(self) -> object:
        """An Azure SDK transport (``AioHttpTransport``, which azure-core leaves untyped) over the shared
        connection pool, which it does not own."""
        from azure.core.pipeline.transport import AioHttpTransport

        transport: object = AioHttpTransport(session=self.storage_http, session_owner=False)
        return transport

    @cached_property
    def tables(self) -> TableServiceClient:
        from azure.data.tables.aio import TableServiceClient

        return TableServiceClient.from_connection_string(
            self.settings.storage_connection, transport=self.storage_transport()
        )

    @cached_property
    def queues(self) -> QueueServiceClient:
        from azure.storage.queue.aio import QueueServiceClient

        return QueueServiceClient.from_connection_string(
            self.settings.storage_connection, transport=self.storage_transport()
        )

    @cached_property
    def secrets(self) -> SecretClient:
        from shared.adapters.keyvault import secret_client, vault_credential

        self._vault_credential = vault_credential(self.settings)
        return secret_client(self.settings, self._vault_credential)

    @cached_property
    def secret_store(self) -> KeyVaultSecrets:
        from shared.adapters.keyvault import KeyVaultSecrets

        return KeyVaultSecrets(self.secrets)

    @cached_property
    def graph_endpoint(self) -> GraphEndpoint:
        from shared.adapters.graph import GraphEndpoint

        s = self.settings
        return GraphEndpoint(graph_url=s.graph_url, authority_host=s.authority_host, ca_bundle=s.ca_bundle)

    @cached_property
    def authority(self) -> Authority:
        """Entra (or the simulated cloud), tenants' OpenID configurations kept in Table Storage for every process."""
        from shared.adapters.identity import Authority, DiscoveryDocuments

        documents = DiscoveryDocuments(self.stores.discovery)
        return Authority(self.settings.authority_host, self.settings.ca_bundle, documents)

    @cached_property
    def token_caches(self) -> KeyVaultTokenCaches:
        """Delegated directories' MSAL token caches in Key Vault, their current version in Table Storage."""
        from shared.adapters.keyvault import KeyVaultTokenCaches

        return KeyVaultTokenCaches(self.secrets, self.stores.directories)

    @cached_property
    def directory_graph(self) -> DirectoryClients:
        """One Graph client per connected directory (the ``DirectoryGraph`` port), its tokens from MSAL."""
        from shared.adapters.graph import DirectoryClients
        from shared.adapters.identity import DirectoryCredentials

        credentials = DirectoryCredentials(self.authority, self.secret_store.get, self.token_caches)
        return DirectoryClients(self.graph_endpoint, credentials)

    @cached_property
    def tenant_connections(self) -> TenantConnections:
        """Connected directories' own checks (the token refresh round, the tenant read after a consent)."""
        from shared.adapters.tenant import TenantConnections

        return TenantConnections(self.directory_graph, self.m365_tenant)

    @cached_property
    def tenant_graph(self) -> TenantClients:
        """Graph clients of tenants not connected as directories (the health check's demo tenant)."""
        from shared.adapters.graph import TenantClients

        return TenantClients(self.graph_endpoint, self.secret_store.get)

    @cached_property
    def m365(self) -> GraphM365:
        """Microsoft 365 through Graph, one client per directory (the ``M365`` port)."""
        from shared.adapters.m365 import GraphM365

        return GraphM365(self.directory_graph)

    @cached_property
    def m365_tenant(self) -> GraphTenant:
        """A tenant's own settings through Graph: domains, federation, role holders (the ``M365Tenant`` port)."""
        from shared.adapters.m365.tenant import GraphTenant

        return GraphTenant(self.directory_graph)

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

    # ------------------------------------------------------------------------------------ store, queues
    @cached_property
    def store(self) -> TableStore:
        from shared.adapters.tables.base import TableStore

        return TableStore(self.tables, self.settings.table_prefix)

    @cached_property
    def stores(self) -> Stores:
        return Stores(self.store)

    @cached_property
    def sync_queue(self) -> StorageSyncQueue:
        from shared.adapters.queues import StorageSyncQueue

        return StorageSyncQueue(self.queues)

    @cached_property
    def group_queue(self) -> StorageGroupQueue:
        from shared.adapters.queues import StorageGroupQueue

        return StorageGroupQueue(self.queues)

    @cached_property
    def reconcile_queue(self) -> StorageReconcileQueue:
        from shared.adapters.queues import StorageReconcileQueue

        return StorageReconcileQueue(self.queues)

    @cached_property
    def import_queue(self) -> StorageImportQueue:
        from shared.adapters.queues import StorageImportQueue

        return StorageImportQueue(self.queues)

    @cached_property
    def notification_queue(self) -> StorageNotificationQueue:
        from shared.adapters.notifications import StorageNotificationQueue

        return StorageNotificationQueue(self.queues)

    # ------------------------------------------------------------------------------- shared collaborators
    @cached_property
    def auditor(self) -> Auditor:
        from shared.service.context import Auditor

        return Auditor(self.stores.audit, self.clock, new_id)

    @cached_property
    def bindings(self) -> Bindings:
        from shared.service.store.bindings import Bindings

        s = self.stores
        return Bindings(s.users, s.groups, s.directories, s.index)

    @cached_property
    def leases(self) -> Leases:
        from shared.service.sync.leases import Leases

        return Leases(self.stores.users, self.stores.groups, self.real_clock)

    @cached_property
    def alerts(self) -> LogAlerts:
        from shared.adapters.alerts import LogAlerts

        return LogAlerts()

    @cached_property
    def notifier(self) -> Notifier:
        """Raises notifications (a queue message each; never fails the work that raised it)."""
        from shared.service.notifications import Notifier

        return Notifier(self.notification_queue, self.clock, new_id, self.alerts)

    @cached_property
    def connection_status(self) -> ConnectionStatus:
        from shared.service.connections.status import ConnectionStatus

        s = self.stores
        return ConnectionStatus(
            s.directories,
            s.deferrals,
            self.sync_queue,
            self.group_queue,
            self.reconciler,
            self.notifier,
            self.auditor,
            self.alerts,
            self.clock,
        )

    @cached_property
    def links(self) -> Links:
        from shared.service.sync.links import Links

        return Links(self.stores.users, self.stores.uniques, self.auditor, self.clock)

    # ----------------------------------------------------------------------------------------- use cases
    @cached_property
    def users(self) -> Users:
        from shared.service.store.users import Users

        s = self.stores
        return Users(
            s.users,
            s.directories,
            s.index,
            s.uniques,
            self.bindings,
            self.auditor,
            self.clock,
            new_id,
            self.sync_queue,
            s.dates,
            self.secret_store,
            real_clock=self.real_clock,
        )

    @cached_property
    def groups(self) -> Groups:
        from shared.service.store.groups import Groups

        s = self.stores
        return Groups(
            s.groups,
            s.users,
            s.directories,
            s.uniques,
            self.bindings,
            self.auditor,
            self.clock,
            new_id,
            self.sync_queue,
            self.group_queue,
            real_clock=self.real_clock,
        )

    @cached_property
    def directories(self) -> Directories:
        from shared.adapters.tenant import GraphTenantReader
        from shared.service.runs.drift import Baselines
        from shared.service.store.directories import Directories

        s = self.stores
        return Directories(
            s.directories,
            s.users,
            s.groups,
            s.index,
            s.uniques,
            self.secret_store,
            GraphTenantReader(self.graph_endpoint, self.authority),
            self.tenant_connections,
            s.runs,
            self.auditor,
            self.clock,
            new_id,
            consents=self.consent,
            status=self.connection_status,
            deferrals=s.deferrals,
            real_clock=self.real_clock,
            baselines=Baselines(s.directories, self.m365),
            allow_loopback_http=not self.settings.in_azure,
            tenant_hooks=self.tenant_settings,
        )

    @cached_property
    def consent(self) -> Consent:
        """Delegated consent: the authorization-code flow and its callback."""
        from shared.adapters.identity import MsalConsent
        from shared.service.connections.consent import Consent
        from shared.service.store.directories import directory_holds
        from shared.service.store.uniqueness import Claims

        s = self.stores
        return Consent(
            s.directories,
            self.secret_store,
            MsalConsent(self.authority),
            self.token_caches,
            self.tenant_connections,
            self.connection_status,
            Claims(s.uniques, self.real_clock, directory_holds(s.directories)),
            self.auditor,
            self.clock,
            new_id,
            redirect_uri=self.settings.redirect_uri,
            consented=lambda d, actor: self.directories.consented(d, actor),
        )

    @cached_property
    def token_refresh(self) -> TokenRefresh:
        """The token refresh timer's rounds."""
        import datetime as dt

        from shared.service.connections.refresh import TokenRefresh

        s = self.stores
        return TokenRefresh(
            s.directories,
            self.tenant_connections,
            self.connection_status,
            s.deferrals,
            s.runs,
            self.auditor,
            self.clock,
            new_id,
            max_age=dt.timedelta(hours=self.settings.token_refresh_max_age_hours),
            role_holders=self.protections,
        )

    @cached_property
    def webhook_sender(self) -> HttpWebhookSender:
        from shared.adapters.notifications import HttpWebhookSender

        return HttpWebhookSender()

    @cached_property
    def deliveries(self) -> Deliveries:
        """Delivering notifications (the ``notifications`` queue) and their signing secret."""
        from shared.adapters.webhook_secrets import KeyVaultSigningKeys
        from shared.service.notifications import Deliveries

        return Deliveries(
            self.stores.directories,
            KeyVaultSigningKeys(self.secrets, name=NOTIFICATIONS_SECRET),
            self.webhook_sender,
            self.notification_queue,
            self.auditor,
            self.real_clock,
            self.alerts,
        )

    @cached_property
    def sync(self) -> Sync:
        from shared.service.sync.guard import SlidingGuard
        from shared.service.sync.user import Sync

        s = self.stores
        return Sync(
            users=s.users,
            directories=s.directories,
            bindings=self.bindings,
            uniques=s.uniques,
            m365=self.m365,
            links=self.links,
            leases=self.leases,
            auditor=self.auditor,
            clock=self.clock,
            guard=SlidingGuard(s.runs, s.index, self.clock, new_id, self.notifier),
            secrets=self.secret_store,
            mirrors=self.group_queue,
            pauses=self.connection_status,
            protection=s.protected,
        )

    @cached_property
    def group_sync(self) -> GroupSync:
        from shared.service.sync.group import GroupSync

        s = self.stores
        return GroupSync(
            s.groups,
            s.directories,
            s.uniques,
            self.m365,
            self.leases,
            self.auditor,
            self.clock,
            s.index,
            protection=s.protected,
        )

    @cached_property
    def reconciler(self) -> Reconciler:
        from shared.service.runs.reconcile import Reconciler

        s = self.stores
        return Reconciler(
            runs=s.runs,
            directories=s.directories,
            index=s.index,
            users=s.users,
            bindings=self.bindings,
            m365=self.m365,
            links=self.links,
            auditor=self.auditor,
            queue=self.reconcile_queue,
            sync_queue=self.sync_queue,
            clock=self.clock,
            ids=new_id,
            mirrors=self.group_queue,
            held=self.notifier,
            settings=self.tenant_settings,
            protection=s.protected,
        )

    # ------------------------------------------------------------------ a tenant's own settings (15-17, 23)
    @cached_property
    def protections(self) -> Protections:
        from shared.service.tenant.protection import Protections

        s = self.stores
        return Protections(
            s.directories, s.protected, self.m365_tenant, s.uniques, self.sync_queue, self.auditor, self.clock
        )

    @cached_property
    def password_policy(self) -> PasswordPolicy:
        from shared.service.tenant.password_policy import PasswordPolicy

        return PasswordPolicy(self.m365_tenant, self.stores.managed_settings, self.auditor)

    @cached_property
    def federations(self) -> Federations:
        from shared.adapters.saml import read_metadata
        from shared.service.tenant.federation import Federations

        s = self.stores
        return Federations(
            s.directories,
            s.index,
            self.m365_tenant,
            self.m365,
            s.managed_settings,
            s.protected,
            read_metadata,
            self.auditor,
            self.clock,
        )

    @cached_property
    def tenant_settings(self) -> TenantSettings:
        """Rules 15-17 and 23 as one: the refresh round, the reconcile's first step, the drift round's password
        policy, and what connecting or changing a directory's options does in the tenant."""
        from shared.service.tenant.settings import TenantSettings

        return TenantSettings(
            self.stores.directories,
            self.m365_tenant,
            self.protections,
            self.password_policy,
            self.federations,
            self.auditor,
            self.clock,
        )

    @cached_property
    def drift(self) -> Drift:
        from shared.service.runs.drift import Drift

        s = self.stores
        return Drift(
            s.directories,
            s.uniques,
            self.m365,
            self.sync_queue,
            self.reconciler,
            s.runs,
            self.clock,
            new_id,
            mirrors=self.group_queue,
            users=s.users,
        )

    @cached_property
    def dates(self) -> Dates:
        from shared.service.store.dates import Dates

        return Dates(self.stores.dates, self.stores.users, self.users, self.clock)

    @cached_property
    def imports(self) -> Imports:
        from shared.service.runs.imports import Imports

        s = self.stores
        return Imports(
            s.imports,
            self.import_queue,
            s.directories,
            s.users,
            s.uniques,
            self.users,
            self.m365,
            self.clock,
            new_id,
            self.auditor,
        )

    @cached_property
    def hris_keys(self) -> KeyVaultSigningKeys:
        """The built-in webhook's signing secrets (one cache, shared by the webhook and its source's rotation)."""
        from shared.adapters.webhook_secrets import KeyVaultSigningKeys

        return KeyVaultSigningKeys(self.secrets)

    @cached_property
    def hris(self) -> Hris:
        from shared.adapters.webhook_secrets import verify_signature
        from shared.service.hr.events import Hris

        s = self.stores
        return Hris(
            self.users,
            self.groups,
            s.users,
            s.groups,
            s.directories,
            s.uniques,
            s.receipts,
            self.hris_keys,
            verify_signature,
            self.sync_queue,
            self.auditor,
            self.clock,
            real_clock=self.real_clock,
        )

    # ---------------------------------------------------------------------------------- HR sources (#19)
    @cached_property
    def sources(self) -> Sources:
        from shared.adapters.bamboohr import verify_bamboohr
        from shared.adapters.source_secrets import KeyVaultSourceSecrets
        from shared.adapters.webhook_secrets import verify_signature
        from shared.api.scim_paths import check_source_mapping
        from shared.service.hr.sources import Sources

        s = self.stores
        return Sources(
            s.sources,
            KeyVaultSourceSecrets(self.secrets),
            s.source_records,
            s.uniques,
            self.hris,
            verify_signature,
            verify_bamboohr,
            self.auditor,
            self.clock,
            new_id,
            built_in_keys=self.hris_keys,
            check_mapping=check_source_mapping,
            real_clock=self.real_clock,
        )

    @cached_property
    def scim(self) -> Scim:
        from shared.service.hr.scim import Scim

        s = self.stores
        return Scim(
            self.users,
            self.groups,
            s.users,
            s.groups,
            s.directories,
            s.uniques,
            s.source_records,
            self.sync.push_password,
            self.secret_store,
            self.sync_queue,
            self.auditor,
            self.clock,
        )

    @cached_property
    def intake(self) -> SourceEvents:
        from shared.service.hr.intake import SourceEvents

        s = self.stores
        return SourceEvents(self.hris, self.sources, s.source_records, s.users, self.auditor)

    @cached_property
    def health_check(self) -> Health:
        from functools import partial

        from shared.adapters import probes
        from shared.service.health import Health, Probe

        fixed = [
            Probe("tableStorage", partial(probes.probe_tables, self.tables), own=True),
            Probe("queueStorage", partial(probes.probe_queues, self.queues), own=True),
            Probe("keyVault", partial(probes.probe_key_vault, self.secrets), own=True),
            Probe(
                "userSyncPoison",
                partial(probes.probe_poison, self.sync_queue, "their users failed to sync 5 times"),
            ),
            Probe(
                "groupSyncPoison",
                partial(probes.probe_poison, self.group_queue, "their groups failed to mirror 5 times"),
            ),
            Probe(
                "reconcilePoison",
                partial(
                    probes.probe_poison, self.reconcile_queue, "reconcile plans or chunks that failed 5 times"
                ),
            ),
            Probe(
                "importPoison",
                partial(probes.probe_poison, self.import_queue, "import plans or chunks that failed 5 times"),
            ),
            Probe(
                "notificationsPoison",
                partial(
                    probes.probe_poison, self.notification_queue, "notifications that could not be handled"
                ),
            ),
        ]
        unconnected = []
        demo = self.settings.demo_directory
        if demo is not None:
            check = partial(self.tenant_graph.probe, demo.tenant_id, demo.client_id, demo.secret_name)
            labels = {"directory": "demo", "tenantId": demo.tenant_id}
            unconnected.append((demo.tenant_id, Probe("graph", check, labels)))
        return Health(
            fixed=fixed,
            directories=self.stores.directories,
            graph=self.directory_graph,
            unconnected=unconnected,
            timeout=self.settings.health_timeout_seconds,
            clock=self.real_clock,
            describe=probes.describe_failure,
            reports=[self.sources.health],
        )

    async def health(self) -> HealthReport:
        return await self.health_check.check()

    async def graph_for_demo(self, demo: DemoDirectory) -> object:
        """The demo tenant's Graph client (a ``GraphServiceClient``)."""
        client: object = await self.tenant_graph.client_for(demo.tenant_id, demo.client_id, demo.secret_name)
        return client

    # ------------------------------------------------------------------------------------------ closing
    async def aclose(self) -> None:
        """Close every client built so far (tests and benchmarks; the Functions host never recycles)."""
        built = self.__dict__
        for name in ("tenant_graph", "directory_graph", "store", "webhook_sender"):
            closable = built.pop(name, None)
            if closable is not None:
                await closable.aclose()
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
        for name in [
            n for n, v in built.items() if isinstance(getattr(type(self), n, None), cached_property)
        ]:
            built.pop(name, None)  # built over the clients just closed: built again on next use


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
