"""``make bench``, store section: Warden's reads with N users in Azurite, each beside a floor of the bare
azure-data-tables SDK reading the same rows in the same run, interleaved, printed as ratios.

A fresh Azurite (in memory) holds N users bound directly to one directory D, under a table prefix of their
own, written by Warden's own repositories: each user's row and its ``binding|D`` row (two inserts, as the
API writes them), D's index rows in transactions of 100 per partition (``TableDirectoryIndex.put``). Then:

(c) one user: ``container.users.get(id)`` (the user's partition query and its effective bindings → a
    ``UserView``) against a bare ``TableClient.get_entity(id, "user")``; ``GET /api/users/{id}`` through the
    local functions host (HTTP, the host, bearer-token validation, JSON) against the same floor; and, for
    reference, a bare query of the user's partition: what the use case has to read.
(d) one directory: ``index.all(D)`` materialising every ``IndexEntry`` against the same 16 partition
    queries run concurrently with the bare SDK, materialising every row.

The floor's SDK client gets the same transport settings as Warden's (``Container.storage_http``), so that
only Warden's own code lies between floor and figure. Azurite is one Node process on the same machine as
this client and the host, and it answers every query, even of one partition, by scanning the whole table
(LokiJS ``Resultset.where``) where Table Storage reads one partition: the figures that query grow with N
here, ``get_entity`` does not. The CPU columns (per request, from /proc, summed over all requests of a kind)
say which process the time went to. Not assertions: numbers to read and compare.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools import demo, devca, procs

SEED_CONCURRENCY = 64
"""Users being written at once while seeding."""
INDEX_CHUNK = 10_000
"""Index rows handed to ``TableDirectoryIndex.put`` at once (it runs one transaction stream per partition)."""
READ_WARMUP = 20
"""Unmeasured point reads of each kind first (connections, the host's first call, lazy imports)."""
CONSOLE_ROUNDS = 40
"""Interleaved rounds of the console's pages and their floors (section (e), ``tools.bench_console``)."""
AZURITE_KEEPALIVE_SECONDS = 120
"""Azurite keeps idle connections this long (default 5 s), so that no pool here can reuse a connection Azurite
is closing between two phases. It changes nothing of what a request costs."""
Probe = Callable[[str], Awaitable[Any]]
Gauges = dict[str, Callable[[], float]]
"""CPU seconds used so far, by process ("client": this one; "Azurite"; "host"), read around each request."""


@dataclass
class Samples:
    """Latencies of one kind of request, in seconds, and the CPU seconds each process spent on them."""

    values: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_per_request(self, gauge: str) -> float:
        return self.cpu.get(gauge, 0.0) / len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.values, n=20)[18] if len(self.values) >= 20 else max(self.values)


@dataclass
class StoreResult:
    users: int
    seed_seconds: float
    reads: dict[str, Samples]
    listings: dict[str, Samples]
    azurite_version: str
    peak_rss_mb: float
    azurite_peak_rss_mb: float | None
    console: dict[str, Samples] = field(default_factory=dict)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _proc_peak_rss_mb(pid: int) -> float | None:
    """A running child's peak resident set (Linux' VmHWM), None where /proc is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _proc_cpu_seconds(pid: int) -> float:
    """A child's CPU time (user + system) from /proc, in clock ticks' resolution: meaningful summed over many
    requests, not per request. NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def _timed(run: Callable[[], Awaitable[Any]], gauges: Gauges, into: Samples | None) -> Any:
    """Await ``run()``; with ``into``, record its wall time and each gauge's CPU seconds."""
    before = {name: gauge() for name, gauge in gauges.items()}
    t0 = time.perf_counter()
    result = await run()
    elapsed = time.perf_counter() - t0
    if into is not None:
        into.values.append(elapsed)
        for name, gauge in gauges.items():
            into.cpu[name] = into.cpu.get(name, 0.0) + gauge() - before[name]
    return result


