"""Key Vault access. Every secret Warden holds lives here and nowhere else."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from shared.adapters.identity import azure_transport, client_secret_credential

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient

    from shared.config import Settings


def vault_credential(settings: Settings) -> AsyncTokenCredential:
    """Managed identity in Azure (DefaultAzureCredential); a client secret identity locally."""
    from azure.identity.aio import DefaultAzureCredential

    identity = settings.local_identity
    if identity is None:
        return DefaultAzureCredential(transport=azure_transport(settings.ca_bundle))
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
        transport=azure_transport(settings.ca_bundle),
    )


async def read_secret(client: SecretClient, name: str) -> str:
    secret = await client.get_secret(name)
    if secret.value is None:
        raise LookupError(f"Key Vault secret {name!r} has no value")
    return secret.value


class KeyVaultSecrets:
    """``SecretStore`` on Key Vault. Deleting a secret soft-deletes it and then purges it where the vault
    allows (a deactivated directory's credentials must not be recoverable by mistake)."""

    def __init__(self, client: SecretClient) -> None:
        self.client = client

    async def set(self, name: str, value: str) -> None:
        await self.client.set_secret(name, value, content_type="client-secret")

    async def get(self, name: str) -> str:
        return await read_secret(self.client, name)

    async def find(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await read_secret(self.client, name)
        except ResourceNotFoundError:
            return None

    async def delete(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            await self.client.delete_secret(name)
        except ResourceNotFoundError:
            return
        # Purge protection on, or deletion still in progress: the secret stays soft-deleted.
        with contextlib.suppress(HttpResponseError):
            await self.client.purge_deleted_secret(name)
