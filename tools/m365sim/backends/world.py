"""Everything the simulated cloud knows, in one object: the clock, the tenants (each with its Graph directory), Entra
(keys, consents, codes, refresh tokens), the Key Vault, and the realism knobs (faults, throttling, request log).

``snapshot()`` is the world as plain JSON values and ``restore()`` reads it back (``tools.m365sim.backends.
persistence`` keeps it in a file so that the world survives a restart). Faults, throttle windows and the request log
are the session's, not the world's: they start afresh.
"""

from __future__ import annotations

from typing import Any

from tools.m365sim.backends.clock import SimClock
from tools.m365sim.backends.entra.service import Entra
from tools.m365sim.backends.faults import Faults
from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.backends.keyvault import VaultBackend
from tools.m365sim.backends.requestlog import RequestLog
from tools.m365sim.backends.tenants import Tenant, Tenants
from tools.m365sim.backends.throttle import Throttler, tenant_ru_budget

SNAPSHOT_FORMAT = 1
"""Bumped whenever the snapshot's shape changes; a snapshot of another format is refused, never guessed at."""


class World:
    def __init__(self) -> None:
        self.clock = SimClock()
        self.tenants = Tenants()
        self.faults = Faults()
        self.throttle = Throttler(self.clock)
        self.log = RequestLog(self.clock)
        self.entra = Entra(self.tenants, self.clock)
        self.vault = VaultBackend()

    def reset(self) -> None:
        """Forget every tenant, secret, consent, code and refresh token, fault, throttle window, log entry and the
        clock offset; the signing keys stay."""
        self.clock.offset = 0.0
        self.tenants.clear()
        self.faults.reset()
        self.throttle.reset()
        self.log.clear()
        self.entra.reset()
        self.vault.reset()

    def new_directory(
        self, tenant_id: str, display_name: str, domains: list[dict[str, Any]], on_prem: bool | None
    ) -> TenantDirectory:
        return TenantDirectory(
            tenant_id=tenant_id,
            display_name=display_name,
            domains=domains,
            on_premises_sync_enabled=on_prem,
            clock=self.clock,
            replication_lag=self.faults.replication_lag,
            taken_domains={name for t in self.tenants.all() for name in t.domain_names()},
        )

    def ru_budget(self, tenant: Tenant) -> int:
        override = self.faults.config.resourceUnitsPer10s
        return override if override is not None else tenant_ru_budget(tenant.directory.user_count())

    # -- persistence ------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "clockOffsetSeconds": self.clock.offset,
            "signingKeys": self.entra.keys.snapshot(),
            "grants": self.entra.grants.snapshot(),
            "vaultTenantId": self.tenants.vault_tenant_id,
            "vault": self.vault.snapshot(),
            "tenants": {t.tenant_id: t.directory.snapshot() for t in self.tenants.all()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"the saved world has format {state.get('format')!r}, this simulator reads format {SNAPSHOT_FORMAT}"
            )
        self.reset()
        self.clock.offset = float(state["clockOffsetSeconds"])
        self.entra.keys.restore(state["signingKeys"])
        self.entra.grants.restore(state["grants"])
        for tenant_id, directory in state["tenants"].items():
            restored = TenantDirectory.restore(
                tenant_id, directory, clock=self.clock, replication_lag=self.faults.replication_lag
            )
            self.tenants.add(Tenant(tenant_id, restored))
        self.tenants.vault_tenant_id = state["vaultTenantId"]
        self.vault.restore(state["vault"])
