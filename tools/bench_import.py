"""``make bench``, import section: a bulk import of every account of an N-user tenant, and a 10,000-member group
mirrored into M365 from empty, against the simulated cloud answering after 80 ms, each figure beside a floor
from the same run. Not assertions: numbers to read and compare.

The world, built here and torn down at the end, is ``tools.bench_reconcile``'s: Azurite in memory, the simulated
cloud, and a tenant of N accounts created through Graph ``$batch`` by another app of the tenant (the simulator's
clock moved past the write windows while seeding; nothing of it is measured).

(1) The import (rule 13): the tenant connected as a directory under a table prefix of its own, nothing of it in
    Warden. A fresh process holding a Container, its import queue replaced by an in-process one, runs the job as
    the ``import`` queue would: ``start`` with ``{"all": true}`` (``bind`` false, the API's default), ``plan``,
    then every chunk of 100 by ``--chunk-workers`` concurrent workers (as several Function instances would). Its
    wall time is set beside a floor measured in the same run by another fresh process: reading the tenant's N
    accounts bare (httpx paging ``GET /v1.0/users`` with Warden's ``$select`` and ``$top=999``, another app's
    token, the tenant's RU budget), plus writing the rows the import wrote (every row of the Warden prefix
    written since the job started: claims, users, audit entries, import items and the job, read back from
    Azurite) with the bare azure-data-tables SDK into empty tables, in ``submit_transaction`` calls of at most
    100 entities of one partition (a partition of one row with ``create_entity``: a one-entity transaction
    costs the SDK about four times its CPU), ``STORE_IN_FLIGHT`` at once. Beside them: the import process's
    peak RSS, its storage requests per imported user (counted and timed per table through an aiohttp trace on
    the container's own session) against the floor's requests per user, and the CPU seconds of this process,
    the simulator and Azurite from /proc (on a small machine they share the cores). Azurite's cost of a write
    grows with the size of the partition written (an upsert about three times as steeply as an insert), so
    the import's one-row writes into big partitions (the audit's day, the job's items) weigh more here than
    they would on Table Storage.
(2) A group's mirror (rule 14): under another prefix, ``--group-members`` Warden users linked to accounts of the
    tenant (``bench_reconcile.seed_store``), a Warden group bound to the directory and mirrored by the product
    while empty (its security group created, no members), then the users added as members. A fresh process runs
    ``group_sync.sync_group``, as the ``group-sync`` queue would: the Graph writes it used (``members@odata.bind``
    PATCHes of ≤ 20 in ``$batch`` requests of ≤ 20, read from the simulator's request log) and its wall time
    beside its floor: the same ``$batch`` requests sent bare by another app into another empty group, one after
    another. Graph's per-app write rate (3,000 per 150 s = 20 per s: writes ÷ 20 per s) is printed as context
    only: the simulator, like Graph, counts a PATCH as one write and a sliding 150 s window, so it admits up to
    3,000 at once — a sustained-load rate, not what one burst waits for.

``python -m tools.bench_import --users 2000 --group-members 500`` (or ``python -m tools.bench --only import
--users 2000 --group-members 500``) is a quick smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools import demo, devca, procs
from tools.bench_reconcile import (
    CHUNK_TIMEOUT_SECONDS,
    CHUNK_WORKERS,
    CLOCK_STEP_SECONDS,
    LATENCY_MS,
    RESULT,
    RU_PER_10S,
    STORE_IN_FLIGHT,
    WRITE_RATE,
    App,
    BenchTenant,
    Cpu,
    RecordingSyncQueue,
    SimLog,
    StorageTrace,
    _batch,
    _cpu,
    _move_clock,
    _pct,
    _peak_rss_mb,
    _proc_memory_mb,
    _read_floors,
    _s,
    _say,
    _storage,
    _token,
    _verify,
    seed_store,
    seed_tenant,
    tally,
)
from tools.bench_store import azurite_version, start_azurite_in_memory

GROUP_MEMBERS = 10_000
BIND_LIMIT = 20
"""Members per ``members@odata.bind`` PATCH (group-update: "up to 20 members in a single request")."""
BATCH_LIMIT = 20
"""Requests per ``$batch`` (json-batching)."""
MARK_SLACK_SECONDS = 0.05
"""The floor takes the rows whose Timestamp is at most this much before the job started (Azurite stamps
milliseconds; nothing else writes to the prefix in the seconds around the start)."""
FLOOR_ATTEMPTS = 4
"""Sends of one floor transaction when Azurite resets the connection under it."""
PAGE_LIMIT = 10_000
"""Pages read at most when counting a group's members (999 a page)."""
PY = sys.executable

CHILD_TIMEOUT = 4 * 3_600.0
"""Each measure's process may run this long. On this 2-core machine a 100,000-account import alone ran past an
hour (Azurite's inserts slow down as a partition grows), so the reconcile bench's one hour is too short here."""


