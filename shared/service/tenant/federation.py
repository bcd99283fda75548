"""Rule 15: federate a domain of a connected directory with the organisation's SAML IdP, show it, remove it, and keep
it (the nightly reconcile restores what was changed behind Warden's back).

Federating (``put``):
1. the IdP's metadata is read safely (``MetadataReader``); a real run needs ``confirm`` = the domain (federating ends
   password sign-in for every account in it);
2. every check of ``shared.domain.federation`` runs on what Graph and the store show now; a dry run returns them and
   writes nothing; a real run writes only when none fails (``Conflict`` naming the failed checks otherwise);
3. with ``fixImmutableIds``, the linked accounts without an immutable id get Warden's (nothing else is written if one
   is refused);
4. the federation is POSTed (never without its signing certificate) — or PATCHed when the domain is federated with
   the same IdP already — then read back, and the domain set ``Federated`` if Graph did not make it so;
5. a failure anywhere in 4 is detected (by what Graph answered and by reading back), reported and undone: the
   federation Warden created is deleted and the domain made ``Managed`` again (an update puts the previous federation
   back). Only then is the federation remembered as Warden's (a reconcile restores only what succeeded).

Removing (``remove``) forgets it first (so no reconcile puts it back), deletes the federation, sets the domain
``Managed`` and lists the linked users who now need a password (rule 6 pushes one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.domain.errors import BadInput, Conflict, Invalid, NotFound, PreconditionFailed, Upstream
from shared.domain.federation import (
    FEDERATED,
    MANAGED,
    Certificate,
    Check,
    DomainAccount,
    Federation,
    FederationFacts,
    FederationSettings,
    TenantDomain,
    checks,
    choose_certificates,
    drift,
    failed,
    metadata_of,
    settings_from,
)
from shared.domain.model import Directory
from shared.domain.planner import PlanItem, immutable_id
from shared.service.context import Actor, Auditor
from shared.service.ports import (
    M365,
    Clock,
    DirectoryIndex,
    DirectoryRepository,
    M365Tenant,
    ManagedSettingsStore,
    MetadataReader,
    ProtectedAccounts,
    Written,
)


@dataclass(frozen=True)
class FederationRequest:
    metadata_xml: str
    sign_out_uri: str | None = None
    mfa_behavior: str | None = None
    dry_run: bool = False
    confirm: str | None = None
    fix_immutable_ids: bool = False
    allow_unmanaged: bool = False


@dataclass(frozen=True)
class FederationView:
    domain: TenantDomain
    federation: Federation | None
    managed_by_warden: bool
    checks: list[Check]
    dry_run: bool = False
    proposed: FederationSettings | None = None
    immutable_ids_set: int = 0
    proposed_certificates: tuple[Certificate | None, Certificate | None] = (None, None)
    """The proposed federation's signing and next certificates, read."""


@dataclass(frozen=True)
class NeedsPassword:
    user_id: str
    m365_user_id: str
    user_principal_name: str


@dataclass(frozen=True)
class Removed:
    domain: TenantDomain
    need_password: list[NeedsPassword]


@dataclass
class Restored:
    """What a reconcile found of the federations Warden set, and did about it."""

    restored: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    """A federation for the audit: certificates shown by their length and last characters, not in full."""
    out = {}
    for k, v in doc.items():
        if k in ("signingCertificate", "nextSigningCertificate") and isinstance(v, str):
            out[k] = f"…{v[-16:]} ({len(v)} characters)"
        else:
            out[k] = v
    return out


def _confirmed(confirm: str | None, domain: str, why: str) -> None:
    """The confirmation an irreversible change to a whole domain needs: missing → ``BadInput`` (400), another
    value → ``Invalid`` (422), as deactivating a directory."""
    if confirm is None:
        raise BadInput(f"confirm: {why} {domain}; pass ?confirm={domain}", field="confirm")
    if confirm.lower() != domain:
        raise Invalid(
            f"confirm: '{confirm[:64]}' is not the domain; {why} {domain}: pass ?confirm={domain}",
            field="confirm",
        )


