"""Tokens for the connected directories, from MSAL.

Every directory token comes from an MSAL ``ConfidentialClientApplication`` (one per directory per process, built
on first use and kept):
- app-only: client credentials with the directory's client secret or certificate
  (``client_credential={"private_key", "public_certificate"}``: MSAL signs the assertion with PS256 and the
  certificate's SHA-256 thumbprint, ``x5t#S256``);
- delegated: the signed-in administrator's refresh token, from an MSAL ``SerializableTokenCache`` kept in Key Vault
  (``TokenCaches``) and written back only when MSAL says it changed (``has_state_changed``), guarded so two
  instances refreshing at once never store a cache older than the one they read (``TokenCaches.save``).

Each MSAL application reads its tenant's OpenID configuration when it is built. The documents are kept in Table
Storage (``DiscoveryDocuments``: read in one query on a process's first build, a new one written when MSAL fetched
it) and served to MSAL through the ``http_client`` it is given, so a cold process or a new instance asks Entra for
tokens only. Only public documents are kept: the OpenID configuration MSAL GETs, never a POST's answer (tokens, and
the errors MSAL's own ``http_cache`` would keep) nor a response header.

MSAL is synchronous (requests): its calls run on a small thread pool of their own, so the event loop never
waits on the token endpoint. Entra's refusals that no retry can cure (``invalid_grant``, ``invalid_client``, …)
raise ``CredentialRefused`` with Entra's AADSTS codes; anything else (unreachable, 5xx) raises ``Upstream``.
MSAL refuses ``http://`` authorities and, as this machine's environment sets ``REQUESTS_CA_BUNDLE``, it gets a
``requests`` session with ``trust_env=False`` and the CA set explicitly: the process's one (``http_session``,
shared with Warden's own identity and Key Vault).

Warden's own identity (Key Vault's credential, the demo tenant's) is in ``shared.adapters.own_identity``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared.adapters.own_identity import Closable, HeldTokens, http_session
from shared.domain.connections import NO_SIGN_IN, is_lapse
from shared.domain.errors import CredentialRefused, Upstream
from shared.domain.model import Directory
from shared.logs import log_event
from shared.service.connections.ports import ClientCredential, Consented, ConsentRefused, TokenCaches

if TYPE_CHECKING:
    from pathlib import Path

    import requests
    from azure.core.credentials import AccessToken

T = TypeVar("T")
MSAL_THREADS = 32
"""Token requests in flight at once (a refresh round over many directories); each waits on the network only."""
GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]


# ----------------------------------------------------------------------------------------------- plumbing
@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MSAL_THREADS, thread_name_prefix="msal")


async def in_thread(call: Callable[[], T]) -> T:
    """Run a blocking MSAL call off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)


# ---------------------------------------------------------------------------------- discovery documents
log = logging.getLogger("warden.identity")

DISCOVERY_TTL_SECONDS = 24 * 3600
"""How long a tenant's OpenID configuration is served without asking Entra again (MSAL's own ``http_cache`` keeps
discovery answers for as long)."""
MAX_DOCUMENTS = 5000
"""Documents kept (and read at a process's start) at most: one per tenant connected or connecting."""
MAX_DOCUMENT_CHARS = 16_384
"""Entra's OpenID configuration is about 1.7 KB; anything much larger is not kept."""
DISCOVERY_RETRY_SECONDS = 60.0
"""After the store could not be read, how long builds go without it before it is tried again."""
OPENID_PATH = "/.well-known/openid-configuration"
TOKEN_FIELDS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "assertion",
        "code",
        "password",
    }
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.")


class DiscoveryStore(Protocol):
    """Where OpenID configurations are kept between processes (``TableDiscoveryDocuments``)."""

    async def load(self, limit: int) -> list[tuple[str, str, float]]:
        """(url, document, fetched at, epoch seconds) of at most ``limit`` stored documents, in one query."""

    async def save(self, documents: Sequence[tuple[str, str, float]], gone: Sequence[str] = ()) -> None:
        """Store ``documents`` and forget the URLs ``gone``."""


def is_openid_configuration(url: str) -> bool:
    """A tenant's OpenID configuration URL (https, no query, no user information)."""
    parts = urllib.parse.urlsplit(url)
    return (
        parts.scheme == "https"
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
        and parts.path.endswith(OPENID_PATH)
    )


def public_document(text: str) -> bool:
    """Whether ``text`` is an OpenID configuration that holds nothing secret: a JSON object naming its endpoints,
    with no token-like field at any depth and nothing shaped like a JWT."""
    if len(text) > MAX_DOCUMENT_CHARS or _JWT.search(text):
        return False
    try:
        document = json.loads(text)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    if not isinstance(document.get("token_endpoint"), str) or not isinstance(
        document.get("authorization_endpoint"), str
    ):
        return False
    return not _has_token_field(document)