# --------------------------------------------------------------------------------------------- the queues
class InProcessImportQueue:
    """The ``import`` queue: the plan job is run by the measure itself, chunk jobs by its workers."""

    def __init__(self) -> None:
        self.plans: list[str] = []
        self.jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def plan(self, job_id: str) -> None:
        self.plans.append(job_id)

    async def chunks(self, job_id: str, count: int) -> None:
        for n in range(count):
            self.jobs.put_nowait((job_id, n))


class RecordingGroupQueue:
    """The ``group-sync`` queue: what would have been queued, kept (the measure runs the mirror itself)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    async def enqueue(
        self, pairs: Sequence[tuple[str, str]], correlation_id: str | None, *, delay_seconds: int = 0
    ) -> None:
        self.pairs.extend(pairs)

    async def delete_mirror(self, directory_id: str, m365_group_id: str, correlation_id: str | None) -> None:
        return None


# --------------------------------------------------------------------------------------- seeding a group
async def seed_group(env: dict[str, str], directory_id: str, member_ids: Sequence[str], name: str) -> str:
    """A Warden group bound to the directory and mirrored there by the product while it has no member (its
    security group created), then ``member_ids`` added as members by Warden's repositories (the group's
    ``member|`` rows one after another: each moves the group's count; the users' copies beside). Returns the
    group id."""
    from shared.bootstrap import Container
    from shared.config import load_settings
    from shared.service.context import Actor

    started = time.perf_counter()
    container = Container(load_settings(env))
    container.__dict__["sync_queue"] = RecordingSyncQueue()
    container.__dict__["group_queue"] = RecordingGroupQueue()
    try:
        actor = Actor("admin:bench")
        group = (await container.groups.create(name, None, actor)).group
        await container.groups.bind(group.id, directory_id, actor)
        report = await container.group_sync.sync_group(group.id, directory_id, actor)
        if report.plan is None or report.plan.action != "create" or report.error:
            raise RuntimeError(f"mirroring the empty group: {report}")
        groups, users = container.stores.groups, container.stores.users
        now = container.clock()
        pending = iter(member_ids)

        async def copies() -> None:
            for user_id in pending:  # one iterator shared by the workers: each user once
                await users.set_membership(user_id, group.id, True, now)

        async def members() -> None:
            for k, user_id in enumerate(member_ids, 1):
                await groups.add_member(group.id, user_id, now)
                if k % 2_000 == 0 or k == len(member_ids):
                    _say(
                        f"  group: {k:>6}/{len(member_ids)} members  ({time.perf_counter() - started:6.1f} s)"
                    )

        await asyncio.gather(members(), *(copies() for _ in range(STORE_IN_FLIGHT)))
        return group.id
    finally:
        await container.aclose()


# ------------------------------------------------------------------------------------- the import (child)
@dataclass
class PlanSplit:
    """Where the plan's time went, measured by wrapping the import's ports (shared/ is not edited)."""

    graph_read: float = 0.0
    """``m365.list_users``: first call to the last page, the consumer's work between pages included."""
    owners_first: float = 0.0
    owners_last: float = 0.0
    """``uniques.owner`` (is the account claimed already?): the first call's start, the last answer's end."""
    owners: int = 0
    storing_items: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)


def _instrument(imports: Any, split: PlanSplit, storage: StorageTrace) -> None:
    m365, uniques, store = imports.m365, imports.uniques, imports.store
    list_users, owner, put_items = m365.list_users, uniques.owner, store.put_items

    async def timed_list(*args: Any) -> AsyncIterator[Any]:
        t0 = time.perf_counter()
        async for page in list_users(*args):
            yield page
        split.graph_read += time.perf_counter() - t0
        split.rss_mb["after reading Graph"] = _proc_memory_mb("self", "VmRSS")

    async def timed_owner(*args: Any) -> Any:
        if storage.phase == "plan":
            split.owners_first = split.owners_first or time.perf_counter()
            split.owners += 1
        try:
            return await owner(*args)
        finally:
            if storage.phase == "plan":
                split.owners_last = time.perf_counter()

    async def timed_put(*args: Any) -> None:
        t0 = time.perf_counter()
        try:
            await put_items(*args)
        finally:
            if storage.phase == "plan":
                split.storing_items += time.perf_counter() - t0

    setattr(m365, "list_users", timed_list)  # noqa: B010 - an instance attribute shadows the method
    setattr(uniques, "owner", timed_owner)  # noqa: B010
    setattr(store, "put_items", timed_put)  # noqa: B010


def _traced_container() -> tuple[Any, StorageTrace]:
    """A Container on the bench's tables, its storage requests traced and its sync queue a recorder."""
    from shared.bootstrap import Container
    from shared.config import load_settings

    settings = load_settings()
    container = Container(settings)
    storage = StorageTrace(settings.table_prefix)
    container.__dict__["storage_http"] = storage.session()
    container.__dict__["sync_queue"] = RecordingSyncQueue()
    return container, storage


