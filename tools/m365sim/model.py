"""The contract between the simulator's HTTP layer (server, auth, throttling, faults, $batch) and its
Graph directory model (users, groups, domains, organization, delta).

The HTTP layer authenticates the caller, charges resource units, injects faults and then hands a
``GraphRequest`` to the tenant's ``TenantDirectory.handle``; the directory answers a ``GraphResponse``.
Inner requests of a ``$batch`` go through the same path, one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
"""Seconds since the epoch, on the simulator's clock (which the control API can move forward)."""


@dataclass(frozen=True)
class GraphRequest:
    method: str
    """Upper case: GET, POST, PATCH, PUT, DELETE."""
    path: str
    """Path below the version segment, without query: "/users", "/users/{id}", "/groups/{id}/members/$ref"."""
    query: Mapping[str, str]
    """Decoded query parameters ("$top", "$select", "$filter", "$skiptoken", "$deltatoken", ...)."""
    headers: Mapping[str, str]
    """Request headers with lower-cased names."""
    body: Any
    """Parsed JSON body, or None."""
    tenant_id: str
    app_id: str
    permissions: frozenset[str]
    """Application roles (app-only token) or delegated scopes (``scp``) granted to the caller."""
    base_url: str
    """Absolute URL of the version root, e.g. "https://127.0.0.1:8443/v1.0", for nextLink/deltaLink."""
    delegated: bool = False


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
