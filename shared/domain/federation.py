"""Rule 15: federating a domain (SAML single sign-on through the organisation's IdP), planned and checked purely.

What Warden writes is Graph's ``internalDomainFederation`` of the domain, built from the IdP's SAML metadata: the
IdP's entity id is the issuer, its first single sign-on service the passive (and active) sign-in URI, its single
logout service the sign-out URI, its signing certificate (and a second one as ``nextSigningCertificate``, the
rollover). Before anything is written, every check below must pass; each has a stable id, a verdict and a sentence
an admin can act on:

- ``domain-verified``, ``not-default``, ``not-initial``: Entra federates only a verified domain that is neither the
  default nor the initial ``*.onmicrosoft.com`` one (graph/api/domain-post-federationconfiguration);
- ``not-federated-elsewhere``: a domain federated with another issuer is not Warden's to take; the same issuer again
  is an update; an issuer another domain of the tenant uses is refused (each federated domain has its own);
- ``issuer-format``: ``https://…`` or ``urn:uri:…`` (JumpCloud's module accepts exactly these);
- ``sign-in-uri``: an https single sign-on endpoint to send users to;
- ``signing-certificate``: present, readable, valid now; under 30 days left is a warning (a POST without a valid
  certificate has left domains unmanageable: microsoft-graph-docs issue 20203, docs-contrib 1389);
- ``no-on-premises-sync``: rule 17 (Entra Connect masters the tenant);
- ``immutable-ids``: every account Warden links in the domain has an ``onPremisesImmutableId``, the NameID the IdP
  sends (entra/identity/hybrid/connect/how-to-connect-fed-saml-idp); ``fixImmutableIds`` sets the missing first;
- ``unmanaged-accounts``: accounts in the domain Warden does not manage lose password sign-in too;
- ``admin-fallback``: at least one Global Administrator keeps a non-federated sign-in (an enabled account on a domain
  that stays Managed): the way back in when the IdP fails (entra/identity/role-based-access-control/
  security-emergency-access).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "warn", "fail"]
CERTIFICATE_WARNING = dt.timedelta(days=30)
MFA_BEHAVIORS = ("acceptIfMfaDoneByFederatedIdp", "enforceMfaByFederatedIdp", "rejectMfaByFederatedIdp")
DEFAULT_MFA_BEHAVIOR = "acceptIfMfaDoneByFederatedIdp"
ISSUER = re.compile(r"^(https://[^\s/?#]+(?:[/?#]\S*)?|urn:uri:\S+)$")
SHOWN = 5
"""Accounts named in a check's sentence (the count says how many more)."""
MANAGED = "Managed"
FEDERATED = "Federated"


@dataclass(frozen=True)
class Certificate:
    """An X.509 certificate as Graph takes it (``der``: base64 DER) and as an admin recognises it."""

    der: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    thumbprint: str
    """SHA-1 of the DER, upper-case hex (as Entra and Windows show a certificate's thumbprint)."""

    def valid_at(self, now: dt.datetime) -> bool:
        return self.not_before <= now < self.not_after


@dataclass(frozen=True)
class IdpMetadata:
    """What Warden uses of an IdP's SAML 2.0 metadata (parsed safely at the edge)."""

    entity_id: str
    sign_in_uri: str | None
    sign_out_uri: str | None
    certificates: tuple[Certificate, ...]
    """Signing certificates that could be read, in document order."""
    unreadable: tuple[str, ...] = ()
    """Why each signing certificate that could not be read was refused."""


