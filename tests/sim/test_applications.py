"""App registrations and their credentials, through msgraph-sdk and MSAL.

Pages followed (each test names its own):
- https://learn.microsoft.com/en-us/graph/api/application-get (``/applications(appId='…')``, ``$select``)
- https://learn.microsoft.com/en-us/graph/api/application-addpassword, application-removepassword,
  resources/passwordcredential (``hint``, ``secretText`` shown once, ``endDateTime`` default start + 2 years)
- https://learn.microsoft.com/en-us/graph/api/resources/keycredential, application-update (keyCredentials)
- https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials (client assertions, RFC 7523)
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes (AADSTS7000215, 7000222, 700027)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msal  # type: ignore[import-untyped]
import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.application_item_request_builder import ApplicationItemRequestBuilder
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.applications_with_app_id.applications_with_app_id_request_builder import (
    ApplicationsWithAppIdRequestBuilder,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential

from tests.sim.conftest import (
    CLIENT_ID,
    GRAPH_SCOPE,
    SECRET,
    TENANT_ID,
    SimTenant,
    graph_client,
    http_session,
)
from tools.selfsigned import self_signed

DAY = 86400
LIMITED_CLIENT = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"


def by_app_id_query(*select: str) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=ApplicationsWithAppIdRequestBuilder.ApplicationsWithAppIdRequestBuilderGetQueryParameters(
            select=list(select)
        )
    )


def token_result(tenant: SimTenant, credential: Any, client_id: str = CLIENT_ID) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=tenant.authority,
        http_client=http_session(tenant.sim.ca),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )
    return dict(app.acquire_token_for_client([GRAPH_SCOPE]))


def add_client(tenant: SimTenant, client_id: str, **spec: Any) -> None:
    resp = tenant.sim.control("PUT", f"/_sim/tenants/{TENANT_ID}/clients/{client_id}", json=spec)
    assert resp.status_code in (200, 201), resp.text


async def test_an_app_registration_is_readable_by_id_and_by_app_id_with_select(tenant: SimTenant) -> None:
    """application-get: ``GET /applications/{id}`` and ``GET /applications(appId='{appId}')`` with ``$select``;
    passwordCredentials show keyId, hint (the first three characters), start and end, never the secret."""
    async with graph_client(tenant) as graph:
        listed = await graph.applications.get()
        assert listed is not None and listed.value is not None
        mine = next(a for a in listed.value if a.app_id == CLIENT_ID)
        selected = await graph.applications_with_app_id(CLIENT_ID).get(
            request_configuration=by_app_id_query("id", "appId", "passwordCredentials", "keyCredentials")
        )
        assert selected is not None and selected.id == mine.id and selected.app_id == CLIENT_ID
        assert selected.display_name is None  # not selected
        credentials = selected.password_credentials or []
        assert len(credentials) == 2 and {c.hint for c in credentials} == {SECRET[:3]}
        for c in credentials:
            assert c.secret_text is None and c.key_id is not None
            assert c.start_date_time and c.end_date_time
            assert abs((c.end_date_time - c.start_date_time).days - 730) <= 1  # start + 2 years
        by_id = await graph.applications.by_application_id(str(mine.id)).get()
        assert by_id is not None and by_id.app_id == CLIENT_ID
        with pytest.raises(ODataError) as missing:
            await graph.applications_with_app_id("99999999-9999-4999-8999-999999999999").get()
        assert missing.value.response_status_code == 404


async def test_add_password_shows_the_secret_once_and_the_token_endpoint_honours_its_window(
    tenant: SimTenant,
) -> None:
    """application-addpassword returns ``secretText`` once (GET shows only its hint); the token endpoint accepts
    it inside its window and, past ``endDateTime`` on the simulator's clock, answers 401 invalid_client
    AADSTS7000222; a wrong secret is AADSTS7000215 (reference-error-codes); after application-removepassword the
    secret is refused."""
    async with graph_client(tenant) as graph:
        app = await graph.applications_with_app_id(CLIENT_ID).get()
        assert app is not None and app.id
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
        added = await graph.applications.by_application_id(app.id).add_password.post(
            AddPasswordPostRequestBody(
                password_credential=PasswordCredential(display_name="rotation", end_date_time=ends)
            )
        )
        assert added is not None and added.secret_text and added.key_id
        secret = added.secret_text
        assert 16 <= len(secret) <= 64 and added.hint == secret[:3] and added.display_name == "rotation"
        assert added.end_date_time is not None and abs((added.end_date_time - ends).total_seconds()) < 2
        again = await graph.applications.by_application_id(app.id).get()
        assert again is not None
        shown = next(c for c in again.password_credentials or [] if c.key_id == added.key_id)
        assert shown.secret_text is None and shown.hint == secret[:3]

        assert "access_token" in token_result(tenant, secret)
        wrong = token_result(tenant, secret + "x")
        assert wrong["error"] == "invalid_client" and wrong["error_codes"] == [7000215]
        tenant.clock(6 * DAY)
        expired = token_result(tenant, secret)
        assert expired["error"] == "invalid_client" and expired["error_codes"] == [7000222]
        assert "are expired" in expired["error_description"]
        assert "access_token" in token_result(tenant, SECRET)  # the app's other secrets still work
        tenant.clock(0)

        await graph.applications.by_application_id(app.id).remove_password.post(
            RemovePasswordPostRequestBody(key_id=added.key_id)
        )
        removed = token_result(tenant, secret)
        assert removed["error_codes"] == [7000215]
        with pytest.raises(ODataError) as unknown:
            await graph.applications.by_application_id(app.id).remove_password.post(
                RemovePasswordPostRequestBody(key_id=added.key_id)
            )
        assert unknown.value.response_status_code == 400


async def test_certificate_credentials_sign_client_assertions(tenant: SimTenant) -> None:
    """certificate-credentials: a certificate added to keyCredentials (application-update) lets MSAL authenticate
    with a signed client assertion, named by ``x5t#S256`` (PS256) or ``x5t`` (RS256); an unregistered certificate,
    or a registered one past its endDateTime on the simulator's clock, is AADSTS700027. keyCredential.key is
    returned only when selected on a single application (resources/keycredential)."""
    cert = self_signed("Warden connector", days=30)
    stranger = self_signed("Someone else")
    async with graph_client(tenant) as graph:
        app = await graph.applications_with_app_id(CLIENT_ID).get()
        assert app is not None and app.id
        await graph.applications.by_application_id(app.id).patch(
            Application(
                key_credentials=[KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=cert.der)]
            )
        )
        full = await graph.applications.by_application_id(app.id).get(
            request_configuration=RequestConfiguration(
                query_parameters=ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
                    select=["keyCredentials"]
                )
            )
        )
        assert full is not None and full.key_credentials and full.key_credentials[0].key == cert.der
        plain = await graph.applications.by_application_id(app.id).get()
        assert plain is not None and plain.key_credentials and plain.key_credentials[0].key is None
        registered = plain.key_credentials[0]
        assert registered.end_date_time is not None and registered.start_date_time is not None
        assert 29 <= (registered.end_date_time - dt.datetime.now(dt.UTC)).days <= 30

    assert "access_token" in token_result(tenant, cert.msal_credential())
    assert "access_token" in token_result(tenant, cert.msal_credential(sha1_only=True))
    unknown = token_result(tenant, stranger.msal_credential())
    assert unknown["error"] == "invalid_client" and unknown["error_codes"] == [700027]
    assert "key was not found" in unknown["error_description"]
    tenant.clock(31 * DAY)
    expired = token_result(tenant, cert.msal_credential())
    assert expired["error_codes"] == [700027] and "expired" in expired["error_description"]


async def test_a_certificate_that_is_not_one_is_refused(tenant: SimTenant) -> None:
    """application-update: keyCredentials hold X.509 certificates; anything else is 400, nothing stored."""
    async with graph_client(tenant) as graph:
        app = await graph.applications_with_app_id(CLIENT_ID).get()
        assert app is not None and app.id
        with pytest.raises(ODataError) as bad:
            await graph.applications.by_application_id(app.id).patch(
                Application(
                    key_credentials=[KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=b"nope")]
                )
            )
        assert bad.value.response_status_code == 400
        after = await graph.applications.by_application_id(app.id).get()
        assert after is not None and after.key_credentials == []


async def test_reading_applications_needs_application_read_all(tenant: SimTenant) -> None:
    """application-get / application-addpassword permissions: Application.Read.All reads, Application.ReadWrite.All
    writes; without them Graph answers 403 Authorization_RequestDenied."""
    add_client(tenant, LIMITED_CLIENT, clientSecret="limited-secret", roles=["User.Read.All"])
    reader = "4d5e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f7a"
    add_client(tenant, reader, clientSecret="reader-secret", roles=["Application.Read.All"])
    limited = tenant.credential(ClientSecretCredential, secret="limited-secret", client_id=LIMITED_CLIENT)
    async with graph_client(tenant, limited) as graph:
        with pytest.raises(ODataError) as denied:
            await graph.applications.get()
        assert denied.value.response_status_code == 403
        assert denied.value.error is not None and denied.value.error.code == "Authorization_RequestDenied"
    readonly = tenant.credential(ClientSecretCredential, secret="reader-secret", client_id=reader)
    async with graph_client(tenant, readonly) as graph:
        app = await graph.applications_with_app_id(CLIENT_ID).get()
        assert app is not None and app.id
        with pytest.raises(ODataError) as cannot_write:
            await graph.applications.by_application_id(app.id).add_password.post(AddPasswordPostRequestBody())
        assert cannot_write.value.response_status_code == 403