def azurite_version() -> str:
    try:
        meta = json.loads((procs.ROOT / "node_modules" / "azurite" / "package.json").read_text())
        return str(meta["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def start_azurite_in_memory(
    workdir: Path, ports: procs.AzuritePorts, *, log: Path | None = None, keep_alive: bool = True
) -> procs.Managed:
    """Like ``procs.start_azurite``, with nothing on disk (``--inMemoryPersistence``, which refuses
    ``--location``: its working directory is ``workdir``, for whatever it might still write): Azurite's periodic
    save of its whole database costs CPU that grows with every row written, which Table Storage does not have.
    ``keep_alive``: idle table connections kept for ``AZURITE_KEEPALIVE_SECONDS``."""
    if not procs.AZURITE_BIN.exists():
        raise RuntimeError(f"{procs.AZURITE_BIN} is missing: run `npm ci` (make setup) first")
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(procs.AZURITE_BIN), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
    argv += ["--inMemoryPersistence"]
    argv += ["--tableKeepAliveTimeout", str(AZURITE_KEEPALIVE_SECONDS)] if keep_alive else []
    for service, port in (("blob", ports.blob), ("queue", ports.queue), ("table", ports.table)):
        argv += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    child = procs.spawn("Azurite", argv, log=log, cwd=workdir)
    try:
        procs.wait_until(
            lambda: all(procs.port_open(p) for p in (ports.blob, ports.queue, ports.table)),
            timeout=30,
            what="Azurite",
            proc=child.proc,
        )
    except BaseException:
        child.stop()
        raise
    return child


# ------------------------------------------------------------------------------------------------ seeding
def _bench_directory(directory_id: str, now: dt.datetime) -> Any:
    from shared.domain.model import Directory, DirectoryOptions

    return Directory(
        id=directory_id,
        name="Bench",
        tenant_id=demo.DEMO_TENANT_ID,
        auth_mode="app",
        client_id=demo.DEMO_CLIENT_ID,
        secret_name=demo.DEMO_SECRET_NAME,
        domains=(),
        status="active",
        options=DirectoryOptions(),
        created_at=now,
        updated_at=now,
    )


def _bench_user(i: int, user_id: str, now: dt.datetime) -> Any:
    from shared.domain.model import User

    name = f"bench{i:06d}"
    return User(
        id=user_id,
        username=name,
        email=f"{name}@{demo.DEMO_DOMAIN}",
        first_name="Ada",
        last_name=f"Bench{i}",
        display_name=f"Ada Bench{i}",
        state="active",
        source="hris",
        created_at=now,
        updated_at=now,
        employee_id=f"E{i:06d}",
        job_title="Engineer",
        department="Research",
        time_zone="Europe/Paris",
    )


async def seed(container: Any, directory_id: str, user_ids: Sequence[str]) -> float:
    """D's directory row; every user's row and its ``binding|D`` row, written by Warden's own repository
    (``TableUsers.add``, ``set_direct_binding``: two inserts, as the API does), ``SEED_CONCURRENCY`` users
    at a time; then D's index rows (``TableDirectoryIndex.put``: transactions of 100 per partition).
    Uniqueness claims and the audit are left out: nothing read here looks at them. Returns the seconds."""
    from shared.domain.model import DIRECT
    from shared.service.ports import IndexEntry

    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    await container.stores.directories.add(_bench_directory(directory_id, now))
    users = container.stores.users
    total = len(user_ids)
    step = max(1, total // 10)
    position = 0
    done = 0

    async def worker() -> None:
        nonlocal position, done
        while position < total:
            i = position
            position += 1
            await users.add(_bench_user(i, user_ids[i], now))
            await users.set_direct_binding(user_ids[i], directory_id, True, now)
            done += 1
            if done % step == 0:
                _say(f"  seeding users: {done:>7}/{total}  ({time.perf_counter() - started:6.1f} s)")

    await asyncio.gather(*(worker() for _ in range(min(SEED_CONCURRENCY, total))))
    index = container.stores.index
    for start in range(0, total, INDEX_CHUNK):
        chunk = user_ids[start : start + INDEX_CHUNK]
        await index.put([IndexEntry(directory_id, uid, (DIRECT,), "pending") for uid in chunk])
        _say(f"  seeding index: {start + len(chunk):>7}/{total}  ({time.perf_counter() - started:6.1f} s)")
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------- point reads
async def point_reads(
    probes: dict[str, Probe],
    gauges: Gauges,
    check: Callable[[str, str, Any], None],
    user_ids: Sequence[str],
    reads: int,
    budget_seconds: float,
) -> dict[str, Samples]:
    """Each probe on the same random users, interleaved user by user, the order rotated every user so that
    no probe always runs first (or right after another); ``READ_WARMUP`` unmeasured users first. Stops at
    ``reads`` users (each read once, at most every user) or after ``budget_seconds``."""
    rng = random.Random(20240601)
    chosen = rng.choices(user_ids, k=READ_WARMUP) + rng.sample(list(user_ids), min(len(user_ids), reads))
    names = list(probes)
    samples = {name: Samples() for name in names}
    deadline = time.monotonic() + budget_seconds
    step = max(1, reads // 5)
    for k, uid in enumerate(chosen):
        shift = k % len(names)
        for name in names[shift:] + names[:shift]:
            into = samples[name] if k >= READ_WARMUP else None
            result = await _timed(lambda: probes[name](uid), gauges, into)  # noqa: B023 - awaited here
            check(name, uid, result)
        measured = k + 1 - READ_WARMUP
        if measured > 0 and measured % step == 0 and measured < reads:
            _say(f"  point reads: {measured:>5}/{reads}")
        if time.monotonic() > deadline:
            _say(f"  point reads: time budget of {budget_seconds:.0f} s spent after {max(0, measured)} users")
            break
    return samples


# ------------------------------------------------------------------------------------------------ listings
async def listings(
    floor: Callable[[], Awaitable[int]],
    figure: Callable[[], Awaitable[int]],
    gauges: Gauges,
    runs: int,
    expected: int,
) -> dict[str, Samples]:
    """``runs`` interleaved rounds (the order alternating), one unmeasured round first."""
    out = {"floor": Samples(), "figure": Samples()}
    for round_ in range(runs + 1):
        pair = [("floor", floor), ("figure", figure)]
        for name, run in pair if round_ % 2 else pair[::-1]:
            rows = await _timed(run, gauges, out[name] if round_ else None)
            if rows != expected:
                raise AssertionError(f"listing ({name}) gave {rows} rows, expected {expected}")
        _say(f"  listings: round {round_}/{runs}" + (" (warm-up)" if not round_ else ""))
    return out


# -------------------------------------------------------------------------------------------------- driver
HostStarter = Callable[[], "tuple[httpx.Client, dict[str, str], int] | None"]
"""Starts the functions host: its client, the admin's Authorization header, its process id."""


async def _measure(
    args: Any,
    conn: str,
    warden_env: dict[str, str],
    user_ids: Sequence[str],
    directory_id: str,
    azurite_pid: int,
    start_host: HostStarter,
) -> tuple[float, dict[str, Samples], dict[str, Samples], dict[str, Samples]]:
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.data.tables.aio import TableClient

    from shared.adapters.tables.dirindex import BUCKETS, partition
    from shared.bootstrap import STORAGE_KEEPALIVE_SECONDS, Container
    from shared.config import load_settings

    container = Container(load_settings(warden_env))
    prefix = container.settings.table_prefix
    # The floor's transport is configured as Warden's (Container.storage_http): the SDK's default session
    # trusts the environment, which costs every request a netrc and proxy lookup (~0.5 ms of CPU here) that
    # would flatter Warden's figures. Only Warden's own code is then between floor and figure.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS)
    )
    transport = AioHttpTransport(session=session, session_owner=False)
    users_floor = TableClient.from_connection_string(conn, table_name=prefix + "users", transport=transport)
    index_floor = TableClient.from_connection_string(
        conn, table_name=prefix + "dirindex", transport=transport
    )
    try:
        seed_seconds = await seed(container, directory_id, user_ids)
        host = start_host()

        async def floor_read(uid: str) -> Any:
            return await users_floor.get_entity(uid, "user")

        async def figure_read(uid: str) -> Any:
            return await container.users.get(uid)

        async def partition_read(uid: str) -> Any:
            return [e async for e in users_floor.query_entities(f"PartitionKey eq '{uid}'")]

        def check(name: str, uid: str, result: Any) -> None:
            if name == "floor":
                ok = result["PartitionKey"] == uid
            elif name == "figure":
                ok = result.user.id == uid and [d.directory_id for d in result.directories] == [directory_id]
            elif name == "partition":
                ok = len(result) == 2
            else:
                ok = result.status_code == 200 and [
                    d["directoryId"] for d in result.json()["directories"]
                ] == [directory_id]
            if not ok:
                raise AssertionError(f"point read ({name}) of {uid}: unexpected {result!r}"[:2000])

        probes: dict[str, Probe] = {"floor": floor_read, "figure": figure_read, "partition": partition_read}
        gauges: Gauges = {"client": time.process_time, "Azurite": lambda: _proc_cpu_seconds(azurite_pid)}
        if host is not None:
            http, auth, host_pid = host
            gauges["host"] = lambda: _proc_cpu_seconds(host_pid)

            async def http_read(uid: str) -> Any:
                return http.get(f"/api/users/{uid}", headers=auth)  # blocking: nothing else runs meanwhile

            probes["http"] = http_read
        reads = await point_reads(probes, gauges, check, user_ids, args.reads, args.read_seconds)

        async def floor_list() -> int:
            async def bucket(b: int) -> list[Any]:
                flt = f"PartitionKey eq '{partition(directory_id, b)}'"
                return [e async for e in index_floor.query_entities(flt, results_per_page=1000)]

            parts = await asyncio.gather(*(bucket(b) for b in range(BUCKETS)))
            return sum(len(p) for p in parts)

        async def figure_list() -> int:
            return len([e async for e in container.stores.index.all(directory_id)])

        gauges.pop("host", None)
        lists = await listings(floor_list, figure_list, gauges, args.listings, len(user_ids))
        from tools import bench_console

        console = await bench_console.measure(
            container, users_floor, user_ids, CONSOLE_ROUNDS, _timed, gauges, Samples, _say
        )
        return seed_seconds, reads, lists, console
    finally:
        await users_floor.close()
        await index_floor.close()
        await session.close()
        await container.aclose()


def run(args: Any, env: dict[str, str]) -> StoreResult:
    """Azurite, the simulated cloud, seeding, the functions host (unless ``--no-http``), the measures."""
    n = args.users
    directory_id = str(uuid.uuid4())
    prefix = f"bench{secrets.token_hex(4)}"
    user_ids = [str(uuid.uuid4()) for _ in range(n)]
    tls = procs.ROOT / ".local" / "tls"
    ca = devca.ensure(tls)
    children: list[procs.Managed] = []
    clients: list[httpx.Client] = []
    with tempfile.TemporaryDirectory() as tmp, procs.stopping(children):
        ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
        azurite = start_azurite_in_memory(Path(tmp) / "azurite", ports)
        children.append(azurite)
        sim_port = procs.free_port()
        children.append(procs.start_sim(sim_port, tls))
        world = demo.seed(f"https://127.0.0.1:{sim_port}", ca)
        warden_env = {
            **env,
            **world.warden_settings(ports.connection_string),
            "WARDEN_TABLE_PREFIX": prefix,
            "WARDEN_PUBLIC_URL": "http://127.0.0.1:7071",  # the console's (section (e)); nothing browses here
        }

        def start_host() -> tuple[httpx.Client, dict[str, str], int] | None:
            if args.no_http:
                return None
            port = procs.free_port()
            log = Path(tmp) / "funchost.log"
            try:
                host = procs.start_funchost(port, env=warden_env, log=log)
                children.append(host)
            except Exception:
                _say(log.read_text(errors="replace")[-4000:] if log.exists() else "(no host log)")
                raise
            auth = {"Authorization": f"Bearer {world.token('admin')}"}
            clients.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False))
            _say(f"store: functions host on port {port}")
            return clients[0], auth, host.proc.pid

        _say(f"store: seeding {n} users bound to one directory (table prefix {prefix})")
        try:
            seed_seconds, reads, lists, console = asyncio.run(
                _measure(
                    args,
                    ports.connection_string,
                    warden_env,
                    user_ids,
                    directory_id,
                    azurite.proc.pid,
                    start_host,
                )
            )
        finally:
            for client in clients:
                client.close()
        azurite_rss = _proc_peak_rss_mb(azurite.proc.pid)
    return StoreResult(
        users=n,
        seed_seconds=seed_seconds,
        reads=reads,
        listings=lists,
        azurite_version=azurite_version(),
        peak_rss_mb=_peak_rss_mb(),
        azurite_peak_rss_mb=azurite_rss,
        console=console,
    )