async def _import_child(cfg: dict[str, Any]) -> dict[str, Any]:
    from shared.service.context import Actor

    container, storage = _traced_container()
    imports = container.imports
    queue = InProcessImportQueue()
    imports.queue = queue  # the import queue is built inside ``Container.imports``: replaced on the use case
    d: str = cfg["directoryId"]
    cpu = Cpu(cfg["simPid"], cfg["azuritePid"])
    http = httpx.AsyncClient(base_url=cfg["simUrl"], verify=_verify(cfg["ca"]), timeout=120, trust_env=False)
    log = SimLog(http, cfg["tenantId"])
    out: dict[str, Any] = {}
    try:
        found = await container.stores.directories.get(d)
        assert found is not None, d
        directory = found[0]
        # A Function instance that has run before: Graph client built, token and secret in hand, storage warm.
        await container.directory_graph.probe(directory)
        await imports.store.get(str(uuid.uuid4()))
        split = PlanSplit()
        _instrument(imports, split, storage)
        split.rss_mb["before"] = _proc_memory_mb("self", "VmRSS")
        await log.mark()
        stop = asyncio.Event()
        follower = asyncio.ensure_future(log.follow(stop, time.monotonic() + CHILD_TIMEOUT))
        usage_before = imports.m365.usage(d)
        out["loadBefore"] = os.getloadavg()[0]
        out["startedAt"] = time.time()
        storage.phase = "plan"
        cpu.start()
        t0 = time.perf_counter()
        job = await imports.start(d, {"all": True}, False, Actor("admin:bench"))
        planned = await imports.plan(queue.plans.pop())
        t_plan = time.perf_counter()
        split.rss_mb["after planning"] = _proc_memory_mb("self", "VmRSS")
        out["plan"] = {
            "wall": t_plan - t0,
            "status": planned.status,
            "total": planned.total,
            "chunks": planned.chunks,
            "graphRead": split.graph_read,
            "owners": split.owners,
            "ownersSpan": max(0.0, split.owners_last - split.owners_first),
            "storingItems": split.storing_items,
            "cpu": cpu.stop(),
            "storage": storage.summary("plan"),
        }
        if planned.status != "running":
            raise RuntimeError(f"the import's plan is {planned.status}: {planned.error}")
        storage.phase = "apply"
        cpu.start()
        t_apply = time.perf_counter()

        async def worker() -> None:
            while not queue.jobs.empty():
                job_id, n = queue.jobs.get_nowait()
                await asyncio.wait_for(imports.run_chunk(job_id, n), CHUNK_TIMEOUT_SECONDS)

        await asyncio.gather(*(worker() for _ in range(int(cfg["chunkWorkers"]))))
        t_end = time.perf_counter()
        apply_cpu = cpu.stop()
        storage.phase = "after"
        final = await imports.get(job.id)
        out["apply"] = {"wall": t_end - t_apply, "cpu": apply_cpu, "storage": storage.summary("apply")}
        out["job"] = {
            "id": job.id,
            "status": final.status,
            "total": final.total,
            "imported": final.imported,
            "skipped": final.skipped,
            "failed": final.failed,
            "chunksDone": final.chunks_done,
        }
        out["wall"] = t_end - t0
        out["loadAfter"] = os.getloadavg()[0]
        out["peakRssMb"] = _peak_rss_mb()
        out["rssMb"] = split.rss_mb
        out["usage"] = {k: v - usage_before.get(k, 0) for k, v in imports.m365.usage(d).items()}
        stop.set()
        await follower
        out["log"] = tally(log.take(), cfg["wardenClientId"])
        out["logLost"] = log.lost
    finally:
        await http.aclose()
        await container.aclose()
    return out


