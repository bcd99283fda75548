"""``python -m tools.bench_sync``: HR event → Microsoft 365 latencies, and the webhook's acknowledgement beside
a floor of the bare storage SDKs measured in the same run. Not assertions: numbers to read and compare.

One stack for the whole run, started here and stopped at the end: Azurite, the simulated Microsoft cloud (the
demo world of ``tools.demo``) and the local functions host running ``function_app.py``; the demo tenant is
connected through ``POST /api/directories`` and an HRIS signing secret rotated through ``POST /api/hris/secret``.
Every webhook is signed as the HR system signs it (Standard Webhooks) and names the demo directory in
``data.directories``. Times are wall-clock on this machine; the simulator logs each request it answers with the
same clock (``GET /_sim/requests``).

1. Leavers: ``--employees`` people are hired and synced first (not measured). Then, with Graph answering after
   ``--graph-latency-ms`` (replication lag 0), one ``employee.terminated`` each, sent at ``--rate`` per second;
   the latency of each is the simulator's ``POST /v1.0/users/{id}/revokeSignInSessions`` (a ``$batch`` item
   answered 200, after the ``PATCH accountEnabled=false`` it depends on) minus the time the webhook was sent.
   So many blocks in an hour are what the mass-change guard (rule 19) holds: the run raises the demo
   directory's guard count (``GUARD_OFF``) so that each block is counted and written, as on a quiet day.
2. Joiners: the same with ``employee.hired`` of as many new people; the latency is the simulator's
   ``POST /v1.0/users`` answered 201. That log entry does not say whom it created; the sync that creates a person
   looks them up by email first (``GET /users?$filter=userPrincipalName eq '<email>' ...``, in the log), then
   creates them with no storage request in between, so each person is given the first create not yet given that
   follows their lookup; the spread of lookup-to-create gaps is printed as the pairing's uncertainty.
3. Acknowledgement: ``employee.updated`` of the joiners (a new ``jobTitle``, with the rest of the record as
   the HR system knows it, ``data.directories`` included, like the hires): movers are most of an HR feed, and
   the update walks every step of a hire but the uniqueness claims. ``--ack-rate`` per second for
   ``--ack-seconds`` (at most ``--ack-max`` requests, at most ``--concurrency`` in flight on keep-alive
   connections), each request timed from its send to its 202; a request that cannot start before the window is
   over (``--concurrency`` in flight all along: the system is saturated) is not sent, and counted. Then the same
   at ``--ack-low-rate`` (the rate of 1 and 2), where the latency is less queueing than work. Floor: the
   minimal durable work of such an event (``Floor``: the receipt inserted, the person's field written with its
   audit row, the entry's day row and the sync's queue message, the receipt marked done), made with
   azure-data-tables and azure-storage-queue alone (same transport settings as Warden's container) against
   the same Azurite, at the same rate and concurrency; not a replay of Warden's requests, which are traced
   in-process through its own container on one event of a warm process and printed beside the floor's, with
   the target of 8. The floors run first, in a quiet stack (the sync queue drained); then Warden's figures,
   whose events queue syncs that run in the host beside the later requests, as they would in Azure. The
   floor's rows are copies of the joiners' user rows under keys of its own (Warden never reads them); its
   queue is its own.

``--quick`` is a smoke run with small counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import re
import resource
import ssl
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from standardwebhooks.webhooks import Webhook

from tools import demo, devca, procs
from tools.bench_store import start_azurite_in_memory

T = TypeVar("T")

DRAIN_TIMEOUT = 120.0
"""Seconds to wait for the sync queue to empty between phases."""
PROVISION_TIMEOUT = 240.0
PROVISION_CONCURRENCY = 8
WARMUP_EVENTS = 20
WINDOW_GRACE = 1.0
"""Acknowledgement: a request may still start this long after the last one was due; later, it is not sent (the
run stays as long as asked when the system cannot keep up, and says how many were not sent)."""
"""Unmeasured acknowledgements (and floor replays) first: connections, lazy imports, the signing-key cache."""
STORAGE_KEEPALIVE_SECONDS = 4.0
"""As Warden's container (``shared.bootstrap.STORAGE_KEEPALIVE_SECONDS``): Azurite closes idle connections
after 5 s."""
FLOOR_QUEUE = "bench-floor-sync"
REQUESTS_TARGET = 8
"""Storage requests an employee.updated may make before its 202 (issue 15)."""
ACK_TARGET = 1.5
"""The acknowledgement's p99 at the main rate, at most this many times its floor's (issue 15)."""
LEAVER_TARGET, JOINER_TARGET = 0.4, 0.5
"""p95 seconds from the webhook to the revoke (leaver), to the create (joiner), at 80 ms Graph latency."""
GUARD_OFF = {"percent": 10.0, "count": 10_000_000}
"""The demo directory's mass-change guard for the run: hold a burst of blocks only past ten million an hour."""
REVOKE = re.compile(r"^/v1\.0/users/([^/?]+)/revokeSignInSessions$", re.IGNORECASE)
READ = re.compile(r"^/v1\.0/users/([^/?]+)(?:\?|$)", re.IGNORECASE)
LOOKUP = re.compile(r"userPrincipalName eq '([^']+)'", re.IGNORECASE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _say(text: str) -> None:
    print(f"[bench_sync {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------------------------- figures
@dataclass
class Stats:
    n: int
    p50: float
    p95: float
    p99: float
    max: float

    @staticmethod
    def of(values: Sequence[float]) -> Stats | None:
        if not values:
            return None
        ordered = sorted(values)

        def pct(p: float) -> float:  # nearest rank
            return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

        return Stats(len(ordered), pct(50), pct(95), pct(99), ordered[-1])


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (this process when ``pid`` is None)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: all but idle and iowait)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class Gauges:
    """CPU seconds by process, read around a measured window."""

    pids: dict[str, int | None]

    def read(self) -> dict[str, float]:
        out = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        out["others"] = _machine_busy_seconds() - sum(out.values())
        return out

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before}


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    notes: list[str] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    """Seconds from send to 202 of the phase's webhooks."""
    refused: Counter[str] = field(default_factory=Counter)
    late_starts: int = 0
    not_started: int = 0
    """Requests offered but never started: the rate's window was over before one was free to go."""
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    events: int = 0
    """Webhooks sent (or floor replays made)."""


