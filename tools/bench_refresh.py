"""``make bench``, refresh section: the token refresh round over ``--directories`` simulated directories (1,000).

A fresh Azurite (in memory) and simulated cloud; ``--directories`` tenants, each with Warden's app registration
(application permissions, Application.Read.All among them, and delegated scopes), connected through the composition
root: ``--delegated`` of them (10 %) by delegated consent (the simulated sign-in, then the callback's use case), the
others app-only with a client secret. Then three rounds of ``container.token_refresh.round``, each timed:

- cold: the first round of a process (each directory's MSAL application is built: its tenant's OpenID
  configuration comes from Table Storage, where connecting the directory left it, all of them in one query);
- warm: the next round (the delegated refresh tokens are not a week old: served from MSAL's cache);
- a week on: Warden's business clock 7 days and a minute ahead, so every delegated refresh token is redeemed.

Requests per directory are counted on both sides: Entra's (OpenID configuration and token endpoint) by a response
hook on MSAL's ``requests`` session, Graph's from the simulator's request log (``$batch`` requests; their inner
requests are not requests on the wire). The floor, measured in the same run: the same directories' client-credentials
token requests sent bare with httpx, as many at once as the round runs (``CONCURRENCY``): what the token endpoint
alone costs. Not assertions: numbers to read and compare.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import ssl
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools import demo, devca, procs
from tools.bench_store import start_azurite_in_memory

SCOPES = [*demo.DEMO_ROLES, "Application.Read.All"]
SETUP_CONCURRENCY = 16


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    client_id: str
    secret: str
    domain: str
    delegated: bool

    def __repr__(self) -> str:
        return f"BenchTenant({self.tenant_id!r})"

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "displayName": f"Refresh {self.domain}",
            "domains": [{"id": self.domain, "isDefault": True, "isVerified": True}],
            "clients": [
                {"clientId": self.client_id, "clientSecret": self.secret, "roles": SCOPES, "scopes": SCOPES}
            ],
            "seedUsers": 1 if self.delegated else 0,
        }


@dataclass
class RoundFigures:
    name: str
    seconds: float
    entra: Counter[str] = field(default_factory=Counter)
    graph: Counter[str] = field(default_factory=Counter)
    counts: dict[str, int] = field(default_factory=dict)

    def per_directory(self, tenants: Sequence[BenchTenant]) -> list[int]:
        return [self.entra[t.tenant_id] + self.graph[t.tenant_id] for t in tenants]


@dataclass
class RefreshResult:
    directories: int
    delegated: int
    setup_seconds: float
    rounds: list[RoundFigures]
    floor_seconds: float
    concurrency: int


class EntraCounter:
    """Every request MSAL sends, counted by the tenant in its path (a response hook on MSAL's session)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        segment = urllib.parse.urlsplit(response.request.url).path.strip("/").split("/", 1)[0]
        self.seen[segment.lower()] += 1
        return response

    def take(self) -> Counter[str]:
        taken, self.seen = self.seen, Counter()
        return taken


def graph_requests(control: httpx.Client, since: int) -> tuple[Counter[str], int]:
    """Graph requests on the wire per tenant since ``since`` (``$batch`` counted, its inner items not)."""
    seen: Counter[str] = Counter()
    last = since
    while True:
        body = control.get("/_sim/requests", params={"since": str(last)}).json()["value"]
        if not body:
            return seen, last
        for entry in body:
            last = max(last, int(entry["seq"]))
            if entry["kind"] in ("graph", "batch") and entry.get("tenantId"):
                seen[str(entry["tenantId"]).lower()] += 1


async def _consent(container: Any, view: Any, ca: Path) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca)), timeout=60) as browser:
        redirect = await browser.get(view.authorize_url, follow_redirects=False)
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect.headers["Location"]).query))
    from shared.service.context import Actor

    await container.consent.complete(answer, Actor("admin:bench"))


async def _connect_all(container: Any, tenants: Sequence[BenchTenant], ca: Path) -> None:
    from shared.domain.model import DirectoryOptions
    from shared.service.context import Actor
    from shared.service.store.directories import ConnectDirectory

    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(t: BenchTenant) -> None:
        async with gate:
            command = ConnectDirectory(
                t.domain,
                t.tenant_id,
                "delegated" if t.delegated else "app",
                t.client_id,
                t.secret,
                None,
                None,
                DirectoryOptions(),
                f"user0001@{t.domain}" if t.delegated else None,
            )
            view = await container.directories.connect(command, Actor("admin:bench"))
            if t.delegated:
                await _consent(container, view, ca)

    await asyncio.gather(*(one(t) for t in tenants))


