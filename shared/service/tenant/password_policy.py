"""Rule 16 kept in the tenant: ``passwordNeverExpires`` on makes the verified managed domains' passwords never expire
(each previous value remembered first), off puts the remembered values back. Converging is level-triggered: the
same step serves turning the option on or off, connecting, the drift round and the nightly reconcile (a domain
edited in M365 behind Warden's back is set back, audited with the value found), and a half-done run is finished by
the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain.federation import TenantDomain
from shared.domain.model import Directory
from shared.domain.password_policy import PolicyChange, policy_changes
from shared.service.context import Actor, Auditor
from shared.service.ports import M365Tenant, ManagedSettingsStore


@dataclass
class PolicyRound:
    directory_id: str
    domains: list[TenantDomain]
    """The tenant's domains as read before any change."""
    changes: list[PolicyChange] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """Graph's refusals, each as "domain: answer"."""

    def after(self) -> list[TenantDomain]:
        """The domains as they are once the round's writes are applied."""
        values = {c.domain: c.after for c in self.changes if c.after is not None and c.domain in self.written}
        return [
            TenantDomain(
                d.name,
                d.is_verified,
                d.is_default,
                d.is_initial,
                d.authentication_type,
                values.get(d.name, d.password_validity_days),
            )
            for d in self.domains
        ]


class PasswordPolicy:
    def __init__(self, tenant: M365Tenant, store: ManagedSettingsStore, auditor: Auditor) -> None:
        self.tenant = tenant
        self.store = store
        self.auditor = auditor

    async def converge(
        self, directory: Directory, actor: Actor, *, never_expires: bool | None = None, dry_run: bool = False
    ) -> PolicyRound:
        """Make the tenant's domains match the option (the directory's, or ``never_expires`` when the option is
        about to change). A value is remembered before it is overwritten, and forgotten only once it is back."""
        wanted = directory.options.password_never_expires if never_expires is None else never_expires
        domains = await self.tenant.domains(directory)
        remembered = await self.store.password_previous(directory.id)
        result = PolicyRound(directory.id, domains, policy_changes(domains, wanted, remembered))
        if dry_run:
            return result
        for change in result.changes:
            if change.remember is not None:
                await self.store.remember_password(directory.id, change.domain, change.remember)
            if change.after is not None:
                written = await self.tenant.set_password_validity(directory, change.domain, change.after)
                await self.auditor.record(
                    actor,
                    "directory.password_policy",
                    result="succeeded" if written.ok else f"{written.outcome}: {written.detail}",
                    directory_id=directory.id,
                    before={"domain": change.domain, "passwordValidityPeriodInDays": change.before},
                    after={"domain": change.domain, "passwordValidityPeriodInDays": change.after},
                )
                if not written.ok:
                    result.failed.append(f"{change.domain}: {written.detail or written.outcome}")
                    continue
                result.written.append(change.domain)
            if change.forget:
                await self.store.forget_password(directory.id, change.domain)
        return result
