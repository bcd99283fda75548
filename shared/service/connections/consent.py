"""Delegated consent (rule 18, seed 000 "Authorize", seed 001 "Reactivate"): an administrator of the tenant signs in
through the authorization-code flow (MSAL: PKCE S256, state, nonce); Warden keeps the token cache in Key Vault.

Where the flow lives between ``begin`` and ``complete``: MSAL's flow dict holds the PKCE ``code_verifier`` and the
``nonce``. The verifier is a secret (with a stolen code it redeems the grant), so the flow is a Key Vault secret of
its own (``directory-<id>-flow-<flowId>``), never a table row; the table keeps only what is not secret, under the
directory (``state|consent``): which flow is under way, the SHA-256 of its ``state``, when it expires (15 minutes).
The ``state`` carries the directory's id before a dot, so the callback finds the directory without a lookup
table, and 32 random bytes after it. One flow per directory at a time: a new ``begin`` supersedes the previous one.
Single use: the callback empties the row with its ETag before it redeems anything, so a second use of the same
``state`` (a replay, a double click) finds nothing.

What the callback checks, in order: a state Warden issued and not yet used or expired; Entra's own error
(``access_denied`` when the admin declined); the code redeemed (MSAL checks the state and the ID token's nonce,
issuer and audience); the signed-in user belongs to the directory's tenant (``tid``, and a guest's home tenant in
``idp`` is refused: the connection must not live on an account another tenant controls). Each failure leaves the
directory as it was (``pending_consent`` or ``needs_reactivation``) and is audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from shared.domain.connections import credential_in_use
from shared.domain.errors import Conflict, Invalid, NotFound
from shared.domain.model import ConsentedBy, Directory, directory_status
from shared.service.connections.ports import (
    ClientCredential,
    ConsentFlows,
    ConsentRefused,
    DirectoryConnections,
    TokenCaches,
)
from shared.service.connections.status import ConnectionStatus
from shared.service.context import Actor, Auditor
from shared.service.ports import Clock, DirectoryRepository, Ids, SecretStore, TenantInfo
from shared.service.store.uniqueness import Claims

FLOW_LIFETIME = dt.timedelta(minutes=15)
_CONSENT_WHY = {
    9002313: "the sign-in was not at this directory's tenant (the code was issued by another tenant)",
    54005: "the sign-in's code was already redeemed",
    70008: "the sign-in's code expired (it lives about 10 minutes)",
    50034: "the account does not exist in this directory's tenant",
    50057: "the account is disabled",
    65004: "the administrator declined to consent",
    50011: "the redirect URI is not registered on the app (add Warden's /api/oauth/callback URL to it)",
}
"""What a failed sign-in means (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)."""
CONSENT_STATE = "consent"
DOMAIN = "domain"


def flow_secret_name(directory_id: str, flow_id: str) -> str:
    return f"directory-{directory_id}-flow-{flow_id}"


class ConsentFailed(Invalid):
    """The consent did not complete; ``detail`` says why in an admin's words (a page shows it; 422 to a client:
    a well-formed answer Warden cannot use)."""

    def __init__(self, detail: str, *, directory_id: str | None = None, error: str | None = None) -> None:
        super().__init__(detail, directoryId=directory_id, error=error)
        self.directory_id = directory_id
        self.error = error


class DirectoryStates(DirectoryRepository, Protocol):
    """The directory repository with its conditional bookkeeping rows (``shared.adapters.tables.directories``)."""

    async def read_state(self, directory_id: str, key: str) -> tuple[str, str] | None: ...

    async def take_state(self, directory_id: str, key: str, etag: str) -> bool: ...


@dataclass(frozen=True)
class Completed:
    directory: Directory
    reactivated: bool
    replayed: int = 0


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class Consent:
    def __init__(
        self,
        directories: DirectoryStates,
        secrets_store: SecretStore,
        flows: ConsentFlows,
        caches: TokenCaches,
        connections: DirectoryConnections,
        status: ConnectionStatus,
        claims: Claims,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        *,
        redirect_uri: str | None,
        consented: Callable[[Directory, Actor], Awaitable[None]] | None = None,
    ) -> None:
        self.consented = consented
        """What connecting an app-only directory does at once, done for a delegated one once its first consent
        makes it usable (``Directories.consented``: rules 16 and 23, drift's baselines)."""
        self.directories = directories
        self.secrets = secrets_store
        self.flows = flows
        self.caches = caches
        self.connections = connections
        self.status = status
        self.claims = claims
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.redirect_uri = redirect_uri

    async def credential(self, d: Directory) -> ClientCredential:
        return ClientCredential(d.credential, await self.secrets.get(d.secret_name))

    # -------------------------------------------------------------------------------------------------- begin
    async def begin(
        self, directory: Directory, login_hint: str | None, credential: ClientCredential | None = None
    ) -> str:
        """A new authorization-code flow for the directory: the URL its administrator opens. ``credential``: the
        confidential client's, when it is not in Key Vault yet (a directory being connected)."""
        if self.redirect_uri is None:
            raise Invalid(
                "auth.mode: delegated consent redirects back to Warden, which does not know its own public URL: set "
                "WARDEN_PUBLIC_URL (in Azure the app's host name is used)",
                field="auth.mode",
            )
        state = f"{directory.id}.{secrets.token_urlsafe(32)}"
        url, flow = await self.flows.begin(
            directory.tenant_id,
            directory.client_id,
            credential or await self.credential(directory),
            redirect_uri=self.redirect_uri,
            state=state,
            login_hint=login_hint,
        )
        flow_id = self.ids()
        await self.secrets.set(flow_secret_name(directory.id, flow_id), flow)
        previous = await self.directories.get_state(directory.id, CONSENT_STATE)
        record = {
            "flow": flow_id,
            "state": _digest(state),
            "expires": (self.clock() + FLOW_LIFETIME).isoformat(),
        }
        await self.directories.set_state(directory.id, CONSENT_STATE, json.dumps(record))
        if previous:
            await self._drop_flow(directory.id, json.loads(previous).get("flow"))
        return url

    async def _drop_flow(self, directory_id: str, flow_id: object) -> None:
        if isinstance(flow_id, str):
            await self.secrets.delete(flow_secret_name(directory_id, flow_id))

    # ----------------------------------------------------------------------------------------------- complete
    async def complete(self, response: Mapping[str, str], actor: Actor) -> Completed:
        """The callback: check, redeem, keep the token cache, read the tenant, activate."""
        state = response.get("state") or ""
        directory_id = self._directory_of(state)
        found = await self.directories.get(directory_id)
        if found is None:
            raise ConsentFailed("this sign-in belongs to no directory Warden knows (an unknown state)")
        directory = found[0]
        try:
            flow_id, flow = await self._take_flow(directory, state)
            try:
                return await self._complete(directory, flow, response, actor)
            finally:
                await self._drop_flow(directory.id, flow_id)
        except Invalid as failed:  # ConsentFailed, or the tenant refusing the reads that follow a consent
            await self.auditor.record(
                actor,
                "directory.consent",
                result=f"failed: {failed.detail}"[:500],
                directory_id=directory.id,
                after={"status": directory.status, "error": getattr(failed, "error", None)},
            )
            raise

    @staticmethod
    def _directory_of(state: str) -> str:
        head, _, tail = state.partition(".")
        try:
            uuid.UUID(head)
        except ValueError:
            raise ConsentFailed(
                "this sign-in belongs to no directory Warden knows (an unknown state)"
            ) from None
        if not tail:
            raise ConsentFailed("this sign-in belongs to no directory Warden knows (an unknown state)")
        return head.lower()

    async def _take_flow(self, directory: Directory, state: str) -> tuple[str, str]:
        """The flow ``state`` belongs to, taken (it cannot be used again)."""
        stale = ConsentFailed(
            "this sign-in link was already used, or a newer one was made for the directory: start again with "
            f"POST /api/directories/{directory.id}/reactivate",
            directory_id=directory.id,
            error="state_used",
        )
        row = await self.directories.read_state(directory.id, CONSENT_STATE)
        if row is None:
            raise stale
        value, etag = row
        record = json.loads(value)
        if not hmac.compare_digest(str(record.get("state", "")), _digest(state)):
            raise stale
        if not await self.directories.take_state(directory.id, CONSENT_STATE, etag):
            raise stale
        flow_id = str(record["flow"])
        if self.clock() > dt.datetime.fromisoformat(str(record["expires"])):
            await self._drop_flow(directory.id, flow_id)
            raise ConsentFailed(
                f"this sign-in link expired ({int(FLOW_LIFETIME.total_seconds() // 60)} minutes): start again "
                f"with POST /api/directories/{directory.id}/reactivate",
                directory_id=directory.id,
                error="state_expired",
            )
        flow = await self.secrets.find(flow_secret_name(directory.id, flow_id))
        if flow is None:
            raise stale
        return flow_id, flow

    async def _complete(
        self, directory: Directory, flow: str, response: Mapping[str, str], actor: Actor
    ) -> Completed:
        if response.get("error"):
            raise self._entra_error(
                directory, ConsentRefused(response["error"], (), response.get("error_description", ""))
            )
        try:
            consented = await self.flows.complete(
                directory.tenant_id, directory.client_id, await self.credential(directory), flow, response
            )
        except ConsentRefused as refused:
            raise self._entra_error(directory, refused) from None
        if consented.tenant_id != directory.tenant_id or (
            consented.home_tenant_id is not None and consented.home_tenant_id != directory.tenant_id
        ):
            home = consented.home_tenant_id or consented.tenant_id
            raise ConsentFailed(
                f"{consented.user_principal_name or 'the user who signed in'} belongs to tenant {home}, not to "
                f"this directory's tenant {directory.tenant_id}: an administrator of {directory.tenant_id} must "
                "consent (a guest of the tenant cannot)",
                directory_id=directory.id,
                error="wrong_tenant",
            )
        await self.caches.replace(directory.id, consented.cache)
        await self.connections.forget(directory.id)
        now = self.clock()
        signed_in = dataclasses.replace(
            directory,
            consented_by=ConsentedBy(consented.user_principal_name, consented.object_id, now),
            token_refreshed_at=now,
        )
        info = await self.connections.read_tenant(signed_in)
        await self._claim_domains(signed_in, info)
        new_status, reason = directory_status(info.on_premises_sync_enabled)
        expires, source, key_id = (
            signed_in.credential_expires_at,
            signed_in.expiry_source,
            signed_in.credential_key_id,
        )
        warnings: tuple[str, ...] = ()
        if info.credentials is None:
            warnings = (info.credentials_unreadable or "the app registration could not be read",)
        else:
            credential = await self.credential(directory)
            found, ambiguous = credential_in_use(
                info.credentials,
                kind=directory.credential,
                key_id=directory.credential_key_id,
                hint=credential.hint,
                sha1=directory.certificate_sha1,
            )
            if found is not None:
                expires, source, key_id = found.end, "graph", found.key_id
                warnings = (ambiguous,) if ambiguous else ()
        changed = await self.status.change(
            directory.id,
            lambda d: dataclasses.replace(
                d,
                consented_by=signed_in.consented_by,
                token_refreshed_at=now,
                domains=info.domains,
                organization_name=info.display_name,
                status=new_status,
                status_reason=reason,
                status_code=None,
                credential_expires_at=expires,
                expiry_source=source,
                credential_key_id=key_id,
                check_warnings=warnings,
            ),
        )
        if changed is None:
            raise NotFound(f"no directory with id '{directory.id}'")
        before, after = changed
        await self.auditor.record(
            actor,
            "directory.consent",
            directory_id=after.id,
            before={"status": before.status},
            after={
                "status": after.status,
                "consentedBy": {
                    "userPrincipalName": consented.user_principal_name,
                    "objectId": consented.object_id,
                },
                "domains": sorted(after.verified_domains()),
            },
        )
        if before.status == "pending_consent" and after.writable and self.consented is not None:
            await self.consented(after, actor)
        if before.status == "needs_reactivation":
            return Completed(after, True, await self.status.reactivated(before, after, actor))
        replayed = await self.status.replay(after.id, actor.correlation_id) if after.writable else 0
        return Completed(after, False, replayed)

    def _entra_error(self, directory: Directory, refused: ConsentRefused) -> ConsentFailed:
        code = refused.codes[0] if refused.codes else None
        label = f"AADSTS{code}" if code else refused.error
        if refused.error == "access_denied":
            what = "the administrator declined the permissions Warden asked for (access_denied)"
        else:
            said = refused.description.split(": ", 1)[-1] if refused.description else refused.error
            what = f"Entra ID refused the sign-in ({label}): {_CONSENT_WHY.get(code or 0) or said}"
        return ConsentFailed(
            f"{what}. The directory is unchanged; start again with POST /api/directories/{directory.id}/reactivate "
            f"and sign in as an administrator of tenant {directory.tenant_id}",
            directory_id=directory.id,
            error=refused.error,
        )

    async def _claim_domains(self, directory: Directory, info: TenantInfo) -> None:
        """Rule 10 for a tenant whose domains are known only now."""
        domains = sorted({d.name for d in info.domains if d.is_verified})
        try:
            await self.claims.claim_all([(DOMAIN, x) for x in domains], directory.id)
        except Conflict as exc:
            raise ConsentFailed(
                f"{exc.detail}: one domain, one directory (deactivate the other directory first)",
                directory_id=directory.id,
                error="domain_taken",
            ) from None
        stale = [(DOMAIN, x) for x in directory.verified_domains() if x not in domains]
        await self.claims.release_all(stale, directory.id)
