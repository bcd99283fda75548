"""``make bench``, reconcile section: a directory's full reconcile, its dry run and the drift rounds, against the
simulated cloud answering after 80 ms, each figure beside a floor from the same run. Not assertions: numbers to
read and compare.

The world, built here and torn down at the end: Azurite in memory, the simulated cloud (the demo world of
``tools.demo`` for Key Vault) and a tenant of its own with N accounts, connected to Warden through
``container.directories.connect``.

Seeding (not measured). The tenant's accounts are created through Graph ``$batch`` (``POST /users``, 20 a
request) by another app of the tenant, with every managed property Warden would have written,
``onPremisesImmutableId`` included (derived from the Warden user id, as Warden derives it; ``seedUsers``
accounts have none in a tenant that is not synced from on-premises, so Warden would plan to set it on all of
them). Graph allows 3,000 writes per app per 150 s and 18,000 per tenant per 300 s: after every 2,000 accounts
the simulator's clock (``PUT /_sim/clock``) is moved past the write windows instead of waiting for them.
Warden's store gets, written by its own adapters: the directory's index (``TableDirectoryIndex.put``: user and
link in every row, all linked and ``synced``), and for the users the plan will write and the accounts the drift
round edits, their user rows, direct binding, link and the account's claim (``TableUsers.add``,
``set_direct_binding``, ``save_link``, ``TableUniques.insert``): what the reconcile and drift read. The store
equals the tenant for 99 % of the users; every 100th differs: a third re-enabled in M365 (suspended in Warden:
block), a third renamed (``displayName``), a third retitled (``jobTitle``).

Each measure runs in a fresh process (its peak RSS is its own, not the seeding's) holding a Container on the
same tables, its reconcile queue replaced by an in-process one and its sync queue by a recorder:
(1) the full reconcile: ``start``, ``plan``, then every chunk applied by ``--chunk-workers`` concurrent workers
    (as several Function instances would); its floor is measured right after in the same process (``_full_floor``:
    the same list pages with bare httpx beside the index read with the bare SDK, the plan's items stored, the
    same ``$batch`` writes by as many workers, and the minimal storage writes of each written item, all bare);
    Graph's throttling for what the run spent (max(resource units ÷ 800 per s, writes ÷ 20 per s), from the
    simulator's request log) is printed as context only: a run that fits one throttle window never waits for it;
    storage requests per applied item, list requests (``GET /v1.0/users``), writes per ``$batch`` and the peak RSS
    beside their targets;
(2) the dry run of the same (in its own process, before (1) changes anything): wall time and its parts, the
    reads of the store (``index.all``) and of Graph (``list_users``) timed by wrapping those port methods;
    then, as floors, the same two reads bare (azure-data-tables on the 16 partitions, httpx on the pages);
(3) drift (after (1)), from the deltaLink taken when the tenant was connected: the first round, which reads the
    reconcile's own writes back (echoes: no read, no sync); a round with nothing changed; ``--drift-edits`` managed
    accounts edited through Graph and a round (the corrections it queues are then applied by ``Sync.sync_user``, as
    the sync queue's consumers would); and the round after those corrections, which reads them back as echoes:
    Graph requests, wall time, corrections queued, echoes.
CPU seconds of this process, the simulator and Azurite are read from /proc around each measure: on a small
machine they share the cores, and the CPU says whose work the wall time was. Warden's storage requests are
counted and timed per table through an aiohttp trace on the container's own session.

``python -m tools.bench_reconcile --users 3000`` (or ``python -m tools.bench --only reconcile --users 3000``) is
a quick smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import resource
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools import demo, devca, procs
from tools.bench_store import azurite_version, start_azurite_in_memory

PY = sys.executable
LATENCY_MS = 80
"""What the simulator waits before answering each Graph, token and Key Vault request during the measures."""
RU_PER_10S = 8_000
RU_RATE = RU_PER_10S / 10.0
"""Resource units per second an app gets in a tenant of more than 500 users (throttling-limits)."""
WRITE_RATE = 3_000 / 150.0
"""Writes per second an app gets in a tenant (3,000 per 150 s)."""
DRIFT_EVERY = 100
"""Every 100th user differs between the store and the tenant (1 %)."""
CHUNK_WORKERS = 4
DRIFT_EDITS = 100
DRIFT_SYNC_CONCURRENCY = 16
"""User syncs applied at once after the edited round (as several queue consumers would)."""
SEED_WINDOW_WRITES = 2_000
"""Accounts created between two moves of the simulator's clock: under Graph's 3,000 writes per app per 150 s,
and small, because the simulator sums a throttle window's events on every request (its cost grows with the
window: with the windows full, seeding 100,000 accounts took over 9 minutes, most of it in those sums)."""
CLOCK_STEP_SECONDS = 301.0
"""How far the simulator's clock moves after each window of writes (the longest throttle window is 300 s)."""
SEED_IN_FLIGHT = 16
"""``$batch`` requests in flight while seeding the tenant."""
STORE_IN_FLIGHT = 32
"""Users whose rows are being written at once while seeding the store."""
INDEX_CHUNK = 10_000
CHILD_TIMEOUT_SECONDS = 3_600.0
CHUNK_TIMEOUT_SECONDS = 600.0
LOG_POLL_SECONDS = 1.0
SIM_LOG_SIZE = 20_000
RESULT = "RESULT "
GIVEN = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken")
JOBS = ("Engineer", "Analyst", "Designer", "Manager", "Accountant")
DEPARTMENTS = ("Research", "Finance", "Sales", "Operations")
DRIFT_KINDS = ("re-enabled", "renamed", "retitled")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ process gauges
def _proc_cpu_seconds(pid: int) -> float:
    """A process's CPU time (user + system) from /proc; NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _proc_memory_mb(pid: int | str, key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, NaN where /proc is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Cpu:
    """CPU seconds of this process, the simulator and Azurite, between ``start`` and ``stop``."""

    def __init__(self, sim_pid: int, azurite_pid: int) -> None:
        self.gauges: dict[str, Callable[[], float]] = {
            "Warden": time.process_time,
            "simulator": lambda: _proc_cpu_seconds(sim_pid),
            "Azurite": lambda: _proc_cpu_seconds(azurite_pid),
        }
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {k: g() for k, g in self.gauges.items()}

    def stop(self) -> dict[str, float]:
        return {k: round(g() - self._before[k], 2) for k, g in self.gauges.items()}


# ------------------------------------------------------------------------------------------------- people
@dataclass(frozen=True)
class Person:
    """One user as the tenant holds it (and as the store holds it, unless drifted)."""

    nickname: str
    upn: str
    given: str
    surname: str
    display: str
    job: str
    department: str
    employee_id: str


def person(i: int, domain: str) -> Person:
    nickname = f"bench{i:06d}"
    given, surname = GIVEN[i % len(GIVEN)], f"Bench{i}"
    return Person(
        nickname,
        f"{nickname}@{domain}",
        given,
        surname,
        f"{given} {surname}",
        JOBS[i % len(JOBS)],
        DEPARTMENTS[i % len(DEPARTMENTS)],
        f"E{i:06d}",
    )


def drift_kind(i: int) -> str | None:
    """Which way user ``i`` differs between the store and the tenant, or None."""
    return DRIFT_KINDS[(i // DRIFT_EVERY) % len(DRIFT_KINDS)] if i % DRIFT_EVERY == 0 else None


def drift_targets(n: int, count: int) -> list[int]:
    """Users (none of the drifted ones) whose accounts the drift round edits, spread over the tenant."""
    step = max(1, n // max(1, count))
    return [i for i in range(37 % step if step > 1 else 0, n, step) if drift_kind(i) is None][:count]


def account_body(p: Person, immutable: str) -> dict[str, Any]:
    """``POST /users``: every property Warden manages, as Warden would have written it."""
    return {
        "accountEnabled": True,
        "displayName": p.display,
        "givenName": p.given,
        "surname": p.surname,
        "jobTitle": p.job,
        "department": p.department,
        "employeeId": p.employee_id,
        "mailNickname": p.nickname,
        "userPrincipalName": p.upn,
        "mail": p.upn,
        "onPremisesImmutableId": immutable,
        "passwordProfile": {"password": "Bench-Passw0rd!x", "forceChangePasswordNextSignIn": False},
    }


# ---------------------------------------------------------------------------------------- the simulator
@dataclass(frozen=True)
class App:
    client_id: str
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"App({self.client_id!r})"


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    domain: str
    warden: App
    seeder: App
    """Another app of the tenant: it creates the accounts, and edits some before a drift round."""

    @staticmethod
    def new() -> BenchTenant:
        def app() -> App:
            return App(str(uuid.uuid4()), secrets.token_urlsafe(24))

        return BenchTenant(
            str(uuid.uuid4()),
            f"bench{secrets.token_hex(3)}.example",
            app(),
            app(),
        )

    def body(self) -> dict[str, Any]:
        clients = [
            {"clientId": a.client_id, "clientSecret": a.secret, "roles": demo.DEMO_ROLES}
            for a in (self.warden, self.seeder)
        ]
        return {
            "tenantId": self.tenant_id,
            "displayName": "Bench",
            "domains": [{"id": self.domain, "isDefault": True, "isVerified": True}],
            "onPremisesSyncEnabled": None,
            "clients": clients,
        }


def _verify(ca: str | Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def _token(http: httpx.AsyncClient, tenant_id: str, app: App) -> str:
    response = await http.post(
        f"/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _move_clock(http: httpx.AsyncClient, seconds: float) -> float:
    offset = float((await http.get("/_sim/clock")).json()["offsetSeconds"]) + seconds
    (await http.put("/_sim/clock", json={"offsetSeconds": offset})).raise_for_status()
    return offset


async def _batch(
    http: httpx.AsyncClient, token: str, requests: list[dict[str, Any]], expect: int
) -> dict[str, Any]:
    """One ``$batch``; every inner answer must have status ``expect``. Returns id → body."""
    response = await http.post(
        "/v1.0/$batch", json={"requests": requests}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    out: dict[str, Any] = {}
    for r in response.json()["responses"]:
        if int(r["status"]) != expect:
            raise RuntimeError(
                f"seeding: inner request {r['id']} answered {r['status']}: {r.get('body')}"[:800]
            )
        out[str(r["id"])] = r.get("body")
    return out


async def seed_tenant(sim_url: str, ca: Path, tenant: BenchTenant, user_ids: Sequence[str]) -> list[str]:
    """The tenant's accounts through Graph ``$batch``, ``SEED_WINDOW_WRITES`` between two moves of the simulator's
    clock; returns their object ids."""
    n = len(user_ids)
    from shared.domain.planner import immutable_id

    ids = [""] * n
    started = time.perf_counter()
    per_window = SEED_WINDOW_WRITES
    step = max(per_window, n // 10 // per_window * per_window)
    limits = httpx.Limits(max_connections=SEED_IN_FLIGHT, max_keepalive_connections=SEED_IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=sim_url, verify=_verify(ca), timeout=300, trust_env=False, limits=limits
    ) as http:
        # Seeding is not what is measured: no latency, and a resource-unit budget that never throttles it.
        faults = {"latencyMs": 0, "resourceUnitsPer10s": 1_000_000_000}
        (await http.put("/_sim/faults", json=faults)).raise_for_status()
        gate = asyncio.Semaphore(SEED_IN_FLIGHT)
        for window in range(0, n, per_window):
            token = await _token(http, tenant.tenant_id, tenant.seeder)  # the clock moved: a fresh one

            async def send(first: int, last: int, token: str) -> None:
                requests = [
                    {
                        "id": str(i),
                        "method": "POST",
                        "url": "/users",
                        "headers": {"Content-Type": "application/json"},
                        "body": account_body(person(i, tenant.domain), immutable_id(user_ids[i])),
                    }
                    for i in range(first, last)
                ]
                async with gate:
                    answers = await _batch(http, token, requests, 201)
                for rid, body in answers.items():
                    ids[int(rid)] = str(body["id"])

            last = min(n, window + per_window)
            await asyncio.gather(*(send(f, min(f + 20, last), token) for f in range(window, last, 20)))
            await _move_clock(http, CLOCK_STEP_SECONDS)  # past every write window of the seeding app
            if last % step == 0 or last == n:
                _say(f"  tenant: {last:>7}/{n} accounts  ({time.perf_counter() - started:6.1f} s)")
    if not all(ids):
        raise RuntimeError("seeding: some accounts were not created")
    return ids


# ---------------------------------------------------------------------------------------------- the store
async def seed_store(
    env: dict[str, str],
    tenant: BenchTenant,
    user_ids: Sequence[str],
    m365_ids: Sequence[str],
    full_rows: Iterable[int],
) -> str:
    """Connect the tenant; the directory's index; user rows, bindings, links and claims for ``full_rows``.
    Returns the directory id."""
    from shared.bootstrap import Container
    from shared.config import load_settings
    from shared.domain.claims import claim_kind
    from shared.domain.model import DIRECT, DirectoryOptions, Link, User
    from shared.domain.planner import desired_attributes, fingerprint, immutable_id, target_of
    from shared.service.context import Actor
    from shared.service.ports import IndexEntry
    from shared.service.store.directories import ConnectDirectory

    started = time.perf_counter()
    n = len(user_ids)
    container = Container(load_settings(env))
    try:
        view = await container.directories.connect(
            ConnectDirectory(
                "Bench",
                tenant.tenant_id,
                "app",
                tenant.warden.client_id,
                tenant.warden.secret,
                None,
                None,
                DirectoryOptions(),
            ),
            Actor("admin:bench"),
        )
        directory = view.directory
        d = directory.id
        target = target_of(directory)
        synced_at = container.clock() - dt.timedelta(days=1)

        def user(i: int, *, as_in_m365: bool = False) -> User:
            p = person(i, tenant.domain)
            kind = None if as_in_m365 else drift_kind(i)
            return User(
                id=user_ids[i],
                username=p.nickname,
                email=p.upn,
                first_name=p.given,
                last_name=p.surname,
                display_name=p.display + (" (renamed)" if kind == "renamed" else ""),
                state="suspended" if kind == "re-enabled" else "active",
                source="hris",
                created_at=synced_at,
                updated_at=synced_at,
                employee_id=p.employee_id,
                job_title=p.job + (" II" if kind == "retitled" else ""),
                department=p.department,
            )

        def link(i: int) -> Link:
            applied = desired_attributes(user(i, as_in_m365=True), target, enabled=True)
            return Link(
                user_ids[i],
                d,
                "synced",
                m365_ids[i],
                immutable_id(user_ids[i]),
                "created",
                fingerprint(applied, None),
                last_sync_at=synced_at,
            )

        index = container.stores.index
        for start in range(0, n, INDEX_CHUNK):
            entries = []
            for i in range(start, min(n, start + INDEX_CHUNK)):
                lk = link(i)
                entries.append(IndexEntry(d, user_ids[i], (DIRECT,), "synced", m365_ids[i], user(i), lk))
            await index.put(entries)
            _say(
                f"  store: {start + len(entries):>7}/{n} index rows  ({time.perf_counter() - started:6.1f} s)"
            )

        users, uniques = container.stores.users, container.stores.uniques
        rows = sorted(set(full_rows))
        position = 0

        async def worker() -> None:
            nonlocal position
            while position < len(rows):
                i = rows[position]
                position += 1
                await users.add(user(i))
                await users.set_direct_binding(user_ids[i], d, True, synced_at)
                await users.save_link(link(i))
                await uniques.insert(claim_kind(d), m365_ids[i], user_ids[i], synced_at)

        await asyncio.gather(*(worker() for _ in range(min(STORE_IN_FLIGHT, len(rows)))))
        _say(f"  store: rows of {len(rows)} users  ({time.perf_counter() - started:6.1f} s)")
        return d
    finally:
        await container.aclose()


# ------------------------------------------------------------------------------------- the measures (child)
class InProcessQueue:
    """The reconcile queue: plan jobs are run by the measure itself, chunk jobs by its workers."""

    def __init__(self) -> None:
        self.plans: list[tuple[str, str]] = []
        self.jobs: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()

    async def plan(self, directory_id: str, run_id: str) -> None:
        self.plans.append((directory_id, run_id))

    async def chunks(self, directory_id: str, run_id: str, count: int) -> None:
        for n in range(count):
            self.jobs.put_nowait((directory_id, run_id, n))


class RecordingSyncQueue:
    def __init__(self) -> None:
        self.users: list[str] = []

    async def enqueue(
        self,
        user_ids: Sequence[str],
        correlation_id: str | None,
        *,
        delay_seconds: int = 0,
        actor: str | None = None,
        gone: bool = False,
        approved: bool = False,
    ) -> None:
        self.users.extend(user_ids)


class StorageTrace:
    """Warden's storage requests, counted and timed by table and method through an aiohttp trace on the
    container's own session (``Container.storage_http``), attributed to the measure's current phase."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.phase = "setup"
        self.seen: dict[str, dict[str, list[float]]] = {}
        """phase -> "table method" -> [requests, seconds]."""

    def session(self) -> Any:
        import aiohttp

        from shared.bootstrap import STORAGE_KEEPALIVE_SECONDS

        trace = aiohttp.TraceConfig()

        async def start(_: Any, context: Any, params: Any) -> None:
            context.started = time.perf_counter()
            context.phase = self.phase

        async def end(_: Any, context: Any, params: Any) -> None:
            path = params.url.path.split("/", 2)[-1]
            table = path.split("(", 1)[0]
            table = table[len(self.prefix) :] if table.startswith(self.prefix) else table
            slot = self.seen.setdefault(context.phase, {}).setdefault(f"{table} {params.method}", [0, 0.0])
            slot[0] += 1
            slot[1] += time.perf_counter() - context.started

        trace.on_request_start.append(start)
        trace.on_request_end.append(end)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS), trace_configs=[trace]
        )

    def summary(self, phase: str) -> dict[str, list[float]]:
        return {k: [int(v[0]), round(v[1], 3)] for k, v in sorted(self.seen.get(phase, {}).items())}


