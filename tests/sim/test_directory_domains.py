"""Domains, internalDomainFederation and organization in the simulated directory."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sim.directory_support import BASE, TENANT, Sim, error_of, make_sim, user_body


def certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts.fabrikam.com")])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


CERT = certificate()
FED = {
    "displayName": "Fabrikam STS",
    "issuerUri": "http://fabrikam.com/adfs/services/trust",
    "passiveSignInUri": "https://sts.fabrikam.com/adfs/ls",
    "signingCertificate": CERT,
    "preferredAuthenticationProtocol": "wsFed",
    "federatedIdpMfaBehavior": "rejectMfaByFederatedIdp",
}


@pytest.fixture
def sim() -> Sim:
    return make_sim(1)


def test_initial_domain_is_added(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/domain (every tenant has its initial
    *.onmicrosoft.com domain: isInitial, verified, Managed)"""
    body = sim.call("GET", "/domains").body
    assert body["@odata.context"] == f"{BASE}/$metadata#domains"
    initial = [d for d in body["value"] if d["isInitial"]]
    assert [d["id"] for d in initial] == ["contoso.onmicrosoft.com"]
    assert (initial[0]["isVerified"], initial[0]["authenticationType"], initial[0]["isDefault"]) == (
        True,
        "Managed",
        False,
    )


