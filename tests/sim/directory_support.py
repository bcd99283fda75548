"""Builds ``TenantDirectory`` instances and ``GraphRequest``s for the in-process directory tests: a request goes
through the Graph URL table (``tools.m365sim.http.graph.router.handle``) to the backends, as over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse
from tools.m365sim.http.graph.router import handle

BASE = "https://127.0.0.1:8443/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"
ALL = frozenset({"Directory.ReadWrite.All", "User-PasswordProfile.ReadWrite.All", "Domain.ReadWrite.All"})
STRONG = "Str0ng!Passw0rd"


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Lag:
    seconds: float = 0.0

    def __call__(self) -> float:
        return self.seconds


@dataclass
class Sim:
    directory: TenantDirectory
    clock: FakeClock
    lag: Lag
    perms: frozenset[str] = field(default=ALL)

    def call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        *,
        perms: frozenset[str] | None = None,
        headers: dict[str, str] | None = None,
        delegated: bool = False,
    ) -> GraphResponse:
        request = GraphRequest(
            method=method,
            path=path,
            query=query or {},
            headers=headers or {},
            body=body,
            tenant_id=TENANT,
            app_id="app",
            permissions=self.perms if perms is None else perms,
            base_url=BASE,
            delegated=delegated,
        )
        return handle(self.directory, request)

    def follow(self, url: str, **kwargs: Any) -> GraphResponse:
        """GET an absolute nextLink / deltaLink."""
        assert url.startswith(BASE), url
        parts = urlsplit(url[len(BASE) :])
        return self.call("GET", parts.path, dict(parse_qsl(parts.query)), **kwargs)

    def create_user(self, nickname: str, **extra: Any) -> GraphResponse:
        return self.call("POST", "/users", body=user_body(nickname, **extra))

    def create_group(self, nickname: str, **extra: Any) -> GraphResponse:
        body = {
            "displayName": nickname,
            "mailEnabled": False,
            "mailNickname": nickname,
            "securityEnabled": True,
            **extra,
        }
        return self.call("POST", "/groups", body=body)


def user_body(nickname: str, **extra: Any) -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": nickname.title(),
        "mailNickname": nickname,
        "userPrincipalName": f"{nickname}@contoso.com",
        "passwordProfile": {"password": STRONG, "forceChangePasswordNextSignIn": True},
        **extra,
    }


def make_sim(users: int = 0, *, sync: bool | None = None, domains: list[dict[str, Any]] | None = None) -> Sim:
    clock, lag = FakeClock(), Lag()
    given = (
        domains
        if domains is not None
        else [
            {"id": "contoso.com", "isDefault": True, "isVerified": True, "authenticationType": "Managed"},
            {"id": "fabrikam.com", "isDefault": False, "isVerified": True, "authenticationType": "Managed"},
            {
                "id": "unverified.example",
                "isDefault": False,
                "isVerified": False,
                "authenticationType": "Managed",
            },
        ]
    )
    directory = TenantDirectory(
        tenant_id=TENANT,
        display_name="Contoso",
        domains=given,
        on_premises_sync_enabled=sync,
        clock=clock,
        replication_lag=lag,
    )
    directory.seed_users(users)
    return Sim(directory, clock, lag)


def error_of(response: GraphResponse) -> tuple[int, str, str]:
    error = response.body["error"]
    return response.status, error["code"], error["message"]


def ref(obj_id: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{obj_id}"}
