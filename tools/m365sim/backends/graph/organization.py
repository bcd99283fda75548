"""The tenant's organization object (https://learn.microsoft.com/en-us/graph/api/resources/organization)."""

from __future__ import annotations

from typing import Any

from tools.m365sim.backends.clock import iso
from tools.m365sim.backends.graph.domains import DomainsBackend
from tools.m365sim.backends.graph.errors import not_found
from tools.m365sim.backends.graph.store import Data


class OrganizationBackend:
    def __init__(
        self, tenant_id: str, display_name: str, created: float, on_premises_sync_enabled: bool | None
    ) -> None:
        self.tenant_id = tenant_id
        self.display_name = display_name
        self.created = created
        self.on_premises_sync_enabled = on_premises_sync_enabled
        """organization.onPremisesSyncEnabled: true synced, false once synced but no longer, None never synced;
        only a synced tenant (true) has users mastered on-premises."""

    def record(self, domains: DomainsBackend) -> Data:
        verified = [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": d["isDefault"],
                "isInitial": d["isInitial"],
                "name": d["id"],
                "type": d["authenticationType"],
            }
            for d in domains.all()
            if d["isVerified"]
        ]
        return {
            "id": self.tenant_id,
            "displayName": self.display_name,
            "createdDateTime": iso(self.created),
            "tenantType": "AAD",
            "countryLetterCode": "US",
            # organization: onPremisesSyncEnabled "true if this object is synced from an on-premises directory;
            # false if this object was originally synced from an on-premises directory but is no longer synced.
            # Nullable. null if this object has never been synced from an on-premises directory (default)" - the
            # stored value, as it is.
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "verifiedDomains": verified,
        }

    def get(self, key: str, domains: DomainsBackend) -> Data:
        if key.lower() != self.tenant_id.lower():
            raise not_found(key)
        return self.record(domains)

    def snapshot(self) -> dict[str, Any]:
        return {
            "displayName": self.display_name,
            "created": self.created,
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.display_name = state["displayName"]
        self.created = float(state["created"])
        self.on_premises_sync_enabled = state["onPremisesSyncEnabled"]
