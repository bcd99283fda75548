"""Use cases on connected directories (M365 tenants): connect, read, change options, reactivate, deactivate.

Rules: 10 (one domain, one directory), 12 (deactivation removes bindings, links, deferred work, the token cache
and every secret of the directory, leaves M365 as it is, and needs the directory's name as confirmation), 17 (a
tenant synced from on-premises is blocked), 18 (app-only with a client secret or a certificate, or delegated
consent; credentials only in Key Vault, their expiry read from Graph and tracked; a lapsed connection is
reactivated without unbinding anyone, and what waited on it is replayed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shared.domain.connections import credential_in_use, expiry_warning
from shared.domain.errors import Conflict, Invalid, NotFound, PreconditionFailed
from shared.domain.model import (
    CredentialKind,
    Directory,
    DirectoryOptions,
    ExpirySource,
    directory_status,
    options_document,
)
from shared.domain.runs import Run
from shared.service.connections.ports import (
    Certificate,
    ClientCredential,
    Deferrals,
    DirectoryConnections,
    TenantCredentials,
)
from shared.service.connections.status import ConnectionStatus, credential_words
from shared.service.context import Actor, Auditor
from shared.service.notifications import check_notify_url
from shared.service.ports import (
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    GroupRepository,
    Ids,
    SecretStore,
    TenantInfo,
    Uniques,
    UserRepository,
)
from shared.service.store.uniqueness import Claims, Holds
from shared.service.sync.leases import Leases

DOMAIN = "domain"
PENDING_REASON = "waiting for an administrator of the tenant to consent: open the directory's authorizeUrl"


class RunHistory(Protocol):
    async def latest(self, directory_id: str, limit: int) -> list[Run]: ...


class DeltaBaselines(Protocol):
    """Drift's starting points in a directory (``shared.service.runs.drift.Baselines``)."""

    async def baseline(self, directory: Directory, *, keep: bool = False) -> None: ...


class Consents(Protocol):
    """Starting a delegated consent (``shared.service.connections.consent.Consent``)."""

    async def begin(
        self, directory: Directory, login_hint: str | None, credential: ClientCredential | None = None
    ) -> str: ...


class TenantHooks(Protocol):
    """What a tenant's own settings need when a directory is connected or its options change (rules 16 and 23;
    ``shared.service.tenant.settings.TenantSettings``)."""

    async def connected(self, directory: Directory, actor: Actor) -> Directory:
        """Role holders read, the password policy applied; raises when the tenant refuses an option asked for."""

    async def options_changing(self, before: Directory, after: Directory, actor: Actor) -> Directory:
        """Apply changed options in the tenant before they are stored (raises, having put the tenant back, when
        Graph refuses); ``after`` with its domains as they now are."""

    async def warnings(self, directory: Directory) -> list[str]: ...


DEACTIVATE_CONCURRENCY = 16


def secret_name(directory_id: str, kind: CredentialKind = "secret") -> str:
    """The Key Vault secret of a directory's credential."""
    return f"directory-{directory_id}-{'client-secret' if kind == 'secret' else 'certificate'}"


def secret_prefix(directory_id: str) -> str:
    """Every Key Vault secret of a directory starts so (credential, token cache, consent flows)."""
    return f"directory-{directory_id}-"


def directory_holds(directories: DirectoryRepository) -> Holds:
    """Does a directory still hold a domain or tenant it claimed (``Claims``: a stale claim is taken over)."""

    async def holds(owner: str, kind: str, value: str) -> bool:
        found = await directories.get(owner)
        if found is None:
            return False
        if kind == DOMAIN:
            return value in found[0].verified_domains()
        return found[0].tenant_id.lower() == value

    return holds


@dataclass(frozen=True)
class ConnectDirectory:
    name: str
    tenant_id: str
    auth_mode: str
    client_id: str
    client_secret: str | None
    certificate: Certificate | None
    credential_expires_at: dt.datetime | None
    options: DirectoryOptions
    login_hint: str | None = None

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"ConnectDirectory(name={self.name!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    def credential(self) -> ClientCredential:
        if self.certificate is not None:
            return ClientCredential("certificate", self.certificate.pem)
        if self.client_secret is None:
            raise Invalid("auth: give clientSecret or certificatePem", field="auth")
        return ClientCredential("secret", self.client_secret)


