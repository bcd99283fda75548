"""A tenant's own settings as one use case, for what calls on them:

- a **refresh** of one directory (``refresh``): rule 17 re-checked (a tenant that turns on-premises sync on becomes
  ``blocked`` with its reason, and ``active`` again when it turns it off) and the role holders read anew (rule 23).
  The ``token_refresh`` timer's round (``shared.service.connections.refresh``) does both for every directory, with
  its connection check;
- the **reconcile** (``enforce``, before it plans): the same, then the password policy (rule 16) and each federation
  Warden set (rule 15) compared and put back where they drifted;
- the **drift round** (``keep_password_policy``): the password policy of every directory that has the option;
- **connecting** a directory and **changing its options** (``connected``, ``options_changing``): role holders read,
  the password policy applied (or refused, and nothing kept, when Graph refuses it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from shared.domain.errors import PreconditionFailed, Upstream
from shared.domain.model import Directory, directory_status
from shared.service.context import Actor, Auditor
from shared.service.ports import Clock, DirectoryRepository, M365Tenant
from shared.service.tenant.federation import Federations, snapshot_domains
from shared.service.tenant.password_policy import PasswordPolicy, PolicyRound
from shared.service.tenant.protection import Protections

RULE_17_STATUSES = frozenset({"active", "blocked"})
"""The statuses rule 17 moves between (a directory waiting for reactivation stays as it is)."""


@dataclass
class SettingsRound:
    directory: Directory
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class TenantSettings:
    def __init__(
        self,
        directories: DirectoryRepository,
        tenant: M365Tenant,
        protections: Protections,
        passwords: PasswordPolicy,
        federations: Federations,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self.directories = directories
        self.tenant = tenant
        self.protections = protections
        self.passwords = passwords
        self.federations = federations
        self.auditor = auditor
        self.clock = clock

    # ------------------------------------------------------------------------------------- rule 17
    async def check_on_premises_sync(self, directory: Directory, actor: Actor) -> Directory:
        """Rule 17, read now: the directory as it is after (blocked, or active again)."""
        flag = await self.tenant.on_premises_sync(directory)
        status, reason = directory_status(flag)
        for _ in range(3):
            found = await self.directories.get(directory.id)
            if found is None:
                return directory
            current, etag = found
            if current.status not in RULE_17_STATUSES or (current.status, current.status_reason) == (
                status,
                reason,
            ):
                return current
            after = dataclasses.replace(current, status=status, status_reason=reason, updated_at=self.clock())
            try:
                await self.directories.update(after, etag)
            except PreconditionFailed:
                continue
            await self.auditor.record(
                actor,
                "directory.status",
                directory_id=directory.id,
                before={"status": current.status, "reason": current.status_reason},
                after={"status": status, "reason": reason, "onPremisesSyncEnabled": flag},
            )
            return after
        raise Upstream(f"directory {directory.id} kept changing while its status was being set")

    # ------------------------------------------------------------------------------- refresh round
    async def refresh(self, directory_id: str, actor: Actor) -> Directory | None:
        """The refresh round of one directory: rule 17 and the role holders."""
        found = await self.directories.get(directory_id)
        if found is None:
            return None
        directory = await self.check_on_premises_sync(found[0], actor)
        await self.protections.refresh(directory, actor)
        return directory

    # ------------------------------------------------------------------------------------ reconcile
    async def enforce(self, directory: Directory, dry_run: bool, actor: Actor) -> SettingsRound:
        """Before a reconcile plans: rule 17 and role holders read now (a read that fails fails the reconcile); then,
        for a directory Warden may write to, the password policy and the federations kept (their failures are
        counted and audited, and do not stop the users' reconcile)."""
        directory = await self.check_on_premises_sync(directory, actor)
        await self.protections.refresh(directory, actor)
        out = SettingsRound(directory)
        if not directory.writable:
            return out
        policy = await self.passwords.converge(directory, actor, dry_run=dry_run)
        changed = [c for c in policy.changes if c.after is not None]
        out.counts["settings.passwordPolicy"] = len(changed) if dry_run else len(policy.written)
        out.notes += [f"password policy: {f}" for f in policy.failed]
        if not dry_run and policy.written:
            await snapshot_domains(self.directories, directory.id, policy.after())
        federation = await self.federations.enforce(directory, actor, dry_run=dry_run)
        out.counts["settings.federation"] = len(federation.drifted if dry_run else federation.restored)
        out.notes += [f"federation: {f}" for f in federation.failed]
        out.counts["settings.failed"] = len(policy.failed) + len(federation.failed)
        return out

    # ---------------------------------------------------------------------------------------- drift
    async def keep_password_policy(self, actor: Actor) -> int:
        """The drift round's share: every directory Warden may write to that has ``passwordNeverExpires`` gets its
        domains converged (one read of its domains); the domains written."""
        written = 0
        for d in await self.directories.all():
            if not d.writable or not d.options.password_never_expires:
                continue
            policy = await self.passwords.converge(d, actor)
            written += len(policy.written)
            if policy.written:
                await snapshot_domains(self.directories, d.id, policy.after())
        return written

    # ---------------------------------------------------------------------------------- directories
    async def connected(self, directory: Directory, actor: Actor) -> Directory:
        """A directory just connected: its role holders read (a failure is recorded and warned about, not fatal), and
        its password policy applied when asked (refused as a whole when Graph refuses it)."""
        await self.protections.refresh_quietly(directory, actor)
        if directory.writable and directory.options.password_never_expires:
            policy = await self._set_policy(directory, True, False, actor)
            await snapshot_domains(self.directories, directory.id, policy.after())
        found = await self.directories.get(directory.id)
        return found[0] if found is not None else directory

    async def options_changing(self, before: Directory, after: Directory, actor: Actor) -> Directory:
        """Before changed options are stored: ``passwordNeverExpires`` turned on or off is applied in the tenant
        first (if Graph refuses, the tenant is put back and the change refused). ``after`` with its domains as
        they now are, to be stored."""
        old, new = before.options.password_never_expires, after.options.password_never_expires
        if old == new or not after.writable:
            return after
        policy = await self._set_policy(after, new, old, actor)
        fresh = {x.name: x for x in policy.after()}
        return dataclasses.replace(
            after,
            domains=tuple(
                dataclasses.replace(x, password_validity_days=fresh[x.name].password_validity_days)
                if x.name in fresh
                else x
                for x in after.domains
            ),
        )

    async def _set_policy(
        self, directory: Directory, wanted: bool, previous: bool, actor: Actor
    ) -> PolicyRound:
        policy = await self.passwords.converge(directory, actor, never_expires=wanted)
        if policy.failed:
            await self.passwords.converge(directory, actor, never_expires=previous)
            raise Upstream(
                "passwordNeverExpires could not be "
                + ("applied" if wanted else "turned off")
                + f": Graph refused {'; '.join(policy.failed)} (the app needs Domain.ReadWrite.All); nothing was kept",
                field="options.passwordNeverExpires",
            )
        return policy

    async def warnings(self, directory: Directory) -> list[str]:
        return await self.protections.warnings(directory)
