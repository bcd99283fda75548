"""The HRIS webhook's signing secrets in Key Vault, and Standard Webhooks verification with them.

All secrets are one Key Vault secret (``hris-webhook-secrets``) holding JSON ``{"current", "previous",
"previousUntil"}``, so a rotation is one write: no reader ever sees a new current without its previous.
Reads are cached in-process for at most 60 s; a forced re-read (after a signature that matches nothing) goes to
Key Vault, at most once a second, so a flood of forged deliveries cannot turn into a flood of vault reads.

Verification is the ``standardwebhooks`` package's (HMAC-SHA256 over ``id.timestamp.body``, several
signatures per header, the 5-minute timestamp tolerance); its errors become ``SignatureRefused`` with a
detail a sender can act on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.service.hr.events import SignatureMismatch, SignatureRefused, SigningKeys

if TYPE_CHECKING:
    from azure.keyvault.secrets.aio import SecretClient

SECRET_NAME = "hris-webhook-secrets"
CACHE_SECONDS = 60.0
REREAD_COOLDOWN_SECONDS = 1.0
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def encode_keys(keys: SigningKeys) -> str:
    return json.dumps(
        {
            "current": keys.current,
            "previous": keys.previous,
            "previousUntil": keys.previous_until.isoformat() if keys.previous_until else None,
        },
        separators=(",", ":"),
    )


def decode_keys(value: str) -> SigningKeys:
    data: dict[str, Any] = json.loads(value)
    until = data.get("previousUntil")
    return SigningKeys(
        current=str(data["current"]),
        previous=data.get("previous") or None,
        previous_until=dt.datetime.fromisoformat(until) if until else None,
    )


class KeyVaultSigningKeys:
    """``SigningKeyStore`` on Key Vault, with the in-process cache."""

    def __init__(
        self,
        client: SecretClient,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = SECRET_NAME,
    ) -> None:
        self.client = client
        self.name = name
        self.monotonic = monotonic
        self._keys: SigningKeys | None = None
        self._read_at: float | None = None
        self._lock: asyncio.Lock | None = None

    async def read(self, *, fresh: bool = False) -> SigningKeys | None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one vault read at a time: concurrent callers share its answer
            if self._read_at is not None:
                age = self.monotonic() - self._read_at
                if age < (REREAD_COOLDOWN_SECONDS if fresh else CACHE_SECONDS):
                    return self._keys
            self._keys = await self._load()
            self._read_at = self.monotonic()
            return self._keys

    async def _load(self) -> SigningKeys | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            secret = await self.client.get_secret(self.name)
        except ResourceNotFoundError:
            return None
        return decode_keys(secret.value) if secret.value else None

    async def write(self, keys: SigningKeys) -> None:
        await self.client.set_secret(self.name, encode_keys(keys), content_type="application/json")
        self._keys, self._read_at = keys, self.monotonic()


_REASONS = {
    "Missing required headers": "the webhook-id, webhook-timestamp and webhook-signature headers are required "
    "(Standard Webhooks)",
    "Invalid Signature Headers": "webhook-timestamp must be the time of sending in Unix seconds",
    "Message timestamp too old": "webhook-timestamp is more than 5 minutes old: a delivery is signed when it is "
    "sent, retries included",
    "Message timestamp too new": "webhook-timestamp is more than 5 minutes in the future: check the sender's clock",
}
MISMATCH = "webhook-signature does not match the signing secret"


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> dt.datetime:
    """``SignatureVerifier`` with the ``standardwebhooks`` package: the delivery's ``webhook-timestamp``."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    wanted = {name: headers.get(name, "") for name in HEADERS}
    try:
        Webhook(secret).verify(body, wanted, json_parse=False)
    except UnicodeDecodeError:
        raise SignatureRefused("the body is not UTF-8, so its signature cannot be checked") from None
    except WebhookVerificationError as exc:
        reason = _REASONS.get(str(exc))
        if reason is not None:
            raise SignatureRefused(reason) from None
        raise SignatureMismatch(MISMATCH) from None
    except ValueError:  # a malformed signature list or base64: it matches nothing
        raise SignatureMismatch(MISMATCH) from None
    return dt.datetime.fromtimestamp(float(wanted["webhook-timestamp"]), dt.UTC)