# -------------------------------------------------------------------------------------------------- report
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms" if seconds < 1 else f"{seconds * 1000:9.0f} ms"


def _cpu(s: Samples, gauges: Sequence[str]) -> str:
    return "".join(f"{s.cpu_per_request(g) * 1000:>{max(len(g), 7) + 1}.1f}" for g in gauges)


def report(result: StoreResult) -> list[str]:
    """The store section's lines: each figure beside its floor, their ratio, the CPU each process spent per
    request (summed over all requests of the kind, then divided), the issue's target."""
    r, lists = result.reads, result.listings
    floor = r["floor"]
    rss = f"peak RSS: this process {result.peak_rss_mb:.0f} MB"
    if result.azurite_peak_rss_mb is not None:
        rss += f", Azurite {result.azurite_peak_rss_mb:.0f} MB"
    lines = [
        f"Store: {result.users:,} users bound to one directory, Azurite {result.azurite_version} in memory "
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} cores shared by Azurite, the host and this client)",
        f"seeded in {result.seed_seconds:.1f} s ({result.users / result.seed_seconds:,.0f} users/s: user and "
        f"binding rows by TableUsers, {SEED_CONCURRENCY} at a time; index rows 100 per transaction); {rss}",
    ]
    gauges = list(floor.cpu)
    head = "".join(f"{g:>{max(len(g), 7) + 1}}" for g in gauges)
    lines.append(
        f"(c) one user, {len(floor.values)} random users interleaved".ljust(48)
        + f"{'median':>12} {'ratio':>6} {'p95':>12} {'ratio':>6}   CPU ms/read:{head}   target"
    )

    def read_row(label: str, s: Samples, target: str = "") -> str:
        return (
            f"    {label:<44}{_ms(s.median)} {s.median / floor.median:5.2f}x {_ms(s.p95)} "
            f"{s.p95 / floor.p95:5.2f}x   {'':12}{_cpu(s, gauges)}   {target}"
        ).rstrip()

    lines.append(read_row("floor: bare get_entity(id, 'user')", floor))
    lines.append(read_row("users.get -> UserView, in process", r["figure"], "<= 2x"))
    if "http" in r:
        lines.append(read_row("GET /api/users/{id}: + HTTP, host, token", r["http"], "(none: HTTP)"))
    lines.append(read_row("ref.: bare query of the user's partition", r["partition"]))

    f, g = lists["floor"], lists["figure"]
    gauges = list(f.cpu)
    head = "".join(f"{x:>{max(len(x), 7) + 1}}" for x in gauges)
    rows = result.users
    lines.append(
        f"(d) one directory, {rows:,} index rows, {len(f.values)} runs interleaved".ljust(48)
        + f"{'median':>12} {'ratio':>6} {'rows/s':>12} {'':6}   CPU ms/run: {head}   target"
    )

    def list_row(label: str, s: Samples, target: str = "") -> str:
        return (
            f"    {label:<44}{_ms(s.median)} {s.median / f.median:5.2f}x {rows / s.median:12,.0f} {'':6}"
            f"   {'':12}{_cpu(s, gauges)}   {target}"
        ).rstrip()

    lines.append(list_row("floor: bare SDK, the 16 partitions at once", f))
    lines.append(list_row("index.all(D) -> every IndexEntry", g, "<= 1.5x"))
    if result.console:
        from tools import bench_console

        lines += bench_console.report(result.console, result.users, _ms)
    return lines
