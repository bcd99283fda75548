"""``DiscoveryDocuments`` and ``DiscoveryHttpClient`` (shared.adapters.identity): tenants' OpenID configurations
kept between processes, and nothing else.

What MSAL's own ``http_cache`` would hold (msal/throttled_http_client.py, 1.39): the discovery GETs' answers (2xx,
24 h), and POST answers that were errors — 400s for 60 s, 429/5xx or anything with ``Retry-After`` for as long as
it says, *including a 200 token response that carried a Retry-After header*. Warden keeps only the first kind, and
only when the document is public: these tests fail if a token, a secret or a POST's answer would be stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import msal  # type: ignore[import-untyped]
import pytest

from shared.adapters import identity
from shared.adapters.identity import (
    DISCOVERY_TTL_SECONDS,
    Authority,
    DiscoveryDocuments,
    DiscoveryHttpClient,
    build_app,
    is_openid_configuration,
    public_document,
)
from shared.service.connections.ports import ClientCredential

TENANT = "0b4a2a48-3c41-4e5f-9a1e-5d2b6f1c7e11"
HOST = "https://login.example.test"
URL = f"{HOST}/{TENANT}/v2.0/.well-known/openid-configuration"
SECRET = "s3cr3t~Q8xWq.V0lP_client-secret-value"
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJncmFwaCJ9.c2lnbmF0dXJl"


def entra_document(host: str = HOST, tenant: str = TENANT) -> dict[str, Any]:
    """The shape of Entra's v2.0 OpenID configuration (abridged), whose values name token kinds."""
    base = f"{host}/{tenant}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{host}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "at_hash", "c_hash", "tid", "oid"],
        "kerberos_endpoint": f"{host}/{tenant}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


class Answer:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.headers = headers or {}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class FakeSession:
    """A ``requests.Session`` stand-in: the discovery document, and a token answer carrying Retry-After (which
    MSAL's own http_cache would keep for its 60 seconds)."""

    def __init__(self) -> None:
        self.gets: list[str] = []
        self.posts: list[tuple[str, Any]] = []

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Answer:
        self.gets.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            return Answer(200, entra_document(), {"Set-Cookie": "fpc=AkSessionCookie; path=/"})
        return Answer(404, {"error": "not_found"})

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> Answer:
        self.posts.append((url, data))
        body = {"token_type": "Bearer", "expires_in": 3599, "access_token": ACCESS_TOKEN}
        return Answer(200, body, {"Retry-After": "60"})


class MemoryStore:
    def __init__(self, rows: Sequence[tuple[str, str, float]] = ()) -> None:
        self.rows: dict[str, tuple[str, float]] = {u: (t, at) for u, t, at in rows}
        self.loads = 0
        self.saves: list[tuple[list[tuple[str, str, float]], list[str]]] = []
        self.fail = False

    async def load(self, limit: int) -> list[tuple[str, str, float]]:
        self.loads += 1
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("storage down")
        return [(u, t, at) for u, (t, at) in self.rows.items()][:limit]

    async def save(self, documents: Sequence[tuple[str, str, float]], gone: Sequence[str] = ()) -> None:
        self.saves.append((list(documents), list(gone)))
        for url in gone:
            self.rows.pop(url, None)
        for url, text, at in documents:
            self.rows[url] = (text, at)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_entra_s_document_is_public_and_token_shaped_answers_are_not() -> None:
    assert public_document(json.dumps(entra_document()))
    assert not public_document(json.dumps({**entra_document(), "access_token": "x"}))
    assert not public_document(json.dumps({**entra_document(), "nested": [{"Refresh_Token": "x"}]}))
    assert not public_document(json.dumps({**entra_document(), "client_secret": SECRET}))
    assert not public_document(json.dumps({**entra_document(), "issuer": ACCESS_TOKEN}))
    assert not public_document(json.dumps({"token_type": "Bearer", "access_token": ACCESS_TOKEN}))
    assert not public_document(json.dumps({"error": "invalid_client", "error_description": "AADSTS7000215"}))
    assert not public_document("[]") and not public_document("<html>")
    assert not public_document(json.dumps({**entra_document(), "pad": "x" * 20_000}))


