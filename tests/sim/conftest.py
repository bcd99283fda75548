"""Fixtures for the simulator's HTTP-level tests: a freshly reset simulator with one standard tenant.

The session-wide ``sim`` fixture (tests/conftest.py) starts ``python -m tools.m365sim``; tests here reset it
and create what they need through the control API, then talk to it with Microsoft's own client libraries
(MSAL, azure-identity, azure-keyvault-secrets, msgraph-sdk) and raw httpx only where no client exposes
the detail under test.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msal  # type: ignore[import-untyped]
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.identity.aio import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from tests.conftest import Sim

TENANT_ID = "7f3c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
SECRET = "sim-test-secret-ÄÖ+/=:%"
OTHER_CLIENT_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
OTHER_SECRET = "other-secret"
DOMAIN = "contoso.example"
UNVERIFIED = "unverified.example"
ROLES = [
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "Domain.ReadWrite.All",
    "Organization.Read.All",
    "User.RevokeSessions.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.EnableDisableAccount.All",
    "Directory.ReadWrite.All",
]
REDIRECT = "http://localhost:8765/callback"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
VAULT_SCOPE = "https://vault.azure.net/.default"
SEED_USERS = 12
Credential = TypeVar("Credential")


def tenant_body(tenant_id: str = TENANT_ID, domain: str = DOMAIN, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenantId": tenant_id,
        "displayName": "Contoso (sim tests)",
        "domains": [
            {"id": domain, "isDefault": True, "isVerified": True, "authenticationType": "Managed"},
            {
                "id": f"un{domain}" if domain != DOMAIN else UNVERIFIED,
                "isDefault": False,
                "isVerified": False,
                "authenticationType": "Managed",
            },
        ],
        "onPremisesSyncEnabled": False,
        "clients": [
            {
                "clientId": CLIENT_ID,
                "clientSecrets": [SECRET, SECRET + "-2"],
                "roles": ROLES,
                "redirectUris": [REDIRECT],
            },
            {"clientId": OTHER_CLIENT_ID, "clientSecret": OTHER_SECRET, "roles": ROLES},
        ],
        "seedUsers": SEED_USERS,
        "keyVault": True,
    }
    body.update(overrides)
    return body


def client_credentials(**overrides: str) -> dict[str, str]:
    """The client-credentials token request form of the standard client for Graph, keys replaced by
    ``overrides``."""
    return {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": GRAPH_SCOPE,
        **overrides,
    }


def http_session(ca: str) -> requests.Session:
    """For MSAL: this machine sets REQUESTS_CA_BUNDLE, which overrides ``verify`` on a trust_env session."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    return session


@dataclass
class SimTenant:
    sim: Sim
    tenant_id: str = TENANT_ID
    client_id: str = CLIENT_ID
    secret: str = SECRET
    domain: str = DOMAIN

    @property
    def authority(self) -> str:
        return f"{self.sim.url}/{self.tenant_id}"

    def msal(
        self, client_id: str | None = None, secret: str | None = None, authority: str | None = None
    ) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            client_id or self.client_id,
            client_credential=secret or self.secret,
            authority=authority or self.authority,
            http_client=http_session(self.sim.ca),
            instance_discovery=False,
            token_cache=msal.TokenCache(),
        )

    def token(self, scope: str = GRAPH_SCOPE, client_id: str | None = None, secret: str | None = None) -> str:
        result = self.msal(client_id, secret).acquire_token_for_client([scope])
        assert "access_token" in result, result
        return str(result["access_token"])

    def credential(
        self,
        cls: Callable[..., Credential],
        secret: str | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
    ) -> Credential:
        """An azure-identity ClientSecretCredential (``cls``: the sync or the aio one) on the simulated authority."""
        return cls(
            tenant_id or self.tenant_id,
            client_id or self.client_id,
            secret or self.secret,
            authority=self.sim.url,
            connection_verify=self.sim.ca,
            disable_instance_discovery=True,
        )

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.sim.url,
            verify=ssl.create_default_context(cafile=self.sim.ca),
            timeout=30,
            trust_env=False,
        )

    def token_request(
        self, form: dict[str, str], segment: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST a raw form to the token endpoint of ``segment`` (this tenant's id unless given), for what MSAL
        would not send or would hide."""
        with self.http() as client:
            return client.post(f"/{segment or self.tenant_id}/oauth2/v2.0/token", data=form, headers=headers)

    def graph(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        headers.setdefault("Authorization", f"Bearer {token or self.token()}")
        with self.http() as client:
            return client.request(method, f"/v1.0{path}", headers=headers, **kwargs)

    def faults(self, **knobs: Any) -> dict[str, Any]:
        resp = self.sim.control("PUT", "/_sim/faults", json=knobs)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def clock(self, offset_seconds: float) -> None:
        resp = self.sim.control("PUT", "/_sim/clock", json={"offsetSeconds": offset_seconds})
        assert resp.status_code == 200, resp.text

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        resp = self.sim.control("GET", f"/_sim/requests?since={since}")
        resp.raise_for_status()
        return list(resp.json()["value"])


class StaticToken:
    """An async azure-identity style credential that hands out one given token (a delegated one from MSAL, or a
    token the test wants Graph to judge), so that msgraph-sdk sends exactly it."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None


@asynccontextmanager
async def graph_client(tenant: SimTenant, credential: Any = None) -> AsyncIterator[GraphServiceClient]:
    """The real msgraph-sdk on the simulator: the standard client's app-only credential unless ``credential`` is
    given. kiota's RetryHandler is switched off so that a 429 or 503 reaches the test."""
    credential = credential or tenant.credential(ClientSecretCredential)
    # msgraph-sdk silently sends no token to hosts outside allowed_hosts.
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=tenant.sim.ca), trust_env=False, timeout=30
        ),
        options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False)},
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{tenant.sim.url}/v1.0"
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http.aclose()
        await credential.close()


def create_tenant(sim: Sim, body: dict[str, Any]) -> SimTenant:
    """Create a tenant through the control API (201 expected); its standard client, on its default domain."""
    resp = sim.control("POST", "/_sim/tenants", json=body)
    assert resp.status_code == 201, resp.text
    default = next(d["id"] for d in body["domains"] if d["isDefault"])
    return SimTenant(sim, tenant_id=body["tenantId"], domain=default)


@pytest.fixture
def clean_sim(sim: Sim) -> Iterator[Sim]:
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture
def tenant(clean_sim: Sim) -> SimTenant:
    return create_tenant(clean_sim, tenant_body())