def test_get_domain(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-get"""
    body = sim.call("GET", "/domains/CONTOSO.com").body
    assert body["@odata.context"] == f"{BASE}/$metadata#domains/$entity"
    assert {
        k: body[k]
        for k in (
            "id",
            "isDefault",
            "isRoot",
            "isAdminManaged",
            "passwordValidityPeriodInDays",
            "passwordNotificationWindowInDays",
            "supportedServices",
        )
    } == {
        "id": "contoso.com",
        "isDefault": True,
        "isRoot": True,
        "isAdminManaged": True,
        "passwordValidityPeriodInDays": 2147483647,
        "passwordNotificationWindowInDays": 14,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"],
    }
    assert error_of(sim.call("GET", "/domains/nope.com"))[:2] == (404, "Request_ResourceNotFound")


def test_update_domain(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-update (204; password policy ranges per
    https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy)"""
    ok = sim.call(
        "PATCH",
        "/domains/contoso.com",
        body={"passwordValidityPeriodInDays": 90, "passwordNotificationWindowInDays": 7},
    )
    assert ok.status == 204
    assert sim.call("GET", "/domains/contoso.com").body["passwordValidityPeriodInDays"] == 90
    for body, prop in (
        ({"passwordValidityPeriodInDays": 5}, "passwordValidityPeriodInDays"),
        ({"passwordNotificationWindowInDays": 31}, "passwordNotificationWindowInDays"),
        ({"isDefault": True}, "isDefault"),
    ):
        target = "unverified.example" if prop == "isDefault" else "contoso.com"
        assert error_of(sim.call("PATCH", f"/domains/{target}", body=body)) == (
            400,
            "Request_BadRequest",
            f"Invalid value specified for property '{prop}' of resource 'Domain'.",
        )
    assert sim.call("PATCH", "/domains/fabrikam.com", body={"isDefault": True}).status == 204
    assert sim.call("GET", "/domains/contoso.com").body["isDefault"] is False
    denied = sim.call(
        "PATCH",
        "/domains/contoso.com",
        body={"passwordValidityPeriodInDays": 90},
        perms=frozenset({"Directory.ReadWrite.All"}),
    )
    assert error_of(denied)[0] == 403


def test_federate_domain_and_back(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration (201; the domain becomes
    Federated), internaldomainfederation-update (200 with the object), internaldomainfederation-delete (204)"""
    created = sim.call("POST", "/domains/fabrikam.com/federationConfiguration", body=FED)
    assert created.status == 201
    fed_id = created.body["id"]
    assert created.body["@odata.type"] == "#microsoft.graph.internalDomainFederation"
    assert created.body["issuerUri"] == FED["issuerUri"]
    assert sim.call("GET", "/domains/fabrikam.com").body["authenticationType"] == "Federated"
    listed = sim.call("GET", "/domains/fabrikam.com/federationConfiguration").body["value"]
    assert [f["id"] for f in listed] == [fed_id]
    patched = sim.call(
        "PATCH", f"/domains/fabrikam.com/federationConfiguration/{fed_id}", body={"displayName": "Renamed"}
    )
    assert (patched.status, patched.body["displayName"]) == (200, "Renamed")
    assert sim.call("DELETE", f"/domains/fabrikam.com/federationConfiguration/{fed_id}").status == 204
    assert sim.call("GET", "/domains/fabrikam.com").body["authenticationType"] == "Managed"
    assert error_of(sim.call("GET", f"/domains/fabrikam.com/federationConfiguration/{fed_id}"))[0] == 404


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        (
            "unverified.example",
            "Domain 'unverified.example' is not verified. Only verified domains can be federated.",
        ),
        (
            "contoso.com",
            "The default domain 'contoso.com' cannot be federated. Set another default domain first.",
        ),
        ("contoso.onmicrosoft.com", "The initial domain 'contoso.onmicrosoft.com' cannot be federated."),
    ],
)
def test_domains_that_cannot_be_federated(sim: Sim, domain: str, message: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration (only verified custom,
    non-default domains can be federated)"""
    assert error_of(sim.call("POST", f"/domains/{domain}/federationConfiguration", body=FED)) == (
        400,
        "Request_BadRequest",
        message,
    )


def test_already_federated_missing_fields_and_bad_certificate(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration (signingCertificate must be
    a base64 X.509 certificate)"""
    path = "/domains/fabrikam.com/federationConfiguration"
    missing = sim.call("POST", path, body={k: v for k, v in FED.items() if k != "issuerUri"})
    assert error_of(missing)[2] == "Property issuerUri value is required but is empty or missing."
    for bad in ("not-base64!", base64.b64encode(b"not a certificate").decode()):
        response = sim.call("POST", path, body={**FED, "signingCertificate": bad})
        assert error_of(response)[2] == (
            "Invalid value specified for property 'signingCertificate' of resource 'InternalDomainFederation'."
        )
    assert error_of(sim.call("POST", path, body={**FED, "preferredAuthenticationProtocol": "oidc"}))[0] == 400
    assert sim.call("GET", "/domains/fabrikam.com").body["authenticationType"] == "Managed"
    assert sim.call("POST", path, body=FED).status == 201
    assert error_of(sim.call("POST", path, body=FED))[2] == "Domain 'fabrikam.com' is already federated."


def test_federation_permissions(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration#permissions"""
    path = "/domains/fabrikam.com/federationConfiguration"
    assert error_of(sim.call("POST", path, body=FED, perms=frozenset({"Domain.Read.All"})))[0] == 403
    internal = frozenset({"Domain-InternalFederation.ReadWrite.All"})
    assert sim.call("POST", path, body=FED, perms=internal).status == 201


def test_users_in_a_federated_domain_need_an_immutable_id(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (onPremisesImmutableId for federated UPNs)"""
    sim.call("POST", "/domains/fabrikam.com/federationConfiguration", body=FED)
    response = sim.call("POST", "/users", body=user_body("fed", userPrincipalName="fed@fabrikam.com"))
    assert (
        error_of(response)[2] == "Property onPremisesImmutableId value is required but is empty or missing."
    )


def test_organization(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/organization-list (verifiedDomains; onPremisesSyncEnabled null
    for a cloud-only tenant)"""
    body = sim.call("GET", "/organization", perms=frozenset({"Organization.Read.All"})).body
    org = body["value"][0]
    assert (org["id"], org["displayName"], org["onPremisesSyncEnabled"]) == (TENANT, "Contoso", None)
    assert sorted((d["name"], d["isDefault"], d["isInitial"], d["type"]) for d in org["verifiedDomains"]) == [
        ("contoso.com", True, False, "Managed"),
        ("contoso.onmicrosoft.com", False, True, "Managed"),
        ("fabrikam.com", False, False, "Managed"),
    ]
    synced = make_sim(sync=True).call("GET", f"/organization/{TENANT}").body
    assert synced["onPremisesSyncEnabled"] is True
    no_longer = make_sim(sync=False).call("GET", f"/organization/{TENANT}").body
    assert no_longer["onPremisesSyncEnabled"] is False
    assert error_of(sim.call("GET", "/organization", perms=frozenset({"User.Read.All"})))[0] == 403


@pytest.mark.parametrize("sync", [True, False, None])
def test_organization_on_premises_sync_is_tri_state(sync: bool | None) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/organization (onPremisesSyncEnabled: "true if this
    object is synced from an on-premises directory; false if this object was originally synced from an
    on-premises directory but is no longer synced. Nullable. null if this object has never been synced ...
    (default)"): the organization shows the tenant's value as it is, false included. Only a synced tenant (true)
    seeds users mastered on-premises, which refuse cloud edits of synced properties
    (https://learn.microsoft.com/en-us/graph/api/resources/user, onPremisesSyncEnabled)."""
    sim = make_sim(2, sync=sync)
    perms = frozenset({"Organization.Read.All"})
    listed = sim.call("GET", "/organization", perms=perms).body["value"][0]
    assert listed["onPremisesSyncEnabled"] is sync
    assert sim.call("GET", f"/organization/{TENANT}", perms=perms).body["onPremisesSyncEnabled"] is sync
    select = {"$select": "onPremisesSyncEnabled,onPremisesImmutableId"}
    user = sim.call("GET", "/users/user0001@contoso.com", select).body
    assert user["onPremisesSyncEnabled"] is (True if sync is True else None)
    assert (user["onPremisesImmutableId"] is not None) is (sync is True)
    edit = sim.call("PATCH", "/users/user0001@contoso.com", body={"displayName": "Cloud edit"})
    assert edit.status == (400 if sync is True else 204)