def test_only_https_openid_configuration_urls_without_a_query_are_kept() -> None:
    assert is_openid_configuration(URL)
    assert not is_openid_configuration(URL.replace("https:", "http:"))
    assert not is_openid_configuration(URL + "?code=abc")
    assert not is_openid_configuration(
        f"https://user:pw@login.example.test/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert not is_openid_configuration(f"{HOST}/{TENANT}/oauth2/v2.0/token")
    assert not is_openid_configuration(f"{HOST}/common/discovery/instance")


async def test_msal_through_the_client_stores_the_document_only_never_the_secret_or_a_token() -> None:
    """A real MSAL application over the client: the token answer MSAL's http_cache would keep is not stored."""
    store, session = MemoryStore(), FakeSession()
    documents = DiscoveryDocuments(store)
    await documents.ready()
    client = DiscoveryHttpClient(session, documents)  # type: ignore[arg-type]
    app = msal.ConfidentialClientApplication(
        "11111111-2222-3333-4444-555555555555",
        client_credential=SECRET,
        authority=f"{HOST}/{TENANT}",
        http_client=client,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert result["access_token"] == ACCESS_TOKEN and len(session.posts) == 1
    await documents.flush()
    assert list(store.rows) == [URL], "the OpenID configuration only"
    text = json.dumps(store.saves)
    assert SECRET not in text and ACCESS_TOKEN not in text and "eyJ" not in text
    assert "AkSessionCookie" not in text, "no response header is kept"
    assert json.loads(store.rows[URL][0]) == entra_document()

    # A second application (another process: a fresh DiscoveryDocuments over the same store) asks for no document.
    again, session2 = DiscoveryDocuments(store), FakeSession()
    await again.ready()
    app2 = msal.ConfidentialClientApplication(
        "11111111-2222-3333-4444-555555555555",
        client_credential=SECRET,
        authority=f"{HOST}/{TENANT}",
        http_client=DiscoveryHttpClient(session2, again),  # type: ignore[arg-type]
        instance_discovery=False,
    )
    assert app2.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    assert session2.gets == [] and len(session2.posts) == 1


async def test_build_app_reads_the_store_once_for_many_tenants_and_writes_back_what_it_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = FakeSession()
    monkeypatch.setattr(identity, "http_session", lambda ca_bundle: session)
    store = MemoryStore()
    authority = Authority(HOST, None, DiscoveryDocuments(store))
    credential = ClientCredential("secret", SECRET)
    tenants = [f"{TENANT[:-2]}{i:02d}" for i in range(5)]
    await asyncio.gather(
        *(identity.built(authority, t, "client", credential, build=identity.in_thread) for t in tenants)
    )
    assert store.loads == 1, "one query, however many tenants are built at once"
    assert len(store.rows) == 5 and len(session.gets) == 5
    session.gets.clear()
    build_app(authority, tenants[0], "client", credential)
    assert session.gets == [], "served from memory once known"


async def test_stale_documents_are_fetched_again_and_their_rows_replaced_or_deleted() -> None:
    clock = Clock()
    old = clock.now - DISCOVERY_TTL_SECONDS - 1
    other = URL.replace(TENANT, "ffffffff-3c41-4e5f-9a1e-5d2b6f1c7e11")
    store = MemoryStore(
        [(URL, json.dumps(entra_document()), old), (other, json.dumps(entra_document()), old)]
    )
    documents = DiscoveryDocuments(store, now=clock)
    await documents.ready()
    assert documents.get(URL) is None and documents.get(other) is None
    assert documents.put(URL, json.dumps(entra_document()))
    await documents.flush()
    written, gone = store.saves[-1]
    assert [u for u, _, _ in written] == [URL] and gone == [URL, other]
    assert list(store.rows) == [URL] and store.rows[URL][1] == clock.now
    clock.now += DISCOVERY_TTL_SECONDS
    assert documents.get(URL) is None, "a day on, asked again"


async def test_the_documents_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "MAX_DOCUMENTS", 3)
    documents = DiscoveryDocuments(MemoryStore())
    await documents.ready()
    urls = [URL.replace(TENANT[-2:], f"{i:02d}") for i in range(5)]
    kept = [documents.put(u, json.dumps(entra_document())) for u in urls]
    assert kept == [True, True, True, False, False]
    assert documents.put(urls[0], json.dumps(entra_document())), "a known one is refreshed"


async def test_a_store_that_cannot_be_read_costs_only_the_requests_it_would_have_saved() -> None:
    clock = Clock()
    store = MemoryStore()
    store.fail = True
    documents = DiscoveryDocuments(store, now=clock)
    await documents.ready()
    await documents.ready()
    assert store.loads == 1, "not read again at once"
    assert documents.put(URL, json.dumps(entra_document())) and documents.get(URL)
    store.fail = False
    clock.now += 61
    await documents.ready()
    assert store.loads == 2, "tried again a minute later"
