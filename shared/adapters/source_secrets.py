"""HR sources' credentials in Key Vault: one secret per source (``hris-source-<id>``) holding the current credential
and, for 24 hours after a rotation, the previous one, as JSON (a rotation is one write). Read through the same
in-process cache as the built-in webhook's secret (at most 60 s old; a forced re-read at most once a second)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.adapters.webhook_secrets import KeyVaultSigningKeys
from shared.domain.sources import Credentials, HrSource
from shared.service.hr.events import SigningKeys

if TYPE_CHECKING:
    from azure.keyvault.secrets.aio import SecretClient


class KeyVaultSourceSecrets:
    """``SourceSecrets`` on Key Vault."""

    def __init__(self, client: SecretClient, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.monotonic = monotonic
        self._stores: dict[str, KeyVaultSigningKeys] = {}

    def _store(self, source: HrSource) -> KeyVaultSigningKeys:
        name = source.secret_name()
        if name not in self._stores:
            self._stores[name] = KeyVaultSigningKeys(self.client, monotonic=self.monotonic, name=name)
        return self._stores[name]

    async def read(self, source: HrSource, *, fresh: bool = False) -> Credentials | None:
        keys = await self._store(source).read(fresh=fresh)
        if keys is None:
            return None
        return Credentials(keys.current, keys.previous, keys.previous_until)

    async def write(self, source: HrSource, credentials: Credentials) -> None:
        keys = SigningKeys(credentials.current, credentials.previous, credentials.previous_until)
        await self._store(source).write(keys)

    async def delete(self, source: HrSource) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        self._stores.pop(source.secret_name(), None)
        try:
            await self.client.delete_secret(source.secret_name())
        except ResourceNotFoundError:
            return
        with contextlib.suppress(HttpResponseError):  # purge protection on: it stays soft-deleted
            await self.client.purge_deleted_secret(source.secret_name())
