"""A directory's app-only credential hands out the token MSAL gave it until MSAL would stop serving it from its
cache, without a thread hop per Graph request; a claims challenge still takes a token from Entra now."""

from __future__ import annotations

import time
from typing import Any

from shared.adapters.identity import AppOnlyCredential
from shared.adapters.own_identity import TOKEN_MARGIN_SECONDS

GRAPH = "https://graph.microsoft.com/.default"


class FakeApp:
    """MSAL's ConfidentialClientApplication as the credential uses it: each call issues a new token."""

    def __init__(self, expires_in: int = 3600, refresh_in: int | None = None) -> None:
        self.expires_in = expires_in
        self.refresh_in = refresh_in
        self.calls = 0
        self.removed = 0

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.calls += 1
        result: dict[str, Any] = {"access_token": f"token-{self.calls}", "expires_in": self.expires_in}
        if self.refresh_in is not None:
            result["refresh_on"] = int(time.time()) + self.refresh_in
        return result

    def remove_tokens_for_client(self) -> None:
        self.removed += 1


def credential(app: FakeApp) -> AppOnlyCredential:
    async def build() -> FakeApp:
        return app

    return AppOnlyCredential("d1", build)


async def test_the_token_msal_gave_is_handed_out_again_without_asking_msal() -> None:
    app = FakeApp()
    c = credential(app)
    tokens = [(await c.get_token(GRAPH)).token for _ in range(5)]
    assert tokens == ["token-1"] * 5
    assert app.calls == 1


async def test_a_token_in_its_last_minutes_or_past_its_refresh_time_is_asked_of_msal_again() -> None:
    ending = FakeApp(expires_in=TOKEN_MARGIN_SECONDS - 1)
    c = credential(ending)
    assert [(await c.get_token(GRAPH)).token for _ in range(2)] == ["token-1", "token-2"]
    aging = FakeApp(refresh_in=-1)  # MSAL would refresh it ahead of time already
    c = credential(aging)
    assert [(await c.get_token(GRAPH)).token for _ in range(2)] == ["token-1", "token-2"]


async def test_a_claims_challenge_takes_a_token_from_entra_now_and_that_one_is_held() -> None:
    app = FakeApp()
    c = credential(app)
    assert (await c.get_token(GRAPH)).token == "token-1"
    assert (await c.get_token(GRAPH, claims="challenge")).token == "token-2"
    assert app.removed == 1
    assert (await c.get_token(GRAPH)).token == "token-2"
    assert app.calls == 2


async def test_tokens_are_held_per_scope() -> None:
    app = FakeApp()
    c = credential(app)
    assert (await c.get_token(GRAPH)).token == "token-1"
    assert (await c.get_token("https://vault.azure.net/.default")).token == "token-2"
    assert (await c.get_token(GRAPH)).token == "token-1"