# ------------------------------------------------------------------------------------------------ stack
@dataclass
class Stack:
    host_url: str
    sim_url: str
    ca: Path
    world: demo.DemoWorld
    connection: str
    settings: dict[str, str]
    pids: dict[str, int | None]
    host_log: Path


def start_stack(data: Path, logs: Path, env: dict[str, str], children: list[procs.Managed]) -> Stack:
    """A fresh stack: Azurite's files in ``data`` (empty), every process's log in ``logs``."""
    tls = procs.ROOT / ".local" / "tls"
    ca = devca.ensure(tls)
    ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
    azurite = start_azurite_in_memory(data / "azurite", ports, log=logs / "azurite.log", keep_alive=False)
    children.append(azurite)
    sim_port = procs.free_port()
    sim = procs.start_sim(sim_port, tls, log=logs / "m365sim.log")
    children.append(sim)
    world = demo.seed(f"https://127.0.0.1:{sim_port}", ca)
    settings = world.warden_settings(ports.connection_string)
    host_port = procs.free_port()
    host = procs.start_funchost(host_port, env={**env, **settings}, log=logs / "funchost.log")
    children.append(host)
    return Stack(
        host_url=f"http://127.0.0.1:{host_port}",
        sim_url=world.sim_url,
        ca=ca,
        world=world,
        connection=ports.connection_string,
        settings=settings,
        pids={"host": host.proc.pid, "Azurite": azurite.proc.pid, "sim": sim.proc.pid, "client": None},
        host_log=logs / "funchost.log",
    )


# --------------------------------------------------------------------------------------------- people
@dataclass
class Person:
    employee_id: str
    email: str
    last_name: str
    user_id: str = ""
    m365_id: str = ""

    def data(self, directory_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "employeeId": self.employee_id,
            "email": self.email,
            "firstName": "Bench",
            "lastName": self.last_name,
            "directories": [directory_id],
            **extra,
        }


def people(run: str, kind: str, count: int) -> list[Person]:
    return [
        Person(f"{run}{kind}{i:05d}", f"b{run}{kind}{i:05d}@{demo.DEMO_DOMAIN}", f"{kind.upper()}{i}")
        for i in range(count)
    ]


@dataclass
class Sent:
    at: float
    """When the request was handed to the client (after signing)."""
    acked: float
    status: int
    body: dict[str, Any]


async def paced(
    count: int,
    rate: float,
    job: Callable[[int], Awaitable[T]],
    *,
    gate: asyncio.Semaphore | None = None,
    window: float | None = None,
) -> tuple[list[T], list[float], int]:
    """Start ``job(i)`` at ``rate`` per second (open loop), at most ``gate``'s value at once; a job that could
    not start within ``window`` seconds of the first (all in flight, the system saturated) is not started. The
    results of the jobs started, their scheduled starts, and how many were not started."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    wall0 = time.time() - loop.time()
    dropped = 0

    async def one(i: int) -> T | None:
        nonlocal dropped
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        if gate is None:
            return await job(i)
        async with gate:
            if window is not None and loop.time() > start + window:
                dropped += 1
                return None
            return await job(i)

    results = await asyncio.gather(*(one(i) for i in range(count)))
    done = [(r, wall0 + start + i / rate) for i, r in enumerate(results) if r is not None]
    return [r for r, _ in done], [when for _, when in done], dropped


class Client:
    """The HR system (signed webhooks), an admin (bearer token) and the simulator's control API."""

    def __init__(self, stack: Stack, token: str, concurrency: int) -> None:
        self.stack = stack
        verify = ssl.create_default_context(cafile=str(stack.ca))
        self.sim = httpx.AsyncClient(base_url=stack.sim_url, verify=verify, timeout=60, trust_env=False)
        self.api = httpx.AsyncClient(
            base_url=stack.host_url,
            timeout=120,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.hooks = httpx.AsyncClient(base_url=stack.host_url, timeout=120, trust_env=False, limits=limits)
        self.webhook: Webhook | None = None
        self.directory_id = ""

    async def aclose(self) -> None:
        for client in (self.sim, self.api, self.hooks):
            await client.aclose()

    async def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = await self.api.request(method, f"/api{path}", **kw)
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    async def connect(self) -> None:
        body = {
            "name": "Contoso",
            "tenantId": demo.DEMO_TENANT_ID,
            "auth": {
                "mode": "app",
                "clientId": demo.DEMO_CLIENT_ID,
                "clientSecret": self.stack.world.demo_client_secret,
            },
        }
        directory = await self.ok("POST", "/directories", 201, json=body)
        self.directory_id = directory["id"]
        # The mass-change guard (rule 19) holds more than `count` blocks an hour: 200 leavers in 40 s are such a
        # burst, by design. Its count is raised so that every leaver is blocked, through the same path as a
        # quiet day's leaver (counted, under the threshold, written).
        options = {**directory["options"], "massChangeGuard": {**GUARD_OFF}}
        await self.ok("PATCH", f"/directories/{self.directory_id}", json={"options": options})
        secret = (await self.ok("POST", "/hris/secret", 201))["secret"]
        self.webhook = Webhook(secret)

    async def link_of(self, user_id: str) -> dict[str, Any]:
        """The user's link in the demo directory, as the API shows it."""
        user = await self.ok("GET", f"/users/{user_id}")
        found: dict[str, Any] = next(
            (d for d in user["directories"] if d["directoryId"] == self.directory_id), {}
        )
        return found

    async def event(self, kind: str, data: dict[str, Any]) -> Sent:
        assert self.webhook is not None
        raw = json.dumps({"type": f"employee.{kind}", "data": data}, separators=(",", ":"))
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(msg_id, now, raw),
        }
        content = raw.encode()
        at = time.time()
        response = await self.hooks.post("/api/hris/events", content=content, headers=headers)
        acked = time.time()
        try:
            body = response.json()
        except ValueError:
            body = {"raw": response.text[:200]}
        return Sent(at, acked, response.status_code, body if isinstance(body, dict) else {})

    # --------------------------------------------------------------------------------- the simulator
    async def faults(self, **knobs: Any) -> None:
        (await self.sim.put("/_sim/faults", json=knobs)).raise_for_status()

    async def clear_log(self) -> None:
        (await self.sim.delete("/_sim/requests")).raise_for_status()

    async def log(self, since: int = 0) -> list[dict[str, Any]]:
        response = await self.sim.get("/_sim/requests", params={"since": str(since)})
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["value"]
        return entries

    # ------------------------------------------------------------------------------------- warden
    async def synced(self) -> dict[str, tuple[str, str]]:
        """employeeId → (user id, M365 id) of every user synced in the demo directory."""
        out: dict[str, tuple[str, str]] = {}
        cursor: str | None = None
        while True:
            params = {"directoryId": self.directory_id, "status": "synced", "limit": "200"}
            if cursor:
                params["cursor"] = cursor
            page = await self.ok("GET", "/users", params=params)
            for item in page["items"]:
                link = next((d for d in item["directories"] if d["directoryId"] == self.directory_id), None)
                if item.get("employeeId") and link and link.get("m365UserId"):
                    out[item["employeeId"]] = (item["id"], link["m365UserId"])
            cursor = page.get("next")
            if not cursor:
                return out