class Federations:
    def __init__(
        self,
        directories: DirectoryRepository,
        index: DirectoryIndex,
        tenant: M365Tenant,
        m365: M365,
        settings: ManagedSettingsStore,
        protected: ProtectedAccounts,
        read_metadata: MetadataReader,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self.directories = directories
        self.index = index
        self.tenant = tenant
        self.m365 = m365
        self.settings = settings
        self.protected = protected
        self.read_metadata = read_metadata
        self.auditor = auditor
        self.clock = clock

    async def _directory(self, directory_id: str) -> Directory:
        found = await self.directories.get(directory_id)
        if found is None:
            raise NotFound(f"no directory with id '{directory_id}'")
        return found[0]

    @staticmethod
    def _domain(domains: Sequence[TenantDomain], name: str, directory: Directory) -> TenantDomain:
        found = next((d for d in domains if d.name == name.lower()), None)
        if found is None:
            raise NotFound(f"the tenant of directory '{directory.name}' has no domain '{name}'")
        return found

    async def _linked(self, directory_id: str) -> dict[str, str]:
        """M365 account id → the Warden user linked to it in this directory."""
        return {
            e.link.m365_user_id: e.user_id
            async for e in self.index.all(directory_id)
            if e.link is not None and e.link.m365_user_id
        }

    async def _facts(self, d: Directory, name: str) -> FederationFacts:
        domains = await self.tenant.domains(d)
        domain = self._domain(domains, name, d)
        federation = await self.tenant.federation(d, domain.name)
        others = {}
        for other in domains:
            if other.federated and other.name != domain.name:
                fed = await self.tenant.federation(d, other.name)
                if fed is not None:
                    others[other.name] = fed.settings.issuer_uri
        accounts = tuple(await self.tenant.domain_accounts(d, domain.name))
        linked = await self._linked(d.id)
        mine = {a.id: linked[a.id] for a in accounts if a.id in linked}
        protection = await self.protected.lookup(d.id, [a.id for a in accounts])
        holders = await self.tenant.role_holders(d)
        admins: tuple[DomainAccount, ...] | None = None
        if holders is not None:
            admins = tuple(await self.tenant.accounts(d, sorted(holders.global_admins)))
        return FederationFacts(
            domain=domain,
            domains=tuple(domains),
            on_premises_sync=await self.tenant.on_premises_sync(d),
            federation=federation,
            other_issuers=others,
            accounts=accounts,
            linked=mine,
            expected_ids={m: immutable_id(u) for m, u in mine.items()},
            protected=frozenset(protection.why),
            global_admins=admins,
        )

    # ---------------------------------------------------------------------------------------------- show
    async def show(self, directory_id: str, name: str) -> FederationView:
        d = await self._directory(directory_id)
        facts = await self._facts(d, name)
        fed = facts.federation
        found = checks(facts, metadata_of(fed) if fed is not None else None, self.clock())
        ours = facts.domain.name in await self.settings.federations(d.id)
        return FederationView(facts.domain, fed, ours, found)

    # ------------------------------------------------------------------------------------------ federate
    async def put(
        self, directory_id: str, name: str, request: FederationRequest, actor: Actor
    ) -> FederationView:
        metadata = self.read_metadata(request.metadata_xml)
        domain_name = name.lower()
        if not request.dry_run:
            _confirmed(request.confirm, domain_name, "federating ends password sign-in for every account in")
        d = await self._directory(directory_id)
        facts = await self._facts(d, domain_name)
        now = self.clock()
        found = checks(
            facts,
            metadata,
            now,
            fix_immutable_ids=request.fix_immutable_ids,
            allow_unmanaged=request.allow_unmanaged,
        )
        proposed = settings_from(
            metadata, now, sign_out_uri=request.sign_out_uri, mfa_behavior=request.mfa_behavior
        )
        ours = facts.domain.name in await self.settings.federations(d.id)
        chosen = choose_certificates(metadata.certificates, now)
        view = FederationView(
            facts.domain, facts.federation, ours, found, request.dry_run, proposed, 0, chosen
        )
        if request.dry_run:
            return view
        refused = failed(found)
        if refused or proposed is None:
            ids = ", ".join(c.id for c in refused) or "signing-certificate"
            await self.auditor.record(
                actor,
                "federation.refused",
                result=f"refused: {ids}",
                directory_id=d.id,
                after={"domain": domain_name, "failed": [c.id for c in refused]},
            )
            raise Conflict(
                f"{domain_name} was not federated: {len(refused)} checks failed ({ids}); nothing was written",
                checks=[dataclasses.asdict(c) for c in found],
            )
        fixed = await self._fix_immutable_ids(d, facts, actor) if request.fix_immutable_ids else 0
        before = facts.federation
        if before is not None:
            await self._update(d, facts.domain, before, proposed, actor)
        else:
            await self._create(d, facts.domain, proposed, actor)
        await self.settings.save_federation(d.id, domain_name, proposed)
        after = await self.tenant.federation(d, domain_name)
        domains = await self.tenant.domains(d)
        await self._snapshot(d.id, domains)
        await self.auditor.record(
            actor,
            "federation.set",
            directory_id=d.id,
            before={"domain": domain_name, **_summary(before.settings.document())} if before else None,
            after={"domain": domain_name, **_summary(proposed.document()), "immutableIdsSet": fixed},
        )
        return FederationView(
            self._domain(domains, domain_name, d), after, True, found, False, proposed, fixed
        )

    async def _fix_immutable_ids(self, d: Directory, facts: FederationFacts, actor: Actor) -> int:
        missing = [a for a in facts.accounts if a.id in facts.linked and not a.on_premises_immutable_id]
        items = [
            PlanItem(
                "update",
                facts.linked[a.id],
                d.id,
                "synced",
                m365_user_id=a.id,
                changes={"onPremisesImmutableId": (None, immutable_id(facts.linked[a.id]))},
            )
            for a in missing
        ]
        if not items:
            return 0

        async def no_password(_: PlanItem) -> str:
            raise AssertionError("an update sends no password")

        results = await self.m365.apply(d, items, no_password)
        for r in results:
            await self.auditor.record(
                actor,
                "m365.update",
                result="succeeded" if r.ok else f"{r.outcome}: {r.error}",
                user_id=r.item.user_id,
                directory_id=d.id,
                before={"onPremisesImmutableId": None},
                after={
                    "onPremisesImmutableId": r.item.changes["onPremisesImmutableId"][1],
                    "m365UserId": r.item.m365_user_id,
                    "reason": "federation: fixImmutableIds",
                },
            )
        refused = [r for r in results if not r.ok]
        if refused:
            raise Upstream(
                f"{len(refused)} immutable ids could not be set (first: {refused[0].error}); nothing was federated",
                failed=[r.item.m365_user_id for r in refused],
            )
        return len(results)

    async def _create(
        self, d: Directory, domain: TenantDomain, settings: FederationSettings, actor: Actor
    ) -> None:
        step = "creating the federation"
        try:
            created = await self.tenant.create_federation(d, domain.name, settings)
            detail = created.detail or created.outcome
            if created.ok or created.outcome == "retry":
                # Read back: an answer lost on the way may hide a federation Graph made.
                failed = await self._confirm(d, domain.name, settings, created)
                if failed is None:
                    return
                step, detail = failed
        except Upstream as exc:
            detail = exc.detail
        undone = await self._undo_create(d, domain.name)
        await self.auditor.record(
            actor,
            "federation.set",
            result=f"failed at {step}: {detail}; {undone}",
            directory_id=d.id,
            after={"domain": domain.name, **_summary(settings.document())},
        )
        raise Upstream(
            f"federating {domain.name} failed while {step} ({detail}); {undone}",
            step=step,
            undone=undone.startswith("undone"),
        )

    async def _confirm(
        self, d: Directory, name: str, settings: FederationSettings, sent: Written
    ) -> tuple[str, str] | None:
        """After Graph answered a federation's create or update (or the answer was lost): the federation read back
        must be the one sent, and the domain Federated (made so here if it is not). None when all holds; else the
        step that failed and why."""
        step = "reading the federation back"
        try:
            fed = await self.tenant.federation(d, name)
            if fed is None or drift(settings, fed):
                return (
                    step,
                    "the federation read back is not the one sent"
                    if sent.ok
                    else sent.detail or sent.outcome,
                )
            if self._federated(await self.tenant.domains(d), name):
                return None
            step = "setting the domain Federated"
            answer = await self.tenant.set_authentication(d, name, FEDERATED)
            if answer.ok and self._federated(await self.tenant.domains(d), name):
                return None
            return step, answer.detail or (
                "the domain did not become Federated" if answer.ok else answer.outcome
            )
        except Upstream as exc:
            return step, exc.detail

    def _federated(self, domains: Sequence[TenantDomain], name: str) -> bool:
        current = self._find(domains, name)
        return current is not None and current.federated

    @staticmethod
    def _find(domains: Sequence[TenantDomain], name: str) -> TenantDomain | None:
        return next((x for x in domains if x.name == name), None)

    async def _undo_create(self, d: Directory, name: str) -> str:
        """Back to Managed with no federation: what the domain was before. A sentence saying how that went."""
        try:
            fed = await self.tenant.federation(d, name)
            if fed is not None:
                await self.tenant.delete_federation(d, name, fed.id)
            current = self._find(await self.tenant.domains(d), name)
            if current is not None and current.federated:
                await self.tenant.set_authentication(d, name, MANAGED)
            fed = await self.tenant.federation(d, name)
            current = self._find(await self.tenant.domains(d), name)
        except Upstream as exc:
            return f"undoing it failed too ({exc.detail}): GET …/federation shows the domain as it is left"
        if fed is None and current is not None and not current.federated:
            return "undone: the domain is Managed with no federation, as before"
        state = current.authentication_type if current else "unknown"
        return f"undoing it failed: the domain is left {state}{' with a federation' if fed else ''}"

    async def _update(
        self,
        d: Directory,
        domain: TenantDomain,
        before: Federation,
        settings: FederationSettings,
        actor: Actor,
    ) -> None:
        step = "updating the federation"
        try:
            updated = await self.tenant.update_federation(d, domain.name, before.id, settings)
            detail = updated.detail or updated.outcome
            if updated.ok or updated.outcome == "retry":
                failed = await self._confirm(d, domain.name, settings, updated)
                if failed is None:
                    return
                step, detail = failed
        except Upstream as exc:
            detail = exc.detail
        # Put the previous federation back (a PATCH may have half-applied, or its answer been lost).
        restored = await self.tenant.update_federation(d, domain.name, before.id, before.settings)
        undone = (
            "undone: the previous federation is in place"
            if restored.ok
            else f"putting the previous federation back failed too ({restored.detail or restored.outcome})"
        )
        await self.auditor.record(
            actor,
            "federation.set",
            result=f"failed at {step}: {detail}; {undone}",
            directory_id=d.id,
            after={"domain": domain.name, **_summary(settings.document())},
        )
        raise Upstream(
            f"updating the federation of {domain.name} failed while {step} ({detail}); {undone}",
            step=step,
            undone=restored.ok,
        )

    # -------------------------------------------------------------------------------------------- remove
    async def remove(self, directory_id: str, name: str, confirm: str | None, actor: Actor) -> Removed:
        domain_name = name.lower()
        _confirmed(confirm, domain_name, "returning to Managed ends single sign-on for every account in")
        d = await self._directory(directory_id)
        domain = self._domain(await self.tenant.domains(d), domain_name, d)
        # Forgotten first: whatever happens next, no reconcile puts this federation back.
        await self.settings.drop_federation(d.id, domain_name)
        before = await self.tenant.federation(d, domain_name)
        answers: list[Written] = []
        if before is not None:
            answers.append(await self.tenant.delete_federation(d, domain_name, before.id))
        current = self._find(await self.tenant.domains(d), domain_name)
        if current is not None and current.federated:
            answers.append(await self.tenant.set_authentication(d, domain_name, MANAGED))
        left = await self.tenant.federation(d, domain_name)
        domains = await self.tenant.domains(d)
        current = self._find(domains, domain_name)
        if left is not None or current is None or current.federated:
            detail = next((a.detail for a in answers if not a.ok), None) or "the domain is still Federated"
            await self.auditor.record(
                actor,
                "federation.remove",
                result=f"failed: {detail}",
                directory_id=d.id,
                after={"domain": domain_name},
            )
            raise Upstream(f"removing the federation of {domain_name} failed ({detail}); try again")
        await self._snapshot(d.id, domains)
        accounts = await self.tenant.domain_accounts(d, domain_name)
        linked = await self._linked(d.id)
        need = [NeedsPassword(linked[a.id], a.id, a.user_principal_name) for a in accounts if a.id in linked]
        await self.auditor.record(
            actor,
            "federation.remove",
            directory_id=d.id,
            before={"domain": domain_name, **(_summary(before.settings.document()) if before else {})},
            after={"domain": domain_name, "authenticationType": MANAGED, "usersNeedingAPassword": len(need)},
        )
        return Removed(current if current is not None else domain, need)

    # ------------------------------------------------------------------------------------- keep (reconcile)
    async def enforce(self, d: Directory, actor: Actor, *, dry_run: bool = False) -> Restored:
        """Each federation Warden set, compared with Graph and put back where it drifted (audited with what was
        found); a dry run only reports."""
        out = Restored()
        wanted = await self.settings.federations(d.id)
        if not wanted:
            return out
        domains = await self.tenant.domains(d)
        for name, settings in sorted(wanted.items()):
            domain = self._find(domains, name)
            if domain is None or not domain.is_verified:
                out.failed.append(f"{name}: the domain is no longer verified in the tenant")
                continue
            fed = await self.tenant.federation(d, name)
            changes = drift(settings, fed)
            if not changes and domain.federated:
                continue
            out.drifted.append(name)
            if dry_run:
                continue
            if fed is None:
                written = await self.tenant.create_federation(d, name, settings)
            elif changes:
                written = await self.tenant.update_federation(d, name, fed.id, settings)
            else:
                written = Written("applied")
            if written.ok:
                current = self._find(await self.tenant.domains(d), name)
                if current is not None and not current.federated:
                    written = await self.tenant.set_authentication(d, name, FEDERATED)
            found = {k: v[0] for k, v in changes.items()}
            await self.auditor.record(
                actor,
                "federation.restore",
                result="succeeded" if written.ok else f"{written.outcome}: {written.detail}",
                directory_id=d.id,
                before={"domain": name, "authenticationType": domain.authentication_type, **_summary(found)},
                after={
                    "domain": name,
                    "authenticationType": FEDERATED,
                    **_summary({k: v[1] for k, v in changes.items()}),
                },
            )
            (out.restored if written.ok else out.failed).append(
                name if written.ok else f"{name}: {written.detail or written.outcome}"
            )
        if out.restored:
            await self._snapshot(d.id, await self.tenant.domains(d))
        return out

    # -------------------------------------------------------------------------------------------- helpers
    async def _snapshot(self, directory_id: str, domains: Sequence[TenantDomain]) -> None:
        await snapshot_domains(self.directories, directory_id, domains)


async def snapshot_domains(
    directories: DirectoryRepository, directory_id: str, domains: Sequence[TenantDomain]
) -> None:
    """Keep the directory's picture of its domains (what ``GET /directories/{id}`` shows) in step with Graph for the
    domains it knows: authentication type and password validity. (Which domains belong to the directory changes
    only on connect or reactivate, which claim them.)"""
    for _ in range(3):
        found = await directories.get(directory_id)
        if found is None:
            return
        d, etag = found
        fresh = {x.name: x for x in domains}
        kept = tuple(
            dataclasses.replace(
                x,
                authentication_type=fresh[x.name].authentication_type,
                is_initial=fresh[x.name].is_initial,
                password_validity_days=fresh[x.name].password_validity_days,
            )
            if x.name in fresh
            else x
            for x in d.domains
        )
        if kept == d.domains:
            return
        try:
            await directories.update(dataclasses.replace(d, domains=kept), etag)
            return
        except PreconditionFailed:
            continue
