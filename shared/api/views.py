"""Domain objects as the API shows them (the response models of ``shared.api.schemas``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from shared.api import schemas as s
from shared.api.credentials import CertificateRefused, parse_certificate
from shared.domain.errors import Invalid
from shared.domain.federation import Certificate as SigningCertificate
from shared.domain.federation import FederationSettings
from shared.domain.imports import Candidate, ImportItem, ImportJob
from shared.domain.model import AuditEntry, Directory, DirectoryOptions, MassChangeGuard, User, UserView
from shared.domain.protection import ProtectedAccount
from shared.domain.runs import Run, RunItem
from shared.service.connections.consent import Completed
from shared.service.connections.ports import Certificate
from shared.service.ports import Page
from shared.service.store.directories import ConnectDirectory, DirectoryView, Reactivation
from shared.service.store.groups import GroupView
from shared.service.sync.user import PasswordResult
from shared.service.tenant.federation import FederationRequest, FederationView, Removed
from shared.service.tenant.protection import ProtectedList

USER_INPUT = {
    "username": "username",
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "displayName": "display_name",
    "alternateEmail": "alternate_email",
    "employeeId": "employee_id",
    "jobTitle": "job_title",
    "department": "department",
    "managerId": "manager_id",
    "state": "state",
    "startAt": "start_at",
    "endAt": "end_at",
    "timeZone": "time_zone",
}


_API_FIELD = {v: k for k, v in s.FIELD_NAMES.items()}


def user_fields(body: s.UserCreate) -> dict[str, Any]:
    """A create request as the domain's fields (``displayName`` defaults to "first last")."""
    fields = {USER_INPUT[k]: v for k, v in body.model_dump(exclude={"password"}).items()}
    fields["display_name"] = fields["display_name"] or f"{body.firstName} {body.lastName}"
    return fields


def user_changes(body: s.UserPatch) -> dict[str, Any]:
    """Only the fields the request gave (``null`` included: it clears an optional field)."""
    return {USER_INPUT[k]: getattr(body, k) for k in body.model_fields_set}


def etag_header(etag: str) -> str:
    """Table Storage's weak ETag (``W/"datetime'…'"``) shown as the strong one it is: it changes on every write,
    and ``If-Match`` compares strongly (RFC 9110 13.1.1)."""
    return etag.removeprefix("W/")


def if_match_etag(header: str | None) -> str | None:
    """The storage ETag an ``If-Match`` names; None for no header or ``*`` (any current version)."""
    if header is None or header.strip() == "*":
        return None
    value = header.strip()
    return value if value.startswith("W/") else f"W/{value}"


def _user(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "displayName": user.display_name,
        "alternateEmail": user.alternate_email,
        "employeeId": user.employee_id,
        "jobTitle": user.job_title,
        "department": user.department,
        "managerId": user.manager_id,
        "state": user.state,
        "startAt": user.start_at,
        "endAt": user.end_at,
        "timeZone": user.time_zone,
        "source": user.source,
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
    }


def user_out(view: UserView) -> s.UserOut:
    return s.UserOut(
        **_user(view.user),
        groups=list(view.groups),
        directories=[
            s.UserDirectoryOut(
                directoryId=d.directory_id,
                via=list(d.via),
                status=d.link.status,
                reason=d.link.reason,
                m365UserId=d.link.m365_user_id,
                lastSyncAt=d.link.last_sync_at,
                candidates=list(d.link.candidates),
            )
            for d in view.directories
        ],
    )


def group_out(view: GroupView) -> s.GroupOut:
    g = view.group
    return s.GroupOut(
        id=g.id,
        name=g.name,
        description=g.description,
        memberCount=g.member_count,
        directories=[
            s.GroupDirectoryOut(
                directoryId=b.directory_id,
                m365GroupId=b.m365_group_id,
                status=b.status,
                reason=b.reason,
                origin=b.origin,
            )
            for b in view.bindings
        ],
        createdAt=g.created_at,
        updatedAt=g.updated_at,
    )


