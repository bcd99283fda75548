"""Key Vault access. Every secret Warden holds lives here and nowhere else.

Key Vault offers no conditional write: each Set Secret adds a version
(https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/set-secret). What needs a compare-and-swap (the
delegated token caches, ``KeyVaultTokenCaches``) therefore keeps *which version is current* in Table Storage, whose
ETags are conditional, and reads the secret by that version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Self

from shared.adapters.own_identity import (
    azure_transport,
    client_secret_credential,
    managed_identity_credential,
)

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.secrets.aio import SecretClient

    from shared.config import Settings


def vault_credential(settings: Settings) -> RenewingCredential:
    """The Function App's managed identity in Azure; a client secret identity locally (``own_identity``)."""

    def make() -> AsyncTokenCredential:
        identity = settings.local_identity
        if identity is None:
            return managed_identity_credential(settings.ca_bundle)
        return client_secret_credential(
            settings.authority_host,
            settings.ca_bundle,
            identity.tenant_id,
            identity.client_id,
            identity.client_secret,
        )

    return RenewingCredential(make)


class RenewingCredential:
    """A token credential that can be replaced by a fresh one (a new token cache): what Key Vault answers 401
    although the token's own lifetime says it is valid (the vault and the token's issuer disagree about the time,
    or the token was revoked) is met with a token asked for anew, once (``RenewOnUnauthorized``)."""

    def __init__(self, make: Callable[[], AsyncTokenCredential]) -> None:
        self._make = make
        self._inner = make()

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return await self._inner.get_token(*scopes, **kwargs)

    async def renew(self) -> None:
        old, self._inner = self._inner, self._make()
        await old.close()

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


def renew_on_unauthorized(credential: RenewingCredential) -> Any:
    """A per-retry pipeline policy, around Key Vault's challenge policy (the SDK puts it just after the retry
    policy): a request still refused with 401 after the challenge policy sent it with a token renews the credential
    and goes once more, the challenge policy asking the renewed credential for its token."""
    from azure.core.pipeline.policies import AsyncHTTPPolicy

    class RenewOnUnauthorized(AsyncHTTPPolicy):  # type: ignore[type-arg]
        async def send(self, request: Any) -> Any:
            response = await self.next.send(request)
            carried = "authorization" in {k.lower() for k in request.http_request.headers}
            if response.http_response.status_code != 401 or not carried:
                return response
            await credential.renew()
            request.http_request.headers.pop("Authorization", None)
            return await self.next.send(request)

    return RenewOnUnauthorized()


def secret_client(settings: Settings, credential: RenewingCredential) -> SecretClient:
    from azure.keyvault.secrets.aio import SecretClient

    # The SDK checks that the challenge's resource domain matches the vault's host; a vault on 127.0.0.1
    # (the simulated cloud) never can, so that check is a setting, on by default.
    return SecretClient(
        settings.key_vault_url,
        credential,
        verify_challenge_resource=settings.verify_key_vault_challenge,
        connection_verify=settings.tls_verify,
        transport=azure_transport(settings.ca_bundle),
        per_retry_policies=[renew_on_unauthorized(credential)],
    )


async def read_secret(client: SecretClient, name: str) -> str:
    secret = await client.get_secret(name)
    if secret.value is None:
        raise LookupError(f"Key Vault secret {name!r} has no value")
    return secret.value


async def set_recovering(client: SecretClient, name: str, value: str, content_type: str) -> str:
    """Set Secret; a name left soft-deleted (409 ``ObjectIsDeletedButRecoverable``, e.g. with purge protection on)
    is recovered first, then given the new value. The new version's id."""
    from azure.core.exceptions import ResourceExistsError

    try:
        secret = await client.set_secret(name, value, content_type=content_type)
    except ResourceExistsError:
        await client.recover_deleted_secret(name)
        secret = await client.set_secret(name, value, content_type=content_type)
    return str(secret.properties.version)


class KeyVaultSecrets:
    """``SecretStore`` on Key Vault. Deleting a secret soft-deletes it and then purges it where the vault
    allows (a deactivated directory's credentials must not be recoverable by mistake)."""

    def __init__(self, client: SecretClient) -> None:
        self.client = client

    async def set(self, name: str, value: str) -> None:
        await set_recovering(self.client, name, value, "client-secret")

    async def delete_all(self, prefix: str) -> list[str]:
        """Delete (and purge where allowed) every secret whose name starts with ``prefix``; their names."""
        names = [
            p.name
            async for p in self.client.list_properties_of_secrets()
            if p.name and p.name.startswith(prefix)
        ]
        for name in names:
            await self.delete(name)
        return names

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


class Pointers(Protocol):
    """A small conditional register per directory (``shared.adapters.tables.directories``)."""

    async def read_state(self, directory_id: str, key: str) -> tuple[str, str] | None:
        """(value, ETag) or None."""

    async def swap_state(self, directory_id: str, key: str, value: str, etag: str | None) -> bool:
        """Write if the row is unchanged since ``etag`` (None: only if absent); False when it changed."""


TOKEN_CACHE = "tokencache"
MSAL_CACHE_TYPE = "application/vnd.msal.token-cache+json"


def token_cache_name(directory_id: str) -> str:
    return f"directory-{directory_id}-token-cache"


class KeyVaultTokenCaches:
    """``TokenCaches``: one Key Vault secret per directory, a version per stored cache, and the current version
    recorded in the directory's partition (``state|tokencache``) behind an ETag.

    Two instances refreshing at once each store a version; only the one whose ETag still matches becomes
    current, the other sees it lost and adopts the current cache (its own version is disabled, so no reader
    takes it for current). A rotation is never replaced by an older cache."""

    def __init__(self, client: SecretClient, pointers: Pointers) -> None:
        self.client = client
        self.pointers = pointers

    async def load(self, directory_id: str) -> tuple[str, str] | None:
        pointer = await self.pointers.read_state(directory_id, TOKEN_CACHE)
        if pointer is None:
            return None
        version = pointer[0]
        secret = await self.client.get_secret(token_cache_name(directory_id), version=version)
        if secret.value is None:
            return None
        return secret.value, version

    async def save(self, directory_id: str, cache: str, base: str | None) -> str | None:
        pointer = await self.pointers.read_state(directory_id, TOKEN_CACHE)
        current, etag = pointer if pointer is not None else (None, None)
        if current != base:
            return None
        return await self._store(directory_id, cache, etag)

    async def replace(self, directory_id: str, cache: str) -> str:
        for _ in range(5):
            pointer = await self.pointers.read_state(directory_id, TOKEN_CACHE)
            stored = await self._store(directory_id, cache, pointer[1] if pointer else None)
            if stored is not None:
                return stored
        raise RuntimeError("the token cache's pointer kept changing")

    async def _store(self, directory_id: str, cache: str, etag: str | None) -> str | None:
        name = token_cache_name(directory_id)
        version = await set_recovering(self.client, name, cache, MSAL_CACHE_TYPE)
        if await self.pointers.swap_state(directory_id, TOKEN_CACHE, version, etag):
            return version
        with contextlib.suppress(Exception):  # tidying only: the pointer never names this version
            await self.client.update_secret_properties(name, version, enabled=False)
        return None