@dataclass
class Split:
    """Where a plan's time went, measured by wrapping the reconciler's ports (shared/ is not edited)."""

    store_read: float = 0.0
    """``index.all``: first call to the last entry (the rows are planned as they come: that work is in it)."""
    graph_read: float = 0.0
    """``m365.list_users``: first call to the last page, the consumer's work between pages included..."""
    graph_indexing: float = 0.0
    """...of which the reconciler's own work on the pages (indexing them, planning the users whose rows have
    come), between two pages."""
    planning: float = 0.0
    """The planning left once both reads are done (``Reconciler._finish``)."""
    storing_items: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)


def _instrument(reconciler: Any, split: Split) -> None:
    index, m365, runs = reconciler.index, reconciler.m365, reconciler.runs
    all_entries, list_users, plan_rows, put_items = (
        index.all,
        m365.list_users,
        reconciler._finish,
        runs.put_items,
    )

    async def timed_all(*args: Any) -> AsyncIterator[Any]:
        t0 = time.perf_counter()
        async for entry in all_entries(*args):
            yield entry
        split.store_read += time.perf_counter() - t0
        split.rss_mb["after reading the store"] = _proc_memory_mb("self", "VmRSS")

    async def timed_list(*args: Any) -> AsyncIterator[Any]:
        t0 = time.perf_counter()
        async for page in list_users(*args):
            handed = time.perf_counter()
            yield page
            split.graph_indexing += time.perf_counter() - handed
        split.graph_read += time.perf_counter() - t0
        split.rss_mb["after reading Graph"] = _proc_memory_mb("self", "VmRSS")

    def timed_plan(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return plan_rows(*args)
        finally:
            split.planning += time.perf_counter() - t0
            split.rss_mb["after planning"] = _proc_memory_mb("self", "VmRSS")

    async def timed_put(*args: Any) -> None:
        t0 = time.perf_counter()
        try:
            await put_items(*args)
        finally:
            split.storing_items += time.perf_counter() - t0

    setattr(index, "all", timed_all)  # noqa: B010 - an instance attribute shadows the method
    setattr(m365, "list_users", timed_list)  # noqa: B010
    setattr(reconciler, "_finish", timed_plan)  # noqa: B010
    setattr(runs, "put_items", timed_put)  # noqa: B010


class SimLog:
    """The simulator's request log (a ring of 20,000), read incrementally while a measure runs."""

    def __init__(self, http: httpx.AsyncClient, tenant_id: str) -> None:
        self.http = http
        self.tenant_id = tenant_id
        self.seq = 0
        self.entries: list[dict[str, Any]] = []
        self.lost = 0

    async def mark(self) -> int:
        """Skip to the newest entry; returns its sequence number."""
        await self.read()
        self.entries.clear()
        return self.seq

    async def read(self) -> None:
        response = await self.http.get("/_sim/requests", params={"since": str(self.seq)})
        response.raise_for_status()
        value = response.json()["value"]
        if value and self.seq and value[0]["seq"] > self.seq + 1:
            self.lost += value[0]["seq"] - self.seq - 1
        for e in value:
            if e.get("tenantId") == self.tenant_id:
                self.entries.append(
                    {
                        k: e[k]
                        for k in ("seq", "method", "path", "status", "resourceUnits", "clientId", "kind")
                    }
                )
        if value:
            self.seq = int(value[-1]["seq"])

    async def follow(self, stop: asyncio.Event, deadline: float) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            await self.read()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LOG_POLL_SECONDS)
        await self.read()

    def take(self) -> list[dict[str, Any]]:
        out, self.entries = self.entries, []
        return out