@dataclass(frozen=True)
class Reactivation:
    """What an admin gives to reactivate: a new credential (app-only; or the delegated app's), its date."""

    client_secret: str | None = None
    certificate: Certificate | None = None
    credential_expires_at: dt.datetime | None = None
    login_hint: str | None = None

    def __repr__(self) -> str:
        return f"Reactivation(certificate={self.certificate!r})"

    def credential(self) -> ClientCredential | None:
        if self.certificate is not None:
            return ClientCredential("certificate", self.certificate.pem)
        if self.client_secret is not None:
            return ClientCredential("secret", self.client_secret)
        return None


@dataclass(frozen=True)
class DirectoryView:
    directory: Directory
    etag: str
    counts: dict[str, int]
    warnings: tuple[str, ...]
    runs: tuple[Run, ...] = ()
    authorize_url: str | None = None
    """Delegated: where an administrator of the tenant consents (connect and reactivate only)."""
    deferred: int = 0
    """Per-user syncs waiting for the directory to work again."""


def _expiry(
    info: TenantInfo | None,
    credential: ClientCredential,
    certificate: Certificate | None,
    given: dt.datetime | None,
) -> tuple[dt.datetime | None, ExpirySource | None, str | None]:
    """(expiry, where it comes from, Graph's keyId): the app registration's own record first, else the
    certificate's ``notAfter``, else the date an admin gave."""
    if info is not None and info.credentials is not None:
        found, _ = credential_in_use(
            info.credentials,
            kind=credential.kind,
            key_id=None,
            hint=credential.hint,
            sha1=certificate.sha1 if certificate else None,
        )
        if found is not None:
            return found.end, "graph", found.key_id
    if certificate is not None:
        return certificate.not_after, "certificate", None
    return given, ("admin" if given else None), None


def _warnings_of(info: TenantInfo | None, credential: ClientCredential) -> tuple[str, ...]:
    if info is None or info.credentials_unreadable is None:
        return ()
    return (f"{info.credentials_unreadable}",)