def directory_out(view: DirectoryView) -> s.DirectoryOut:
    d, c = view.directory, view.counts
    o = d.options
    return s.DirectoryOut(
        id=d.id,
        name=d.name,
        tenantId=d.tenant_id,
        organizationName=d.organization_name,
        domains=[
            s.DomainOut(
                id=x.id,
                isVerified=x.is_verified,
                isDefault=x.is_default,
                authenticationType=x.authentication_type,
                isInitial=x.is_initial,
                passwordValidityPeriodInDays=x.password_validity_days,
            )
            for x in d.domains
        ],
        status=d.status,
        reason=d.status_reason,
        reasonCode=d.status_code,
        authorizeUrl=view.authorize_url,
        deferred=view.deferred,
        auth=s.DirectoryAuthOut(
            mode=d.auth_mode,
            clientId=d.client_id,
            credential=d.credential,
            certificateThumbprint=d.certificate_thumbprint,
            credentialExpiresAt=d.credential_expires_at,
            credentialExpirySource=d.expiry_source,
            consentedBy=_consented(d),
            tokenRefreshedAt=d.token_refreshed_at,
            checkedAt=d.checked_at,
        ),
        options=s.DirectoryOptionsOut(
            createMissingUsers=o.create_missing_users,
            autoBindVerifiedDomains=o.auto_bind_verified_domains,
            passwordNeverExpires=o.password_never_expires,
            massChangeGuard=s.MassChangeGuardOut(
                percent=o.mass_change_guard.percent, count=o.mass_change_guard.count
            ),
            attributeMapping={k: (_API_FIELD.get(v, v) if v else None) for k, v in o.attribute_mapping},
            notify=s.NotifyOut(url=o.notify_url) if o.notify_url else None,
        ),
        counts=s.DirectoryCounts(
            linked=c.get("linked", 0),
            blocked=c.get("blocked", 0),
            error=c.get("error", 0),
            needsAttention=c.get("needs_attention", 0),
            pending=c.get("pending", 0),
            synced=c.get("synced", 0),
            skipped=c.get("skipped", 0),
        ),
        warnings=list(view.warnings),
        lastRuns=[run_summary(r) for r in view.runs],
        createdAt=d.created_at,
        updatedAt=d.updated_at,
    )


def audit_out(e: AuditEntry) -> s.AuditEntryOut:
    return s.AuditEntryOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        action=e.action,
        result=e.result,
        correlationId=e.correlation_id,
        userId=e.user_id,
        directoryId=e.directory_id,
        groupId=e.group_id,
        before=e.before,
        after=e.after,
    )


def directory_options(body: s.DirectoryOptionsIn) -> DirectoryOptions:
    guard = body.massChangeGuard
    mapping = {
        k: (s.FIELD_NAMES.get(v, v) if v is not None else None) for k, v in body.attributeMapping.items()
    }
    return DirectoryOptions(
        create_missing_users=body.createMissingUsers,
        auto_bind_verified_domains=body.autoBindVerifiedDomains,
        password_never_expires=body.passwordNeverExpires,
        mass_change_guard=MassChangeGuard(percent=guard.percent, count=guard.count),
        attribute_mapping=tuple(sorted(mapping.items())),
        notify_url=body.notify.url if body.notify else None,
    )


def certificate_of(pem: SecretStr | None, now: dt.datetime) -> Certificate | None:
    """A ``certificatePem`` checked (``Invalid`` naming the problem: the schema cannot say it)."""
    if pem is None:
        return None
    try:
        return parse_certificate(pem.get_secret_value(), now)
    except CertificateRefused as exc:
        raise Invalid(f"certificatePem: {exc}", field="certificatePem") from None


def connect_command(body: s.DirectoryCreate, now: dt.datetime) -> ConnectDirectory:
    auth = body.auth
    secret = auth.clientSecret.get_secret_value() if auth.clientSecret is not None else None
    return ConnectDirectory(
        name=body.name,
        tenant_id=body.tenantId,
        auth_mode=auth.mode,
        client_id=auth.clientId,
        client_secret=secret,
        certificate=certificate_of(auth.certificatePem, now),
        credential_expires_at=auth.credentialExpiresAt,
        options=directory_options(body.options),
        login_hint=auth.loginHint if isinstance(auth, s.DelegatedAuth) else None,
    )