async def drain(stack: Stack, timeout: float = DRAIN_TIMEOUT) -> float:
    """Wait until the sync queue holds no message (visible or not) twice in a row; the seconds waited."""
    from azure.storage.queue.aio import QueueClient

    started = time.monotonic()
    empty = 0
    async with QueueClient.from_connection_string(stack.connection, "user-sync") as queue:
        while time.monotonic() - started < timeout:
            props = await queue.get_queue_properties()
            empty = empty + 1 if not props.approximate_message_count else 0
            if empty >= 2:
                break
            await asyncio.sleep(0.5)
        else:
            _say(f"the sync queue still held messages after {timeout:.0f} s")
    return time.monotonic() - started


def _tally(phase: Phase, sent: Sequence[Sent], expected: str) -> None:
    phase.events = len(sent)
    for s in sent:
        if s.status == 202 and s.body.get("status") == expected:
            phase.acks.append(s.acked - s.at)
        else:
            phase.refused[f"{s.status} {s.body.get('status') or s.body.get('detail') or ''}".strip()] += 1


# ------------------------------------------------------------------------------------------- host log
HOST_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT[\d:.]+)Z\] (.*)$")
DURATION = re.compile(r"Executed 'Functions\.(\w+)' \((\w+),.*Duration=(\d+)ms")


def host_activity(log: Path, since: float, until: float, events: int) -> str:
    """What the functions host ran between ``since`` and ``until`` (its log), per webhook sent."""
    runs: dict[str, list[int]] = {}
    tally: Counter[str] = Counter()
    with contextlib.suppress(OSError), log.open(errors="replace") as lines:
        for line in lines:
            m = HOST_LINE.match(line)
            if not m or not since <= _epoch(m.group(1) + "Z") <= until:
                continue
            text = m.group(2)
            d = DURATION.match(text)
            if d:
                runs.setdefault(d.group(1), []).append(int(d.group(3)))
                tally[f"{d.group(1)} {d.group(2)}"] += 1
            elif text.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(text)
                    if event.get("event") == "sync.done":
                        tally["writing" if event.get("writes") else "converged"] += 1
                    elif event.get("event") in ("sync.deferred", "sync.failed"):
                        tally[event["event"]] += 1
    syncs = runs.get("sync_user", [])
    hooks = runs.get("hris_event", [])
    if not events or not syncs:
        return "host: no sync run logged"
    return (
        f"host: {len(syncs) / events:.1f} sync runs per webhook ({tally['writing'] / events:.1f} writing to "
        f"Graph, {tally['converged'] / events:.1f} finding nothing to do, {tally['sync.deferred'] / events:.1f} "
        f"deferred by the user's lease, {tally['sync.failed'] / events:.1f} failed); sync run p50 "
        f"{statistics.median(syncs):.0f} ms, hris_event p50 "
        f"{statistics.median(hooks) if hooks else 0:.0f} ms (in the host)"
    )