def tally(entries: Sequence[dict[str, Any]], client_id: str) -> dict[str, int]:
    """Graph requests of one app: list pages, delta pages, ``$batch`` requests, their write items, RU."""
    mine = [e for e in entries if e.get("clientId") == client_id]

    def path(e: dict[str, Any]) -> str:
        return str(e["path"]).split("?", 1)[0].rstrip("/").lower()

    return {
        "graphRequests": sum(1 for e in mine if e["kind"] in ("graph", "batch")),
        "listRequests": sum(
            1 for e in mine if e["kind"] == "graph" and e["method"] == "GET" and path(e) == "/v1.0/users"
        ),
        "deltaRequests": sum(1 for e in mine if e["kind"] == "graph" and path(e) == "/v1.0/users/delta"),
        "batches": sum(1 for e in mine if e["kind"] == "batch"),
        "batchItems": sum(1 for e in mine if e["kind"] == "batch-item"),
        "writes": sum(
            1
            for e in mine
            if e["kind"] == "batch-item" and e["method"] != "GET" and 200 <= int(e["status"]) < 300
        ),
        "resourceUnits": sum(int(e["resourceUnits"]) for e in mine),
        "throttled": sum(1 for e in mine if int(e["status"]) == 429),
        "tokens": sum(1 for e in mine if e["kind"] == "token"),
    }