@dataclass(frozen=True)
class FederationSettings:
    """An ``internalDomainFederation`` as Warden writes it (graph/api/resources/internaldomainfederation)."""

    issuer_uri: str
    passive_sign_in_uri: str
    signing_certificate: str
    active_sign_in_uri: str | None = None
    sign_out_uri: str | None = None
    next_signing_certificate: str | None = None
    preferred_authentication_protocol: str = "saml"
    federated_idp_mfa_behavior: str = DEFAULT_MFA_BEHAVIOR
    display_name: str | None = None

    def document(self) -> dict[str, Any]:
        """Graph's property names and values (what is POSTed, PATCHed, stored and compared)."""
        return {
            "displayName": self.display_name,
            "issuerUri": self.issuer_uri,
            "passiveSignInUri": self.passive_sign_in_uri,
            "activeSignInUri": self.active_sign_in_uri,
            "signOutUri": self.sign_out_uri,
            "signingCertificate": self.signing_certificate,
            "nextSigningCertificate": self.next_signing_certificate,
            "preferredAuthenticationProtocol": self.preferred_authentication_protocol,
            "federatedIdpMfaBehavior": self.federated_idp_mfa_behavior,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> FederationSettings:
        return cls(
            issuer_uri=str(doc.get("issuerUri") or ""),
            passive_sign_in_uri=str(doc.get("passiveSignInUri") or ""),
            signing_certificate=str(doc.get("signingCertificate") or ""),
            active_sign_in_uri=doc.get("activeSignInUri"),
            sign_out_uri=doc.get("signOutUri"),
            next_signing_certificate=doc.get("nextSigningCertificate"),
            preferred_authentication_protocol=str(doc.get("preferredAuthenticationProtocol") or "saml"),
            federated_idp_mfa_behavior=str(doc.get("federatedIdpMfaBehavior") or DEFAULT_MFA_BEHAVIOR),
            display_name=doc.get("displayName"),
        )


@dataclass(frozen=True)
class Federation:
    """A domain's federation as Graph shows it, its certificates read."""

    id: str
    settings: FederationSettings
    signing: Certificate | None = None
    next_signing: Certificate | None = None


@dataclass(frozen=True)
class TenantDomain:
    """A domain of the tenant as Graph shows it (graph/api/resources/domain)."""

    name: str
    is_verified: bool
    is_default: bool
    is_initial: bool
    authentication_type: str
    password_validity_days: int | None = None

    @property
    def federated(self) -> bool:
        return self.authentication_type == FEDERATED


@dataclass(frozen=True)
class DomainAccount:
    id: str
    user_principal_name: str
    on_premises_immutable_id: str | None
    account_enabled: bool

    @property
    def domain(self) -> str:
        return self.user_principal_name.rpartition("@")[2].lower()


@dataclass(frozen=True)
class FederationFacts:
    """Everything the checks look at, read from Graph and Warden's store."""

    domain: TenantDomain
    domains: tuple[TenantDomain, ...]
    on_premises_sync: bool | None
    federation: Federation | None
    """This domain's federation (None: none can be read)."""
    other_issuers: Mapping[str, str]
    """Another federated domain of the tenant → its issuer."""
    accounts: tuple[DomainAccount, ...]
    """The tenant's accounts whose userPrincipalName is in the domain."""
    linked: Mapping[str, str]
    """Account id → the Warden user linked to it in this directory."""
    expected_ids: Mapping[str, str] = field(default_factory=dict)
    """Account id → the immutable id Warden derives for its linked user."""
    protected: frozenset[str] = frozenset()
    global_admins: tuple[DomainAccount, ...] | None = None
    """The accounts holding Global Administrator actively (None: the role holders cannot be read)."""


@dataclass(frozen=True)
class Check:
    id: str
    verdict: Verdict
    sentence: str


def failed(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.verdict == "fail"]


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _names(accounts: Sequence[DomainAccount]) -> str:
    ordered = sorted(accounts, key=lambda a: a.user_principal_name.lower())
    shown = ", ".join(a.user_principal_name for a in ordered[:SHOWN])
    more = len(accounts) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def choose_certificates(
    certificates: Sequence[Certificate], now: dt.datetime
) -> tuple[Certificate | None, Certificate | None]:
    """(signing, next): the valid certificate that has been valid longest signs now; a newer one (valid now or
    later) is the rollover, ``nextSigningCertificate``. Expired certificates are never used."""
    usable = sorted((c for c in certificates if c.not_after > now), key=lambda c: (c.not_before, c.not_after))
    current = [c for c in usable if c.valid_at(now)]
    if not current:
        return None, None
    signing = current[0]
    later = [c for c in usable if c is not signing and c.thumbprint != signing.thumbprint]
    return signing, (later[-1] if later else None)


def settings_from(
    metadata: IdpMetadata,
    now: dt.datetime,
    *,
    sign_out_uri: str | None = None,
    mfa_behavior: str | None = None,
    display_name: str | None = None,
) -> FederationSettings | None:
    """The federation to write for ``metadata`` (None when it has no usable certificate or sign-in URI: then
    nothing may be written)."""
    signing, rollover = choose_certificates(metadata.certificates, now)
    if signing is None or not metadata.sign_in_uri:
        return None
    return FederationSettings(
        issuer_uri=metadata.entity_id,
        passive_sign_in_uri=metadata.sign_in_uri,
        active_sign_in_uri=metadata.sign_in_uri,
        sign_out_uri=sign_out_uri or metadata.sign_out_uri,
        signing_certificate=signing.der,
        next_signing_certificate=rollover.der if rollover else None,
        federated_idp_mfa_behavior=mfa_behavior or DEFAULT_MFA_BEHAVIOR,
        display_name=display_name,
    )


def metadata_of(federation: Federation) -> IdpMetadata:
    """A federation in place, as if its IdP's metadata had been given (what ``GET …/federation`` re-checks)."""
    s = federation.settings
    certificates = tuple(c for c in (federation.signing, federation.next_signing) if c is not None)
    return IdpMetadata(s.issuer_uri, s.passive_sign_in_uri, s.sign_out_uri, certificates)


def checks(
    facts: FederationFacts,
    metadata: IdpMetadata | None,
    now: dt.datetime,
    *,
    fix_immutable_ids: bool = False,
    allow_unmanaged: bool = False,
) -> list[Check]:
    """Every check of the module's docstring, in that order. Without ``metadata`` (a domain shown, not being
    federated) the IdP's checks are left out."""
    d = facts.domain
    out = [
        Check("domain-verified", "pass", f"{d.name} is verified in the tenant")
        if d.is_verified
        else Check(
            "domain-verified", "fail", f"{d.name} is not verified in the tenant: verify it in Entra first"
        ),
        Check("not-default", "pass", f"{d.name} is not the tenant's default domain")
        if not d.is_default
        else Check(
            "not-default",
            "fail",
            f"{d.name} is the tenant's default domain, which cannot be federated: make another domain the default "
            "first",
        ),
        Check("not-initial", "pass", f"{d.name} is not the tenant's initial domain")
        if not (d.is_initial or d.name.endswith(".onmicrosoft.com"))
        else Check(
            "not-initial",
            "fail",
            f"{d.name} is the tenant's initial (*.onmicrosoft.com) domain, which cannot be federated",
        ),
        _elsewhere(facts, metadata),
    ]
    if metadata is not None:
        out += [_issuer(metadata), _sign_in(metadata), _certificates(metadata, now)]
    out += [
        Check("no-on-premises-sync", "pass", "the tenant is not synchronized from on-premises")
        if facts.on_premises_sync is not True
        else Check(
            "no-on-premises-sync",
            "fail",
            "directory synchronization from on-premises is enabled: Entra Connect masters this tenant (rule 17)",
        ),
        _immutable_ids(facts, fix_immutable_ids),
        _unmanaged(facts, allow_unmanaged),
        _fallback(facts),
    ]
    return out


def _elsewhere(facts: FederationFacts, metadata: IdpMetadata | None) -> Check:
    d, fed = facts.domain, facts.federation
    cid = "not-federated-elsewhere"
    if d.federated and fed is None:
        return Check(
            cid,
            "fail",
            f"{d.name} is Federated but its federation cannot be read (left half-made): remove it with DELETE "
            "…/federation, then federate again",
        )
    if metadata is None:
        if fed is not None:
            return Check(cid, "pass", f"{d.name} is federated with {fed.settings.issuer_uri}")
        return Check(cid, "pass", f"{d.name} is Managed: its users sign in with their Entra password")
    if fed is not None and fed.settings.issuer_uri != metadata.entity_id:
        return Check(
            cid,
            "fail",
            f"{d.name} is federated with another IdP ({fed.settings.issuer_uri}): remove that federation first",
        )
    twin = sorted(n for n, issuer in facts.other_issuers.items() if issuer == metadata.entity_id)
    if twin:
        return Check(
            cid,
            "fail",
            f"the issuer {metadata.entity_id} already federates {twin[0]}: each federated domain needs an IdP "
            "entity id of its own",
        )
    if fed is not None:
        return Check(cid, "pass", f"{d.name} is federated with this IdP already: its federation is updated")
    return Check(cid, "pass", f"{d.name} is Managed and federated with no IdP")


def _issuer(metadata: IdpMetadata) -> Check:
    if ISSUER.match(metadata.entity_id):
        return Check("issuer-format", "pass", f"the IdP's entity id {metadata.entity_id} is a valid issuer")
    return Check(
        "issuer-format",
        "fail",
        f"the IdP's entity id '{metadata.entity_id[:200]}' must be of the form https://… or urn:uri:…",
    )


def _sign_in(metadata: IdpMetadata) -> Check:
    uri = metadata.sign_in_uri
    if uri and uri.lower().startswith("https://") and len(uri) > len("https://"):
        return Check("sign-in-uri", "pass", f"users are sent to {uri} to sign in")
    if not uri:
        return Check(
            "sign-in-uri",
            "fail",
            "the metadata has no SingleSignOnService (HTTP-Redirect or HTTP-POST) to sign in at",
        )
    return Check("sign-in-uri", "fail", f"the sign-in URL {uri[:200]} is not https")


def _certificates(metadata: IdpMetadata, now: dt.datetime) -> Check:
    cid = "signing-certificate"
    if metadata.unreadable:
        return Check(
            cid,
            "fail",
            "a signing certificate in the metadata cannot be read: " + "; ".join(metadata.unreadable),
        )
    if not metadata.certificates:
        return Check(
            cid, "fail", "the metadata has no signing certificate (a KeyDescriptor with an X509Certificate)"
        )
    signing, rollover = choose_certificates(metadata.certificates, now)
    if signing is None:
        latest = max(metadata.certificates, key=lambda c: c.not_after)
        when = "expired" if latest.not_after <= now else "is not valid yet"
        return Check(
            cid,
            "fail",
            f"no signing certificate is valid now: {latest.subject} (thumbprint {latest.thumbprint}) {when} "
            f"({latest.not_before:%Y-%m-%d} to {latest.not_after:%Y-%m-%d})",
        )
    sentence = f"signs with {signing.subject} (thumbprint {signing.thumbprint}), valid until {signing.not_after:%Y-%m-%d}"
    if rollover is not None:
        sentence += (
            f"; {rollover.subject} (thumbprint {rollover.thumbprint}) becomes the next signing certificate"
        )
    left = signing.not_after - now
    if left < CERTIFICATE_WARNING and rollover is None:
        return Check(
            cid, "warn", f"{sentence}: it expires within {left.days + 1} days and no next one is given"
        )
    return Check(cid, "pass", sentence)


def _immutable_ids(facts: FederationFacts, fix: bool) -> Check:
    cid = "immutable-ids"
    linked = [a for a in facts.accounts if a.id in facts.linked]
    missing = [a for a in linked if not a.on_premises_immutable_id]
    foreign = [
        a
        for a in linked
        if a.on_premises_immutable_id
        and a.id in facts.expected_ids
        and a.on_premises_immutable_id != facts.expected_ids[a.id]
    ]
    if missing:
        frozen = [a for a in missing if a.id in facts.protected]
        if frozen:
            return Check(
                cid,
                "fail",
                f"{_count(len(frozen), 'protected linked account')} without an immutable id (Warden does not write to "
                "them): "
                f"{_names(frozen)}",
            )
        if not fix:
            return Check(
                cid,
                "fail",
                f"{_count(len(missing), 'linked account')} without an immutable id could not sign in: {_names(missing)} "
                "(fixImmutableIds=true sets them first)",
            )
        return Check(
            cid, "pass", f"{len(missing)} linked accounts get their immutable id first: {_names(missing)}"
        )
    if foreign:
        return Check(
            cid,
            "warn",
            f"{_count(len(foreign), 'linked account')} with an immutable id Warden did not derive ({_names(foreign)}): "
            "the IdP "
            "must send those values as NameID",
        )
    return Check(
        cid, "pass", f"every one of the {len(linked)} linked accounts in the domain has an immutable id"
    )


def _unmanaged(facts: FederationFacts, allow: bool) -> Check:
    cid = "unmanaged-accounts"
    others = [a for a in facts.accounts if a.id not in facts.linked]
    if not others:
        return Check(cid, "pass", "Warden manages every account in the domain")
    sentence = (
        f"{_count(len(others), 'account')} in the domain not managed by Warden would lose password sign-in: "
        f"{_names(others)}"
    )
    if allow:
        return Check(cid, "warn", sentence)
    return Check(cid, "fail", sentence + " (allowUnmanaged=true accepts that)")


def _fallback(facts: FederationFacts) -> Check:
    cid = "admin-fallback"
    if facts.global_admins is None:
        return Check(
            cid,
            "fail",
            "the tenant's role holders cannot be read (RoleManagement.Read.Directory): Warden cannot verify that a "
            "Global Administrator keeps a non-federated sign-in",
        )
    kinds = {d.name: d for d in facts.domains}
    target = facts.domain.name
    keep = [
        a
        for a in facts.global_admins
        if a.account_enabled and a.domain != target and a.domain in kinds and not kinds[a.domain].federated
    ]
    if keep:
        return Check(
            cid, "pass", f"{len(keep)} Global Administrators keep a password sign-in: {_names(keep)}"
        )
    return Check(
        cid,
        "fail",
        "no enabled Global Administrator would keep a non-federated sign-in: make one on a Managed domain (such as "
        "the *.onmicrosoft.com one) first, so that a failing IdP cannot lock the tenant's administrators out",
    )


def drift(desired: FederationSettings, observed: Federation | None) -> dict[str, tuple[Any, Any]]:
    """Property → (observed, desired) where the federation in Graph departs from what Warden wrote (all of them
    when it is gone)."""
    want = desired.document()
    have = observed.settings.document() if observed is not None else {}
    return {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