def _has_token_field(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).lower() in TOKEN_FIELDS or _has_token_field(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_token_field(v) for v in value)
    return False


class DiscoveryDocuments:
    """The tenants' OpenID configurations of a process: read from the store once (one query) before the first MSAL
    application is built, kept for ``DISCOVERY_TTL_SECONDS`` from when they were fetched, and those MSAL fetched
    written back after each build (``flush``). At most ``MAX_DOCUMENTS``; stale rows found at the read are deleted
    with the next write. Thread-safe: MSAL builds its applications on its own threads.

    A store that cannot be read or written costs only the requests it would have saved (logged)."""

    def __init__(self, store: DiscoveryStore, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.now = now
        self._documents: dict[str, tuple[str, float]] = {}
        self._pending: dict[str, tuple[str, float]] = {}
        self._stale: list[str] = []
        self._lock = threading.Lock()
        self._loading: asyncio.Future[None] | None = None
        self._loaded = False
        self._failed_at: float | None = None

    async def ready(self) -> None:
        """The stored documents read, once per process (concurrent callers share the one query)."""
        if self._loaded:
            return
        if self._failed_at is not None and self.now() - self._failed_at < DISCOVERY_RETRY_SECONDS:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        try:
            rows = await self.store.load(MAX_DOCUMENTS)
        except Exception as exc:  # the store's failure must not stop a token
            self._failed_at, self._loading = self.now(), None
            log_event(log, "discovery.load_failed", level=logging.WARNING, error=type(exc).__name__)
            return
        self._failed_at, self._loaded = None, True
        now = self.now()
        with self._lock:
            for url, text, fetched_at in rows:
                fresh = 0 <= now - fetched_at < DISCOVERY_TTL_SECONDS
                if fresh and is_openid_configuration(url) and public_document(text):
                    known = self._documents.get(url)
                    if known is None or known[1] < fetched_at:
                        self._documents[url] = (text, fetched_at)
                else:
                    self._stale.append(url)

    def get(self, url: str) -> str | None:
        """The document at ``url``, if one fetched less than ``DISCOVERY_TTL_SECONDS`` ago is known."""
        with self._lock:
            known = self._documents.get(url)
        if known is None or not 0 <= self.now() - known[1] < DISCOVERY_TTL_SECONDS:
            return None
        return known[0]

    def put(self, url: str, text: str) -> bool:
        """Keep a document just fetched (written back by the next ``flush``); False when it is not one to keep."""
        if not is_openid_configuration(url) or not public_document(text):
            return False
        with self._lock:
            if url not in self._documents and len(self._documents) >= MAX_DOCUMENTS:
                return False
            entry = (text, self.now())
            self._documents[url] = entry
            self._pending[url] = entry
        return True

    async def flush(self) -> None:
        """Write the documents fetched since the last flush (and forget stale rows)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            stale, self._stale = self._stale, []
        if not pending and not stale:
            return
        try:
            await self.store.save([(u, t, at) for u, (t, at) in pending.items()], stale)
        except Exception as exc:  # kept in memory; another process will write them
            log_event(log, "discovery.save_failed", level=logging.WARNING, error=type(exc).__name__)


class _Document:
    """A stored OpenID configuration as MSAL reads an answer (``status_code``, ``text``, ``headers``)."""

    status_code = 200

    def __init__(self, text: str) -> None:
        self.text = text
        self.headers = {"content-type": "application/json; charset=utf-8"}

    def raise_for_status(self) -> None:
        return None


class DiscoveryHttpClient:
    """MSAL's ``http_client``: the process's ``requests`` session, with tenants' OpenID configurations served from
    ``DiscoveryDocuments`` and those fetched kept there. Everything else (token requests) goes to the session."""

    def __init__(self, session: requests.Session, documents: DiscoveryDocuments) -> None:
        self.session = session
        self.documents = documents

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        cacheable = not params and is_openid_configuration(url)
        if cacheable:
            known = self.documents.get(url)
            if known is not None:
                return _Document(known)
        response = self.session.get(url, params=params, headers=headers, **kwargs)
        if cacheable and response.status_code == 200:
            self.documents.put(url, response.text)
        return response

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self.session.post(url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        """The session is the process's (``http_session``): not closed with one application."""


@dataclass(frozen=True)
class Authority:
    """Where the token endpoint lives (the real Entra ID, or the simulated cloud), which CA to trust, and where
    tenants' OpenID configurations are kept between processes (none: each process fetches its own)."""

    host: str
    ca_bundle: Path | None
    documents: DiscoveryDocuments | None = field(default=None, compare=False)

    def of(self, tenant_id: str) -> str:
        return f"{self.host.rstrip('/')}/{tenant_id}"

    def http_client(self) -> Any:
        session = http_session(self.ca_bundle)
        return session if self.documents is None else DiscoveryHttpClient(session, self.documents)


def msal_credential(credential: ClientCredential) -> str | dict[str, str]:
    """MSAL's ``client_credential``: the secret, or the certificate's private key and certificate (PEM)."""
    if credential.kind == "secret":
        return credential.value
    key, certificates = split_pem(credential.value)
    return {"private_key": key, "public_certificate": certificates}


def split_pem(pem: str) -> tuple[str, str]:
    """(the private key block, the certificate blocks) of a PEM bundle."""
    key: list[str] = []
    certificates: list[str] = []
    current: list[str] | None = None
    for line in pem.splitlines():
        if line.startswith("-----BEGIN "):
            current = certificates if "CERTIFICATE" in line else key
        if current is not None:
            current.append(line)
        if line.startswith("-----END "):
            current = None
    return "\n".join(key) + "\n", "\n".join(certificates) + "\n"


def build_app(
    authority: Authority,
    tenant_id: str,
    client_id: str,
    credential: ClientCredential,
    token_cache: Any = None,
) -> Any:
    """A ``ConfidentialClientApplication`` (blocking: MSAL reads the tenant's OpenID configuration, from
    ``authority.documents`` when it is kept there). See ``built``, which reads and writes the kept documents."""
    import msal  # type: ignore[import-untyped]

    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=msal_credential(credential),
        authority=authority.of(tenant_id),
        http_client=authority.http_client(),
        instance_discovery=False,
        token_cache=token_cache,
    )


