"""Key Vault access. Every secret Warden holds lives here and nowhere else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.identity import client_secret_credential

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient

    from shared.config import Settings


def vault_credential(settings: Settings) -> AsyncTokenCredential:
    """Managed identity in Azure (DefaultAzureCredential); a client secret identity locally."""
    from azure.identity.aio import DefaultAzureCredential

    identity = settings.local_identity
    if identity is None:
        return DefaultAzureCredential()
    return client_secret_credential(
        settings.authority_host,
        settings.ca_bundle,
        identity.tenant_id,
        identity.client_id,
        identity.client_secret,
    )


def secret_client(settings: Settings, credential: AsyncTokenCredential) -> SecretClient:
    from azure.keyvault.secrets.aio import SecretClient

    # The SDK checks that the challenge's resource domain matches the vault's host; a vault on 127.0.0.1
    # (the simulated cloud) never can, so that check is a setting, on by default.
    return SecretClient(
        settings.key_vault_url,
        credential,
        verify_challenge_resource=settings.verify_key_vault_challenge,
        connection_verify=settings.tls_verify,
    )


async def read_secret(client: SecretClient, name: str) -> str:
    secret = await client.get_secret(name)
    if secret.value is None:
        raise LookupError(f"Key Vault secret {name!r} has no value")
    return secret.value
