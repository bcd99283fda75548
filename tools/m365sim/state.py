"""The simulator's mutable state: tenants and their app registrations, the clock, the request log.

Everything here is reset by ``POST /_sim/reset`` except the token-signing keys (one generated once per process,
like Entra's keys, which rotate on their own schedule and not when a tenant is created; ``POST /_sim/keys/rotate``
adds one, see tools/m365sim/entra.py ``Entra.rotate_key``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.m365sim.model import GraphRequest, GraphResponse

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
VAULT_RESOURCE = "https://vault.azure.net"
REQUEST_LOG_SIZE = 20_000


class Directory(Protocol):
    """What the HTTP layer needs from ``tools.m365sim.directory.TenantDirectory``."""

    def seed_users(self, n: int) -> Any: ...

    def user_count(self) -> int: ...

    def handle(self, req: GraphRequest) -> GraphResponse: ...


@dataclass
class Client:
    """An app registration (and its service principal) in one tenant."""

    client_id: str
    secrets: list[str]
    roles: list[str]
    redirect_uris: list[str]
    display_name: str
    scopes: list[str] = field(default_factory=lambda: ["User.Read"])
    """Delegated permissions consented for the app (what ``<resource>/.default`` grants a user)."""
    key_vault_access: bool = True
    """Whether the app holds a data-plane role on the simulated vault (else Key Vault answers 403)."""
    identifier_uris: list[str] = field(default_factory=list)
    """The App ID URIs of this app as an API (``api://warden-local``): ``<uri>/.default`` names it as a resource
    (https://learn.microsoft.com/en-us/entra/identity-platform/reference-app-manifest#identifieruris-attribute)."""
    app_roles: list[str] = field(default_factory=list)
    """The ``value`` of each app role this app defines as an API, assignable to applications
    (allowedMemberTypes ``Application``: https://learn.microsoft.com/en-us/graph/api/resources/approle)."""
    app_role_assignments: dict[str, list[str]] = field(default_factory=dict)
    """Roles granted to this app's service principal on another app of the tenant: resource app id (lower-case
    GUID) → role values (https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps
    "Assign app roles to applications")."""

    def service_principal_id(self, tenant_id: str) -> str:
        return str(uuid.uuid5(uuid.UUID(int=0), f"sp:{tenant_id}:{self.client_id}"))


@dataclass
class Tenant:
    tenant_id: str
    display_name: str
    domains: list[dict[str, Any]]
    on_premises_sync_enabled: bool | None
    """organization.onPremisesSyncEnabled: true synced, false once synced but no longer, null never synced."""
    clients: dict[str, Client]
    directory: Directory

    def domain_names(self) -> list[str]:
        return [str(d["id"]).lower() for d in self.domains]

    def default_domain(self) -> str:
        for d in self.domains:
            if d.get("isDefault"):
                return str(d["id"])
        return str(self.domains[0]["id"]) if self.domains else f"{self.tenant_id}.onmicrosoft.com"

    def api_app(self, resource: str) -> Client | None:
        return find_app(self.clients.values(), resource)


def find_app(clients: Iterable[Client], resource: str) -> Client | None:
    """The app a resource names, by one of its App ID URIs or by its application (client) id; both compare
    case-insensitively, a trailing slash ignored."""
    r = resource.rstrip("/").lower()
    for client in clients:
        if r == client.client_id.lower() or r in (u.rstrip("/").lower() for u in client.identifier_uris):
            return client
    return None


class RequestLog:
    """Bounded ring buffer of the requests the simulator answered (never bodies, secrets or tokens)."""

    def __init__(self, clock: Callable[[], float], size: int = REQUEST_LOG_SIZE) -> None:
        self._clock = clock
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        method: str,
        path: str,
        status: int,
        resource_units: int,
        tenant_id: str | None,
        client_id: str | None,
        kind: str,
    ) -> dict[str, Any]:
        entry = {
            "seq": next(self._seq),
            "time": dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat().replace("+00:00", "Z"),
            "method": method,
            "path": path,
            "status": status,
            "resourceUnits": resource_units,
            "tenantId": tenant_id,
            "clientId": client_id,
            "kind": kind,
        }
        self._entries.append(entry)
        return entry

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        return [e for e in self._entries if e["seq"] > seq]

    def clear(self) -> None:
        self._entries.clear()


class SimClock:
    """``time.time()`` plus an offset that ``PUT /_sim/clock`` moves (to expire tokens and delta links)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset
