"""The demo world the local stack and the end-to-end tests run on.

Two tenants in the simulated cloud:
- Warden's own: it owns the Key Vault (its local identity stands in for the Function App's managed identity)
  and holds Warden's API app registration (App ID URI ``api://warden-local``, app roles ``Warden.Admin`` and
  ``Warden.Reader``) with two dev clients granted one role each, whose tokens call the admin API, and two people
  who sign in to the console (``admin@`` holds ``Warden.Admin``, ``reader@`` ``Warden.Reader``: the tenant's seeded
  ``user0001`` and ``user0002``); the API app is also the console's confidential client (its secret in Key Vault);
- a demo M365 tenant, Contoso (``contoso.example``, the default, and ``sso.contoso.example`` to federate), whose app
  registration Warden uses to reach Graph; its seeded ``user0001`` is the tenant's Global Administrator.
Client secrets are generated when the world is first made and stored only where they belong: the demo app's
secret in Key Vault, the local identity's in the process environment (in Azure: a managed identity), all of them
in ``.local/dev-clients.json`` (git-ignored, readable by its owner only) for ``make token`` and the next start.

Seeding is idempotent: against a simulated cloud that kept its world (``make run`` a second time), the tenants are
left as they are and each app registration is re-declared with ``PUT /_sim/tenants/{id}/clients/{id}``, which adds
the secret it is given when the app does not hold it yet and never removes one. A secret Warden stored earlier
(the connected directory's, in Key Vault) so stays valid.
"""

from __future__ import annotations

import secrets
import ssl
import sys
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
SSO_DOMAIN = "sso.contoso.example"
"""A verified, non-default domain of the demo tenant, to federate (README's single sign-on walkthrough)."""
DEMO_ADMIN = "user0001@contoso.example"
"""The demo tenant's Global Administrator: a protected account, and the admin who keeps a password sign-in."""
API_CLIENT_ID = "6c1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
API_URI = "api://warden-local"
API_SCOPE = f"{API_URI}/.default"
DEV_ADMIN_CLIENT_ID = "0b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4"
DEV_READER_CLIENT_ID = "1c8d0e2f-3a4b-4c5d-9e7f-8091a2b3c4d5"
ROLE_CLIENTS = {"admin": DEV_ADMIN_CLIENT_ID, "reader": DEV_READER_CLIENT_ID}
HOME_DOMAIN = "warden.example"
CONSOLE_PEOPLE = {"admin": f"user0001@{HOME_DOMAIN}", "reader": f"user0002@{HOME_DOMAIN}"}
"""Role ("admin", "reader") → the person of Warden's tenant who signs in to the console with it."""
CONSOLE_SECRET_NAME = "console-client-secret"
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
    "Application.Read.All",
    "RoleManagement.Read.Directory",
]


@dataclass(frozen=True)
class DemoSecrets:
    """The demo world's client secrets."""

    local_identity: str
    demo_client: str
    dev_clients: dict[str, str]
    """Role ("admin", "reader") → the dev client's secret."""
    console_client: str

    def __repr__(self) -> str:  # secrets never reach a log through repr()
        return "DemoSecrets(…)"

    @classmethod
    def fresh(cls) -> DemoSecrets:
        return cls(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            {role: secrets.token_urlsafe(32) for role in ROLE_CLIENTS},
            secrets.token_urlsafe(32),
        )


@dataclass(frozen=True)
class DemoWorld:
    sim_url: str
    ca_bundle: Path
    local_identity_secret: str
    demo_client_secret: str
    dev_client_secrets: dict[str, str]
    """Role ("admin", "reader") → the dev client's secret."""
    console_client_secret: str

    def __repr__(self) -> str:  # secrets never reach a log through repr()
        return f"DemoWorld(sim_url={self.sim_url!r})"

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
            "WARDEN_API_TENANT_ID": HOME_TENANT_ID,
            "WARDEN_API_AUDIENCE": f"{API_URI},{API_CLIENT_ID}",
            "WARDEN_CONSOLE_CLIENT_ID": API_CLIENT_ID,
            "WARDEN_CONSOLE_SECRET_NAME": CONSOLE_SECRET_NAME,
            "WARDEN_RECONCILE_SCHEDULE": "0 0 2 * * *",
            "WARDEN_DRIFT_SCHEDULE": "0 */10 * * * *",
            "WARDEN_DATES_SCHEDULE": "0 */5 * * * *",
            "WARDEN_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        }

    def token(self, role: str = "admin") -> str:
        """A bearer token for the admin API from the dev client holding ``role``'s app role."""
        return admin_token(self.sim_url, self.ca_bundle, ROLE_CLIENTS[role], self.dev_client_secrets[role])


def _tenant(
    tenant_id: str,
    name: str,
    domain: str,
    clients: list[dict[str, Any]],
    *,
    seed_users: int,
    key_vault: bool,
    more_domains: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "tenantId": tenant_id,
        "displayName": name,
        "domains": [
            {"id": domain, "isDefault": True, "isVerified": True, "authenticationType": "Managed"},
            *(
                {"id": d, "isDefault": False, "isVerified": True, "authenticationType": "Managed"}
                for d in more_domains
            ),
        ],
        "onPremisesSyncEnabled": None,  # never synced from on-premises (organization resource)
        "clients": clients,
        "seedUsers": seed_users,
        "keyVault": key_vault,
    }


