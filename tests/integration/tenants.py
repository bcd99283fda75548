"""A tenant of the simulated cloud with one app registration, for a test to connect Warden to (``sim_tenant``), or
connected already (``connected_app``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.domain.model import DirectoryOptions
from shared.service.context import Actor
from shared.service.store.directories import ConnectDirectory
from tests.conftest import DemoStack, remember_secret
from tools import demo

if TYPE_CHECKING:
    from shared.bootstrap import Container


@dataclass(frozen=True)
class SimTenant:
    tenant_id: str
    client_id: str
    secret: str
    """Remembered (``remember_secret``): the suite's last test checks it was written nowhere."""
    domain: str


def sim_tenant(
    stack: DemoStack,
    name: str,
    *,
    roles: Sequence[str],
    scopes: Sequence[str] | None = None,
    seed_users: int = 0,
) -> SimTenant:
    """A new tenant named ``name`` with one verified default domain and one client with ``roles`` (application
    permissions) and ``scopes`` (delegated ones), and ``seed_users`` accounts."""
    tenant = SimTenant(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        remember_secret(uuid.uuid4().hex),
        f"t{uuid.uuid4().hex[:8]}.example",
    )
    client: dict[str, Any] = {
        "clientId": tenant.client_id,
        "clientSecret": tenant.secret,
        "roles": list(roles),
    }
    if scopes is not None:
        client["scopes"] = list(scopes)
    body: dict[str, Any] = {
        "tenantId": tenant.tenant_id,
        "displayName": name,
        "domains": [{"id": tenant.domain, "isDefault": True, "isVerified": True}],
        "clients": [client],
    }
    if seed_users:
        body["seedUsers"] = seed_users
    stack.sim.control("POST", "/_sim/tenants", json=body).raise_for_status()
    return tenant


async def connected_app(
    container: Container, stack: DemoStack, name: str, options: DirectoryOptions | None = None
) -> tuple[SimTenant, str]:
    """A new tenant whose app holds Warden's roles, connected through ``container`` app-only with its client
    secret: the tenant, and the directory's id."""
    t = sim_tenant(stack, name, roles=demo.DEMO_ROLES)
    command = ConnectDirectory(
        name, t.tenant_id, "app", t.client_id, t.secret, None, None, options or DirectoryOptions()
    )
    view = await container.directories.connect(command, Actor("admin:test"))
    return t, view.directory.id