async def built(
    authority: Authority,
    tenant_id: str,
    client_id: str,
    credential: ClientCredential,
    token_cache: Any = None,
    *,
    build: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
) -> Any:
    """``build_app`` off the event loop (through ``build``, by default ``guarded``), the kept OpenID configurations
    read before (once per process) and the one MSAL fetched, if it did, written back after."""
    import msal  # noqa: F401  # imported on the event loop's thread: two threads importing a package at once can fail

    documents = authority.documents
    if documents is not None:
        await documents.ready()

    def make() -> Any:
        return build_app(authority, tenant_id, client_id, credential, token_cache)

    try:
        return await (build(make) if build is not None else guarded(make, "the OpenID configuration"))
    finally:
        if documents is not None:
            await documents.flush()


class TokenNotIssued(Upstream):
    """Entra answered a token request with an error that a later attempt may not see (``temporarily_unavailable``,
    a malformed request, an unknown tenant): not a lapse, but named with Entra's error and codes."""

    def __init__(self, directory_id: str, error: str, codes: tuple[int, ...], description: str) -> None:
        self.error, self.codes, self.description = error, codes, description
        code = f" AADSTS{codes[0]}" if codes else ""
        super().__init__(f"Entra ID did not issue a token for directory {directory_id} ({error}{code})")


def refusal(directory_id: str, result: Mapping[str, Any]) -> Exception:
    """MSAL's error answer as Warden's error: ``CredentialRefused`` when only an admin can cure it."""
    error = str(result.get("error") or "unknown_error")
    codes = tuple(int(c) for c in (result.get("error_codes") or ()) if isinstance(c, int))
    description = _first_sentence(str(result.get("error_description") or ""))
    if is_lapse(error):
        return CredentialRefused(directory_id, error, codes, description)
    return TokenNotIssued(directory_id, error, codes, description)


def _first_sentence(text: str) -> str:
    return text.split("\r")[0].split("\n")[0].split(". ")[0][:300]