# ----------------------------------------------------------------------------------------- floors (child)
async def _import_rows(container: Any, since: dt.datetime) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every row of the prefix's tables written since ``since`` (Azurite's Timestamp): table → partition →
    entities, as plain dicts (no metadata)."""
    from shared.adapters.tables.base import TABLES

    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in TABLES:
        table = await container.store.table(name)
        async for e in table.list_entities(results_per_page=1000):
            if e.metadata["timestamp"] >= since:
                rows.setdefault(name, {}).setdefault(str(e["PartitionKey"]), []).append(dict(e))
    return rows


async def _write_floor(
    container: Any, rows: dict[str, dict[str, list[dict[str, Any]]]], cpu: Cpu
) -> dict[str, Any]:
    """The rows written bare into empty tables of another prefix: ``submit_transaction`` of ≤ 100 entities of
    one partition, ``STORE_IN_FLIGHT`` transactions at once, through a client configured as Warden's."""
    from azure.core.exceptions import ResourceExistsError, ServiceRequestError, ServiceResponseError
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.data.tables import TableTransactionError
    from azure.data.tables.aio import TableServiceClient

    from shared.adapters.tables.base import TRANSACTION_LIMIT

    service = TableServiceClient.from_connection_string(
        container.settings.storage_connection,
        transport=AioHttpTransport(session=container.storage_http, session_owner=False),
    )
    prefix = f"flr{secrets.token_hex(4)}"
    clients = {name: service.get_table_client(prefix + name) for name in rows}
    try:
        for client in clients.values():
            await client.create_table()

        def transactions() -> Iterator[tuple[Any, list[tuple[str, dict[str, Any]]]]]:
            for name, partitions in rows.items():
                for entities in partitions.values():
                    for first in range(0, len(entities), TRANSACTION_LIMIT):
                        chunk = entities[first : first + TRANSACTION_LIMIT]
                        yield clients[name], [("create", e) for e in chunk]

        todo = transactions()
        sent = Counter[str]()

        async def send(client: Any, operations: list[tuple[str, dict[str, Any]]]) -> None:
            if len(operations) == 1:  # a partition of one row: the SDK's insert, cheaper than a batch
                await client.create_entity(operations[0][1])
            else:
                await client.submit_transaction(operations)

        async def worker() -> None:
            for client, operations in todo:  # one generator shared by the workers: each transaction once
                sent["inserts" if len(operations) == 1 else "transactions"] += 1
                for attempt in range(1, FLOOR_ATTEMPTS + 1):
                    try:
                        await send(client, operations)
                        break
                    except (ServiceRequestError, ServiceResponseError):
                        # A saturated Azurite may reset a connection mid-request; the SDK retries no POST.
                        # The transaction is atomic, so the next attempt either lands or finds it landed.
                        sent["resent"] += 1
                        if attempt == FLOOR_ATTEMPTS:
                            raise
                    except (ResourceExistsError, TableTransactionError) as exc:
                        if attempt == 1 or getattr(exc, "status_code", None) != 409:
                            raise
                        sent["landedBeforeReset"] += 1
                        break

        cpu.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(STORE_IN_FLIGHT)))
        wall = time.perf_counter() - t0
        spent = cpu.stop()
        for client in clients.values():
            await client.delete_table()
    finally:
        for client in clients.values():
            await client.close()
        await service.close()
    return {"wall": wall, **sent, "cpu": spent}


async def _floor_child(cfg: dict[str, Any]) -> dict[str, Any]:
    from shared.bootstrap import Container
    from shared.config import load_settings

    container = Container(load_settings())
    cpu = Cpu(cfg["simPid"], cfg["azuritePid"])
    http = httpx.AsyncClient(base_url=cfg["simUrl"], verify=_verify(cfg["ca"]), timeout=120, trust_env=False)
    out: dict[str, Any] = {}
    try:
        found = await container.stores.directories.get(cfg["directoryId"])
        assert found is not None, cfg["directoryId"]
        directory = found[0]
        # The Graph half of the reconcile's read floors: the tenant listed bare with the seeder's token.
        out["graph"] = (await _read_floors(container, directory, cfg, http, cpu))["graph"]
        since = dt.datetime.fromtimestamp(float(cfg["importStartedAt"]) - MARK_SLACK_SECONDS, dt.UTC)
        t0 = time.perf_counter()
        rows = await _import_rows(container, since)
        out["readBack"] = time.perf_counter() - t0
        out["rows"] = {name: sum(len(v) for v in parts.values()) for name, parts in rows.items()}
        out["partitions"] = {name: len(parts) for name, parts in rows.items()}
        out["storage"] = await _write_floor(container, rows, cpu)
    finally:
        await http.aclose()
        await container.aclose()
    return out