async def _floor(sim_url: str, ca: Path, tenants: Sequence[BenchTenant], concurrency: int) -> float:
    """The tenants' client-credentials token requests, bare, ``concurrency`` at once."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=sim_url,
        verify=ssl.create_default_context(cafile=str(ca)),
        timeout=60,
        limits=limits,
        trust_env=False,
    ) as http:

        async def one(t: BenchTenant) -> None:
            async with gate:
                response = await http.post(
                    f"/{t.tenant_id}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": t.client_id,
                        "client_secret": t.secret,
                        "scope": "https://graph.microsoft.com/.default",
                    },
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in tenants))
        return time.perf_counter() - started


async def _measure(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> RefreshResult:
    tls = procs.ROOT / ".local" / "tls"
    ca = devca.ensure(tls)
    ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
    children: list[procs.Managed] = []
    with procs.stopping(children):
        children.append(start_azurite_in_memory(workdir / "azurite", ports, log=workdir / "azurite.log"))
        sim_port = procs.free_port()
        children.append(procs.start_sim(sim_port, tls, log=workdir / "m365sim.log"))
        sim_url = f"https://127.0.0.1:{sim_port}"
        world = demo.seed(sim_url, Path(ca))
        settings = {
            **env,
            **world.warden_settings(ports.connection_string),
            "WARDEN_TABLE_PREFIX": f"ref{secrets.token_hex(4)}",
            "WARDEN_PUBLIC_URL": "http://127.0.0.1:7999",
        }
        delegated = round(args.directories * args.delegated)
        tenants = [
            BenchTenant(
                str(uuid.uuid4()),
                str(uuid.uuid4()),
                secrets.token_urlsafe(24),
                f"r{i:05d}{secrets.token_hex(2)}.example",
                i < delegated,
            )
            for i in range(args.directories)
        ]
        from shared.adapters.own_identity import http_session
        from shared.bootstrap import Container
        from shared.config import load_settings
        from shared.service.connections.refresh import CONCURRENCY
        from shared.service.context import Actor

        offset = dt.timedelta(0)

        def clock() -> dt.datetime:
            return dt.datetime.now(dt.UTC) + offset

        control = httpx.Client(
            base_url=sim_url, verify=ssl.create_default_context(cafile=str(ca)), timeout=120, trust_env=False
        )
        started = time.perf_counter()
        _say(f"refresh: {len(tenants):,} tenants in the simulator, {delegated:,} of them to consent")
        for t in tenants:
            control.post("/_sim/tenants", json=t.body()).raise_for_status()
        loaded = load_settings(settings)
        setup = Container(loaded, clock=clock)
        try:
            await _connect_all(setup, tenants, Path(ca))
        finally:
            await setup.aclose()
        setup_seconds = time.perf_counter() - started
        _say(f"refresh: connected in {setup_seconds:.1f} s; the rounds")

        counter = EntraCounter()
        session = http_session(loaded.ca_bundle)
        session.hooks["response"].append(counter)
        container = Container(loaded, clock=clock)
        rounds: list[RoundFigures] = []
        _, seq = graph_requests(control, 0)
        try:
            for name, move in (
                ("cold", dt.timedelta(0)),
                ("warm", dt.timedelta(0)),
                ("a week on", dt.timedelta(days=7, minutes=1)),
            ):
                offset = offset + move
                counter.take()
                t0 = time.perf_counter()
                done = await container.token_refresh.round(Actor("timer:bench"))
                seconds = time.perf_counter() - t0
                graph, seq = graph_requests(control, seq)
                rounds.append(RoundFigures(name, seconds, counter.take(), graph, dict(done.run.counts)))
                _say(f"refresh: {name} round {seconds:.1f} s {done.run.counts}")
        finally:
            session.hooks["response"].remove(counter)
            await container.aclose()
        floor = await _floor(sim_url, Path(ca), tenants, CONCURRENCY)
        control.close()
        return RefreshResult(len(tenants), delegated, setup_seconds, rounds, floor, CONCURRENCY)


def run(args: argparse.Namespace, env: dict[str, str]) -> RefreshResult:
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        return asyncio.run(_measure(args, env, Path(tmp)))


def report(r: RefreshResult) -> list[str]:
    lines = [
        f"Token refresh round: {r.directories:,} directories ({r.directories - r.delegated:,} app-only with a client "
        f"secret, {r.delegated:,} delegated), {r.concurrency} checked at once; connected in {r.setup_seconds:.1f} s "
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} cores shared by Azurite, the simulator and Warden)",
    ]
    for f in r.rounds:
        per = [f.entra[k] + f.graph[k] for k in set(f.entra) | set(f.graph)]
        entra = sum(f.entra.values())
        graph = sum(f.graph.values())
        lines.append(
            f"  {f.name:<10} {f.seconds:7.1f} s   floor (bare token requests) {r.floor_seconds:6.1f} s   ratio "
            f"{f.seconds / r.floor_seconds:5.2f}x   requests per directory: max {max(per, default=0)}, mean "
            f"{(entra + graph) / r.directories:.2f} (Entra {entra:,}, Graph {graph:,})   target <= 2   "
            f"{', '.join(f'{k} {v:,}' for k, v in f.counts.items() if v)}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directories", type=int, default=1000)
    parser.add_argument(
        "--delegated", type=float, default=0.1, help="the share connected by delegated consent"
    )
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}
    print("\n".join(report(run(args, env))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
