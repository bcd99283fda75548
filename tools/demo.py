"""The demo world the local stack and the end-to-end tests run on.

Two tenants in the simulated cloud: Warden's own (it owns the Key Vault; its client stands in for the
Function App's managed identity) and a demo M365 tenant, Contoso, whose app registration Warden uses to
reach Graph. Client secrets are generated per run and stored only where they belong: the demo app's secret
in Key Vault, the local identity's secret in the process environment (in Azure: a managed identity).
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HOME_TENANT_ID = "5b7e0f8a-2c1d-4e6f-9a3b-0d4c8e2f1a60"
LOCAL_IDENTITY_CLIENT_ID = "4a1d2c3b-6e5f-4789-8abc-def012345601"
DEMO_TENANT_ID = "9c3b1a2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
DEMO_CLIENT_ID = "1f2e3d4c-5b6a-4798-8877-665544332211"
DEMO_SECRET_NAME = "directory-demo-client-secret"
DEMO_DOMAIN = "contoso.example"
DEMO_ROLES = [
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "Domain.ReadWrite.All",
    "Domain-InternalFederation.ReadWrite.All",
    "Organization.Read.All",
    "User.RevokeSessions.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.EnableDisableAccount.All",
]


@dataclass(frozen=True)
class DemoWorld:
    sim_url: str
    ca_bundle: Path
    local_identity_secret: str
    demo_client_secret: str

    def warden_settings(self, storage_connection: str) -> dict[str, str]:
        """Every setting Warden reads, pointing at this world (what local.settings.json holds)."""
        return {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": storage_connection,
            "WARDEN_KEY_VAULT_URL": f"{self.sim_url}/",
            "WARDEN_KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            "WARDEN_AUTHORITY_HOST": self.sim_url,
            "WARDEN_GRAPH_URL": f"{self.sim_url}/v1.0",
            "WARDEN_CA_BUNDLE": str(self.ca_bundle),
            "AZURE_TENANT_ID": HOME_TENANT_ID,
            "AZURE_CLIENT_ID": LOCAL_IDENTITY_CLIENT_ID,
            "AZURE_CLIENT_SECRET": self.local_identity_secret,
            "WARDEN_DEMO_TENANT_ID": DEMO_TENANT_ID,
            "WARDEN_DEMO_CLIENT_ID": DEMO_CLIENT_ID,
            "WARDEN_DEMO_SECRET_NAME": DEMO_SECRET_NAME,
        }


def _tenant(
    tenant_id: str, name: str, domain: str, client: dict[str, Any], *, seed_users: int, key_vault: bool
) -> dict[str, Any]:
    return {
        "tenantId": tenant_id,
        "displayName": name,
        "domains": [{"id": domain, "isDefault": True, "isVerified": True, "authenticationType": "Managed"}],
        "onPremisesSyncEnabled": False,
        "clients": [client],
        "seedUsers": seed_users,
        "keyVault": key_vault,
    }


def seed(sim_url: str, ca_bundle: Path, *, seed_users: int = 25) -> DemoWorld:
    """Create both tenants in a freshly started (or reset) simulator and put the demo secret in Key Vault."""
    world = DemoWorld(sim_url, ca_bundle, secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    home = _tenant(
        HOME_TENANT_ID,
        "Warden (local)",
        "warden.example",
        {"clientId": LOCAL_IDENTITY_CLIENT_ID, "clientSecret": world.local_identity_secret, "roles": []},
        seed_users=0,
        key_vault=True,
    )
    demo = _tenant(
        DEMO_TENANT_ID,
        "Contoso (demo)",
        DEMO_DOMAIN,
        {"clientId": DEMO_CLIENT_ID, "clientSecret": world.demo_client_secret, "roles": DEMO_ROLES},
        seed_users=seed_users,
        key_vault=False,
    )
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(ca_bundle)), timeout=30, trust_env=False
    ) as http:
        for body in (home, demo):
            http.post(f"{sim_url}/_sim/tenants", json=body).raise_for_status()
    _store_demo_secret(world)
    return world


def _store_demo_secret(world: DemoWorld) -> None:
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    credential = ClientSecretCredential(
        HOME_TENANT_ID,
        LOCAL_IDENTITY_CLIENT_ID,
        world.local_identity_secret,
        authority=world.sim_url,
        connection_verify=str(world.ca_bundle),
        disable_instance_discovery=True,
    )
    client = SecretClient(
        f"{world.sim_url}/",
        credential,
        verify_challenge_resource=False,
        connection_verify=str(world.ca_bundle),
    )
    with client:
        client.set_secret(DEMO_SECRET_NAME, world.demo_client_secret)
