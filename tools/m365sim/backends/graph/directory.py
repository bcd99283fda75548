"""One tenant's Microsoft Graph directory: its resource families over one versioned store.

Each family is a backend of its own (plain state and rules, plain values in and out); this class only wires them
together and knows what a whole tenant is made of (for seeding and for ``snapshot``/``restore``).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Any

from tools.m365sim.backends.clock import Clock
from tools.m365sim.backends.graph import groups as group_resource
from tools.m365sim.backends.graph import users as user_resource
from tools.m365sim.backends.graph.applications import ApplicationsBackend
from tools.m365sim.backends.graph.authmethods import TemporaryAccessPassBackend
from tools.m365sim.backends.graph.delta import DeltaQuery
from tools.m365sim.backends.graph.domains import DomainsBackend
from tools.m365sim.backends.graph.groups import GroupsBackend
from tools.m365sim.backends.graph.odata import parse_select
from tools.m365sim.backends.graph.organization import OrganizationBackend
from tools.m365sim.backends.graph.roles import RoleManagementBackend
from tools.m365sim.backends.graph.store import Data, VersionedStore
from tools.m365sim.backends.graph.users import UsersBackend


def select_for(kind: str, raw: str | None) -> list[str] | None:
    """``$select`` of users or groups → canonical property names (unknown names refused as Graph's OData layer
    does)."""
    if kind == "users":
        return parse_select(raw, user_resource.PROPERTIES, "microsoft.graph.user")
    return parse_select(raw, group_resource.PROPERTIES, "microsoft.graph.group")


def project_for_delta(kind: str, data: Data, select: list[str] | None) -> Data:
    # user-delta: "The id property is always returned."
    project = user_resource.project if kind == "users" else group_resource.project
    return {**project(data, select), "id": data["id"]}


class TenantDirectory:
    """One tenant's directory. Called from one asyncio thread: no locking."""

    def __init__(
        self,
        tenant_id: str,
        display_name: str,
        domains: Iterable[dict[str, Any]],
        *,
        on_premises_sync_enabled: bool | None = None,
        clock: Clock,
        replication_lag: Callable[[], float] = lambda: 0.0,
        taken_domains: Container[str] = (),
    ) -> None:
        self.tenant_id = tenant_id
        self.clock = clock
        self.store = VersionedStore(clock, replication_lag)
        self.organization = OrganizationBackend(tenant_id, display_name, clock(), on_premises_sync_enabled)
        self.domains = DomainsBackend(tenant_id, display_name, clock)
        self.domains.add_all(domains, taken_domains)
        self.applications = ApplicationsBackend(tenant_id, clock)
        self.groups = GroupsBackend(self.store, clock, self.domains.default_domain)
        self.roles = RoleManagementBackend(tenant_id, self.principal, self.groups.groups_of)
        self.users = UsersBackend(
            tenant_id,
            self.store,
            self.domains,
            self.roles,
            clock,
            lambda: self.organization.on_premises_sync_enabled is True,
            self.organization.created,
        )
        self.temporary_access_passes = TemporaryAccessPassBackend(clock)
        self.users.on_delete += [
            self.groups.forget_member,
            self.roles.forget_principal,
            self.temporary_access_passes.forget_user,
        ]
        self.delta = DeltaQuery(
            self.store,
            tenant_id,
            project_for_delta,
            select_for,
            # group-delta Example 1 (no $select) returns the default properties with members@delta.
            {
                "users": user_resource.DEFAULT_PROPERTIES,
                "groups": (*group_resource.DEFAULT_PROPERTIES, "members"),
            },
        )

    @property
    def display_name(self) -> str:
        return self.organization.display_name

    def user_count(self) -> int:
        return self.users.count()

    def seed_users(self, n: int, *, synced: bool | None = None) -> list[Data]:
        """Deterministic users ``user0001…`` in the default domain, visible at once (no replication lag)."""
        return self.users.seed(n, synced=synced)

    def default_domain(self) -> str:
        return self.domains.default_domain()

    def principal(self, principal_id: str) -> Data | None:
        """A user, group or service principal of the tenant by id, with its ``@odata.type`` (role assignments'
        principals)."""
        kind = self.store.kind_of(principal_id)
        if kind is not None:
            data = self.store.visible(kind, principal_id)
            if data is None:
                return None
            return {"@odata.type": f"#microsoft.graph.{kind[:-1]}", **data}
        app = self.applications.by_service_principal(principal_id)
        return self.applications.service_principal(app) if app else None

    # -- persistence ------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "store": self.store.snapshot(),
            "organization": self.organization.snapshot(),
            "domains": self.domains.snapshot(),
            "applications": self.applications.snapshot(),
            "roles": self.roles.snapshot(),
            "temporaryAccessPasses": self.temporary_access_passes.snapshot(),
            "seeded": self.users.seeded,
        }

    @classmethod
    def restore(
        cls, tenant_id: str, state: dict[str, Any], *, clock: Clock, replication_lag: Callable[[], float]
    ) -> TenantDirectory:
        directory = cls(
            tenant_id,
            state["organization"]["displayName"],
            [],
            clock=clock,
            replication_lag=replication_lag,
        )
        store = VersionedStore.restore(clock, replication_lag, state["store"])
        directory.store = directory.users.store = directory.groups.store = directory.delta.store = store
        directory.organization.restore(state["organization"])
        directory.users.created = directory.organization.created
        directory.domains.restore(state["domains"])
        directory.applications.restore(state["applications"])
        directory.roles.restore(state["roles"])
        directory.temporary_access_passes.restore(state["temporaryAccessPasses"])
        directory.users.reindex(int(state["seeded"]))
        directory.groups.reindex()
        return directory
