"""The tenants of the simulated cloud, and which of them owns the simulated Key Vault."""

from __future__ import annotations

from dataclasses import dataclass

from tools.m365sim.backends.graph.applications import AppRegistration
from tools.m365sim.backends.graph.directory import TenantDirectory

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
VAULT_RESOURCE = "https://vault.azure.net"


@dataclass
class Tenant:
    tenant_id: str
    directory: TenantDirectory

    @property
    def display_name(self) -> str:
        return self.directory.display_name

    def domain_names(self) -> list[str]:
        return self.directory.domains.names()

    def default_domain(self) -> str:
        return self.directory.default_domain()

    def app(self, client_id: str) -> AppRegistration | None:
        return self.directory.applications.by_app_id(client_id)

    def api_app(self, resource: str) -> AppRegistration | None:
        """The app of this tenant a resource names (by App ID URI or client id)."""
        return self.directory.applications.find(resource)


class Tenants:
    def __init__(self) -> None:
        self.by_id: dict[str, Tenant] = {}
        self.vault_tenant_id: str | None = None

    def add(self, tenant: Tenant, *, key_vault: bool = False) -> None:
        self.by_id[tenant.tenant_id] = tenant
        if key_vault:
            self.vault_tenant_id = tenant.tenant_id

    def get(self, tenant_id: str) -> Tenant | None:
        return self.by_id.get(tenant_id.lower())

    def all(self) -> list[Tenant]:
        return list(self.by_id.values())

    def resolve(self, segment: str) -> Tenant | None:
        """A tenant by id or by one of its domain names (case-insensitive)."""
        seg = segment.lower()
        for t in self.by_id.values():
            if t.tenant_id == seg or seg in t.domain_names():
                return t
        return None

    def vault_tenant(self) -> Tenant | None:
        return self.by_id.get(self.vault_tenant_id) if self.vault_tenant_id else None

    def clear(self) -> None:
        self.by_id.clear()
        self.vault_tenant_id = None