class Directories:
    def __init__(
        self,
        directories: DirectoryRepository,
        users: UserRepository,
        groups: GroupRepository,
        index: DirectoryIndex,
        uniques: Uniques,
        secrets: SecretStore,
        tenants: TenantCredentials,
        connections: DirectoryConnections,
        runs: RunHistory,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        *,
        consents: Consents,
        status: ConnectionStatus,
        deferrals: Deferrals,
        real_clock: Clock | None = None,
        baselines: DeltaBaselines | None = None,
        allow_loopback_http: bool = False,
        tenant_hooks: TenantHooks | None = None,
    ) -> None:
        self.baselines = baselines
        self.tenant_hooks = tenant_hooks
        self.directories = directories
        self.users = users
        self.groups = groups
        self.index = index
        self.secrets = secrets
        self.tenants = tenants
        self.connections = connections
        self.runs = runs
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.consents = consents
        self.status = status
        self.deferrals = deferrals
        self.allow_loopback_http = allow_loopback_http
        self.real_clock = real_clock or clock
        self.leases = Leases(users, groups, self.real_clock)
        self.claims = Claims(uniques, self.real_clock, directory_holds(directories))

    async def _directory(self, directory_id: str) -> tuple[Directory, str]:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found

    def _check_options(self, options: DirectoryOptions) -> None:
        if options.notify_url is not None:
            check_notify_url(options.notify_url, allow_loopback_http=self.allow_loopback_http)

    def _warnings(self, d: Directory, deferred: int = 0) -> tuple[str, ...]:
        out = []
        if d.status_reason:
            out.append(f"{d.status}: {d.status_reason}")
        expiry = expiry_warning(d.credential_expires_at, self.clock(), credential_words(d))
        if expiry:
            out.append(expiry)
        out.extend(d.check_warnings)
        if deferred:
            out.append(
                f"{deferred} user sync(s) wait for this directory to work again (kept, replayed on reactivation)"
            )
        return tuple(out)

    async def view(self, directory: Directory, etag: str, authorize_url: str | None = None) -> DirectoryView:
        counts, runs, deferred = await asyncio.gather(
            self.index.counts(directory.id),
            self.runs.latest(directory.id, 5),
            self.deferrals.count(directory.id),
        )
        held = [
            f"run {r.id} is held awaiting approval: {(r.guard or {}).get('reason', '')}"
            for r in runs
            if r.status == "held"
        ]
        tenant = await self.tenant_hooks.warnings(directory) if self.tenant_hooks is not None else []
        warnings = (*self._warnings(directory, deferred), *tenant, *held)
        return DirectoryView(directory, etag, counts, warnings, tuple(runs), authorize_url, deferred)

    async def get(self, directory_id: str) -> DirectoryView:
        return await self.view(*await self._directory(directory_id))

    async def all(self) -> list[DirectoryView]:
        found = await self.directories.all()
        views = await asyncio.gather(*(self.get(d.id) for d in found))
        return sorted(views, key=lambda v: (v.directory.name.lower(), v.directory.id))

    async def _claim(
        self, tenant_id: str, domains: list[str], directory_id: str, release: frozenset[str] = frozenset()
    ) -> None:
        """Rule 10: the tenant and each verified domain belong to one directory at most."""
        try:
            await self.claims.claim_all(
                [*((DOMAIN, d) for d in domains), ("tenant", tenant_id.lower())], directory_id
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

    @staticmethod
    def _verified(info: TenantInfo) -> list[str]:
        return sorted({d.name for d in info.domains if d.is_verified})

    # ------------------------------------------------------------------------------------------------ connect
    async def connect(self, cmd: ConnectDirectory, actor: Actor) -> DirectoryView:
        self._check_options(cmd.options)
        if cmd.auth_mode not in ("app", "delegated"):
            raise Invalid(f"auth.mode: '{cmd.auth_mode}' is not a connection mode", field="auth.mode")
        credential = cmd.credential()
        delegated = cmd.auth_mode == "delegated"
        info: TenantInfo | None = None
        reason: str | None
        if delegated:
            await self.tenants.validate(cmd.tenant_id, cmd.client_id, credential)
            status, reason = "pending_consent", PENDING_REASON
        else:
            info = await self.tenants.inspect(cmd.tenant_id, cmd.client_id, credential)
            status, reason = directory_status(info.on_premises_sync_enabled)
        now = self.clock()
        directory_id = self.ids()
        expires, source, key_id = _expiry(info, credential, cmd.certificate, cmd.credential_expires_at)
        certificate = cmd.certificate
        directory = Directory(
            id=directory_id,
            name=cmd.name,
            tenant_id=(info.tenant_id if info else cmd.tenant_id).lower(),
            auth_mode="delegated" if delegated else "app",
            client_id=cmd.client_id,
            secret_name=secret_name(directory_id, credential.kind),
            domains=info.domains if info else (),
            status=status,  # type: ignore[arg-type]
            status_reason=reason,
            options=cmd.options,
            organization_name=info.display_name if info else None,
            credential_expires_at=expires,
            credential=credential.kind,
            certificate_thumbprint=certificate.thumbprint if certificate else None,
            certificate_sha1=certificate.sha1 if certificate else None,
            credential_key_id=key_id,
            expiry_source=source,
            check_warnings=_warnings_of(info, credential),
            created_at=now,
            updated_at=now,
        )
        await self._claim(directory.tenant_id, self._verified(info) if info else [], directory_id)
        try:
            await self.secrets.set(directory.secret_name, credential.value)
            url = await self.consents.begin(directory, cmd.login_hint, credential) if delegated else None
            etag = await self.directories.add(directory)
        except BaseException:
            await self.claims.release_all(self._claimed(directory), directory_id)
            await self.secrets.delete_all(secret_prefix(directory_id))
            await self.directories.delete(
                directory_id
            )  # a consent flow's bookkeeping row, if one was written
            raise
        if self.tenant_hooks is not None and not delegated:  # a delegated one: once consent is given
            try:
                directory = await self.tenant_hooks.connected(directory, actor)
            except BaseException:
                await self._forget_new(directory)
                raise
            etag = (await self._directory(directory_id))[1]
        baseline = {} if delegated else await self._baseline(directory, keep=False)
        await self.auditor.record(
            actor, "directory.connect", directory_id=directory_id, after={**_audit(directory), **baseline}
        )
        return await self.view(directory, etag, url)

    async def consented(self, directory: Directory, actor: Actor) -> None:
        """A delegated directory's first consent made it usable: what ``connect`` does at once for an app-only one —
        role holders read and the password policy applied (rules 23 and 16), drift's baselines taken. The consent
        stands whatever becomes of these: a failure is audited, and the next reconcile or refresh round applies
        them."""
        notes: dict[str, str] = {}
        if self.tenant_hooks is not None:
            try:
                await self.tenant_hooks.connected(directory, actor)
            except Exception as exc:
                why = getattr(exc, "detail", None) or type(exc).__name__
                notes["tenantSettings"] = f"not applied ({why}): the next reconcile applies them"
        notes.update(await self._baseline(directory, keep=False))
        await self.auditor.record(
            actor,
            "directory.connect.completed",
            result="ok" if not notes else "partial",
            directory_id=directory.id,
            after={"status": directory.status, **notes},
        )

    async def _baseline(self, directory: Directory, *, keep: bool) -> dict[str, str]:
        """Drift's baselines, so that its first round sees every change made from now on (reactivation keeps a
        stored one: it already covers the time the directory was paused). The directory is stored and usable
        either way: a baseline that fails is said in the audit, and the first drift round takes it instead."""
        if self.baselines is None:
            return {}
        try:
            await self.baselines.baseline(directory, keep=keep)
        except Exception as exc:
            return {"deltaBaseline": f"not taken ({type(exc).__name__}): the first drift round takes it"}
        return {}

    async def _forget_new(self, directory: Directory) -> None:
        """Undo a connection that cannot be completed (nothing is bound to it yet)."""
        await self.connections.forget(directory.id)
        await self.directories.delete(directory.id)
        await self.secrets.delete_all(secret_prefix(directory.id))
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
        if isinstance(changes.get("options"), DirectoryOptions):
            self._check_options(changes["options"])
        after = replace(before, **changes, updated_at=self.clock())
        if self.tenant_hooks is not None and "options" in changes:
            after = await self.tenant_hooks.options_changing(before, after, actor)
        etag = await self.directories.update(after, if_match or etag)
        await self.auditor.record(
            actor, "directory.update", directory_id=directory_id, before=_audit(before), after=_audit(after)
        )
        return await self.view(after, etag)

    # --------------------------------------------------------------------------------------------- reactivate
    async def reactivate(self, directory_id: str, cmd: Reactivation, actor: Actor) -> DirectoryView:
        """Seed 001 "Reactivate": delegated, a new consent (a new authorize URL; a new credential first if
        given); app-only, the credentials checked again (the new ones when given, before the old ones go) and the
        tenant read again. Nobody is unbound; what waited is replayed once the directory works."""
        before, etag = await self._directory(directory_id)
        if before.auth_mode == "delegated":
            return await self._reconsent(before, etag, cmd, actor)
        new = cmd.credential()
        credential = new or ClientCredential(before.credential, await self.secrets.get(before.secret_name))
        info = await self.tenants.inspect(before.tenant_id, before.client_id, credential)
        await self._claim(
            before.tenant_id, self._verified(info), directory_id, release=before.verified_domains()
        )
        name = secret_name(directory_id, credential.kind)
        if new is not None:
            await self.secrets.set(name, new.value)
        status, reason = directory_status(info.on_premises_sync_enabled)
        certificate = cmd.certificate if new is not None else None
        if new is not None:
            expires, source, key_id = _expiry(info, credential, certificate, cmd.credential_expires_at)
        else:
            expires, source, key_id = self._kept_expiry(before, info, credential, cmd.credential_expires_at)
        after = replace(
            before,
            domains=info.domains,
            status=status,
            status_reason=reason,
            status_code=None,
            organization_name=info.display_name,
            secret_name=name,
            credential=credential.kind,
            certificate_thumbprint=certificate.thumbprint
            if certificate
            else (before.certificate_thumbprint if new is None else None),
            certificate_sha1=certificate.sha1
            if certificate
            else (before.certificate_sha1 if new is None else None),
            credential_expires_at=expires,
            expiry_source=source,
            credential_key_id=key_id,
            check_warnings=_warnings_of(info, credential),
            expiry_warned=None if new is not None else before.expiry_warned,
            updated_at=self.clock(),
        )
        etag = await self.directories.update(after, etag)
        await self.connections.forget(directory_id)
        baseline = await self._baseline(after, keep=True)
        if name != before.secret_name:
            await self.secrets.delete(before.secret_name)  # the old credential goes once the new one works
        await self.auditor.record(
            actor,
            "directory.reactivate",
            directory_id=directory_id,
            before=_audit(before),
            after={**_audit(after), "newCredential": new.kind if new else None, **baseline},
        )
        if before.paused and not after.paused:
            await self.status.reactivated(before, after, actor)
        return await self.view(after, etag)

    @staticmethod
    def _kept_expiry(
        before: Directory, info: TenantInfo, credential: ClientCredential, given: dt.datetime | None
    ) -> tuple[dt.datetime | None, ExpirySource | None, str | None]:
        if info.credentials is not None:
            found, _ = credential_in_use(
                info.credentials,
                kind=credential.kind,
                key_id=before.credential_key_id,
                hint=credential.hint,
                sha1=before.certificate_sha1,
            )
            if found is not None:
                return found.end, "graph", found.key_id
        if given is not None:
            return given, "admin", before.credential_key_id
        return before.credential_expires_at, before.expiry_source, before.credential_key_id

    async def _reconsent(
        self, before: Directory, etag: str, cmd: Reactivation, actor: Actor
    ) -> DirectoryView:
        new = cmd.credential()
        directory = before
        if new is not None:
            await self.tenants.validate(before.tenant_id, before.client_id, new)
            name = secret_name(before.id, new.kind)
            await self.secrets.set(name, new.value)
            certificate = cmd.certificate
            expires, source, _ = _expiry(None, new, certificate, cmd.credential_expires_at)
            directory = replace(
                before,
                secret_name=name,
                credential=new.kind,
                certificate_thumbprint=certificate.thumbprint if certificate else None,
                certificate_sha1=certificate.sha1 if certificate else None,
                credential_expires_at=expires,
                expiry_source=source,
                credential_key_id=None,
                expiry_warned=None,
                updated_at=self.clock(),
            )
            etag = await self.directories.update(directory, etag)
            await self.connections.forget(before.id)
            if name != before.secret_name:
                await self.secrets.delete(before.secret_name)
        url = await self.consents.begin(directory, cmd.login_hint)
        await self.auditor.record(
            actor,
            "directory.reactivate",
            directory_id=before.id,
            before=_audit(before),
            after={**_audit(directory), "newCredential": new.kind if new else None, "consent": "started"},
        )
        return await self.view(directory, etag, url)

    # --------------------------------------------------------------------------------------------- deactivate
    async def deactivate(self, directory_id: str, confirm: str | None, actor: Actor) -> None:
        """Rule 12: remove the directory's bindings (direct and through groups), links, index, domain claims,
        deferred work, token cache and every Key Vault secret; leave its M365 accounts as they are.

        The directory is first marked as being deactivated: every sync, run, import or mirror that reads the
        directories from then on finds it gone and writes nothing there. A user's sync that read them before is
        waited for (each user is forgotten under the user's sync lease), so it cannot write its link after the
        link was removed. The directory's users are listed twice, the second time once the first are forgotten:
        a user whose first link there landed meanwhile is forgotten too. A deactivation that stopped halfway
        (the directory marked, not yet deleted) is finished by asking again."""
        found = await self.directories.get(directory_id, deactivating=True)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        directory = found[0]
        if confirm != directory.name:
            raise Invalid(
                f"confirm: deactivating is irreversible; pass the directory's name ('{directory.name}') as ?confirm=",
                field="confirm",
            )
        await self.directories.mark_deactivating(directory_id, self.real_clock())
        gate = asyncio.Semaphore(DEACTIVATE_CONCURRENCY)

        async def forget_user(user_id: str) -> None:
            async with gate, self.leases.holding_user(user_id, f"deactivate:{directory_id}"):
                await self.users.forget_directory(user_id, directory_id)
                record = await self.users.get(user_id)
                if record is not None and record.user.deleted_at is not None and not record.links:
                    await self.users.delete(user_id)

        forgotten: set[str] = set()
        for _ in range(2):
            listed = {e.user_id async for e in self.index.all(directory_id)} - forgotten
            await asyncio.gather(*(forget_user(user_id) for user_id in listed))
            forgotten |= listed
        groups = await self.directories.bound_groups(directory_id)
        for group_id in groups:
            await self.groups.remove_binding(group_id, directory_id)
        await self.index.drop(directory_id)
        await self.deferrals.drop(directory_id)
        await self.connections.forget(directory_id)
        removed = await self.secrets.delete_all(secret_prefix(directory_id))
        await self.directories.delete(directory_id)
        await self.claims.release_all(self._claimed(directory), directory_id)
        await self.auditor.record(
            actor,
            "directory.deactivate",
            directory_id=directory_id,
            before=_audit(directory),
            after={"groupBindingsRemoved": len(groups), "secretsRemoved": len(removed)},
        )


def _audit(d: Directory) -> dict[str, Any]:
    return {
        "name": d.name,
        "tenantId": d.tenant_id,
        "status": d.status,
        "domains": sorted(d.verified_domains()),
        "clientId": d.client_id,
        "authMode": d.auth_mode,
        "credential": d.credential,
        "certificateThumbprint": d.certificate_thumbprint,
        "options": options_document(d.options),
    }