# -------------------------------------------------------------------------------------- the group (child)
async def _member_count(http: httpx.AsyncClient, token: str, group_id: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    url: str | None = f"/v1.0/groups/{group_id}/members"
    params: dict[str, str] | None = {"$select": "id", "$top": "999"}
    count = 0
    for _ in range(PAGE_LIMIT):
        if url is None:
            break
        response = await http.get(url, params=params, headers=headers)
        response.raise_for_status()
        body = response.json()
        count += len(body["value"])
        url, params = body.get("@odata.nextLink"), None
    return count


async def _bare_members(
    http: httpx.AsyncClient, token: str, graph_url: str, member_ids: Sequence[str], cpu: Cpu
) -> dict[str, Any]:
    """An empty security group created by the seeding app, then the same members added bare: PATCHes of 20
    ``members@odata.bind``, 20 to a ``$batch``, one ``$batch`` after another."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "displayName": f"Bench floor {secrets.token_hex(3)}",
        "mailNickname": f"benchfloor{secrets.token_hex(4)}",
        "securityEnabled": True,
        "mailEnabled": False,
    }
    created = await http.post("/v1.0/groups", json=body, headers=headers)
    created.raise_for_status()
    group_id = str(created.json()["id"])
    patches = [
        {
            "id": str(k),
            "method": "PATCH",
            "url": f"/groups/{group_id}",
            "headers": {"Content-Type": "application/json"},
            "body": {
                "members@odata.bind": [
                    f"{graph_url}/directoryObjects/{m}" for m in member_ids[first : first + BIND_LIMIT]
                ]
            },
        }
        for k, first in enumerate(range(0, len(member_ids), BIND_LIMIT))
    ]
    cpu.start()
    t0 = time.perf_counter()
    for first in range(0, len(patches), BATCH_LIMIT):
        await _batch(http, token, patches[first : first + BATCH_LIMIT], 204)
    wall = time.perf_counter() - t0
    spent = cpu.stop()
    return {
        "wall": wall,
        "patches": len(patches),
        "batches": -(-len(patches) // BATCH_LIMIT),
        "cpu": spent,
        "members": await _member_count(http, token, group_id),
    }


async def _group_child(cfg: dict[str, Any]) -> dict[str, Any]:
    container, storage = _traced_container()
    container.__dict__["group_queue"] = RecordingGroupQueue()
    d, group_id = cfg["directoryId"], cfg["groupId"]
    cpu = Cpu(cfg["simPid"], cfg["azuritePid"])
    http = httpx.AsyncClient(base_url=cfg["simUrl"], verify=_verify(cfg["ca"]), timeout=120, trust_env=False)
    log = SimLog(http, cfg["tenantId"])
    out: dict[str, Any] = {}
    try:
        found = await container.stores.directories.get(d)
        assert found is not None, d
        directory = found[0]
        await container.directory_graph.probe(directory)
        await container.stores.groups.get(group_id)
        await log.mark()
        out["loadBefore"] = os.getloadavg()[0]
        storage.phase = "mirror"
        cpu.start()
        t0 = time.perf_counter()
        report, raised = await _mirror(container, group_id, d)
        out["wall"] = time.perf_counter() - t0
        out["cpu"] = cpu.stop()
        storage.phase = "after"
        out["peakRssMb"] = _peak_rss_mb()
        await log.read()
        entries = log.take()
        mine = [e for e in entries if e.get("clientId") == cfg["wardenClientId"]]
        out["log"] = tally(entries, cfg["wardenClientId"])
        out["log"]["patches"] = sum(1 for e in mine if e["kind"] == "batch-item" and e["method"] == "PATCH")
        out["storage"] = storage.summary("mirror")
        plan = report.plan if report else None
        out["report"] = {
            "action": plan.action if plan else None,
            "added": len(plan.add) if plan else None,
            "removed": len(plan.remove) if plan else None,
            "error": report.error if report else None,
            "raised": raised,
        }
        if raised:  # the group-sync queue delivers the message again: what that second run costs
            storage.phase = "retry"
            t0 = time.perf_counter()
            again, raised_again = await _mirror(container, group_id, d)
            wall = time.perf_counter() - t0
            await log.read()
            out["retry"] = {
                "wall": wall,
                "added": len(again.plan.add) if again and again.plan else None,
                "raised": raised_again,
                "log": tally(log.take(), cfg["wardenClientId"]),
                "storage": storage.summary("retry"),
            }
        out["logLost"] = log.lost
        binding = next(b for b in await container.stores.groups.bindings(group_id) if b.directory_id == d)
        out["binding"] = {"status": binding.status, "reason": binding.reason}
        token = await _token(http, cfg["tenantId"], App(cfg["seederClientId"], cfg["seederSecret"]))
        out["members"] = await _member_count(http, token, str(binding.m365_group_id))
        out["bare"] = await _bare_members(
            http, token, container.settings.graph_url, cfg["memberM365Ids"], cpu
        )
    finally:
        await http.aclose()
        await container.aclose()
    return out


async def _mirror(container: Any, group_id: str, directory_id: str) -> tuple[Any, str | None]:
    """One run of the group's mirror, as the group-sync queue's function runs it: its report, or what it
    raised (a failed run is a result here: the queue would deliver the message again)."""
    from shared.service.context import Actor

    try:
        return await container.group_sync.sync_group(group_id, directory_id, Actor("system")), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


CHILDREN = {"import": _import_child, "floor": _floor_child, "group": _group_child}


def child_main(phase: str, config: Path) -> int:
    out = asyncio.run(CHILDREN[phase](json.loads(config.read_text())))
    print(RESULT + json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- the driver
@dataclass
class ImportResult:
    users: int
    members: int
    latency_ms: int
    chunk_workers: int
    seed_tenant_seconds: float
    seed_tenant_cpu: dict[str, float]
    seed_group_seconds: float
    seed_group_cpu: dict[str, float]
    imported: dict[str, Any]
    floor: dict[str, Any]
    group: dict[str, Any]
    azurite_version: str
    azurite_peak_rss_mb: float
    sim_peak_rss_mb: float


def _measure(phase: str, cfg: dict[str, Any], config: Path, env: dict[str, str]) -> dict[str, Any]:
    """One measure in a fresh process (its peak RSS its own), its configuration in a file only we can read."""
    _say(f"import: measuring the {phase} in a fresh process")
    config.write_text(json.dumps(cfg))
    done = subprocess.run(
        [PY, "-m", "tools.bench_import", "--child", phase, "--config", str(config)],
        env=env,
        cwd=procs.ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    found = [x[len(RESULT) :] for x in done.stdout.splitlines() if x.startswith(RESULT)]
    if done.returncode or not found:
        raise RuntimeError(f"the {phase} measure failed (exit {done.returncode}): {done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(found[-1])
    # Kept as soon as it is known: a later measure that fails must not take this one's hours with it.
    kept = procs.ROOT / ".local" / "bench" / f"import-{phase}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(result, indent=1))
    figures = [f"{k} {result[k]:.1f}" for k in ("wall", "peakRssMb") if isinstance(result.get(k), float)]
    _say(
        f"import: the {phase} measure is kept in {kept.relative_to(procs.ROOT)} {' '.join(figures)}".rstrip()
    )
    return result


def _measuring_faults(sim_url: str, ca: Path, latency: int) -> None:
    """Every write window of the seeding behind us; the simulator's latency and Graph's own RU budget."""

    async def move() -> None:
        async with httpx.AsyncClient(base_url=sim_url, verify=_verify(ca), timeout=60, trust_env=False) as c:
            await _move_clock(c, CLOCK_STEP_SECONDS)
            faults = {"latencyMs": latency, "resourceUnitsPer10s": None}
            (await c.put("/_sim/faults", json=faults)).raise_for_status()

    asyncio.run(move())


def run(args: Any, env: dict[str, str]) -> ImportResult:
    n = int(args.users)
    members = int(getattr(args, "group_members", GROUP_MEMBERS))
    latency = int(getattr(args, "latency_ms", LATENCY_MS))
    workers = int(getattr(args, "chunk_workers", CHUNK_WORKERS))
    if not 1 <= members <= n:
        raise ValueError(
            f"the group's members ({members:,}) must be between 1 and the tenant's users ({n:,})"
        )
    tenant = BenchTenant.new()
    # Warden ids the accounts' immutable ids derive from; the first ``members`` become the group's members.
    user_ids = [str(uuid.uuid4()) for _ in range(n)]
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
        token = secrets.token_hex(4)
        base_env = {**env, **world.warden_settings(ports.connection_string)}
        import_env = {**base_env, "WARDEN_TABLE_PREFIX": f"imp{token}"}
        group_env = {**base_env, "WARDEN_TABLE_PREFIX": f"grp{token}"}
        with httpx.Client(base_url=world.sim_url, verify=_verify(ca), timeout=60, trust_env=False) as control:
            control.post("/_sim/tenants", json=tenant.body()).raise_for_status()

        cpu = Cpu(sim.proc.pid, azurite.proc.pid)
        _say(f"import: seeding {n:,} accounts in the simulated tenant")
        cpu.start()
        t0 = time.perf_counter()
        m365_ids = asyncio.run(seed_tenant(world.sim_url, ca, tenant, user_ids))
        seed_tenant_seconds = time.perf_counter() - t0
        seed_tenant_cpu = cpu.stop()
        _say("import: connecting the tenant (nothing of it in Warden)")
        directory_id = asyncio.run(seed_store(import_env, tenant, [], [], []))
        _measuring_faults(world.sim_url, ca, latency)

        config = Path(tmp) / "config.json"
        config.touch(mode=0o600)
        cfg: dict[str, Any] = {
            "directoryId": directory_id,
            "tenantId": tenant.tenant_id,
            "wardenClientId": tenant.warden.client_id,
            "seederClientId": tenant.seeder.client_id,
            "seederSecret": tenant.seeder.secret,
            "simUrl": world.sim_url,
            "ca": str(ca),
            "simPid": sim.proc.pid,
            "azuritePid": azurite.proc.pid,
            "chunkWorkers": workers,
        }
        imported = _measure("import", cfg, config, import_env)
        floor = _measure("floor", {**cfg, "importStartedAt": imported["startedAt"]}, config, import_env)

        _say(f"import: seeding {members:,} linked Warden users and their group (table prefix grp{token})")
        cpu.start()
        t0 = time.perf_counter()
        member_ids = user_ids[:members]
        group_directory = asyncio.run(
            seed_store(group_env, tenant, member_ids, m365_ids[:members], range(members))
        )
        group_id = asyncio.run(seed_group(group_env, group_directory, member_ids, f"Bench {token}"))
        seed_group_seconds = time.perf_counter() - t0
        seed_group_cpu = cpu.stop()
        _measuring_faults(world.sim_url, ca, latency)
        group_cfg = {
            **cfg,
            "directoryId": group_directory,
            "groupId": group_id,
            "memberM365Ids": m365_ids[:members],
        }
        group = _measure("group", group_cfg, config, group_env)
        azurite_rss = _proc_memory_mb(azurite.proc.pid, "VmHWM")
        sim_rss = _proc_memory_mb(sim.proc.pid, "VmHWM")
    return ImportResult(
        users=n,
        members=members,
        latency_ms=latency,
        chunk_workers=workers,
        seed_tenant_seconds=seed_tenant_seconds,
        seed_tenant_cpu=seed_tenant_cpu,
        seed_group_seconds=seed_group_seconds,
        seed_group_cpu=seed_group_cpu,
        imported=imported,
        floor=floor,
        group=group,
        azurite_version=azurite_version(),
        azurite_peak_rss_mb=azurite_rss,
        sim_peak_rss_mb=sim_rss,
    )


# -------------------------------------------------------------------------------------------------- report
def _requests(summary: dict[str, list[float]]) -> int:
    return int(sum(v[0] for v in summary.values()))


def _per(plan: dict[str, Any], apply: dict[str, Any], process: str) -> str:
    """A process's CPU milliseconds per storage request of the import (plan and apply)."""
    requests = _requests(plan["storage"]) + _requests(apply["storage"])
    return f"{1000 * (plan['cpu'][process] + apply['cpu'][process]) / max(1, requests):.2f}"


def _import_lines(r: ImportResult) -> list[str]:
    imp, floor = r.imported, r.floor
    plan, apply, job, log = imp["plan"], imp["apply"], imp["job"], imp["log"]
    graph, store = floor["graph"], floor["storage"]
    floor_wall = graph["wall"] + store["wall"]
    users = max(1, int(job["imported"]))
    plan_requests, apply_requests = _requests(plan["storage"]), _requests(apply["storage"])
    rows = sum(floor["rows"].values())
    batches, inserts = int(store.get("transactions", 0)), int(store.get("inserts", 0))
    floor_requests = max(1, batches + inserts)
    other = plan["wall"] - plan["graphRead"] - plan["ownersSpan"] - plan["storingItems"]
    return [
        f"Import: every account of a {r.users:,}-user tenant (all: true, bind false); simulator at "
        f"{r.latency_ms} ms, {RU_PER_10S:,} RU / 10 s (Python {sys.version.split()[0]}, {os.cpu_count()} cores "
        f"shared by Azurite {r.azurite_version}, the simulator, Warden and whatever else runs: 1-min load "
        f"average {imp['loadBefore']:.1f} before the import, {imp['loadAfter']:.1f} after it)",
        f"seeded: the tenant's accounts through Graph $batch in {_s(r.seed_tenant_seconds)} (CPU s: "
        f"{_cpu(r.seed_tenant_cpu)})",
        f"(1) import job, plan + {plan['chunks']:,} chunks applied by {r.chunk_workers} workers: "
        f"{_s(imp['wall'])}   floor {_s(floor_wall)} = Graph read {_s(graph['wall'])} ({graph['pages']} pages, "
        f"{graph['accounts']:,} accounts, bare httpx) + storage writes {_s(store['wall'])} ({rows:,} rows in "
        f"{batches:,} transactions of a partition's rows and {inserts:,} inserts of lone rows, bare SDK, "
        f"{STORE_IN_FLIGHT} at once)   ratio "
        f"{imp['wall'] / floor_wall:.2f}x   target <= 1.5x",
        f"    peak RSS of the process           {imp['peakRssMb']:>5.0f} MB   target <= 512 MB   (RSS: "
        + ", ".join(f"{k} {v:.0f}" for k, v in imp["rssMb"].items())
        + " MB)",
        f"    storage requests per imported user {(plan_requests + apply_requests) / users:>5.2f}   (plan "
        f"{plan_requests / users:.2f}, apply {apply_requests / users:.2f});   the floor's requests per user "
        f"{(batches + inserts) / users:.2f}, rows per user {rows / users:.2f}",
        f"    CPU s, import: plan {_cpu(plan['cpu'])}; apply {_cpu(apply['cpu'])}",
        f"    CPU s, floor: Graph read {_cpu(graph['cpu'])}; storage writes {_cpu(store['cpu'])}",
        f"    CPU ms per storage request, import: Warden {_per(plan, apply, 'Warden')}, Azurite "
        f"{_per(plan, apply, 'Azurite')}; floor: the bare SDK {1000 * store['cpu']['Warden'] / floor_requests:.2f}"
        f", Azurite {1000 * store['cpu']['Azurite'] / floor_requests:.2f}",
        f"    plan {_s(plan['wall'])}: reading Graph {_s(plan['graphRead'])} ({_pct(plan['graphRead'], plan['wall'])}"
        f"), checking {plan['owners']:,} accounts' claims {_s(plan['ownersSpan'])} "
        f"({_pct(plan['ownersSpan'], plan['wall'])}), storing {plan['total']:,} items {_s(plan['storingItems'])} "
        f"({_pct(plan['storingItems'], plan['wall'])}), "
        + (f"the rest {_s(other)}" if other >= 0 else "overlapping (the plan streams page by page)"),
        f"    apply {_s(apply['wall'])} ({_pct(apply['wall'], imp['wall'])} of the job)",
        f"    storage, plan: {_storage(plan['storage'])}",
        f"    storage, apply: {_storage(apply['storage'], users)}",
        "    rows the import wrote (what the floor writes): "
        + ", ".join(
            f"{k} {v:,} in {floor['partitions'][k]:,} partitions"
            for k, v in sorted(floor["rows"].items(), key=lambda kv: -kv[1])
        )
        + f"; read back in {_s(floor['readBack'])}",
        f"    job {job['status']}: total {job['total']:,}, imported {job['imported']:,}, skipped {job['skipped']:,}"
        f", failed {job['failed']:,}; Graph requests {log['graphRequests']:,} (list {log['listRequests']}, "
        f"{log['resourceUnits']:,} RU), throttled {log['throttled']}, Warden waited "
        f"{imp['usage'].get('waitedSeconds', 0):.1f} s for its budgets",
    ]


def _group_lines(r: ImportResult) -> list[str]:
    g = r.group
    log, bare, rep = g["log"], g["bare"], g["report"]
    writes = int(log["writes"])
    floor = writes / WRITE_RATE
    added = g["members"] if rep["added"] is None else rep["added"]
    per_patch = added / log["patches"] if log["patches"] else float("nan")
    per_batch = log["batchItems"] / log["batches"] if log["batches"] else float("nan")
    outcome = (
        f"{rep['action']}: +{rep['added']:,} -{rep['removed']:,}"
        if rep["raised"] is None
        else f"the run RAISED after its Graph writes: {rep['raised']}"
    )
    lost = r.imported.get("logLost", 0) + g.get("logLost", 0)
    lines = [
        f"(2) group of {r.members:,} linked members mirrored from an empty M365 group: {_s(g['wall'])}   "
        f"floor {_s(bare['wall'])} (the same {bare['batches']:,} $batch requests sent bare)   ratio "
        f"{g['wall'] / bare['wall']:.2f}x   target <= 1.5x   ({outcome})",
        f"    Graph writes {writes:,}: {log['patches']:,} members@odata.bind PATCHes ({per_patch:.1f} members "
        f"each, limit {BIND_LIMIT}) in {log['batches']:,} $batch requests ({per_batch:.1f} each, limit "
        f"{BATCH_LIMIT}); Graph requests {log['graphRequests']:,}, {log['resourceUnits']:,} RU, throttled "
        f"{log['throttled']}; the M365 group has {g['members']:,} members; binding {g['binding']['status']}"
        + (f" ({g['binding']['reason']})" if g["binding"]["reason"] else "")
        + (f"; error: {rep['error']}" if rep["error"] else ""),
        f"    floor: the same {bare['batches']:,} $batch requests ({bare['patches']:,} PATCHes) sent bare one after "
        f"another into another empty group by another app ({bare['members']:,} members; CPU s: "
        f"{_cpu(bare['cpu'])})",
        f"    for context, Graph's write limit: {writes:,} writes / {WRITE_RATE:.0f} per s = {_s(floor)}; the "
        f"simulator admits up to 3,000 writes per app in any 150 s (as Graph), so {writes:,} writes need no wait: "
        f"{WRITE_RATE:.0f} per s is the rate a longer run settles to, not what this one waits for",
        f"    CPU s: {_cpu(g['cpu'])}; peak RSS {g['peakRssMb']:.0f} MB; storage: {_storage(g['storage'], r.members)}",
    ]
    retry = g.get("retry")
    if retry:
        lines.append(
            f"    the queue's second delivery: {_s(retry['wall'])}, {retry['log']['graphRequests']} Graph requests, "
            f"{retry['log']['writes']} writes, added {retry['added']}, "
            + (f"raised {retry['raised']}" if retry["raised"] else "succeeded")
            + f"; storage: {_storage(retry['storage'], r.members, top=3)}"
        )
    return [
        *lines,
        f"    seeded: {r.members:,} linked users, the group mirrored while empty, then its members, in "
        f"{_s(r.seed_group_seconds)} (CPU s: {_cpu(r.seed_group_cpu)})",
        f"peak RSS: Azurite {r.azurite_peak_rss_mb:.0f} MB, simulator {r.sim_peak_rss_mb:.0f} MB"
        + (f"; WARNING: {lost} request log entries were lost" if lost else ""),
    ]


def report(r: ImportResult) -> list[str]:
    return [*_import_lines(r), *_group_lines(r)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="accounts in the tenant, all imported")
    parser.add_argument(
        "--group-members", type=int, default=GROUP_MEMBERS, help="linked members of the mirrored group"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=LATENCY_MS, help="the simulator's latency per request"
    )
    parser.add_argument("--chunk-workers", type=int, default=CHUNK_WORKERS, help="chunks applied at once")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.config is None:
            parser.error("--child needs --config")
        return child_main(args.child, args.config)
    if not 1 <= args.group_members <= args.users or args.chunk_workers < 1:
        parser.error("--group-members must be between 1 and --users; --chunk-workers at least 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}
    print("\n".join(report(run(args, env))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