# ----------------------------------------------------------------------------------------- provisioning
async def provision(client: Client, staff: list[Person]) -> float:
    """Hire ``staff`` (not measured) and wait until every one is synced; the seconds it took."""
    started = time.monotonic()
    gate = asyncio.Semaphore(PROVISION_CONCURRENCY)

    async def hire(p: Person) -> None:
        async with gate:
            sent = await client.event("hired", p.data(client.directory_id))
        if sent.status != 202:
            raise RuntimeError(f"hire of {p.employee_id}: {sent.status} {sent.body}")
        p.user_id = str(sent.body["userId"])

    await asyncio.gather(*(hire(p) for p in staff))
    wanted = {p.employee_id: p for p in staff}
    while time.monotonic() - started < PROVISION_TIMEOUT:
        found = await client.synced()
        if all(e in found for e in wanted):
            for e, (_, m365_id) in found.items():
                if e in wanted:
                    wanted[e].m365_id = m365_id
            return time.monotonic() - started
        await asyncio.sleep(1.0)
    done = sum(e in found for e in wanted)
    raise RuntimeError(f"only {done} of {len(staff)} hires synced after {PROVISION_TIMEOUT:.0f} s")


# ------------------------------------------------------------------------------------ 1. and 2. syncs
def graph_profile(entries: Sequence[dict[str, Any]], events: int) -> str:
    """The simulator's answered Graph requests per event, by kind (``$batch`` items in brackets)."""
    tally: Counter[str] = Counter()
    for e in entries:
        path = urllib.parse.unquote(str(e["path"]).split("?", 1)[0]).lower().rstrip("/")
        if e["kind"] in ("token", "keyvault"):
            tally[e["kind"]] += 1
            continue
        if not path.startswith("/v1.0/"):
            continue
        shape = re.sub(r"^/v1\.0/users/[^/]+", "/users/{id}", path)
        shape = shape.replace("/v1.0", "")
        if e["kind"] == "batch-item":
            shape = f"[{e['method']} {shape}]"
        elif "$filter" in str(e["path"]) or "%24filter" in str(e["path"]).lower():
            shape = f"{e['method']} {shape}?$filter"
        else:
            shape = f"{e['method']} {shape}"
        tally[shape] += 1
    order = sorted(tally.items(), key=lambda kv: (kv[0].startswith("["), -kv[1]))
    return ", ".join(f"{n / events:.1f} {k}" for k, n in order if n / events >= 0.05)


def _segments(label: str, parts: dict[str, list[float]]) -> str:
    return f"{label} p50 from the send: " + ", ".join(
        f"{name} {statistics.median(v) * 1000:.0f} ms" for name, v in parts.items() if v
    )


async def _collect(
    client: Client, done: Callable[[list[dict[str, Any]]], bool], deadline: float
) -> list[Any]:
    """The simulator's log since it was cleared, polled until ``done`` or the deadline."""
    entries: list[dict[str, Any]] = []
    seq = 0
    while True:
        new = await client.log(seq)
        if new:
            seq = max(int(e["seq"]) for e in new)
            entries += new
        if done(entries) or time.time() > deadline:
            return entries
        await asyncio.sleep(0.5)


