"""Rule 15's checks, one by one: each fails by itself for its own reason, and nothing else fails with it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from shared.domain.federation import (
    Certificate,
    DomainAccount,
    Federation,
    FederationFacts,
    FederationSettings,
    IdpMetadata,
    TenantDomain,
    checks,
    choose_certificates,
    drift,
    failed,
    metadata_of,
    settings_from,
)

NOW = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SSO = TenantDomain("sso.example", True, False, False, "Managed")
DEFAULT = TenantDomain("contoso.example", True, True, False, "Managed")
INITIAL = TenantDomain("contoso.onmicrosoft.com", True, False, True, "Managed")
ADMIN = DomainAccount("ga-1", "admin@contoso.onmicrosoft.com", None, True)
LINKED = DomainAccount("m-1", "ada@sso.example", "AAAA", True)


def cert(
    name: str = "idp", *, start: dt.datetime = NOW - DAY, end: dt.datetime = NOW + 365 * DAY
) -> Certificate:
    return Certificate(f"der-{name}", f"CN={name}", start, end, name.upper().ljust(40, "0")[:40])


def meta(**kw: Any) -> IdpMetadata:
    base: dict[str, Any] = {
        "entity_id": "https://idp.example/saml2/sso.example",
        "sign_in_uri": "https://idp.example/sso",
        "sign_out_uri": "https://idp.example/logout",
        "certificates": (cert(),),
    }
    return IdpMetadata(**{**base, **kw})


def facts(**kw: Any) -> FederationFacts:
    base: dict[str, Any] = {
        "domain": SSO,
        "domains": (SSO, DEFAULT, INITIAL),
        "on_premises_sync": None,
        "federation": None,
        "other_issuers": {},
        "accounts": (LINKED,),
        "linked": {"m-1": "u-1"},
        "expected_ids": {"m-1": "AAAA"},
        "global_admins": (ADMIN,),
    }
    return FederationFacts(**{**base, **kw})


def verdicts(found: list[Any]) -> dict[str, str]:
    return {c.id: c.verdict for c in found}


def test_a_domain_ready_for_federation_passes_every_check() -> None:
    found = checks(facts(), meta(), NOW)
    assert [c.id for c in found] == [
        "domain-verified",
        "not-default",
        "not-initial",
        "not-federated-elsewhere",
        "issuer-format",
        "sign-in-uri",
        "signing-certificate",
        "no-on-premises-sync",
        "immutable-ids",
        "unmanaged-accounts",
        "admin-fallback",
    ]
    assert set(verdicts(found).values()) == {"pass"}, found


FED = Federation("f-1", FederationSettings("https://other.example/idp", "https://other.example/sso", "der-x"))
SAME = Federation(
    "f-1", FederationSettings("https://idp.example/saml2/sso.example", "https://idp.example/sso", "der-x")
)


@pytest.mark.parametrize(
    ("check", "fact_changes", "meta_changes", "said"),
    [
        ("domain-verified", {"domain": dataclasses.replace(SSO, is_verified=False)}, {}, "not verified"),
        ("not-default", {"domain": dataclasses.replace(SSO, is_default=True)}, {}, "default domain"),
        ("not-initial", {"domain": dataclasses.replace(SSO, is_initial=True)}, {}, "initial"),
        (
            "not-federated-elsewhere",
            {"domain": dataclasses.replace(SSO, authentication_type="Federated"), "federation": FED},
            {},
            "another IdP",
        ),
        (
            "not-federated-elsewhere",
            {"domain": dataclasses.replace(SSO, authentication_type="Federated")},
            {},
            "half-made",
        ),
        (
            "not-federated-elsewhere",
            {"other_issuers": {"b.example": "https://idp.example/saml2/sso.example"}},
            {},
            "b.example",
        ),
        ("issuer-format", {}, {"entity_id": "idp.example"}, "https://… or urn:uri:…"),
        ("sign-in-uri", {}, {"sign_in_uri": "http://idp.example/sso"}, "not https"),
        ("sign-in-uri", {}, {"sign_in_uri": None}, "no SingleSignOnService"),
        ("signing-certificate", {}, {"certificates": ()}, "no signing certificate"),
        ("signing-certificate", {}, {"certificates": (cert(end=NOW - DAY),)}, "expired"),
        ("signing-certificate", {}, {"certificates": (cert(start=NOW + DAY),)}, "not valid yet"),
        ("signing-certificate", {}, {"unreadable": ("KeyDescriptor 1: not base64",)}, "cannot be read"),
        ("no-on-premises-sync", {"on_premises_sync": True}, {}, "on-premises"),
        (
            "immutable-ids",
            {"accounts": (DomainAccount("m-1", "ada@sso.example", None, True),)},
            {},
            "fixImmutableIds",
        ),
        (
            "unmanaged-accounts",
            {"accounts": (LINKED, DomainAccount("m-9", "bob@sso.example", None, True))},
            {},
            "bob@sso.example",
        ),
        ("admin-fallback", {"global_admins": ()}, {}, "no enabled Global Administrator"),
        (
            "admin-fallback",
            {"global_admins": (dataclasses.replace(ADMIN, account_enabled=False),)},
            {},
            "no enabled",
        ),
        (
            "admin-fallback",
            {"global_admins": (DomainAccount("ga-2", "boss@sso.example", None, True),)},
            {},
            "no enabled",
        ),
        ("admin-fallback", {"global_admins": None}, {}, "RoleManagement.Read.Directory"),
    ],
)
def test_each_check_fails_by_itself(
    check: str, fact_changes: dict[str, Any], meta_changes: dict[str, Any], said: str
) -> None:
    found = checks(facts(**fact_changes), meta(**meta_changes), NOW)
    bad = failed(found)
    assert [c.id for c in bad] == [check], found
    assert said in bad[0].sentence


def test_the_same_issuer_again_is_an_update() -> None:
    fed = facts(domain=dataclasses.replace(SSO, authentication_type="Federated"), federation=SAME)
    found = {c.id: c for c in checks(fed, meta(), NOW)}
    assert (
        found["not-federated-elsewhere"].verdict == "pass"
        and "updated" in found["not-federated-elsewhere"].sentence
    )


def test_fix_immutable_ids_and_allow_unmanaged_turn_those_failures_into_a_plan_and_a_warning() -> None:
    f = facts(
        accounts=(
            DomainAccount("m-1", "ada@sso.example", None, True),
            DomainAccount("m-9", "bob@sso.example", None, True),
        )
    )
    v = verdicts(checks(f, meta(), NOW, fix_immutable_ids=True, allow_unmanaged=True))
    assert (v["immutable-ids"], v["unmanaged-accounts"]) == ("pass", "warn")


def test_a_protected_linked_account_without_an_immutable_id_cannot_be_fixed() -> None:
    f = facts(accounts=(DomainAccount("m-1", "ada@sso.example", None, True),), protected=frozenset({"m-1"}))
    found = checks(f, meta(), NOW, fix_immutable_ids=True)
    assert [c.id for c in failed(found)] == ["immutable-ids"] and "protected" in failed(found)[0].sentence


def test_a_certificate_close_to_expiry_warns_unless_a_next_one_is_given() -> None:
    soon = cert(end=NOW + 10 * DAY)
    assert verdicts(checks(facts(), meta(certificates=(soon,)), NOW))["signing-certificate"] == "warn"
    later = cert("next", start=NOW, end=NOW + 400 * DAY)
    assert verdicts(checks(facts(), meta(certificates=(soon, later)), NOW))["signing-certificate"] == "pass"


def test_the_certificate_valid_longest_signs_and_a_newer_one_is_next_expired_ones_never() -> None:
    old, current, newer = (
        cert("old", end=NOW - DAY),
        cert("cur"),
        cert("new", start=NOW + DAY, end=NOW + 900 * DAY),
    )
    assert choose_certificates([newer, old, current], NOW) == (current, newer)
    settings = settings_from(meta(certificates=(newer, current)), NOW)
    assert settings is not None
    assert (settings.signing_certificate, settings.next_signing_certificate) == ("der-cur", "der-new")
    assert settings.preferred_authentication_protocol == "saml"
    assert settings.federated_idp_mfa_behavior == "acceptIfMfaDoneByFederatedIdp"
    assert settings_from(meta(certificates=(old,)), NOW) is None


def test_a_federation_in_place_is_rechecked_with_its_own_certificate_and_drift_names_what_changed() -> None:
    desired = settings_from(meta(), NOW)
    assert desired is not None
    fed = Federation("f-1", desired, cert(end=NOW + 5 * DAY))
    found = verdicts(checks(facts(federation=fed), metadata_of(fed), NOW))
    assert found["signing-certificate"] == "warn"
    assert drift(desired, fed) == {}
    edited = Federation("f-1", dataclasses.replace(desired, passive_sign_in_uri="https://evil.example/sso"))
    assert drift(desired, edited) == {
        "passiveSignInUri": ("https://evil.example/sso", "https://idp.example/sso")
    }
    assert set(drift(desired, None)) >= {"issuerUri", "signingCertificate"}
