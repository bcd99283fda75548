"""A Graph request as the HTTP layer parsed it, and the answer it renders.

The aiohttp handler (``tools.m365sim.http.graph.endpoint``) authenticates the caller, charges resource units and
injects faults, then hands a ``GraphRequest`` to ``tools.m365sim.http.graph.router.handle``; inner requests of a
``$batch`` take the same path, one by one. Both types are plain values: the router and the resource handlers run
in-process in the directory's own tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.m365sim.backends.graph.access import Caller


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
    principal_id: str | None = None
    """The signed-in user (delegated) or the app's service principal (app-only): whose directory roles count."""

    @property
    def caller(self) -> Caller:
        return Caller(self.tenant_id, self.app_id, self.permissions, self.delegated, self.principal_id)

    def option(self, name: str) -> str | None:
        """A query option by name, in any case (``$select`` or ``$SELECT``)."""
        lowered = name.lower()
        return next((v for k, v in self.query.items() if k.lower() == lowered), None)


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
