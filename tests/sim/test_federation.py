"""Domain federation as Graph does it, through msgraph-sdk.

Pages followed (each test names its own):
- https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration (201; issuerUri,
  passiveSignInUri, signingCertificate)
- https://learn.microsoft.com/en-us/graph/api/internaldomainfederation-update (200 with the object) and
  internaldomainfederation-delete (204)
- https://learn.microsoft.com/en-us/graph/api/domain-update and resources/domain (authenticationType)
- https://learn.microsoft.com/en-us/graph/api/resources/user (onPremisesImmutableId on a federated domain;
  passwordProfile "cannot be used for federated users")
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from msgraph.generated.models.authentication_protocol import AuthenticationProtocol
from msgraph.generated.models.domain import Domain
from msgraph.generated.models.federated_idp_mfa_behavior import FederatedIdpMfaBehavior
from msgraph.generated.models.internal_domain_federation import InternalDomainFederation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.user import User
from msgraph.graph_service_client import GraphServiceClient

from tests.conftest import Sim
from tests.sim.conftest import DOMAIN, SimTenant, create_tenant, graph_client, tenant_body
from tools.selfsigned import self_signed

FEDERATED = "fabrikam.example"
CERTIFICATE = base64.b64encode(self_signed("IdP signing").der).decode()


@pytest.fixture
def two_domains(clean_sim: Sim) -> SimTenant:
    """The standard tenant with a second verified domain that is not the default."""
    body = tenant_body()
    body["domains"].append({"id": FEDERATED, "isDefault": False, "isVerified": True})
    return create_tenant(clean_sim, body)


def federation(**overrides: Any) -> InternalDomainFederation:
    values: dict[str, Any] = {
        "display_name": "Example IdP",
        "issuer_uri": "https://idp.example/saml/metadata",
        "passive_sign_in_uri": "https://idp.example/saml/sso",
        "sign_out_uri": "https://idp.example/saml/slo",
        "signing_certificate": CERTIFICATE,
        "preferred_authentication_protocol": AuthenticationProtocol.Saml,
        "federated_idp_mfa_behavior": FederatedIdpMfaBehavior.AcceptIfMfaDoneByFederatedIdp,
    }
    values.update(overrides)
    return InternalDomainFederation(**values)


async def authentication_type(graph: GraphServiceClient, name: str) -> str | None:
    domain = await graph.domains.by_domain_id(name).get()
    assert domain is not None
    return domain.authentication_type


async def test_a_domain_is_federated_updated_and_returned_to_managed(two_domains: SimTenant) -> None:
    """domain-post-federationconfiguration: 201 with the internalDomainFederation, the domain Federated (setting
    authenticationType Federated afterwards, as JumpCloud's module does, changes nothing more);
    internaldomainfederation-update: 200 with the object; internaldomainfederation-delete: 204, Managed again."""
    async with graph_client(two_domains) as graph:
        configurations = graph.domains.by_domain_id(FEDERATED).federation_configuration
        created = await configurations.post(federation())
        assert (
            created is not None and created.id and created.issuer_uri == "https://idp.example/saml/metadata"
        )
        assert created.preferred_authentication_protocol == AuthenticationProtocol.Saml
        assert await authentication_type(graph, FEDERATED) == "Federated"
        await graph.domains.by_domain_id(FEDERATED).patch(Domain(authentication_type="Federated"))
        listed = await configurations.get()
        assert listed is not None and [f.id for f in listed.value or []] == [created.id]
        updated = await configurations.by_internal_domain_federation_id(created.id).patch(
            InternalDomainFederation(display_name="Renamed IdP")
        )
        assert updated is not None and updated.display_name == "Renamed IdP"
        assert updated.issuer_uri == created.issuer_uri
        await configurations.by_internal_domain_federation_id(created.id).delete()
        assert await authentication_type(graph, FEDERATED) == "Managed"
        assert (await configurations.get()).value == []  # type: ignore[union-attr]


async def test_a_federation_without_its_signing_certificate_is_refused_and_changes_nothing(
    two_domains: SimTenant,
) -> None:
    """domain-post-federationconfiguration documents signingCertificate as part of the federation; real Graph has
    answered a POST without it with 500 and left the domain Federated with no readable configuration
    (microsoftgraph/microsoft-graph-docs-contrib#1389, microsoft-graph-docs#20203) - a hazard Warden must never
    trigger. The simulator answers what the page documents instead: 400, the property required, the domain left
    Managed and without configuration. A certificate that is not an X.509 certificate is refused the same way."""
    async with graph_client(two_domains) as graph:
        configurations = graph.domains.by_domain_id(FEDERATED).federation_configuration
        with pytest.raises(ODataError) as missing:
            await configurations.post(federation(signing_certificate=None))
        assert missing.value.response_status_code == 400
        assert missing.value.error is not None
        assert (
            missing.value.error.message
            == "Property signingCertificate value is required but is empty or missing."
        )
        with pytest.raises(ODataError) as garbage:
            await configurations.post(
                federation(signing_certificate=base64.b64encode(b"not a cert").decode())
            )
        assert garbage.value.response_status_code == 400
        assert await authentication_type(graph, FEDERATED) == "Managed"
        assert (await configurations.get()).value == []  # type: ignore[union-attr]


async def test_the_default_and_the_initial_domain_cannot_be_federated(two_domains: SimTenant) -> None:
    """domain-post-federationconfiguration: the default domain and the initial *.onmicrosoft.com domain cannot be
    federated (400), nor can a domain be set Federated without a federation configuration (domain-update)."""
    async with graph_client(two_domains) as graph:
        domains = await graph.domains.get()
        assert domains is not None and domains.value
        initial = next(d.id for d in domains.value if d.is_initial)
        assert initial and initial.endswith(".onmicrosoft.com")
        for name in (DOMAIN, initial):
            with pytest.raises(ODataError) as refused:
                await graph.domains.by_domain_id(name).federation_configuration.post(federation())
            assert refused.value.response_status_code == 400, name
            assert await authentication_type(graph, name) == "Managed"
        with pytest.raises(ODataError) as no_configuration:
            await graph.domains.by_domain_id(FEDERATED).patch(Domain(authentication_type="Federated"))
        assert no_configuration.value.response_status_code == 400
        assert await authentication_type(graph, FEDERATED) == "Managed"


async def test_users_of_a_federated_domain_need_an_immutable_id_and_take_no_password(
    two_domains: SimTenant,
) -> None:
    """user resource: onPremisesImmutableId "must be specified when creating a new user account if you're using a
    federated domain"; passwordProfile "cannot be used for federated users" (on create, on update, and moving a
    user there without an immutable id is refused too)."""
    async with graph_client(two_domains) as graph:
        await graph.domains.by_domain_id(FEDERATED).federation_configuration.post(federation())

        def user(nick: str, **extra: Any) -> User:
            return User(
                account_enabled=True,
                display_name=nick.title(),
                mail_nickname=nick,
                user_principal_name=f"{nick}@{FEDERATED}",
                **extra,
            )

        with pytest.raises(ODataError) as no_anchor:
            await graph.users.post(user("anchorless"))
        assert no_anchor.value.error is not None
        assert (
            no_anchor.value.error.message
            == "Property onPremisesImmutableId value is required but is empty or missing."
        )
        password = PasswordProfile(password="Str0ng!Passw0rd-5", force_change_password_next_sign_in=True)
        with pytest.raises(ODataError) as with_password:
            await graph.users.post(
                user("withpassword", on_premises_immutable_id="aW1tdXRhYmxl", password_profile=password)
            )
        assert with_password.value.response_status_code == 400
        created = await graph.users.post(user("federated", on_premises_immutable_id="ZmVkZXJhdGVk"))
        assert created is not None and created.id
        with pytest.raises(ODataError) as reset:
            await graph.users.by_user_id(created.id).patch(User(password_profile=password))
        assert reset.value.response_status_code == 400
        with pytest.raises(ODataError) as moved:
            await graph.users.by_user_id(f"user0001@{DOMAIN}").patch(
                User(user_principal_name=f"user0001@{FEDERATED}")
            )
        assert moved.value.response_status_code == 400
        await graph.users.by_user_id(f"user0001@{DOMAIN}").patch(
            User(user_principal_name=f"user0001@{FEDERATED}", on_premises_immutable_id="dXNlcjAwMDE=")
        )
