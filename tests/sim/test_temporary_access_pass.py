"""Temporary Access Pass, through msgraph-sdk.

Pages followed (each test names its own):
- https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods (201, the pass
  shown once, lifetimeInMinutes 10-43200, isUsableOnce, one pass a user)
- https://learn.microsoft.com/en-us/graph/api/authentication-list-temporaryaccesspassmethods,
  temporaryaccesspassauthenticationmethod-delete (204)
- https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration and
  temporaryaccesspassauthenticationmethodconfiguration-update (the tenant's policy)
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.identity.aio import ClientSecretCredential
from msgraph.generated.models.authentication_method_state import AuthenticationMethodState
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.temporary_access_pass_authentication_method import (
    TemporaryAccessPassAuthenticationMethod,
)
from msgraph.generated.models.temporary_access_pass_authentication_method_configuration import (
    TemporaryAccessPassAuthenticationMethodConfiguration,
)
from msgraph.graph_service_client import GraphServiceClient

from tests.sim.conftest import DOMAIN, TENANT_ID, SimTenant, graph_client

TAP_ADMIN = "5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c"
TAP_SECRET = "tap-admin-secret"
REFUSED = (
    "Converged UserCredentialPolicy does not allow creating or updating this authentication method. "
    "AuthMethodType [TemporaryAccessPass]."
)


def tap_admin(tenant: SimTenant) -> ClientSecretCredential:
    body = {
        "clientSecret": TAP_SECRET,
        "roles": ["UserAuthenticationMethod.ReadWrite.All", "Policy.ReadWrite.AuthenticationMethod"],
    }
    resp = tenant.sim.control("PUT", f"/_sim/tenants/{TENANT_ID}/clients/{TAP_ADMIN}", json=body)
    assert resp.status_code in (200, 201), resp.text
    return tenant.credential(ClientSecretCredential, secret=TAP_SECRET, client_id=TAP_ADMIN)


def set_policy(tenant: SimTenant, **policy: Any) -> dict[str, Any]:
    resp = tenant.sim.control("PUT", f"/_sim/tenants/{TENANT_ID}/policies/temporaryAccessPass", json=policy)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def passes(graph: GraphServiceClient, upn: str) -> Any:
    return graph.users.by_user_id(upn).authentication.temporary_access_pass_methods


async def test_a_pass_is_refused_while_the_tenants_policy_is_disabled(tenant: SimTenant) -> None:
    """The Temporary Access Pass policy starts disabled; creating a pass is then refused (Entra's "Converged
    UserCredentialPolicy does not allow ..."). Enabling it (temporaryaccesspassauthenticationmethodconfiguration-
    update) lets the same request through."""
    async with graph_client(tenant, tap_admin(tenant)) as graph:
        configurations = graph.policies.authentication_methods_policy.authentication_method_configurations
        policy = await configurations.by_authentication_method_configuration_id("TemporaryAccessPass").get()
        assert isinstance(policy, TemporaryAccessPassAuthenticationMethodConfiguration)
        assert policy.state == AuthenticationMethodState.Disabled and policy.default_lifetime_in_minutes == 60
        with pytest.raises(ODataError) as refused:
            await passes(graph, f"user0001@{DOMAIN}").post(TemporaryAccessPassAuthenticationMethod())
        assert refused.value.response_status_code == 400
        assert refused.value.error is not None and refused.value.error.message == REFUSED
        await configurations.by_authentication_method_configuration_id("TemporaryAccessPass").patch(
            TemporaryAccessPassAuthenticationMethodConfiguration(state=AuthenticationMethodState.Enabled)
        )
        created = await passes(graph, f"user0001@{DOMAIN}").post(TemporaryAccessPassAuthenticationMethod())
        assert created is not None and created.lifetime_in_minutes == 60  # the policy's default


async def test_a_pass_is_shown_once_listed_without_it_replaced_and_deleted(tenant: SimTenant) -> None:
    """authentication-post-temporaryaccesspassmethods: 201 with temporaryAccessPass (defaultLength 8), usable now;
    the list never shows the pass; a second pass replaces the first ("A user can only have one Temporary Access
    Pass"); temporaryaccesspassauthenticationmethod-delete: 204. Without UserAuthenticationMethod.ReadWrite.All:
    403."""
    set_policy(tenant, state="enabled")
    async with graph_client(tenant, tap_admin(tenant)) as graph:
        created = await passes(graph, f"user0002@{DOMAIN}").post(
            TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=120, is_usable_once=True)
        )
        assert created is not None and created.id and created.temporary_access_pass
        assert len(created.temporary_access_pass) == 8
        assert created.is_usable is True and created.method_usability_reason == "EnabledByPolicy"
        assert created.is_usable_once is True and created.lifetime_in_minutes == 120
        listed = await passes(graph, f"user0002@{DOMAIN}").get()
        assert listed is not None and [m.id for m in listed.value or []] == [created.id]
        assert listed.value and listed.value[0].temporary_access_pass is None
        replacement = await passes(graph, f"user0002@{DOMAIN}").post(
            TemporaryAccessPassAuthenticationMethod()
        )
        assert replacement is not None and replacement.temporary_access_pass != created.temporary_access_pass
        listed = await passes(graph, f"user0002@{DOMAIN}").get()
        assert listed is not None and [m.id for m in listed.value or []] == [replacement.id]
        await (
            passes(graph, f"user0002@{DOMAIN}")
            .by_temporary_access_pass_authentication_method_id(str(replacement.id))
            .delete()
        )
        assert (await passes(graph, f"user0002@{DOMAIN}").get()).value == []
    async with graph_client(tenant) as plain:  # User.ReadWrite.All and the like do not reach auth methods
        with pytest.raises(ODataError) as denied:
            await passes(plain, f"user0002@{DOMAIN}").post(TemporaryAccessPassAuthenticationMethod())
        assert denied.value.response_status_code == 403


async def test_lifetime_and_one_time_use_follow_the_api_and_the_policy(tenant: SimTenant) -> None:
    """lifetimeInMinutes "Must be between 10 and 43200" and within the policy's minimum and maximum; a multi-use
    pass "can only be created ... if it is allowed by the Temporary Access Pass authentication method policy"."""
    set_policy(tenant, state="enabled", minimumLifetimeInMinutes=10, maximumLifetimeInMinutes=43200)
    async with graph_client(tenant, tap_admin(tenant)) as graph:
        for minutes in (10, 43200):
            made = await passes(graph, f"user0003@{DOMAIN}").post(
                TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=minutes)
            )
            assert made is not None and made.lifetime_in_minutes == minutes
        for minutes in (9, 43201):
            with pytest.raises(ODataError) as bad:
                await passes(graph, f"user0003@{DOMAIN}").post(
                    TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=minutes)
                )
            assert bad.value.response_status_code == 400, minutes
        set_policy(tenant, minimumLifetimeInMinutes=60, maximumLifetimeInMinutes=480, isUsableOnce=True)
        for body in (
            TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=30),  # under the policy's minimum
            TemporaryAccessPassAuthenticationMethod(is_usable_once=False),  # the policy wants one-time passes
        ):
            with pytest.raises(ODataError) as refused:
                await passes(graph, f"user0003@{DOMAIN}").post(body)
            assert refused.value.error is not None and refused.value.error.message == REFUSED


async def test_a_pass_expires_on_the_simulators_clock(tenant: SimTenant) -> None:
    """temporaryAccessPassAuthenticationMethod: isUsable / methodUsabilityReason (EnabledByPolicy, Expired) as
    time passes; the simulator's clock moves it."""
    set_policy(tenant, state="enabled")
    async with graph_client(tenant, tap_admin(tenant)) as graph:
        made = await passes(graph, f"user0004@{DOMAIN}").post(
            TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=60)
        )
        assert made is not None and made.is_usable is True
    tenant.clock(2 * 3600)
    async with graph_client(tenant, tap_admin(tenant)) as graph:
        listed = await passes(graph, f"user0004@{DOMAIN}").get()
        assert listed is not None and listed.value
        assert (listed.value[0].is_usable, listed.value[0].method_usability_reason) == (False, "Expired")