async def leavers(client: Client, staff: list[Person], rate: float, tail: float) -> Phase:
    phase = Phase("leaver")
    await client.clear_log()
    ids = {p.m365_id.lower() for p in staff}

    def revokes(entries: Sequence[dict[str, Any]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for e in entries:
            m = REVOKE.match(str(e["path"]))
            if m and e["method"] == "POST" and e["kind"] == "batch-item" and e["status"] == 200:
                key = m.group(1).lower()
                if key in ids:
                    out.setdefault(key, _epoch(str(e["time"])))
        return out

    async def terminate(i: int) -> Sent:
        return await client.event("terminated", staff[i].data(client.directory_id))

    sent, _, _ = await paced(len(staff), rate, terminate)
    _tally(phase, sent, "accepted")
    deadline = max(s.at for s in sent) + tail
    entries = await _collect(client, lambda es: len(revokes(es)) == len(staff), deadline)
    revoked = revokes(entries)
    reads: dict[str, list[float]] = {}
    for e in entries:
        m = READ.match(str(e["path"]))
        if m and e["method"] == "GET" and e["kind"] == "graph":
            reads.setdefault(m.group(1).lower(), []).append(_epoch(str(e["time"])))
    parts: dict[str, list[float]] = {"202": [], "Graph read of the account": [], "revoke": []}
    for p, s in zip(staff, sent, strict=True):
        key = p.m365_id.lower()
        if key not in revoked:
            continue
        phase.latencies.append(revoked[key] - s.at)
        parts["202"].append(s.acked - s.at)
        parts["revoke"].append(revoked[key] - s.at)
        read = min((t for t in reads.get(key, []) if t >= s.at), default=None)
        if read is not None and read <= revoked[key]:
            parts["Graph read of the account"].append(read - s.at)
    phase.missing = len(staff) - len(revoked)
    if phase.missing:
        unrevoked = next(p for p in staff if p.m365_id.lower() not in revoked)
        link = await client.link_of(unrevoked.user_id)
        phase.notes.append(
            f"leaver: e.g. {unrevoked.employee_id}, not revoked: link {link.get('status')} "
            f"({link.get('reason') or 'no reason given'})"
        )
    phase.notes.append(_segments("leaver", parts))
    phase.notes.append("simulator requests per leaver: " + graph_profile(entries, len(staff)))
    return phase


async def joiners(client: Client, staff: list[Person], rate: float, tail: float) -> Phase:
    phase = Phase("joiner")
    await client.clear_log()

    def creates(entries: Sequence[dict[str, Any]]) -> list[float]:
        return sorted(
            _epoch(str(e["time"]))
            for e in entries
            if e["method"] == "POST"
            and e["kind"] == "batch-item"
            and str(e["path"]).rstrip("/").lower() == "/v1.0/users"
            and e["status"] == 201
        )

    async def hire(i: int) -> Sent:
        return await client.event("hired", staff[i].data(client.directory_id))

    sent, _, _ = await paced(len(staff), rate, hire)
    _tally(phase, sent, "accepted")
    for p, s in zip(staff, sent, strict=True):
        p.user_id = str(s.body.get("userId") or "")
    deadline = max(s.at for s in sent) + tail
    entries = await _collect(client, lambda es: len(creates(es)) >= len(staff), deadline)
    created = creates(entries)
    # The log does not say whom a create created. Each person's sync looks them up by email first (their
    # email is in that request's $filter) and creates them right after, with no storage request in between:
    # each person takes the first create not yet taken that follows their lookup, people in lookup order.
    looked_up: dict[str, float] = {}
    for e in entries:
        if e["method"] == "GET" and e["kind"] == "graph":
            m = LOOKUP.search(urllib.parse.unquote_plus(str(e["path"])))
            if m:
                email, at = m.group(1).lower(), _epoch(str(e["time"]))
                looked_up[email] = min(at, looked_up.get(email, at))
    parts: dict[str, list[float]] = {"202": [], "Graph lookup by email": [], "POST /users": []}
    gaps: list[float] = []
    taken = 0
    order = sorted(
        (
            (looked_up[p.email.lower()], p, s)
            for p, s in zip(staff, sent, strict=True)
            if p.email.lower() in looked_up
        ),
        key=lambda x: x[0],
    )
    for lookup, _p, s in order:
        while taken < len(created) and created[taken] < lookup:
            taken += 1
        if taken == len(created):
            break
        create = created[taken]
        taken += 1
        phase.latencies.append(create - s.at)
        gaps.append(create - lookup)
        parts["202"].append(s.acked - s.at)
        parts["Graph lookup by email"].append(lookup - s.at)
        parts["POST /users"].append(create - s.at)
    phase.missing = len(staff) - len(phase.latencies)
    phase.notes.append(_segments("joiner", parts))
    if gaps:
        phase.notes.append(
            f"pairing of creates and people: a create follows its person's lookup by "
            f"{min(gaps) * 1000:.0f}..{max(gaps) * 1000:.0f} ms ({len(created)} creates answered 201)"
        )
    phase.notes.append("simulator requests per joiner: " + graph_profile(entries, len(staff)))
    return phase


# ------------------------------------------------------------------------------------ 3. webhook acks
def _trace_config(into: list[tuple[str, str]]) -> Any:
    import aiohttp

    async def on_start(_: Any, __: Any, params: Any) -> None:
        into.append((params.method, params.url.path))

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    return config


def _shape(method: str, path: str, table_prefix: str) -> str:
    """A storage request as ``METHOD resource[kind]``: the table (prefix dropped) or queue, and whether it
    names an entity, a query, a batch."""
    tail = path.split("/", 2)[-1] if path.count("/") >= 2 else path
    if tail == "$batch":
        return f"{method} batch"
    name, _, rest = tail.partition("(")
    if name.endswith("/messages"):
        return f"{method} queue"
    name = name.removeprefix(table_prefix)
    if not _:
        return f"{method} {name}"
    kind = "entity" if "PartitionKey=" in rest else "query"
    return f"{method} {name} {kind}"


def _shapes(trace: Sequence[tuple[str, str]], prefix: str) -> Counter[str]:
    return Counter(_shape(m, p, prefix) for m, p in trace)


async def trace_warden(stack: Stack, people: Sequence[Person], directory_id: str) -> list[tuple[str, str]]:
    """The storage requests Warden makes for one ``employee.updated`` of ``people[0]``, through its own container
    in this process (the door's own work, signature and JSON, makes none), once the process is warm: an update
    of ``people[1]`` first, untraced, as a host that has taken events before (tables and queue created, the
    list of directories read within the last ``RECENT_SECONDS``, today's audit marker written)."""
    import aiohttp

    from shared.bootstrap import Container
    from shared.config import load_settings
    from shared.domain.hr import Employee, HrEvent
    from shared.service.hr.events import Delivery

    trace: list[tuple[str, str]] = []
    container = Container(load_settings(stack.settings))
    container.__dict__["storage_http"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS),
        trace_configs=[_trace_config(trace)],
    )

    async def update(person: Person) -> None:
        event = HrEvent(
            "employee.updated",
            Employee(
                employee_id=person.employee_id,
                email=person.email,
                first_name="Bench",
                last_name=person.last_name,
                optional={"job_title": f"Traced {uuid.uuid4().hex[:6]}"},
                directories=(directory_id,),
            ),
        )
        delivery = Delivery(f"msg_{uuid.uuid4().hex}", dt.datetime.now(dt.UTC))
        accepted = await container.hris.accept(event, delivery, None)
        if accepted.outcome != "accepted":
            raise RuntimeError(f"the traced update was {accepted.outcome}")

    try:
        await update(people[1 % len(people)])
        trace.clear()
        await update(people[0])
        return list(trace)
    finally:
        await container.aclose()


@dataclass
class FloorPerson:
    user_id: str
    employee_id: str


class Floor:
    """The minimal durable work of an ``employee.updated``, made with the SDKs alone (same transport settings as
    Warden's container) against copies of the person's rows: the receipt inserted (of two deliveries of one
    ``webhook-id`` one goes on), the person's changed field written with the row of the audit entry that its
    partition keeps (one transaction), the entry's row in the day's partition and the sync's queue message side by
    side, then the receipt marked done. Nothing is read: what the event must find out (who the person is, what
    they look like now) is Warden's own work, and what the ratio shows."""

    def __init__(self, connection: str, prefix: str, directory_id: str, trace: list[tuple[str, str]]) -> None:
        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.data.tables.aio import TableServiceClient
        from azure.storage.queue import TextBase64EncodePolicy
        from azure.storage.queue.aio import QueueServiceClient

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS),
            trace_configs=[_trace_config(trace)],
        )

        def transport() -> Any:
            return AioHttpTransport(session=self.session, session_owner=False)

        self.tables = TableServiceClient.from_connection_string(connection, transport=transport())
        self.queues = QueueServiceClient.from_connection_string(connection, transport=transport())
        self.t = {
            name: self.tables.get_table_client(prefix + name) for name in ("users", "audit", "receipts")
        }
        self.queue = self.queues.get_queue_client(FLOOR_QUEUE, message_encode_policy=TextBase64EncodePolicy())
        self.directory_id = directory_id

    async def aclose(self) -> None:
        for client in self.t.values():
            await client.close()
        await self.queue.close()
        await self.tables.close()
        await self.queues.close()
        await self.session.close()

    async def setup(self, staff: Sequence[Person]) -> list[FloorPerson]:
        """A copy of each person's user row under a key of the floor's own (Warden never reads it)."""
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self.queue.create_queue()
        users = self.t["users"]

        async def copy(p: Person) -> FloorPerson:
            floor = FloorPerson(f"floor-{uuid.uuid4()}", f"F{p.employee_id}"[:16])
            row = await users.get_entity(p.user_id, "user")
            await users.upsert_entity(
                {**dict(row), "PartitionKey": floor.user_id, "EmployeeId": floor.employee_id}
            )
            return floor

        return list(await asyncio.gather(*(copy(p) for p in staff)))

    def _audit(self, user_id: str, webhook_id: str, job_title: str) -> dict[str, Any]:
        now = time.time()
        entry_id = str(uuid.uuid4())
        return {
            "RowKey": f"{10**13 - 1 - int(now * 1000):013d}|{entry_id}",
            "Id": entry_id,
            "At": _iso(now),
            "Actor": "hris:webhook",
            "Action": "hris.event.applied",
            "Result": "succeeded",
            "CorrelationId": str(uuid.uuid4()),
            "UserId": user_id,
            "DirectoryId": "",
            "GroupId": "",
            "Before": "",
            "After": json.dumps(
                {"type": "employee.updated", "webhookId": webhook_id, "jobTitle": job_title},
                separators=(",", ":"),
                sort_keys=True,
            ),
        }

    async def event(self, p: FloorPerson, job_title: str) -> None:
        from azure.data.tables import UpdateMode

        t = self.t
        webhook_id = f"floor_{uuid.uuid4().hex}"
        receipt_pk = hashlib.sha256(webhook_id.encode()).hexdigest()
        await t["receipts"].create_entity(
            {
                "PartitionKey": receipt_pk,
                "RowKey": "receipt",
                "WebhookId": webhook_id,
                "EventType": "employee.updated",
                "EmployeeId": p.employee_id,
                "State": "received",
                "At": _iso(time.time()),
            }
        )
        entry = self._audit(p.user_id, webhook_id, job_title)
        person = {
            "PartitionKey": p.user_id,
            "RowKey": "user",
            "JobTitle": job_title,
            "UpdatedAt": entry["At"],
        }
        await t["users"].submit_transaction(
            [
                ("update", person, {"mode": UpdateMode.MERGE}),
                ("create", {**entry, "PartitionKey": p.user_id, "RowKey": "audit|" + entry["RowKey"]}),
            ]
        )
        day = time.strftime("%Y%m%d", time.gmtime())
        message = json.dumps({"userId": p.user_id, "correlationId": str(uuid.uuid4())}, separators=(",", ":"))
        await asyncio.gather(
            t["audit"].create_entity({**entry, "PartitionKey": f"floor-day|{day}"}),
            self.queue.send_message(message),
        )
        await t["receipts"].update_entity(
            {"PartitionKey": receipt_pk, "RowKey": "receipt", "State": "done", "DoneAt": _iso(time.time())},
            mode=UpdateMode.MERGE,
        )