def reactivation(body: s.Reactivate, now: dt.datetime) -> Reactivation:
    return Reactivation(
        client_secret=body.clientSecret.get_secret_value() if body.clientSecret is not None else None,
        certificate=certificate_of(body.certificatePem, now),
        credential_expires_at=body.credentialExpiresAt,
        login_hint=body.loginHint,
    )


def consent_out(done: Completed) -> s.ConsentOut:
    d = done.directory
    return s.ConsentOut(
        directoryId=d.id,
        status=d.status,
        consentedBy=_consented(d),
        reactivated=done.reactivated,
        replayed=done.replayed,
    )


def _consented(d: Directory) -> s.ConsentedByOut | None:
    c = d.consented_by
    return (
        s.ConsentedByOut(userPrincipalName=c.user_principal_name, objectId=c.object_id, at=c.at)
        if c
        else None
    )


def round_out(run: Run) -> s.RoundOut:
    return s.RoundOut(
        id=run.id,
        status="failed" if run.status == "failed" else "done",
        trigger=run.trigger,
        counts=run.counts,
        error=run.error,
        startedAt=run.started_at,
        finishedAt=run.finished_at,
    )


def directory_changes(body: s.DirectoryPatch) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["name"] = body.name
    if body.options is not None:
        changes["options"] = directory_options(body.options)
    return changes


def password_out(results: Sequence[PasswordResult]) -> s.PasswordOut:
    """All set → the per-directory results; any refused (Graph's password policy, a permission) → 400 naming
    each directory that refused, with every result."""
    out = s.PasswordOut(
        directories=[
            s.PasswordDirectoryOut(
                directoryId=r.directory_id, status="set" if r.ok else "failed", detail=r.detail
            )
            for r in results
        ]
    )
    failed = [r for r in results if not r.ok]
    if failed:
        raise Invalid(
            "the password was not set in: " + "; ".join(r.detail or r.directory_id for r in failed),
            directories=out.model_dump(mode="json")["directories"],
        )
    return out


def run_out(run: Run, items: Page[RunItem]) -> s.RunOut:
    return s.RunOut(
        id=run.id,
        directoryId=run.directory_id,
        kind=run.kind,
        dryRun=run.dry_run,
        status=run.status,
        trigger=run.trigger,
        counts=run.counts,
        progress=run.progress,
        usage=run.usage,
        guard=run.guard,
        error=run.error,
        createdAt=run.created_at,
        startedAt=run.started_at,
        plannedAt=run.planned_at,
        finishedAt=run.finished_at,
        plan=s.RunItems(
            items=[
                s.RunItemOut(
                    n=i.n,
                    action=i.action,
                    userId=i.user_id,
                    m365UserId=i.payload.get("m365UserId"),
                    changes=i.payload.get("changes") or {},
                    reason=i.payload.get("reason"),
                    candidates=i.payload.get("candidates") or [],
                    state=i.state,
                    error=i.error,
                )
                for i in items.items
            ],
            next=items.next,
        ),
    )


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "dryRun": run.dry_run,
        "createdAt": run.created_at.isoformat(),
    }


def candidate_out(c: Candidate) -> s.CandidateOut:
    a = c.account
    return s.CandidateOut(
        m365UserId=a.id,
        userPrincipalName=a.user_principal_name,
        mail=a.mail,
        displayName=a.display_name,
        accountEnabled=a.account_enabled,
        username=c.username,
        email=c.email,
        exists=c.exists is not None,
        existsReason=c.exists,
    )


