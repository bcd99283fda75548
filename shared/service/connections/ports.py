"""The ports of the connection use cases: credentials and token caches (Key Vault), consent flows (MSAL), the
tenant's reads (Graph), deferred work (Table Storage), notifications, and the operator's log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shared.domain.connections import AppCredential, NotificationType
from shared.domain.model import Directory
from shared.domain.protection import RoleHolders
from shared.service.ports import TenantInfo

CredentialKindT = Literal["secret", "certificate"]


@dataclass(frozen=True)
class ClientCredential:
    """A confidential client's credential: a client secret, or a certificate with its private key (PEM)."""

    kind: CredentialKindT
    value: str

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"ClientCredential(kind={self.kind!r})"

    @property
    def hint(self) -> str | None:
        """What Graph shows of a secret (``passwordCredential.hint``: its first three characters)."""
        return self.value[:3] if self.kind == "secret" else None


@dataclass(frozen=True)
class Certificate:
    """A certificate credential as checked at the edge: the PEM (key and certificate, a secret) and what may be
    shown of it."""

    pem: str
    thumbprint: str
    """SHA-256 of the DER, hex (what MSAL sends as ``x5t#S256``)."""
    sha1: str
    """SHA-1 of the DER, base64: Graph's ``customKeyIdentifier``."""
    not_after: dt.datetime
    subject: str

    def __repr__(self) -> str:
        return f"Certificate(thumbprint={self.thumbprint!r}, not_after={self.not_after!r})"


class TenantCredentials(Protocol):
    """Checking credentials before Warden keeps them (``shared.adapters.tenant``)."""

    async def inspect(self, tenant_id: str, client_id: str, credential: ClientCredential) -> TenantInfo:
        """App-only: a client-credentials token, then the organisation, domains and the app's credentials.
        ``Invalid`` for credentials Entra refuses (naming its AADSTS code), ``Upstream`` when unreachable."""

    async def validate(self, tenant_id: str, client_id: str, credential: ClientCredential) -> None:
        """Delegated, before consent: only that Entra accepts the confidential client's credential."""


@dataclass(frozen=True)
class ConnectionCheck:
    """One connection check of the token refresh timer."""

    refreshed: bool
    """A delegated refresh token was redeemed (its 90-day window restarted)."""
    on_premises_sync_enabled: bool | None
    credentials: tuple[AppCredential, ...] | None
    """The app registration's credentials, or None when they could not be read (``unreadable`` says why)."""
    unreadable: str | None = None
    hint: str | None = None
    """The first characters of the client secret in use (to find it among the app's secrets)."""
    roles_read: bool = False
    """The check read the tenant's role holders too (rule 23), in the same ``$batch``: ``roles``, or
    ``roles_failure``."""
    roles: RoleHolders | None = None
    """The role holders as read; None (with ``roles_read``): the app may not read them."""
    roles_failure: str | None = None
    """Why Graph did not answer the role holders' reads (they count as not readable until the next check)."""


class DirectoryConnections(Protocol):
    """A connected directory's own connection (``shared.adapters.graph.DirectoryClients``)."""

    async def check(self, directory: Directory, *, refresh: bool) -> ConnectionCheck:
        """A token (from Entra, never a cache, when ``refresh``), then in one Graph request the organisation's
        ``onPremisesSyncEnabled`` and the app's credentials. ``CredentialRefused`` when Entra refuses."""

    async def read_tenant(self, directory: Directory) -> TenantInfo:
        """The organisation, domains and the app's credentials, with the directory's own connection."""

    async def forget(self, directory_id: str) -> None:
        """Drop the directory's client and credential (changed or deactivated)."""


class TokenCaches(Protocol):
    """Delegated directories' MSAL token caches, one Key Vault secret each; which version is current is recorded
    beside the directory with an ETag, so a writer that read an older version never replaces a newer one."""

    async def load(self, directory_id: str) -> tuple[str, str] | None:
        """(the cache, its version), or None when there is none."""

    async def save(self, directory_id: str, cache: str, base: str | None) -> str | None:
        """Store ``cache`` as the current version if the current one is still ``base`` (None: there was none);
        the new version, or None when another writer got there first (nothing replaced)."""

    async def replace(self, directory_id: str, cache: str) -> str:
        """Store ``cache`` as current whatever was there (a new consent)."""


@dataclass(frozen=True)
class Consented:
    """A completed consent: who signed in (the ID token's claims) and the token cache it produced (a secret)."""

    object_id: str
    user_principal_name: str
    tenant_id: str
    home_tenant_id: str | None
    """The signed-in user's home tenant when the ID token says (``idp`` of a guest); None for a member."""
    cache: str

    def __repr__(self) -> str:
        return f"Consented(object_id={self.object_id!r}, tenant_id={self.tenant_id!r})"


class ConsentRefused(Exception):
    """Entra's error for a sign-in (the authorize response's or the code redemption's)."""

    def __init__(self, error: str, codes: tuple[int, ...] = (), description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.codes = codes
        self.description = description


class ConsentFlows(Protocol):
    """The authorization-code flow (MSAL: PKCE S256, state, nonce)."""

    async def begin(
        self,
        tenant_id: str,
        client_id: str,
        credential: ClientCredential,
        *,
        redirect_uri: str,
        state: str,
        login_hint: str | None,
    ) -> tuple[str, str]:
        """(the authorize URL, the flow to keep server-side: it holds the PKCE verifier, a secret)."""

    async def complete(
        self,
        tenant_id: str,
        client_id: str,
        credential: ClientCredential,
        flow: str,
        response: Mapping[str, str],
    ) -> Consented:
        """Redeem the authorization response's code. ``ConsentRefused`` for Entra's errors."""


@dataclass(frozen=True)
class Deferred:
    """A user's sync that waits for its directory to work again."""

    directory_id: str
    user_id: str
    first_at: dt.datetime
    last_at: dt.datetime
    times: int
    correlation_id: str | None = None
    etag: str = ""


class Deferrals(Protocol):
    async def defer(
        self, directory_id: str, user_id: str, at: dt.datetime, correlation_id: str | None
    ) -> None:
        """Keep the user's sync for the directory (once per user: a sync reads the user as it is then)."""

    async def pending(self, directory_id: str) -> list[Deferred]:
        """The directory's deferred syncs, oldest first."""

    async def done(self, entries: Sequence[Deferred]) -> None:
        """Forget replayed entries, each only if unchanged since read (a newer deferral stays)."""

    async def count(self, directory_id: str) -> int: ...

    async def waiting(self) -> frozenset[str]:
        """The directories with deferred syncs (one query for all: usually there are none)."""

    async def drop(self, directory_id: str) -> None:
        """Forget every deferral of the directory (deactivation)."""


@dataclass(frozen=True)
class Notification:
    """An event for the directory's ``notify`` URL (Standard Webhooks: ``type``, ``timestamp``, ``data``)."""

    id: str
    type: NotificationType
    directory_id: str
    at: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


class NotificationQueue(Protocol):
    async def enqueue(
        self, notification: Notification, *, attempt: int = 0, delay_seconds: int = 0
    ) -> None: ...


class Alerts(Protocol):
    """The operator's log (one structured event each; a WARNING is what monitoring alerts on)."""

    def warning(self, event: str, **fields: Any) -> None: ...