def seed(
    sim_url: str, ca_bundle: Path, *, seed_users: int = 25, remembered: DemoSecrets | None = None
) -> DemoWorld:
    """Make the demo world in the simulated cloud, or bring a kept one up to date (idempotent), and put the demo
    app's secret in Key Vault. ``remembered``: the secrets of an earlier start, reused; fresh ones otherwise."""
    given = remembered or DemoSecrets.fresh()
    world = DemoWorld(
        sim_url,
        ca_bundle,
        given.local_identity,
        given.demo_client,
        dict(given.dev_clients),
        given.console_client,
    )
    api_clients: list[dict[str, Any]] = [
        {
            "clientId": API_CLIENT_ID,
            "displayName": "Warden API",
            "identifierUris": [API_URI],
            "appRoles": ["Warden.Admin", "Warden.Reader"],
            # The console signs people in as this app (a confidential client: authorization code + PKCE); no
            # redirect URI registered means any loopback one, as the local hosts' ports vary.
            "clientSecret": world.console_client_secret,
            "scopes": ["user_impersonation"],
            "keyVaultAccess": False,
        },
        *(
            {
                "clientId": client_id,
                "displayName": f"Warden dev {role}",
                "clientSecret": world.dev_client_secrets[role],
                "appRoleAssignments": {API_URI: ["Warden.Admin" if role == "admin" else "Warden.Reader"]},
                "keyVaultAccess": False,
            }
            for role, client_id in ROLE_CLIENTS.items()
        ),
    ]
    home = _tenant(
        HOME_TENANT_ID,
        "Warden (local)",
        HOME_DOMAIN,
        [
            {"clientId": LOCAL_IDENTITY_CLIENT_ID, "clientSecret": world.local_identity_secret, "roles": []},
            *api_clients,
        ],
        seed_users=len(CONSOLE_PEOPLE),
        key_vault=True,
    )
    demo = _tenant(
        DEMO_TENANT_ID,
        "Contoso (demo)",
        DEMO_DOMAIN,
        [
            {
                "clientId": DEMO_CLIENT_ID,
                "clientSecret": world.demo_client_secret,
                "roles": DEMO_ROLES,
                "scopes": DEMO_ROLES,  # the same permissions delegated: the demo tenant can be connected either way
            }
        ],
        seed_users=seed_users,
        key_vault=False,
        more_domains=(SSO_DOMAIN,),
    )
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(ca_bundle)), timeout=30, trust_env=False
    ) as http:
        existing = {
            t["tenantId"] for t in http.get(f"{sim_url}/_sim/tenants").raise_for_status().json()["value"]
        }
        for body in (home, demo):
            if body["tenantId"] not in existing:
                http.post(f"{sim_url}/_sim/tenants", json=body).raise_for_status()
                if body is demo and seed_users:
                    admin = {"principal": DEMO_ADMIN, "role": "Global Administrator"}
                    http.post(
                        f"{sim_url}/_sim/tenants/{DEMO_TENANT_ID}/roleAssignments", json=admin
                    ).raise_for_status()
                continue
            for client in body["clients"]:
                url = f"{sim_url}/_sim/tenants/{body['tenantId']}/clients/{client['clientId']}"
                http.put(url, json=client).raise_for_status()
        for role, person in CONSOLE_PEOPLE.items():  # idempotent: an assignment made again changes nothing
            assignment = {
                "principal": person,
                "resource": API_URI,
                "appRole": "Warden.Admin" if role == "admin" else "Warden.Reader",
            }
            answer = http.post(f"{sim_url}/_sim/tenants/{HOME_TENANT_ID}/appRoleAssignments", json=assignment)
            if answer.status_code == 404:  # a world kept from before the console had its people
                print(
                    f"the kept local world has no {person}: the console's sign-in needs a new world (`make clean`)",
                    file=sys.stderr,
                )
                continue
            answer.raise_for_status()
    _store_demo_secret(world)
    return world


def _store_demo_secret(world: DemoWorld) -> None:
    """The demo app's and the console's secrets in Key Vault, unless they are there already (a kept world)."""
    from azure.core.exceptions import ResourceNotFoundError
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
        for name, value in (
            (DEMO_SECRET_NAME, world.demo_client_secret),
            (CONSOLE_SECRET_NAME, world.console_client_secret),
        ):
            try:
                stored = client.get_secret(name).value
            except ResourceNotFoundError:
                stored = None
            if stored != value:
                client.set_secret(name, value)


def admin_token(sim_url: str, ca_bundle: Path, client_id: str, client_secret: str) -> str:
    """Client credentials for the admin API (``api://warden-local/.default``) from Warden's tenant."""
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(ca_bundle)), timeout=30, trust_env=False
    ) as http:
        response = http.post(
            f"{sim_url}/{HOME_TENANT_ID}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": API_SCOPE,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])