async def guarded(call: Callable[[], T], what: str) -> T:
    """A blocking MSAL call; the network failing under it is ``Upstream`` (retried later), never a lapse."""
    import requests

    try:
        return await in_thread(call)
    except requests.RequestException:
        raise Upstream(f"Entra ID could not be reached ({what})") from None
    except ValueError as exc:  # MSAL's own check of an answer, e.g. a tenant discovery that failed
        raise Upstream(f"Entra ID answered {what} wrongly ({type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------------- credentials
class DirectoryCredential(Protocol):
    """A directory's token source, as the Graph client's authentication provider calls it (``get_token``)."""

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken: ...

    async def fresh(self) -> bool:
        """A token taken from Entra now (never from a cache); True when a refresh token was redeemed."""

    async def close(self) -> None: ...


class AppOnlyCredential(Closable):
    """Client credentials for one directory (secret or certificate)."""

    def __init__(self, directory_id: str, app: Callable[[], Awaitable[Any]]) -> None:
        self.directory_id = directory_id
        self._app = app
        self._lock = asyncio.Lock()
        self._held = HeldTokens()

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token (the one held, else MSAL's cache); ``claims`` given (a claims challenge, or Graph refusing the
        token Warden holds): a token from Entra now."""
        return await self._token(list(scopes) or GRAPH_SCOPES, force=claims is not None)

    async def _token(self, scopes: list[str], force: bool) -> AccessToken:
        if (held := self._held.usable(scopes, force)) is not None:
            return held
        async with self._lock:
            app = await self._app()

            def acquire() -> Any:
                if force:
                    app.remove_tokens_for_client()
                return app.acquire_token_for_client(scopes)

            result = await guarded(acquire, "a client-credentials token")
        if "access_token" not in result:
            raise refusal(self.directory_id, result)
        return self._held.keep(scopes, result)

    async def fresh(self) -> bool:
        await self._token(GRAPH_SCOPES, force=True)
        return False


class DelegatedCredential(Closable):
    """The consenting administrator's tokens for one directory, from the MSAL token cache in Key Vault.

    The cache is read once and kept; each token MSAL serves from it needs no request, each refresh (the access
    token's hour is up, or a forced refresh) redeems the refresh token and stores the changed cache as a new
    version. When another instance stored a newer cache meanwhile, this one adopts it instead (``TokenCaches``)."""

    def __init__(
        self,
        directory_id: str,
        account_id: str,
        app: Callable[[Any], Awaitable[Any]],
        caches: TokenCaches,
    ) -> None:
        self.directory_id = directory_id
        self.account_id = account_id
        """The consenting user's object id (MSAL's ``local_account_id``)."""
        self._build = app
        self.caches = caches
        self._app: Any = None
        self._cache: Any = None
        self._version: str | None = None
        self._lock = asyncio.Lock()
        self._held = HeldTokens()

    async def _load(self) -> None:
        import msal

        stored = await self.caches.load(self.directory_id)
        cache = msal.SerializableTokenCache()
        if stored is not None:
            cache.deserialize(stored[0])
        self._cache, self._version = cache, stored[1] if stored else None
        self._app = await self._build(cache)

    def _account(self) -> Any:
        for account in self._app.get_accounts():
            if str(account.get("local_account_id", "")).lower() == self.account_id.lower():
                return account
        return None

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, _ = await self._token(list(scopes) or GRAPH_SCOPES, force=claims is not None)
        return token

    async def fresh(self) -> bool:
        _, refreshed = await self._token(GRAPH_SCOPES, force=True)
        return refreshed

    async def _token(self, scopes: list[str], force: bool) -> tuple[AccessToken, bool]:
        if (held := self._held.usable(scopes, force)) is not None:
            return held, False
        async with self._lock:
            if self._app is None:
                await self._load()
            account = self._account()
            if account is None:
                self._app = None
                self._held.drop()
                raise CredentialRefused(self.directory_id, NO_SIGN_IN)
            app = self._app
            result = await guarded(
                lambda: app.acquire_token_silent_with_error(scopes, account, force_refresh=force),
                "a token from the refresh token",
            )
            if not result or "access_token" not in result:
                self._app = None  # what MSAL made of the failure is not stored; the next call reads Key Vault
                raise refusal(self.directory_id, result or {"error": NO_SIGN_IN})
            refreshed = result.get("token_source") == "identity_provider"
            if self._cache.has_state_changed:
                await self._store()
            return self._held.keep(scopes, result), refreshed

    async def _store(self) -> None:
        stored = await self.caches.save(self.directory_id, self._cache.serialize(), self._version)
        if stored is None:
            # Another instance stored a cache since this one read it: take theirs (its refresh token is the
            # newest; the one this instance just received stays valid too, Entra does not revoke on rotation).
            await self._load()
        else:
            self._version = stored


def once(make: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``make`` run on first use only (its result kept)."""
    made: list[T] = []

    async def get() -> T:
        if not made:
            made.append(await make())
        return made[0]

    return get


class DirectoryCredentials:
    """The token credential of each connected directory (``CredentialSource`` of ``DirectoryClients``): its
    credential read from Key Vault, an MSAL application built on first use."""

    def __init__(
        self, authority: Authority, read_secret: Callable[[str], Awaitable[str]], caches: TokenCaches
    ) -> None:
        self.authority = authority
        self.read_secret = read_secret
        self.caches = caches

    async def __call__(
        self, directory: Directory
    ) -> tuple[AppOnlyCredential | DelegatedCredential, str | None]:
        material = ClientCredential(directory.credential, await self.read_secret(directory.secret_name))
        a, d = self.authority, directory

        async def build(cache: Any = None) -> Any:
            return await built(a, d.tenant_id, d.client_id, material, cache)

        if d.auth_mode == "delegated":
            account = d.consented_by.object_id if d.consented_by else ""
            return DelegatedCredential(d.id, account, build, self.caches), material.hint
        return AppOnlyCredential(d.id, once(build)), material.hint


# ------------------------------------------------------------------------------------------------- consent
_AADSTS = re.compile(r"AADSTS(\d+)")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def consented(claims: Mapping[str, Any], cache: str) -> Consented:
    """Who signed in, from the ID token (https://learn.microsoft.com/en-us/entra/identity-platform/
    id-token-claims-reference): ``oid``, ``preferred_username``, ``tid`` (the tenant signed into) and ``idp``,
    which for a guest names the issuer of the user's home tenant (``https://sts.windows.net/<tenant>/``)."""
    idp = str(claims.get("idp") or "")
    home = _GUID.search(idp)
    return Consented(
        object_id=str(claims.get("oid") or ""),
        user_principal_name=str(claims.get("preferred_username") or claims.get("upn") or ""),
        tenant_id=str(claims.get("tid") or "").lower(),
        home_tenant_id=home.group(0).lower() if home else None,
        cache=cache,
    )


async def redeem(app: Any, flow: str, response: Mapping[str, str]) -> dict[str, Any]:
    """MSAL's answer to the code the browser brought back for ``flow`` (its JSON): an access token, refresh token
    and ID token claims. Raises ``Upstream`` when Entra cannot be reached and ``ConsentRefused`` with Entra's error
    and codes when it, or MSAL's checks of its answer, refuse."""
    import requests

    try:
        result: dict[str, Any] = await in_thread(
            lambda: app.acquire_token_by_auth_code_flow(json.loads(flow), dict(response))
        )
    except requests.RequestException:
        raise Upstream("Entra ID could not be reached to redeem the authorization code") from None
    except ValueError:  # MSAL's checks of the response: state, nonce, the ID token's issuer and audience
        raise ConsentRefused(
            "invalid_response", (), "the sign-in's answer did not pass MSAL's checks"
        ) from None
    if "error" in result or "access_token" not in result:
        codes = tuple(int(c) for c in (result.get("error_codes") or ()) if isinstance(c, int))
        if not codes:  # the authorize response's error names its code only in its description
            found = _AADSTS.search(str(result.get("error_description") or ""))
            codes = (int(found.group(1)),) if found else ()
        raise ConsentRefused(
            str(result.get("error") or "unknown_error"),
            codes,
            _first_sentence(str(result.get("error_description") or "")),
        )
    return result


class MsalConsent:
    """The authorization-code flow with MSAL (PKCE S256, state, nonce): ``begin`` makes the flow (a dict MSAL
    gives and takes back, holding the PKCE verifier: a secret, kept in Key Vault by the use case), ``complete``
    redeems the code the browser brought back into a fresh token cache."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

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
        """(the authorize URL, the flow as JSON)."""
        app = await built(self.authority, tenant_id, client_id, credential)
        # The callback is a GET with the code in its query (SPEC §3: ``GET /api/oauth/callback``), where RFC 9700
        # 4.3.1 prefers form_post (a code in a URL can leak through history and Referer). What makes a leaked code
        # useless is here anyway: PKCE (the verifier never leaves Key Vault), a confidential client (the code is
        # redeemed only with the app's secret or certificate), a single-use state, and a callback page answered
        # with no-store and no-referrer. MSAL's warning about it is therefore silenced for this call only.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
            flow = app.initiate_auth_code_flow(
                GRAPH_SCOPES,
                redirect_uri=redirect_uri,
                state=state,
                login_hint=login_hint,
                prompt="select_account",
                response_mode="query",
            )
        return str(flow["auth_uri"]), json.dumps(flow)

    async def complete(
        self,
        tenant_id: str,
        client_id: str,
        credential: ClientCredential,
        flow: str,
        response: Mapping[str, str],
    ) -> Consented:
        import msal

        cache = msal.SerializableTokenCache()
        app = await built(self.authority, tenant_id, client_id, credential, cache)
        result = await redeem(app, flow, response)
        return consented(result.get("id_token_claims") or {}, cache.serialize())
