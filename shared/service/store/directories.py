"""Use cases on connected directories (M365 tenants): connect, read, change options, reactivate, deactivate.

Rules: 10 (one domain, one directory), 12 (deactivation removes bindings, links and secrets, leaves M365 as
it is, and needs the directory's name as confirmation), 17 (a tenant synced from on-premises is blocked), 18
(app-only credentials in Key Vault, their expiry tracked).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shared.domain.errors import Conflict, Invalid, NotFound, NotImplementedYet, PreconditionFailed
from shared.domain.model import Directory, DirectoryOptions, directory_status, options_document
from shared.domain.runs import Run
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    Clock,
    DirectoryGraph,
    DirectoryIndex,
    DirectoryRepository,
    GroupRepository,
    Ids,
    SecretStore,
    TenantInfo,
    TenantReader,
    Uniques,
    UserRepository,
)
from shared.service.store.uniqueness import Claims

DOMAIN = "domain"


class RunHistory(Protocol):
    async def latest(self, directory_id: str, limit: int) -> list[Run]: ...


class TenantHooks(Protocol):
    """What a tenant's own settings need when a directory is connected or its options change (rules 16 and 23;
    ``shared.service.tenant.settings.TenantSettings``)."""

    async def connected(self, directory: Directory, actor: Actor) -> Directory:
        """Role holders read, the password policy applied; raises when the tenant refuses an option asked for."""

    async def options_changing(self, before: Directory, after: Directory, actor: Actor) -> Directory:
        """Apply changed options in the tenant before they are stored (raises, having put the tenant back, when
        Graph refuses); ``after`` with its domains as they now are."""

    async def warnings(self, directory: Directory) -> list[str]: ...


EXPIRY_WARNING = dt.timedelta(days=7)
DEACTIVATE_CONCURRENCY = 16


def secret_name(directory_id: str) -> str:
    return f"directory-{directory_id}-client-secret"


@dataclass(frozen=True)
class ConnectDirectory:
    name: str
    tenant_id: str
    auth_mode: str
    client_id: str
    client_secret: str | None
    certificate_pem: str | None
    credential_expires_at: dt.datetime | None
    options: DirectoryOptions

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"ConnectDirectory(name={self.name!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class DirectoryView:
    directory: Directory
    etag: str
    counts: dict[str, int]
    warnings: tuple[str, ...]
    runs: tuple[Run, ...] = ()


class Directories:
    def __init__(
        self,
        directories: DirectoryRepository,
        users: UserRepository,
        groups: GroupRepository,
        index: DirectoryIndex,
        uniques: Uniques,
        secrets: SecretStore,
        tenants: TenantReader,
        graph: DirectoryGraph,
        runs: RunHistory,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        *,
        real_clock: Clock | None = None,
        tenant_hooks: TenantHooks | None = None,
    ) -> None:
        self.tenant_hooks = tenant_hooks
        self.directories = directories
        self.users = users
        self.groups = groups
        self.index = index
        self.secrets = secrets
        self.tenants = tenants
        self.graph = graph
        self.runs = runs
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.claims = Claims(uniques, real_clock or clock, self._holds)

    async def _holds(self, owner: str, kind: str, value: str) -> bool:
        found = await self.directories.get(owner)
        if found is None:
            return False
        if kind == DOMAIN:
            return value in found[0].verified_domains()
        return found[0].tenant_id.lower() == value

    async def _directory(self, directory_id: str) -> tuple[Directory, str]:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found

    def _warnings(self, d: Directory) -> tuple[str, ...]:
        out = []
        if d.status_reason:
            out.append(f"{d.status}: {d.status_reason}")
        if d.credential_expires_at is not None:
            left = d.credential_expires_at - self.clock()
            if left <= dt.timedelta(0):
                out.append("the app's client secret has expired: give a new one with POST …/reactivate")
            elif left <= EXPIRY_WARNING:
                out.append(
                    f"the app's client secret expires within {left.days + 1} days ({d.credential_expires_at:%Y-%m-%d})"
                )
        return tuple(out)

    async def view(self, directory: Directory, etag: str) -> DirectoryView:
        counts, runs = await asyncio.gather(
            self.index.counts(directory.id), self.runs.latest(directory.id, 5)
        )
        held = [
            f"run {r.id} is held awaiting approval: {(r.guard or {}).get('reason', '')}"
            for r in runs
            if r.status == "held"
        ]
        tenant = await self.tenant_hooks.warnings(directory) if self.tenant_hooks is not None else []
        return DirectoryView(
            directory, etag, counts, (*self._warnings(directory), *tenant, *held), tuple(runs)
        )

    async def get(self, directory_id: str) -> DirectoryView:
        return await self.view(*await self._directory(directory_id))

    async def all(self) -> list[DirectoryView]:
        found = await self.directories.all()
        views = await asyncio.gather(*(self.get(d.id) for d in found))
        return sorted(views, key=lambda v: (v.directory.name.lower(), v.directory.id))

    async def _claim_tenant(
        self, info: TenantInfo, directory_id: str, release: frozenset[str] = frozenset()
    ) -> None:
        """Rule 10: the tenant and each verified domain belong to one directory at most."""
        domains = sorted({d.name for d in info.domains if d.is_verified})
        try:
            await self.claims.claim_all(
                [*((DOMAIN, d) for d in domains), ("tenant", info.tenant_id.lower())], directory_id
            )
        except Conflict as exc:
            owner = exc.extensions.get("owner")
            other = await self.directories.get(owner) if isinstance(owner, str) else None
            name = f"'{other[0].name}' ({owner})" if other else "another connected directory"
            raise Conflict(
                f"{exc.detail}: it belongs to directory {name}. One domain, one directory: two directories for one "
                "domain could block each other's users.",
                **exc.extensions,
            ) from None
        stale = [(DOMAIN, d) for d in release if d not in domains]
        await self.claims.release_all(stale, directory_id)

    async def connect(self, cmd: ConnectDirectory, actor: Actor) -> DirectoryView:
        if cmd.auth_mode == "delegated":
            raise NotImplementedYet("delegated consent is not available yet; connect with auth.mode 'app'")
        if cmd.client_secret is None:
            raise NotImplementedYet("certificate credentials are not available yet; give auth.clientSecret")
        info = await self.tenants.inspect(cmd.tenant_id, cmd.client_id, cmd.client_secret)
        now = self.clock()
        directory_id = self.ids()
        status, reason = directory_status(info.on_premises_sync_enabled)
        directory = Directory(
            id=directory_id,
            name=cmd.name,
            tenant_id=info.tenant_id,
            auth_mode="app",
            client_id=cmd.client_id,
            secret_name=secret_name(directory_id),
            domains=info.domains,
            status=status,
            status_reason=reason,
            options=cmd.options,
            organization_name=info.display_name,
            credential_expires_at=cmd.credential_expires_at,
            created_at=now,
            updated_at=now,
        )
        await self._claim_tenant(info, directory_id)
        try:
            await self.secrets.set(directory.secret_name, cmd.client_secret)
            etag = await self.directories.add(directory)
        except BaseException:
            await self.claims.release_all(self._claimed(directory), directory_id)
            raise
        if self.tenant_hooks is not None:
            try:
                directory = await self.tenant_hooks.connected(directory, actor)
            except BaseException:
                await self._forget_new(directory)
                raise
            etag = (await self._directory(directory_id))[1]
        await self.auditor.record(
            actor, "directory.connect", directory_id=directory_id, after=_audit(directory)
        )
        return await self.view(directory, etag)

    async def _forget_new(self, directory: Directory) -> None:
        """Undo a connection that cannot be completed (nothing is bound to it yet)."""
        await self.graph.forget(directory.id)
        await self.directories.delete(directory.id)
        await self.secrets.delete(directory.secret_name)
        await self.claims.release_all(self._claimed(directory), directory.id)

    @staticmethod
    def _claimed(d: Directory) -> list[tuple[str, str]]:
        return [*((DOMAIN, x) for x in sorted(d.verified_domains())), ("tenant", d.tenant_id.lower())]

    async def update(
        self, directory_id: str, changes: Mapping[str, Any], if_match: str | None, actor: Actor
    ) -> DirectoryView:
        before, etag = await self._directory(directory_id)
        if if_match is not None and if_match != etag:
            raise PreconditionFailed(
                "the directory changed since it was read (If-Match does not match its ETag)"
            )
        after = replace(before, **changes, updated_at=self.clock())
        if self.tenant_hooks is not None and "options" in changes:
            after = await self.tenant_hooks.options_changing(before, after, actor)
        etag = await self.directories.update(after, if_match or etag)
        await self.auditor.record(
            actor, "directory.update", directory_id=directory_id, before=_audit(before), after=_audit(after)
        )
        return await self.view(after, etag)

    async def reactivate(
        self,
        directory_id: str,
        client_secret: str | None,
        credential_expires_at: dt.datetime | None,
        actor: Actor,
    ) -> DirectoryView:
        """Re-validate the credentials (a new client secret when given), re-read domains and status."""
        before, etag = await self._directory(directory_id)
        secret = client_secret if client_secret is not None else await self.secrets.get(before.secret_name)
        info = await self.tenants.inspect(before.tenant_id, before.client_id, secret)
        await self._claim_tenant(info, directory_id, release=before.verified_domains())
        if client_secret is not None:
            await self.secrets.set(before.secret_name, client_secret)
        status, reason = directory_status(info.on_premises_sync_enabled)
        after = replace(
            before,
            domains=info.domains,
            status=status,
            status_reason=reason,
            organization_name=info.display_name,
            credential_expires_at=credential_expires_at
            or (None if client_secret else before.credential_expires_at),
            updated_at=self.clock(),
        )
        etag = await self.directories.update(after, etag)
        await self.graph.forget(directory_id)
        await self.auditor.record(
            actor,
            "directory.reactivate",
            directory_id=directory_id,
            before=_audit(before),
            after={**_audit(after), "newClientSecret": client_secret is not None},
        )
        return await self.view(after, etag)

    async def deactivate(self, directory_id: str, confirm: str | None, actor: Actor) -> None:
        """Rule 12: remove the directory's bindings, links and secret; leave its M365 accounts as they are."""
        directory, _ = await self._directory(directory_id)
        if confirm != directory.name:
            raise Invalid(
                f"confirm: deactivating is irreversible; pass the directory's name ('{directory.name}') as ?confirm=",
                field="confirm",
            )
        gate = asyncio.Semaphore(DEACTIVATE_CONCURRENCY)

        async def forget_user(user_id: str) -> None:
            async with gate:
                await self.users.set_direct_binding(user_id, directory_id, False, self.clock())
                await self.users.delete_link(user_id, directory_id)
                record = await self.users.get(user_id)
                if record is not None and record.user.deleted_at is not None and not record.links:
                    await self.users.delete(user_id)

        await asyncio.gather(*[forget_user(e.user_id) async for e in self.index.all(directory_id)])
        for group_id in await self.directories.bound_groups(directory_id):
            await self.groups.remove_binding(group_id, directory_id)
        await self.index.drop(directory_id)
        await self.graph.forget(directory_id)
        await self.secrets.delete(directory.secret_name)
        await self.directories.delete(directory_id)
        await self.claims.release_all(self._claimed(directory), directory_id)
        await self.auditor.record(
            actor, "directory.deactivate", directory_id=directory_id, before=_audit(directory)
        )


def _audit(d: Directory) -> dict[str, Any]:
    return {
        "name": d.name,
        "tenantId": d.tenant_id,
        "status": d.status,
        "domains": sorted(d.verified_domains()),
        "clientId": d.client_id,
        "options": options_document(d.options),
    }