async def _child(phase: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from shared.bootstrap import Container
    from shared.config import load_settings
    from shared.service.context import Actor

    settings = load_settings()
    container = Container(settings)
    storage = StorageTrace(settings.table_prefix)
    container.__dict__["storage_http"] = storage.session()
    queue, recorder = InProcessQueue(), RecordingSyncQueue()
    container.__dict__["reconcile_queue"] = queue
    container.__dict__["sync_queue"] = recorder
    d: str = cfg["directoryId"]
    tenant_id, warden_client = cfg["tenantId"], cfg["wardenClientId"]
    cpu = Cpu(cfg["simPid"], cfg["azuritePid"])
    http = httpx.AsyncClient(base_url=cfg["simUrl"], verify=_verify(cfg["ca"]), timeout=120, trust_env=False)
    log = SimLog(http, tenant_id)
    out: dict[str, Any] = {"phase": phase}
    try:
        reconciler = container.reconciler
        found = await container.stores.directories.get(d)
        assert found is not None, d
        directory = found[0]
        # A Function instance that has run before: Graph client built, token and secret in hand, storage warm.
        await container.directory_graph.probe(directory)
        await container.stores.runs.latest(d, 1)
        m365 = reconciler.m365
        split = Split()
        _instrument(reconciler, split)
        split.rss_mb["before"] = _proc_memory_mb("self", "VmRSS")
        await log.mark()
        stop = asyncio.Event()
        follower = asyncio.ensure_future(log.follow(stop, time.monotonic() + CHILD_TIMEOUT_SECONDS))
        usage_before = m365.usage(d)
        out["loadBefore"] = os.getloadavg()[0]
        storage.phase = "plan"
        cpu.start()
        t0 = time.perf_counter()
        run = await reconciler.start(d, phase == "dry", Actor("timer:reconcile"))
        planned = await reconciler.plan(d, run.id)
        t_plan = time.perf_counter()
        plan_cpu = cpu.stop()
        out["plan"] = {
            "wall": t_plan - t0,
            "status": planned.status,
            "counts": planned.counts,
            "items": planned.items,
            "chunks": planned.chunks,
            "guard": planned.guard,
            "storeRead": split.store_read,
            "graphRead": split.graph_read,
            "graphIndexing": split.graph_indexing,
            "planning": split.planning,
            "storingItems": split.storing_items,
            "cpu": plan_cpu,
            "storage": storage.summary("plan"),
        }
        if phase == "full":
            if planned.status != "applying":
                raise RuntimeError(f"the plan is {planned.status}, not applying: {planned.guard}")
            storage.phase = "apply"
            cpu.start()
            t_apply = time.perf_counter()

            async def worker() -> int:
                done = 0
                while True:
                    try:
                        directory_id, run_id, n = queue.jobs.get_nowait()
                    except asyncio.QueueEmpty:
                        return done
                    await asyncio.wait_for(
                        reconciler.apply_chunk(directory_id, run_id, n), CHUNK_TIMEOUT_SECONDS
                    )
                    done += 1

            await asyncio.gather(*(worker() for _ in range(int(cfg["chunkWorkers"]))))
            t_end = time.perf_counter()
            final, _ = await reconciler.get(d, run.id)
            out["apply"] = {
                "wall": t_end - t_apply,
                "status": final.status,
                "progress": final.progress,
                "cpu": cpu.stop(),
                "storage": storage.summary("apply"),
            }
            out["wall"] = t_end - t0
        else:
            out["wall"] = t_plan - t0
        storage.phase = "after"
        out["loadAfter"] = os.getloadavg()[0]
        out["peakRssMb"] = _peak_rss_mb()
        out["rssMb"] = split.rss_mb
        out["usage"] = {k: v - usage_before.get(k, 0) for k, v in m365.usage(d).items()}
        stop.set()
        await follower
        out["log"] = tally(log.take(), warden_client)
        out["logLost"] = log.lost
        if phase == "full":
            storage.phase = "floor"
            out["floor"] = await _full_floor(container, directory, cfg, http, run.id, cpu)
            out["drift"] = await _drift(container, directory, cfg, http, log, recorder, cpu, storage)
        else:
            out["floors"] = await _read_floors(container, directory, cfg, http, cpu)
    finally:
        await http.aclose()
        await container.aclose()
    return out


async def _drift(
    container: Any,
    directory: Any,
    cfg: dict[str, Any],
    http: httpx.AsyncClient,
    log: SimLog,
    recorder: RecordingSyncQueue,
    cpu: Cpu,
    storage: StorageTrace,
) -> dict[str, Any]:
    from shared.service.context import Actor

    drift = container.drift
    actor = Actor("timer:drift")
    warden_client = cfg["wardenClientId"]

    async def measured(label: str) -> dict[str, Any]:
        await log.mark()
        recorder.users.clear()
        storage.phase = label
        cpu.start()
        t0 = time.perf_counter()
        result = await drift.directory_round(directory, actor)
        wall = time.perf_counter() - t0
        spent = cpu.stop()
        await log.read()
        return {
            "label": label,
            "wall": wall,
            "changed": result.changed,
            "corrections": result.corrections,
            "echoes": result.echoes,
            "queued": len(recorder.users),
            "log": tally(log.take(), warden_client),
            "cpu": spent,
            "storage": storage.summary(label),
        }

    reconciled = await measured("after the reconcile")  # its writes come back from the connect-time deltaLink
    quiet = await measured("nothing changed")
    # Edit the managed accounts through Graph, as someone in the tenant would (another app: not Warden's).
    seeder = App(cfg["seederClientId"], cfg["seederSecret"])
    token = await _token(http, cfg["tenantId"], seeder)
    ids: list[str] = cfg["driftIds"]
    for first in range(0, len(ids), 20):
        requests = [
            {
                "id": str(k),
                "method": "PATCH",
                "url": f"/users/{ids[k]}",
                "headers": {"Content-Type": "application/json"},
                "body": {"jobTitle": "Edited in the portal"},
            }
            for k in range(first, min(first + 20, len(ids)))
        ]
        await _batch(http, token, requests, 204)
    busy = await measured(f"{len(ids)} accounts edited")
    # The corrections that round queued, applied as the user-sync queue's consumers apply them; the next round then
    # reads Warden's own writes back from the delta, and recognises them (no read, no sync).
    corrected = list(dict.fromkeys(recorder.users))
    for first in range(0, len(corrected), DRIFT_SYNC_CONCURRENCY):
        batch = corrected[first : first + DRIFT_SYNC_CONCURRENCY]
        await asyncio.gather(*(container.sync.sync_user(u, actor) for u in batch))
    after = await measured("after the corrections")
    return {
        "reconciled": reconciled,
        "quiet": quiet,
        "busy": busy,
        "after": after,
        "edited": len(ids),
        "corrected": len(corrected),
    }


async def _read_floors(
    container: Any, directory: Any, cfg: dict[str, Any], http: httpx.AsyncClient, cpu: Cpu
) -> dict[str, Any]:
    """The two reads of the plan with nothing of Warden's around them, in the same process after the dry run:
    the 16 index partitions read at once with the bare azure-data-tables SDK (the transport configured as
    Warden's), every row materialised; the tenant listed with bare httpx (same ``$select`` and ``$top``, every
    nextLink, each page parsed) with another app's token (the same budget rules, its own window)."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.data.tables.aio import TableClient

    from shared.adapters.m365 import SELECT
    from shared.adapters.tables.dirindex import BUCKETS, COLUMNS, partition

    out: dict[str, Any] = {}
    d = directory.id
    transport = AioHttpTransport(session=container.storage_http, session_owner=False)
    table = TableClient.from_connection_string(
        container.settings.storage_connection,
        table_name=container.settings.table_prefix + "dirindex",
        transport=transport,
    )
    try:

        async def bucket(b: int) -> int:
            flt = f"PartitionKey eq '{partition(d, b)}'"
            rows = table.query_entities(flt, results_per_page=1000, select=list(COLUMNS))
            return len([e async for e in rows])

        cpu.start()
        t0 = time.perf_counter()
        rows = sum(await asyncio.gather(*(bucket(b) for b in range(BUCKETS))))
        out["store"] = {"wall": time.perf_counter() - t0, "rows": rows, "cpu": cpu.stop()}
    finally:
        await table.close()
    token = await _token(http, cfg["tenantId"], App(cfg["seederClientId"], cfg["seederSecret"]))
    headers = {"Authorization": f"Bearer {token}"}
    cpu.start()
    t0 = time.perf_counter()
    url: str | None = "/v1.0/users"
    params: dict[str, str] | None = {"$select": SELECT, "$top": "999"}
    accounts = pages = 0
    deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
    while url is not None and time.monotonic() < deadline:
        response = await http.get(url, params=params, headers=headers)
        response.raise_for_status()
        body = response.json()
        accounts += len(body["value"])
        pages += 1
        url, params = body.get("@odata.nextLink"), None
    out["graph"] = {"wall": time.perf_counter() - t0, "accounts": accounts, "pages": pages, "cpu": cpu.stop()}
    return out


FLOOR_BATCH = 20
"""Calls per ``$batch`` (json-batching: at most 20)."""
FLOOR_IN_FLIGHT = 32
"""The floor's per-item storage writes in flight at once within a chunk (as Warden's chunk records its users)."""


def _floor_calls(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The Graph calls that write one planned item (user-update, user-revokesigninsessions), built from the item as
    the plan stored it: its changed properties in one PATCH, and a block's revoke once the PATCH succeeded."""
    m365 = payload["m365UserId"]
    props = {k: v[1] for k, v in (payload.get("changes") or {}).items() if k != "manager"}
    calls = [
        {
            "id": f"{payload['userId']}.w",
            "method": "PATCH",
            "url": f"/users/{m365}",
            "headers": {"Content-Type": "application/json"},
            "body": props,
        }
    ]
    if payload.get("revokeSessions"):
        calls.append(
            {
                "id": f"{payload['userId']}.r",
                "method": "POST",
                "url": f"/users/{m365}/revokeSignInSessions",
                "dependsOn": [f"{payload['userId']}.w"],
            }
        )
    return calls


