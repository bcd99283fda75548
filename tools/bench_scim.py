"""``make bench``, SCIM section (``python -m tools.bench_scim``): the SCIM service beside the standard webhook and
beside the store's bare write floor, measured in the same run. Not assertions: numbers to read and compare.

One stack, started here: Azurite (in memory), the simulated cloud with the demo world, the local functions host.
A SCIM source is created through ``POST /api/hris/sources`` and the built-in webhook's secret rotated.

1. Latency: ``--requests`` SCIM ``POST /Users`` (core and enterprise extension) and as many standard webhook
   hires (Standard Webhooks, ``employee.hired``), each sent at ``--rate`` per second, the two streams side by side
   (the same machine load), each request timed from its send to its 201 or 202. Neither binds a directory: what is
   measured is the answer, the store's work before it (the syncs they queue run in the host meanwhile, as in
   Azure).
2. Bulk load: ``--users`` users provisioned through ``POST /Bulk`` in requests of ``--bulk-size`` operations (one
   request at a time, as a provisioning job sends them), each a create with its own externalId; the rate beside
   the store's write floor: the minimal durable work of a SCIM create — the username, email and employeeId claims, the user
   row, the source's record with its externalId key (one transaction), an audit row and a queue message — written
   with the bare azure-data-tables and azure-storage-queue SDKs against the same Azurite, at the Bulk's concurrency
   (``shared.api.scim.bulk.CONCURRENCY``), before Warden's load (a quiet stack).

``--quick`` is a smoke run (100 users, 40 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from shared.api.scim.bulk import CONCURRENCY
from tools import procs
from tools.bench_sync import Stack, Stats, paced, start_stack

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DOMAIN = "scim-bench.example"
"""No directory has this domain: the users are stored and synced to nowhere (the answer is what is measured)."""


def _say(text: str) -> None:
    print(f"[bench_scim {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def scim_user(run: str, i: int) -> dict[str, Any]:
    name = f"sb{run}{i:06d}"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": name,
        "externalId": f"X{run}{i:06d}",
        "name": {"givenName": "Bench", "familyName": f"User{i}"},
        "emails": [{"value": f"{name}@{DOMAIN}", "type": "work", "primary": True}],
        "title": "Analyst",
        "active": True,
        ENTERPRISE: {"employeeNumber": f"S{run[:4]}{i:06d}", "department": "Bench"},
    }


@dataclass
class Latency:
    scim: Stats | None
    webhook: Stats | None
    refused: dict[str, int]


@dataclass
class Load:
    users: int
    seconds: float
    floor_seconds: float
    failed: int
    requests: int


class Client:
    def __init__(self, stack: Stack, token: str) -> None:
        self.stack = stack
        self.api = httpx.AsyncClient(
            base_url=stack.host_url,
            timeout=600,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self.raw = httpx.AsyncClient(base_url=stack.host_url, timeout=600, trust_env=False, limits=limits)
        self.scim_token = ""
        self.webhook: Webhook | None = None
        self.source_id = ""

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.raw.aclose()

    async def setup(self, run: str) -> None:
        made = await self.api.post("/api/hris/sources", json={"name": f"bench{run}", "kind": "scim"})
        made.raise_for_status()
        self.scim_token, self.source_id = made.json()["credential"], made.json()["id"]
        rotated = await self.api.post("/api/hris/secret")
        rotated.raise_for_status()
        self.webhook = Webhook(rotated.json()["secret"])

    async def scim(self, method: str, path: str, body: Any) -> tuple[int, float, Any]:
        started = time.perf_counter()
        response = await self.raw.request(
            method,
            f"/api/scim/v2{path}",
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.scim_token}", "Content-Type": "application/scim+json"},
        )
        return (
            response.status_code,
            time.perf_counter() - started,
            response.json() if response.content else None,
        )

    async def hire(self, run: str, i: int) -> tuple[int, float]:
        assert self.webhook is not None
        data = {
            "employeeId": f"W{run[:4]}{i:06d}",
            "email": f"wb{run}{i:06d}@{DOMAIN}",
            "firstName": "Bench",
            "lastName": f"Hire{i}",
            "jobTitle": "Analyst",
        }
        raw = json.dumps({"type": "employee.hired", "data": data}, separators=(",", ":"))
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(msg_id, now, raw),
        }
        started = time.perf_counter()
        response = await self.raw.post("/api/hris/events", content=raw.encode(), headers=headers)
        return response.status_code, time.perf_counter() - started


async def latency(client: Client, run: str, requests: int, rate: float) -> Latency:
    refused: dict[str, int] = {}

    async def scim_one(i: int) -> float | None:
        status, seconds, _ = await client.scim("POST", "/Users", scim_user(f"l{run}", i))
        if status != 201:
            refused[f"SCIM {status}"] = refused.get(f"SCIM {status}", 0) + 1
            return None
        return seconds

    async def hook_one(i: int) -> float | None:
        status, seconds = await client.hire(run, i)
        if status != 202:
            refused[f"webhook {status}"] = refused.get(f"webhook {status}", 0) + 1
            return None
        return seconds

    warm = max(5, requests // 20)  # connections, lazy imports (scim2-models), caches: not measured
    await asyncio.gather(
        *(scim_one(10_000_000 + i) for i in range(warm)), *(hook_one(10_000_000 + i) for i in range(warm))
    )
    refused.clear()
    (scim_times, _, _), (hook_times, _, _) = await asyncio.gather(
        paced(requests, rate, scim_one), paced(requests, rate, hook_one)
    )
    return Latency(
        Stats.of([t for t in scim_times if t is not None]),
        Stats.of([t for t in hook_times if t is not None]),
        refused,
    )


async def bulk_load(client: Client, run: str, users: int, size: int) -> tuple[float, int, int]:
    """Seconds to provision ``users`` through Bulk, the operations that failed, and the requests sent."""
    failed = 0
    requests = 0
    started = time.perf_counter()
    for first in range(0, users, size):
        ops = [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": scim_user(f"b{run}", i)}
            for i in range(first, min(users, first + size))
        ]
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}
        status, _, answer = await client.scim("POST", "/Bulk", body)
        requests += 1
        if status != 200:
            raise RuntimeError(f"POST /Bulk: {status} {str(answer)[:500]}")
        failed += sum(1 for o in answer["Operations"] if o["status"] != "201")
        if requests % 5 == 0:
            _say(f"bulk: {min(users, first + size)}/{users} users in {time.perf_counter() - started:.0f} s")
    return time.perf_counter() - started, failed, requests


async def floor(stack: Stack, users: int, concurrency: int) -> float:
    """The minimal durable work of ``users`` SCIM creates, with the bare SDKs (tables of a prefix of their own)."""
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.queue.aio import QueueServiceClient

    prefix = "floor" + uuid.uuid4().hex[:8]
    tables = TableServiceClient.from_connection_string(stack.connection)
    queues = QueueServiceClient.from_connection_string(stack.connection)
    names = ("uniques", "users", "hrrecords", "audit")
    clients = {n: tables.get_table_client(prefix + n) for n in names}
    for c in clients.values():
        await c.create_table()
    queue = queues.get_queue_client(prefix + "sync")
    await queue.create_queue()
    source = str(uuid.uuid4())
    gate = asyncio.Semaphore(concurrency)
    now = dt.datetime.now(dt.UTC).isoformat()

    async def one(i: int) -> None:
        user_id = str(uuid.uuid4())
        name = f"fl{i:06d}"
        async with gate:
            for kind, value in (
                ("username", name),
                ("email", f"{name}@{DOMAIN}"),
                ("employeeId", f"f{i:06d}"),
            ):
                await clients["uniques"].create_entity(
                    {"PartitionKey": f"{kind}|{value}", "RowKey": "claim", "Owner": user_id, "At": now}
                )
            await clients["users"].create_entity(
                {
                    "PartitionKey": user_id,
                    "RowKey": "user",
                    "Username": name,
                    "Email": f"{name}@{DOMAIN}",
                    "FirstName": "Bench",
                    "LastName": f"User{i}",
                    "State": "active",
                    "CreatedAt": now,
                }
            )
            await clients["hrrecords"].submit_transaction(
                [
                    (
                        "create",
                        {
                            "PartitionKey": source,
                            "RowKey": f"user|{user_id}",
                            "ExternalId": f"F{i}",
                            "Document": json.dumps(scim_user("f", i)),
                        },
                    ),
                    ("create", {"PartitionKey": source, "RowKey": f"ukey|F{i}", "Owner": user_id}),
                ]
            )
            await clients["audit"].create_entity(
                {
                    "PartitionKey": now[:10],
                    "RowKey": f"{now}|{uuid.uuid4()}",
                    "Action": "user.create",
                    "UserId": user_id,
                }
            )
            await queue.send_message(json.dumps({"userId": user_id}))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(users)))
        return time.perf_counter() - started
    finally:
        for c in clients.values():
            await c.close()
        await queue.close()
        await tables.close()
        await queues.close()


def _ms(s: Stats | None, attr: str) -> str:
    return f"{getattr(s, attr) * 1000:7.1f} ms" if s is not None else "      -"


def report(lat: Latency, load: Load, rate: float) -> list[str]:
    rows = [
        f"SCIM (same run, same machine; {os.cpu_count()} cores)",
        f"{'':44} {'p50':>10} {'p95':>10} {'p99':>10} {'n':>6}",
    ]
    for label, s in (("SCIM POST /Users -> 201", lat.scim), ("standard webhook hire -> 202", lat.webhook)):
        rows.append(
            f"{label:<44} {_ms(s, 'p50'):>10} {_ms(s, 'p95'):>10} {_ms(s, 'p99'):>10} {s.n if s else 0:>6}"
        )
    if lat.scim and lat.webhook:
        rows.append(
            f"{'SCIM beside the webhook (p99 ratio)':<44} {lat.scim.p99 / lat.webhook.p99:9.2f}x  (both at {rate:g}/s, side by side)"
        )
    if lat.refused:
        rows.append(f"refused: {lat.refused}")
    rate_w = load.users / load.seconds
    rate_f = load.users / load.floor_seconds
    rows += [
        f"SCIM Bulk load of {load.users:,} users ({load.requests} requests): {load.seconds:.1f} s = {rate_w:.1f} users/s; "
        f"floor (bare SDK, the same durable writes) {load.floor_seconds:.1f} s = {rate_f:.1f} users/s; ratio {load.seconds / load.floor_seconds:.2f}x"
        + (f"; {load.failed} operations failed" if load.failed else ""),
    ]
    return rows


async def run(stack: Stack, args: argparse.Namespace) -> list[str]:
    admin = stack.world.token("admin")
    client = Client(stack, admin)
    run_id = uuid.uuid4().hex[:6]
    try:
        await client.setup(run_id)
        _say(f"floor: {args.users} bare creates at concurrency {CONCURRENCY}")
        floor_seconds = await floor(stack, args.users, CONCURRENCY)
        _say(f"latency: {args.requests} SCIM POSTs and webhook hires at {args.rate}/s each")
        lat = await latency(client, run_id, args.requests, args.rate)
        _say(f"bulk: {args.users} users in requests of {args.bulk_size}")
        seconds, failed, requests = await bulk_load(client, run_id, args.users, args.bulk_size)
        return report(lat, Load(args.users, seconds, floor_seconds, failed, requests), args.rate)
    finally:
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="users provisioned through Bulk")
    parser.add_argument("--bulk-size", type=int, default=200, help="operations per Bulk request (<= 200)")
    parser.add_argument("--requests", type=int, default=200, help="SCIM POSTs (and webhook hires) timed")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second of each stream")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.requests, args.bulk_size = 100, 40, 50
    if not (1 <= args.bulk_size <= 1000 and args.users >= 1 and args.requests >= 1 and args.rate > 0):
        parser.error("--bulk-size 1-1000, --users and --requests at least 1, --rate above 0")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}
    children: list[procs.Managed] = []
    with tempfile.TemporaryDirectory() as tmp, procs.stopping(children):
        data, logs = Path(tmp) / "data", Path(tmp) / "logs"
        logs.mkdir(parents=True)
        stack = start_stack(data, logs, env, children)
        lines = asyncio.run(run(stack, args))
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