@dataclass
class AckResult:
    figures: list[tuple[float, Phase, Phase]]
    """(offered rate, Warden, floor), the main rate first."""
    notes: list[str]


async def _measure(
    name: str,
    count: int,
    rate: float,
    job: Callable[[int], Awaitable[Sent]],
    gate: asyncio.Semaphore,
    gauges: Gauges,
    window: float,
) -> Phase:
    phase = Phase(name)
    before, wall = gauges.read(), time.time()
    sent, scheduled, phase.not_started = await paced(count, rate, job, gate=gate, window=window)
    phase.wall = time.time() - wall
    phase.cpu = Gauges.spent(before, gauges.read())
    _tally(phase, sent, "accepted")
    phase.latencies = list(phase.acks)
    phase.late_starts = sum(s.at - when > 0.05 for s, when in zip(sent, scheduled, strict=True))
    return phase


async def acks(
    client: Client, stack: Stack, staff: list[Person], args: argparse.Namespace, gauges: Gauges
) -> AckResult:
    directory_id = client.directory_id
    prefix = stack.settings.get("WARDEN_TABLE_PREFIX", "warden")
    notes: list[str] = []
    rates = [(args.ack_rate, min(args.ack_max, round(args.ack_rate * args.ack_seconds)))]
    if args.ack_low_rate:
        rates.append((args.ack_low_rate, max(1, round(args.ack_low_rate * args.ack_low_seconds))))

    # The storage requests of one update: Warden's (traced in-process) beside the floor's.
    warden_trace = await trace_warden(stack, staff, directory_id)
    floor_trace: list[tuple[str, str]] = []
    floor = Floor(stack.connection, prefix, directory_id, floor_trace)
    try:
        copies = await floor.setup(staff)
        floor_trace.clear()
        await floor.event(copies[0], "Traced")
        w, f = _shapes(warden_trace, prefix), _shapes(floor_trace, prefix)
        if args.show_requests:
            for who, trace in (("Warden", warden_trace), ("floor", floor_trace)):
                _say(f"{who}'s storage requests for one employee.updated:")
                for method, path in trace:
                    _say(f"   {method} {urllib.parse.unquote(path)}")
        verdict = _verdict(len(warden_trace), REQUESTS_TARGET)
        notes.append(
            f"storage requests per employee.updated (a warm process): Warden {len(warden_trace)} (target <= "
            f"{REQUESTS_TARGET}: {verdict}): "
            + ", ".join(f"{n} {k}" for k, n in sorted(w.items()))
            + f"; floor {len(floor_trace)}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(f.items()))
        )

        gate = asyncio.Semaphore(args.concurrency)
        titles = iter(range(10**9))

        async def update(i: int) -> Sent:
            p = staff[i % len(staff)]
            return await client.event("updated", p.data(directory_id, jobTitle=f"Title {next(titles)}"))

        async def replay(i: int) -> Sent:
            at = time.time()
            await floor.event(copies[i % len(copies)], f"Title {next(titles)}")
            return Sent(at, time.time(), 202, {"status": "accepted"})

        # Warm-up, unmeasured; then the floors in a quiet stack, then Warden (whose events queue syncs that
        # run beside the later requests, as they would in Azure).
        await paced(WARMUP_EVENTS, args.ack_rate, update, gate=gate)
        await paced(WARMUP_EVENTS, args.ack_rate, replay, gate=gate)
        await drain(stack)
        floors = {}
        for rate, count in reversed(rates):
            _say(f"   floor at {rate:g}/s")
            window = count / rate + WINDOW_GRACE
            floors[rate] = await _measure(f"floor {rate:g}/s", count, rate, replay, gate, gauges, window)
        figures: list[tuple[float, Phase, Phase]] = []
        for rate, count in reversed(rates):
            _say(f"   Warden at {rate:g}/s")
            window = count / rate + WINDOW_GRACE
            figure = await _measure(f"ack {rate:g}/s", count, rate, update, gate, gauges, window)
            figures.insert(0, (rate, figure, floors[rate]))
            if rate != rates[0][0]:
                await drain(stack)
        backlog = await _queue_depth(stack)
        notes.append(f"after the last 202 at {rates[0][0]:g}/s, {backlog} sync messages were still queued")
    finally:
        await floor.aclose()
    return AckResult(figures, notes)