def import_out(job: ImportJob, items: Page[ImportItem], now: dt.datetime) -> s.ImportOut:
    rate, eta = job.rate_and_eta(now)
    return s.ImportOut(
        id=job.id,
        directoryId=job.directory_id,
        status=job.status,
        bind=job.bind,
        total=job.total,
        done=job.done,
        imported=job.imported,
        skipped=job.skipped,
        failed=job.failed,
        progressPercent=round(100.0 * job.done / job.total, 1)
        if job.total
        else (100.0 if job.status == "done" else 0.0),
        ratePerSecond=round(rate, 2) if rate is not None else None,
        etaSeconds=round(eta, 1) if eta is not None else None,
        createdAt=job.created_at,
        undoUntil=job.undo_until,
        error=job.error,
        items=s.ImportItems(
            items=[
                s.ImportItemOut(
                    m365UserId=i.m365_user_id,
                    state=i.state,
                    reason=i.reason,
                    userId=i.user_id,
                    userPrincipalName=i.account.get("user_principal_name"),
                )
                for i in items.items
            ],
            next=items.next,
        ),
    )


# ------------------------------------------------------------------------- federation, protected accounts
def federation_request(body: s.FederationIn, query: s.FederationPutQuery) -> FederationRequest:
    return FederationRequest(
        metadata_xml=body.metadataXml,
        sign_out_uri=body.signOutUri,
        mfa_behavior=body.federatedIdpMfaBehavior,
        dry_run=query.dryRun,
        confirm=query.confirm,
        fix_immutable_ids=query.fixImmutableIds,
        allow_unmanaged=query.allowUnmanaged,
    )


def certificate_out(c: SigningCertificate | None) -> s.CertificateOut | None:
    if c is None:
        return None
    return s.CertificateOut(
        subject=c.subject, notBefore=c.not_before, notAfter=c.not_after, thumbprint=c.thumbprint
    )


def federation_config_out(
    settings: FederationSettings, signing: SigningCertificate | None, rollover: SigningCertificate | None
) -> s.FederationConfigOut:
    return s.FederationConfigOut(
        issuerUri=settings.issuer_uri,
        passiveSignInUri=settings.passive_sign_in_uri,
        activeSignInUri=settings.active_sign_in_uri,
        signOutUri=settings.sign_out_uri,
        preferredAuthenticationProtocol=settings.preferred_authentication_protocol,
        federatedIdpMfaBehavior=settings.federated_idp_mfa_behavior,
        signingCertificate=certificate_out(signing),
        nextSigningCertificate=certificate_out(rollover),
    )


def federation_out(directory_id: str, view: FederationView) -> s.FederationOut:
    fed = view.federation
    return s.FederationOut(
        directoryId=directory_id,
        domain=view.domain.name,
        authenticationType=view.domain.authentication_type,
        managedByWarden=view.managed_by_warden,
        dryRun=view.dry_run,
        federation=federation_config_out(fed.settings, fed.signing, fed.next_signing) if fed else None,
        proposed=federation_config_out(view.proposed, *view.proposed_certificates)
        if view.proposed is not None and view.dry_run
        else None,
        checks=[s.CheckOut(id=c.id, verdict=c.verdict, sentence=c.sentence) for c in view.checks],
        immutableIdsSet=view.immutable_ids_set,
    )


def federation_removed_out(directory_id: str, removed: Removed) -> s.FederationRemovedOut:
    return s.FederationRemovedOut(
        directoryId=directory_id,
        domain=removed.domain.name,
        authenticationType=removed.domain.authentication_type,
        needPassword=[
            s.NeedsPasswordOut(
                userId=n.user_id, m365UserId=n.m365_user_id, userPrincipalName=n.user_principal_name
            )
            for n in removed.need_password
        ],
    )


def protected_out(row: ProtectedAccount) -> s.ProtectedAccountOut:
    return s.ProtectedAccountOut(
        m365UserId=row.m365_user_id,
        userPrincipalName=row.user_principal_name,
        roles=list(row.roles),
        markedBy=row.marked_by,
        markedAt=row.marked_at,
        why=list(row.why),
    )


def protected_list_out(page: ProtectedList) -> s.ProtectedList:
    read = page.roles_read
    return s.ProtectedList(
        items=[protected_out(r) for r in page.items],
        next=page.next,
        rolesReadable=read is not None and read.readable,
        rolesReadAt=read.at if read else None,
        rolesDetail=(read.detail if read else "the role holders have not been read yet"),
    )