async def _full_floor(
    container: Any, directory: Any, cfg: dict[str, Any], http: httpx.AsyncClient, run_id: str, cpu: Cpu
) -> dict[str, Any]:
    """The full reconcile's minimal work done bare, right after Warden's run in the same process, against the same
    simulator and Azurite, at the same concurrency — measured, not computed from Graph's limits (which a run that
    fits one throttle window never waits for):

    - plan: the tenant listed with bare httpx (the same pages: ``$select``, ``$top=999``, every nextLink, each page
      parsed) by another app of the tenant (the same budget rules, its own window), side by side with the
      directory's 16 index partitions read with the bare azure-data-tables SDK; then the plan's items written in
      transactions of 100;
    - apply: the plan's chunks of 100 taken by ``chunkWorkers`` workers; each sends its items' writes (the same
      PATCH bodies, a block's revoke depending on its PATCH) in ``$batch`` requests of 20 one after another, then
      records each written item with one transaction in its user's partition (its link and the row of its audit
      entry there), and the chunk's audit rows by day and directory, its index rows and its items' states in a
      transaction per partition, and its count in one merge.

    What it leaves out is Warden's own: reading each user again before writing it, and the CPU of planning. The
    floor's rows go to tables of their own; its Graph writes set what Warden's set already (idempotent)."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableServiceClient

    from shared.adapters.m365 import SELECT
    from shared.adapters.tables.dirindex import BUCKETS, COLUMNS, bucket_of, partition

    d = directory.id
    items = await container.stores.runs.items(run_id, 0, 10**7)
    service = TableServiceClient.from_connection_string(
        container.settings.storage_connection,
        transport=AioHttpTransport(session=container.storage_http, session_owner=False),
    )
    prefix = f"flr{secrets.token_hex(4)}"
    t = {n: service.get_table_client(prefix + n) for n in ("runitems", "users", "audit", "dirindex", "runs")}
    index = service.get_table_client(container.settings.table_prefix + "dirindex")
    out: dict[str, Any] = {"items": len(items)}
    try:
        for client in t.values():
            await client.create_table()
        floor_run = str(uuid.uuid4())
        await t["runs"].create_entity({"PartitionKey": d, "RowKey": floor_run, "Applied": 0})
        token = await _token(http, cfg["tenantId"], App(cfg["seederClientId"], cfg["seederSecret"]))
        headers = {"Authorization": f"Bearer {token}"}

        async def read_index() -> int:
            async def bucket(b: int) -> int:
                flt = f"PartitionKey eq '{partition(d, b)}'"
                rows = index.query_entities(flt, results_per_page=1000, select=list(COLUMNS))
                return len([e async for e in rows])

            return sum(await asyncio.gather(*(bucket(b) for b in range(BUCKETS))))

        async def list_tenant() -> int:
            url: str | None = "/v1.0/users"
            params: dict[str, str] | None = {"$select": SELECT, "$top": "999"}
            accounts = 0
            while url is not None:
                response = await http.get(url, params=params, headers=headers)
                response.raise_for_status()
                body = response.json()
                accounts += len(body["value"])
                url, params = body.get("@odata.nextLink"), None
            return accounts

        def item_row(n: int, payload: dict[str, Any], state: str) -> dict[str, Any]:
            return {
                "PartitionKey": floor_run,
                "RowKey": f"{n:07d}",
                "Action": payload["action"],
                "UserId": payload["userId"],
                "State": state,
                "Item": json.dumps(payload, separators=(",", ":"), sort_keys=True),
            }

        cpu.start()
        t0 = time.perf_counter()
        rows, accounts = await asyncio.gather(read_index(), list_tenant())
        planned = [item_row(i.n, i.payload, "planned") for i in items]
        for first in range(0, len(planned), 100):
            await t["runitems"].submit_transaction([("upsert", r) for r in planned[first : first + 100]])
        out["plan"] = {
            "wall": time.perf_counter() - t0,
            "rows": rows,
            "accounts": accounts,
            "cpu": cpu.stop(),
        }

        chunks: asyncio.Queue[list[Any]] = asyncio.Queue()
        for first in range(0, len(items), 100):
            chunks.put_nowait(items[first : first + 100])
        tally: Counter[str] = Counter()

        async def apply(chunk: list[Any]) -> None:
            batches: list[list[dict[str, Any]]] = [[]]
            for i in chunk:  # an item's calls travel together (a revoke depends on its PATCH)
                calls = _floor_calls(i.payload)
                if len(batches[-1]) + len(calls) > FLOOR_BATCH:
                    batches.append([])
                batches[-1].extend(calls)
            ok: set[str] = set()
            for group in (b for b in batches if b):
                response = await http.post("/v1.0/$batch", json={"requests": group}, headers=headers)
                response.raise_for_status()
                tally["batches"] += 1
                for r in response.json()["responses"]:
                    tally["writes"] += 1
                    if 200 <= int(r["status"]) < 300:
                        ok.add(str(r["id"]).split(".")[0])
                    else:
                        tally[f"status {r['status']}"] += 1
            now = time.time()
            gate = asyncio.Semaphore(FLOOR_IN_FLIGHT)
            entries: list[dict[str, Any]] = []

            async def record(i: Any) -> None:
                p = i.payload
                entry_id = str(uuid.uuid4())
                entry = {
                    "RowKey": f"{10**13 - 1 - int(now * 1000):013d}|{entry_id}",
                    "Id": entry_id,
                    "Actor": "timer:reconcile",
                    "Action": f"m365.{p['action']}",
                    "UserId": p["userId"],
                    "DirectoryId": d,
                    "After": json.dumps(p.get("changes") or {}, separators=(",", ":")),
                }
                entries.append(entry)
                link = {"Status": p["status"], "M365UserId": p["m365UserId"], "Fingerprint": p["fingerprint"]}
                async with gate:
                    await t["users"].submit_transaction(
                        [
                            (
                                "upsert",
                                {
                                    "PartitionKey": p["userId"],
                                    "RowKey": "relations",
                                    "Links": json.dumps(link),
                                },
                            ),
                            (
                                "create",
                                {**entry, "PartitionKey": p["userId"], "RowKey": "audit|" + entry["RowKey"]},
                            ),
                        ]
                    )

            await asyncio.gather(*(record(i) for i in chunk if i.payload["userId"] in ok))
            by_bucket: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for i in chunk:
                if i.payload["userId"] in ok:
                    pk = partition(d, bucket_of(i.payload["userId"]))
                    row = {"PartitionKey": pk, "RowKey": i.payload["userId"], "Status": i.payload["status"]}
                    by_bucket.setdefault(pk, []).append(("upsert", row))
            day = time.strftime("%Y%m%d", time.gmtime(now))
            writes = [
                t["audit"].submit_transaction(
                    [("create", {**e, "PartitionKey": f"day|{day}"}) for e in entries]
                ),
                t["audit"].submit_transaction(
                    [("create", {**e, "PartitionKey": f"directory|{d}"}) for e in entries]
                ),
                t["runitems"].submit_transaction(
                    [
                        ("upsert", item_row(i.n, i.payload, "applied"), {"mode": UpdateMode.MERGE})
                        for i in chunk
                    ]
                ),
                *(t["dirindex"].submit_transaction(ops) for ops in by_bucket.values()),
            ]
            await asyncio.gather(*(w for w in writes[:2] if entries), *writes[2:])
            await t["runs"].update_entity(
                {"PartitionKey": d, "RowKey": floor_run, "Applied": len(entries)}, mode=UpdateMode.MERGE
            )

        async def worker() -> None:
            while True:
                try:
                    chunk = chunks.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await apply(chunk)

        cpu.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(int(cfg["chunkWorkers"]))))
        out["apply"] = {"wall": time.perf_counter() - t0, "cpu": cpu.stop(), **tally}
        out["wall"] = out["plan"]["wall"] + out["apply"]["wall"]
    finally:
        for client in (*t.values(), index):
            await client.close()
        await service.close()
    return out


def child_main(phase: str, config: Path) -> int:
    cfg = json.loads(config.read_text())
    out = asyncio.run(_child(phase, cfg))
    print(RESULT + json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- the driver
@dataclass
class ReconcileResult:
    users: int
    latency_ms: int
    chunk_workers: int
    drifted: dict[str, int]
    seed_tenant_seconds: float
    seed_store_seconds: float
    seed_tenant_cpu: dict[str, float]
    seed_store_cpu: dict[str, float]
    store_rows: int
    clock_moved_seconds: float
    dry: dict[str, Any]
    full: dict[str, Any]
    azurite_version: str
    azurite_peak_rss_mb: float
    sim_peak_rss_mb: float


def _run_child(phase: str, config: Path, env: dict[str, str]) -> dict[str, Any]:
    _say(f"reconcile: measuring the {phase} run in a fresh process")
    done = subprocess.run(
        [PY, "-m", "tools.bench_reconcile", "--child", phase, "--config", str(config)],
        env=env,
        cwd=procs.ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {phase} measure failed (exit {done.returncode}): {done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
    return result


def run(args: Any, env: dict[str, str]) -> ReconcileResult:
    n = int(args.users)
    latency = int(getattr(args, "latency_ms", LATENCY_MS))
    workers = int(getattr(args, "chunk_workers", CHUNK_WORKERS))
    edits = int(getattr(args, "drift_edits", DRIFT_EDITS))
    tenant = BenchTenant.new()
    user_ids = [str(uuid.uuid4()) for _ in range(n)]
    drifted = [i for i in range(n) if drift_kind(i) is not None]
    targets = drift_targets(n, edits)
    tls = procs.ROOT / ".local" / "tls"
    ca = devca.ensure(tls)
    children: list[procs.Managed] = []
    with tempfile.TemporaryDirectory() as tmp, procs.stopping(children):
        ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
        azurite = start_azurite_in_memory(Path(tmp) / "azurite", ports)
        children.append(azurite)
        sim_port = procs.free_port()
        sim = procs.start_sim(sim_port, tls)
        children.append(sim)
        world = demo.seed(f"https://127.0.0.1:{sim_port}", ca)
        prefix = f"rec{secrets.token_hex(4)}"
        warden_env = {**env, **world.warden_settings(ports.connection_string), "WARDEN_TABLE_PREFIX": prefix}
        with httpx.Client(base_url=world.sim_url, verify=_verify(ca), timeout=60, trust_env=False) as control:
            control.post("/_sim/tenants", json=tenant.body()).raise_for_status()

        cpu = Cpu(sim.proc.pid, azurite.proc.pid)
        _say(f"reconcile: seeding {n:,} accounts in the simulated tenant")
        cpu.start()
        t0 = time.perf_counter()
        m365_ids = asyncio.run(seed_tenant(world.sim_url, ca, tenant, user_ids))
        seed_tenant_seconds = time.perf_counter() - t0
        seed_tenant_cpu = cpu.stop()

        _say(f"reconcile: seeding Warden's store (table prefix {prefix})")
        cpu.start()
        t0 = time.perf_counter()
        directory_id = asyncio.run(seed_store(warden_env, tenant, user_ids, m365_ids, [*drifted, *targets]))
        seed_store_seconds = time.perf_counter() - t0
        seed_store_cpu = cpu.stop()

        with httpx.Client(base_url=world.sim_url, verify=_verify(ca), timeout=60, trust_env=False) as control:
            # Every window of the seeding behind us; Graph's own budget (8,000 RU per 10 s above 500 users).
            offset = float(control.get("/_sim/clock").json()["offsetSeconds"]) + CLOCK_STEP_SECONDS
            control.put("/_sim/clock", json={"offsetSeconds": offset}).raise_for_status()
            control.put(
                "/_sim/faults", json={"latencyMs": latency, "resourceUnitsPer10s": None}
            ).raise_for_status()
            budget = control.get("/_sim/faults").json()
            _say(f"reconcile: simulator faults {budget}")

        config = Path(tmp) / "config.json"
        config.touch(mode=0o600)
        config.write_text(
            json.dumps(
                {
                    "directoryId": directory_id,
                    "tenantId": tenant.tenant_id,
                    "wardenClientId": tenant.warden.client_id,
                    "seederClientId": tenant.seeder.client_id,
                    "seederSecret": tenant.seeder.secret,
                    "driftIds": [m365_ids[i] for i in targets],
                    "simUrl": world.sim_url,
                    "ca": str(ca),
                    "simPid": sim.proc.pid,
                    "azuritePid": azurite.proc.pid,
                    "chunkWorkers": workers,
                }
            )
        )
        dry = _run_child("dry", config, warden_env)
        full = _run_child("full", config, warden_env)
        azurite_rss = _proc_memory_mb(azurite.proc.pid, "VmHWM")
        sim_rss = _proc_memory_mb(sim.proc.pid, "VmHWM")
    return ReconcileResult(
        users=n,
        latency_ms=latency,
        chunk_workers=workers,
        drifted=dict(Counter(str(drift_kind(i)) for i in drifted)),
        seed_tenant_seconds=seed_tenant_seconds,
        seed_store_seconds=seed_store_seconds,
        seed_tenant_cpu=seed_tenant_cpu,
        seed_store_cpu=seed_store_cpu,
        store_rows=len(set(drifted) | set(targets)),
        clock_moved_seconds=offset,
        dry=dry,
        full=full,
        azurite_version=azurite_version(),
        azurite_peak_rss_mb=azurite_rss,
        sim_peak_rss_mb=sim_rss,
    )


# -------------------------------------------------------------------------------------------------- report
def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:4.1f} %" if whole > 0 else "  - %"


def _cpu(spent: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in spent.items())


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _plan_parts(plan: dict[str, Any]) -> str:
    wall = plan["wall"]
    other = wall - plan["storeRead"] - plan["graphRead"] - plan["planning"] - plan["storingItems"]
    return (
        f"reading the store {_s(plan['storeRead'])} ({_pct(plan['storeRead'], wall)}), "
        f"reading Graph {_s(plan['graphRead'])} ({_pct(plan['graphRead'], wall)}; of which indexing the pages and "
        f"planning their users {_s(plan['graphIndexing'])}), planning the rest {_s(plan['planning'])}, storing "
        f"{plan['items']:,} items "
        f"{_s(plan['storingItems'])}, "
        + (f"the rest {_s(other)}" if other >= 0 else "overlapping (the two reads run concurrently)")
    )


def _storage(summary: dict[str, list[float]], per: int = 0, top: int = 6) -> str:
    """Requests to Azurite: the total, per item, and the kinds that took the most request-seconds (requests
    overlap: request-seconds add up beyond the wall time)."""
    count = int(sum(v[0] for v in summary.values()))
    seconds = sum(v[1] for v in summary.values())
    heaviest = sorted(summary.items(), key=lambda kv: -kv[1][1])[:top]
    each = f" = {count / per:.1f} per item" if per else ""
    return f"{count:,} requests{each}, {seconds:.1f} request-s; heaviest: " + ", ".join(
        f"{k} {int(v[0]):,} ({v[1]:.1f} s, {1000 * v[1] / v[0]:.1f} ms each)" for k, v in heaviest if v[0]
    )


def report(r: ReconcileResult) -> list[str]:
    full, dry = r.full, r.dry
    log, plan, apply = full["log"], full["plan"], full["apply"]
    ru_floor = log["resourceUnits"] / RU_RATE
    write_floor = log["writes"] / WRITE_RATE
    limits = max(ru_floor, write_floor)
    bare = full["floor"]
    floor = bare["wall"]
    applied = max(1, int(apply["progress"].get("applied", 0)))
    apply_requests = int(sum(v[0] for v in apply["storage"].values()))
    list_target = math.ceil(r.users / 999) + 1
    per_batch = log["writes"] / log["batches"] if log["batches"] else float("nan")
    drifted = ", ".join(f"{v:,} {k}" for k, v in sorted(r.drifted.items()))
    items = max(1, int(plan["items"]))
    lines = [
        f"Reconcile: a {r.users:,}-user tenant, {sum(r.drifted.values()):,} drifted ({drifted}); simulator at "
        f"{r.latency_ms} ms, {RU_PER_10S:,} RU / 10 s, 3,000 writes / 150 s (Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores shared by Azurite {r.azurite_version}, the simulator, Warden and whatever else "
        f"runs: 1-min load average {dry['loadBefore']:.1f} before the dry run, {full['loadBefore']:.1f} before "
        f"the full run, {full['loadAfter']:.1f} after it)",
        f"seeded: the tenant's accounts through Graph $batch in {_s(r.seed_tenant_seconds)} (CPU s: "
        f"{_cpu(r.seed_tenant_cpu)}; the simulator's clock moved {r.clock_moved_seconds:,.0f} s past the write "
        f"windows); Warden's {r.users:,} index rows and {r.store_rows:,} users' rows in "
        f"{_s(r.seed_store_seconds)} (CPU s: {_cpu(r.seed_store_cpu)})",
        f"(1) full reconcile, plan + {plan['chunks']} chunks applied by {r.chunk_workers} workers: "
        f"{_s(full['wall'])}   floor {_s(floor)} measured (the same work bare: plan {_s(bare['plan']['wall'])}, "
        f"apply {_s(bare['apply']['wall'])})   ratio {full['wall'] / floor:.2f}x   target <= 1.5x",
        f"    floor: the tenant's {bare['plan']['accounts']:,} accounts listed with httpx beside the "
        f"{bare['plan']['rows']:,} index rows read with the SDK, {bare['items']:,} items stored; "
        f"{bare['apply'].get('writes', 0):,} writes in {bare['apply'].get('batches', 0):,} $batch requests by "
        f"{r.chunk_workers} workers, each written item's link and audit row in one transaction, a chunk's "
        f"audit, index and item rows in a transaction per partition (CPU s: plan {_cpu(bare['plan']['cpu'])}; "
        f"apply {_cpu(bare['apply']['cpu'])})"
        + "".join(f"; {k} {v}" for k, v in bare["apply"].items() if k.startswith("status")),
        f"    for context, Graph's limits for what the run spent: max({log['resourceUnits']:,} RU / "
        f"{RU_RATE:.0f} per s = {_s(ru_floor)}, {log['writes']:,} writes / {WRITE_RATE:.0f} per s = "
        f"{_s(write_floor)}) = {_s(limits)}: a sustained rate, which a run that fits one throttle window (3,000 "
        f"writes per 150 s) never waits for",
        f"    storage requests per applied item {apply_requests / applied:>5.2f}   target <= 4   "
        f"({apply_requests:,} requests in the apply phase, {applied:,} items applied)",
        f"    list requests (GET /v1.0/users)   {log['listRequests']:>8,}   target <= {list_target:,} "
        f"(ceil(N/999) + 1)",
        f"    writes per $batch                 {per_batch:>8.1f}   target >= 15   ({log['writes']:,} writes in "
        f"{log['batches']:,} $batch requests, {log['batchItems']:,} items)",
        f"    peak RSS of the process           {full['peakRssMb']:>5.0f} MB   target <= 512 MB   (RSS: "
        + ", ".join(f"{k} {v:.0f}" for k, v in full["rssMb"].items())
        + " MB)",
        f"    plan {_s(plan['wall'])}: {_plan_parts(plan)}; CPU s: {_cpu(plan['cpu'])}",
        f"    apply {_s(apply['wall'])}: CPU s: {_cpu(apply['cpu'])}",
        f"    storage, plan: {_storage(plan['storage'])}",
        f"    storage, apply: {_storage(apply['storage'], items)}",
        f"    plan: {_counts(plan['counts'])}; items {plan['items']:,}, run {apply['status']}: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(apply["progress"].items()) if not k.startswith("usage."))
        + f"; Graph requests {log['graphRequests']:,}, throttled {log['throttled']}, Warden waited "
        f"{full['usage'].get('waitedSeconds', 0):.1f} s for its budgets",
    ]
    dplan, floors = dry["plan"], dry["floors"]
    fs, fg = floors["store"], floors["graph"]
    lines += [
        f"(2) dry run of the same: {_s(dry['wall'])}; {_plan_parts(dplan)}",
        f"    floors, the same reads bare, right after in the same process: the 16 index partitions with the "
        f"SDK {_s(fs['wall'])} ({fs['rows']:,} rows; store read {dplan['storeRead'] / fs['wall']:.2f}x; CPU s: "
        f"{_cpu(fs['cpu'])}), the tenant with httpx {_s(fg['wall'])} ({fg['pages']} pages, {fg['accounts']:,} "
        f"accounts; Graph read {dplan['graphRead'] / fg['wall']:.2f}x; CPU s: {_cpu(fg['cpu'])})",
        f"    peak RSS {dry['peakRssMb']:.0f} MB; CPU s: {_cpu(dplan['cpu'])}; {dry['log']['listRequests']} list "
        f"requests; plan: {_counts(dplan['counts'])}",
    ]
    dr = full["drift"]
    for key in ("reconciled", "quiet", "busy", "after"):
        x = dr.get(key)
        if x is None:
            continue
        lines.append(
            f"(3) drift round, {x['label']:<22} Graph requests {x['log']['graphRequests']:>3} "
            f"(delta pages {x['log']['deltaRequests']}, {x['log']['resourceUnits']} RU)   wall "
            f"{x['wall'] * 1000:7.0f} ms   changed {x['changed']}, corrections queued {x['queued']}, echoes "
            f"{x.get('echoes', 0)}; storage {int(sum(v[0] for v in x['storage'].values()))} requests; CPU s: "
            f"{_cpu(x['cpu'])}"
        )
    lost = full.get("logLost", 0) + dry.get("logLost", 0)
    lines.append(
        f"peak RSS: Azurite {r.azurite_peak_rss_mb:.0f} MB, simulator {r.sim_peak_rss_mb:.0f} MB"
        + (f"; WARNING: {lost} request log entries were lost (ring of {SIM_LOG_SIZE:,})" if lost else "")
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", type=int, default=100_000, help="accounts in the tenant (and users in Warden)"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=LATENCY_MS, help="the simulator's latency per request"
    )
    parser.add_argument("--chunk-workers", type=int, default=CHUNK_WORKERS, help="chunks applied at once")
    parser.add_argument(
        "--drift-edits", type=int, default=DRIFT_EDITS, help="accounts edited before a drift round"
    )
    parser.add_argument("--child", choices=("dry", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.config is None:
            parser.error("--child needs --config")
        return child_main(args.child, args.config)
    if args.users < DRIFT_EVERY or args.chunk_workers < 1 or args.drift_edits < 1:
        parser.error(f"--users must be at least {DRIFT_EVERY}; --chunk-workers and --drift-edits at least 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}
    print("\n".join(report(run(args, env))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