async def _queue_depth(stack: Stack) -> int:
    from azure.storage.queue.aio import QueueClient

    async with QueueClient.from_connection_string(stack.connection, "user-sync") as queue:
        return int((await queue.get_queue_properties()).approximate_message_count or 0)


# -------------------------------------------------------------------------------------------- report
def _t(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _row(label: str, s: Stats | None, *, p99: bool, target: str = "", verdict: str = "") -> str:
    if s is None:
        return f"{label:<44} {'no samples':>8}"
    cols = [_t(s.p50), _t(s.p95), _t(s.p99) if p99 else "-", _t(s.max)]
    return (
        f"{label:<44} {s.n:>5} " + " ".join(f"{c:>8}" for c in cols) + f"   {target:<14} {verdict}".rstrip()
    )


def _verdict(value: float, limit: float) -> str:
    return "ok" if value <= limit else "MISSED"


def report(
    args: argparse.Namespace,
    leave: Phase | None,
    join: Phase | None,
    ack: AckResult | None,
    provisioned: float,
) -> list[str]:
    lines = [
        f"HR events -> M365 and the webhook's acknowledgement (Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; Azurite in memory, simulated cloud (Graph latency {args.graph_latency_ms:.0f} ms, "
        "no replication lag), local functions host and this client on one machine)",
        f"{'':<46} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}   target",
    ]
    for phase, label, limit in (
        (leave, "1. leaver: webhook -> revokeSignInSessions", LEAVER_TARGET),
        (join, "2. joiner: webhook -> POST /users 201", JOINER_TARGET),
    ):
        if phase is not None:
            st = Stats.of(phase.latencies)
            verdict = _verdict(st.p95, limit) if st else ""
            lines.append(_row(label, st, p99=False, target=f"p95 <= {limit * 1000:.0f} ms", verdict=verdict))
    for i, (rate, figure, floor) in enumerate(ack.figures if ack else []):
        a, f = Stats.of(figure.latencies), Stats.of(floor.latencies)
        head = "3. " if i == 0 else "   "
        lines.append(_row(f"{head}employee.updated at {rate:g}/s: send -> 202", a, p99=True))
        lines.append(_row("   floor: the minimal durable work, bare SDKs", f, p99=True))
        if a and f:
            r99, r50 = a.p99 / f.p99, a.p50 / f.p50
            target = f"p99 <= {ACK_TARGET:g}x" if i == 0 else ""
            verdict = _verdict(r99, ACK_TARGET) if i == 0 else ""
            lines.append(
                f"{'   ratio':<46} {'':>5} {r50:>7.2f}x {'':>8} {r99:>7.2f}x {'':>8}   {target:<14} {verdict}".rstrip()
            )
    lines.append("")
    phases = [p for p in (leave, join) if p is not None]
    phases += [p for _, fig, flo in (ack.figures if ack else []) for p in (fig, flo)]
    for phase in phases:
        if phase.cpu and phase.events:
            per = ", ".join(
                f"{k} {v / phase.events * 1000:.1f}" for k, v in phase.cpu.items() if k != "others"
            )
            achieved = ""
            if phase.name.startswith(("ack", "floor")):
                achieved = f"{phase.events / phase.wall:.1f} req/s achieved" + (
                    f" ({phase.late_starts} started > 50 ms late, {phase.not_started} never started)"
                    if phase.late_starts or phase.not_started
                    else ""
                )
                achieved += "; "
            lines.append(f"{phase.name}: {achieved}CPU ms per webhook: {per}")
    busy = [f"{p.name} {max(0.0, p.cpu['others'] / p.wall):.2f}" for p in phases if p.cpu and p.wall]
    if busy:
        lines.append("other processes on this machine, cores busy on average during: " + ", ".join(busy))
    for phase in phases:
        if phase.missing:
            lines.append(f"{phase.name}: {phase.missing} without a matching simulator request (not counted)")
        if phase.refused:
            lines.append(f"{phase.name}: webhook answers other than 202 accepted: {dict(phase.refused)}")
        lines += phase.notes
    lines += ack.notes if ack else []
    lines.append(f"provisioning: {args.employees} hires synced in {provisioned:.1f} s (not measured)")
    return lines


# ---------------------------------------------------------------------------------------------- main
async def _phase(gauges: Gauges, stack: Stack, run: Callable[[], Awaitable[Phase]]) -> Phase:
    """Run a sync phase with the CPU gauges around it and what the host ran meanwhile."""
    before, started = gauges.read(), time.time()
    phase = await run()
    phase.cpu, phase.wall = Gauges.spent(before, gauges.read()), time.time() - started
    phase.notes.append(host_activity(stack.host_log, started, time.time(), phase.events))
    return phase


async def run(stack: Stack, args: argparse.Namespace) -> list[str]:
    token = await asyncio.to_thread(stack.world.token, "admin")
    client = Client(stack, token, args.concurrency)
    gauges = Gauges(stack.pids)
    run_id = uuid.uuid4().hex[:4]
    leave = join = None
    ack = None
    try:
        await client.connect()
        await client.faults(latencyMs=0, replicationLagMs=0)
        _say(f"provisioning {args.employees} employees")
        staff = people(run_id, "l", args.employees)
        provisioned = await provision(client, staff)
        await drain(stack)
        await client.faults(latencyMs=args.graph_latency_ms, replicationLagMs=0)
        linked = staff
        if args.only in (None, "sync"):
            _say(f"1. leavers at {args.rate:g}/s")
            leave = await _phase(gauges, stack, lambda: leavers(client, staff, args.rate, args.tail))
            await drain(stack)
            _say(f"2. joiners at {args.rate:g}/s")
            hires = people(run_id, "j", args.employees)
            join = await _phase(gauges, stack, lambda: joiners(client, hires, args.rate, args.tail))
            await drain(stack)
            linked = [p for p in hires if p.user_id]
        if args.only in (None, "ack"):
            _say(
                f"3. webhook acknowledgement at {args.ack_rate:g}/s (and {args.ack_low_rate:g}/s), and its floor"
            )
            ack = await acks(client, stack, linked, args, gauges)
    finally:
        await client.aclose()
    return report(args, leave, join, ack, provisioned)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    parser.add_argument("--only", choices=("sync", "ack"), help="run 1 and 2, or 3 (default: all)")
    parser.add_argument("--employees", type=int, help="leavers, and as many joiners (default 200; quick 20)")
    parser.add_argument("--rate", type=float, default=5.0, help="leaver and joiner webhooks per second")
    parser.add_argument("--tail", type=float, default=60.0, help="seconds to wait after the last send")
    parser.add_argument("--graph-latency-ms", type=float, default=80.0, help="the simulator's latencyMs")
    parser.add_argument("--ack-rate", type=float, default=50.0, help="acknowledgement: requests per second")
    parser.add_argument("--ack-seconds", type=float, help="acknowledgement: seconds (default 20; quick 4)")
    parser.add_argument("--ack-max", type=int, default=1000, help="acknowledgement: at most this many")
    parser.add_argument(
        "--ack-low-rate", type=float, default=5.0, help="acknowledgement: also at this rate (0: not)"
    )
    parser.add_argument("--ack-low-seconds", type=float, help="... for this long (default 10; quick 3)")
    parser.add_argument("--concurrency", type=int, default=64, help="acknowledgement: requests in flight")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    parser.add_argument(
        "--show-requests", action="store_true", help="list the storage requests of one update (on stderr)"
    )
    args = parser.parse_args(argv)
    if args.employees is None:
        args.employees = 20 if args.quick else 200
    if args.ack_seconds is None:
        args.ack_seconds = 4.0 if args.quick else 20.0
    if args.ack_low_seconds is None:
        args.ack_low_seconds = 3.0 if args.quick else 10.0
    if args.quick:
        args.tail = min(args.tail, 30.0)
    if args.employees < 1 or args.rate <= 0 or args.ack_rate <= 0 or not 1 <= args.concurrency <= 64:
        parser.error("--employees, --rate and --ack-rate must be positive; --concurrency from 1 to 64")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}

    children: list[procs.Managed] = []
    with tempfile.TemporaryDirectory() as tmp, procs.stopping(children):
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        _say(f"starting Azurite, the simulated cloud and the functions host (logs in {logs})")
        stack = start_stack(Path(tmp), logs, env, children)
        lines = asyncio.run(run(stack, args))
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
