"""Convergence under faults (issue "Convergence"): with 10 % of Graph, token and Key Vault requests failing (500,
503, connection resets, timeouts), Graph throttling (429) at a tenant budget low enough to be reached, and 2 s of
replication lag, a randomized sequence (fixed seed, printed) of HR events and M365-side edits over 200 users;
then, faults off, one reconcile. Afterwards:

1. every M365 account of each person matches the desired state computed from the HR events Warden accepted;
2. there are zero duplicate accounts (one per person, no two sharing a UPN, alias or immutable id);
3. zero accepted events are lost (the store holds each person's last accepted event; every accepted delivery
   left its ``hris.event.applied`` audit entry).

The HR system sends at a bounded rate, one event per person at a time (in ``occurredAt`` order), and retries a
delivery Warden did not take (5xx, 409) with the same ``webhook-id``, as a real sender would. The M365-side edits
are made by another app of the tenant (an admin's tool), so they do not spend Warden's resource units.
Set ``WARDEN_CONVERGENCE_SEED`` to replay a sequence.

Two cases the random run cannot hit on purpose follow it: an account whose create answer was lost, and a state
flipped back within the replication lag.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient
from standardwebhooks.webhooks import Webhook

from shared.domain.planner import immutable_id
from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, unique
from tools import demo

SEED = int(os.environ.get("WARDEN_CONVERGENCE_SEED", "1975244090"))
USERS = 200
OPS = 560
"""Operations after the hires (HR events and M365-side edits); the hires come on top."""
WORKERS = 6
RATE = 20.0
"""Deliveries and edits per second, all workers together."""
RU_BUDGET = 100
"""Resource units per 10 s per app: below the documented 5,000 of a tenant this size, so Warden does meet 429."""
FAULTS: dict[str, Any] = {
    "errorRate": 0.10,
    "errorKinds": ["500", "503", "reset", "timeout"],
    "timeoutMs": 2000,
    "retryAfterSeconds": 1,
    "replicationLagMs": 2000,
    "resourceUnitsPer10s": RU_BUDGET,
}
CALM: dict[str, Any] = {
    "latencyMs": 0,
    "replicationLagMs": 0,
    "errorRate": 0,
    "errorKinds": ["500"],
    "timeoutMs": 30_000,
    "retryAfterSeconds": 1,
    "resourceUnitsPer10s": None,
    "seed": None,
}
DELIVERY_ATTEMPTS = 6
EDIT_TRIES = 8
BUDGET_S = 180.0
DRAIN_S = 75.0
RUN_S = 45.0
FLIP_GAP_S = 240
"""The state-flip test's gap in the simulator's time between the writes before the flips and the flips; half of
it is the replication lag during the flips. Under the five minutes of clock skew that token checks allow, so the
tokens issued meanwhile stay valid."""
SELECT = ss.READ_BACK


# ------------------------------------------------------------------------------------------ the tenant
@dataclass
class Setup:
    tenant: ss.Tenant
    admin: ss.Graph
    """An admin's app of the tenant: reads and edits M365 directly."""
    admin_creds: tuple[str, str]


def convergence_tenant(warden: WardenHost) -> Setup:
    """A fresh tenant with two apps: Warden's (connected as a directory) and an admin's own."""
    sim = warden.stack.sim
    tenant_id = str(uuid.uuid4())
    warden_app, admin_app = str(uuid.uuid4()), str(uuid.uuid4())
    warden_secret = remember_secret(f"sec-{uuid.uuid4().hex}")
    admin_secret = remember_secret(f"sec-{uuid.uuid4().hex}")
    domain = f"cv{uuid.uuid4().hex[:8]}.example"
    name = f"Tenant {unique('cv')}"
    created = sim.control(
        "POST",
        "/_sim/tenants",
        json={
            "tenantId": tenant_id,
            "displayName": name,
            "domains": [{"id": domain, "isDefault": True, "isVerified": True}],
            "clients": [
                {"clientId": warden_app, "clientSecret": warden_secret, "roles": demo.DEMO_ROLES},
                {"clientId": admin_app, "clientSecret": admin_secret, "roles": demo.DEMO_ROLES},
            ],
        },
    )
    assert created.status_code == 201, created.text
    connect = {
        "name": name,
        "tenantId": tenant_id,
        "auth": {"mode": "app", "clientId": warden_app, "clientSecret": warden_secret},
    }
    directory = warden.ok("POST", "/directories", 201, json=connect)
    admin = ss.Graph(sim, tenant_id, admin_app, admin_secret)
    return Setup(ss.Tenant(admin, [domain], directory, name), admin, (admin_app, admin_secret))


# ------------------------------------------------------------------------------------------ the people
@dataclass
class Person:
    """One employee as the HR system knows them (``hr``) and as Warden accepted them (``accepted``)."""

    n: int
    employee_id: str
    username: str
    hr: dict[str, Any]
    hr_state: str = "active"
    accepted: dict[str, Any] | None = None
    state: str | None = None
    """After the last accepted event: active / suspended (None: Warden does not know the person)."""
    user_id: str | None = None


@dataclass
class Op:
    seq: int
    person: int
    kind: str
    """hired, updated, terminated, rehired (HR) or m365:<what> (an edit in M365)."""
    data: dict[str, Any] = field(default_factory=dict)
    edit: dict[str, Any] = field(default_factory=dict)


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def plan_ops(rng: random.Random, people: list[Person], directory_id: str, domain: str, tag: str) -> list[Op]:
    """Hires of everyone, then ``OPS`` random operations; each HR event carries the whole record as HR has it
    then, with an ``occurredAt`` later than any before it."""
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    ops: list[Op] = []

    def hr_event(p: Person, kind: str) -> None:
        seq = len(ops)
        data = {**p.hr, "directories": [directory_id], "occurredAt": iso(t0 + dt.timedelta(seconds=seq))}
        ops.append(Op(seq, p.n, kind, data=data))

    for p in people:
        hr_event(p, "hired")
    titles = ["Engineer", "Analyst", "Manager", "Designer", "Nurse", "Pilot", "Clerk", "Chef"]
    departments = ["R&D", "Sales", "Ops", "Finance", "Legal", "Support"]
    firsts = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
    lasts = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
    active_kinds = [
        ("title", 8),
        ("department", 4),
        ("name", 3),
        ("email", 3),
        ("terminated", 9),
        ("m365:attribute", 42),
        ("m365:displayName", 31),
    ]
    suspended_kinds = [
        ("rehired", 30),
        ("title", 3),
        ("email", 2),
        ("m365:enable", 45),
        ("m365:attribute", 10),
        ("m365:displayName", 10),
    ]
    for i in range(OPS):
        p = people[rng.randrange(len(people))]
        kinds = active_kinds if p.hr_state == "active" else suspended_kinds
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        if kind == "title":
            p.hr["jobTitle"] = f"{rng.choice(titles)} {i}"
            hr_event(p, "updated")
        elif kind == "department":
            p.hr["department"] = f"{rng.choice(departments)} {i}"
            hr_event(p, "updated")
        elif kind == "name":
            p.hr["firstName"], p.hr["lastName"] = rng.choice(firsts), f"{rng.choice(lasts)}-{i}"
            hr_event(p, "updated")
        elif kind == "email":
            p.hr["email"] = f"{tag}{p.n:03d}m{i}@{domain}"
            hr_event(p, "updated")
        elif kind == "terminated":
            p.hr_state = "suspended"
            hr_event(p, "terminated")
        elif kind == "rehired":
            p.hr_state = "active"
            hr_event(p, "rehired")
        elif kind == "m365:attribute":
            prop = rng.choice(["jobTitle", "department"])
            ops.append(Op(len(ops), p.n, kind, edit={prop: f"Edited in M365 {i}"}))
        elif kind == "m365:displayName":
            ops.append(Op(len(ops), p.n, kind, edit={"displayName": f"Renamed by hand {i}"}))
        else:
            ops.append(Op(len(ops), p.n, kind, edit={"accountEnabled": True}))
    return ops


# ------------------------------------------------------------------------------------------ execution
class Pace:
    """At most ``rate`` operations per second over all threads."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            slot = max(self.next, now)
            self.next = slot + self.gap
        if slot > now:
            time.sleep(slot - now)


@dataclass
class Outcomes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    """Final outcome per HR delivery: accepted, duplicate, stale, ignored, lost (never taken)."""
    retries: Counter[str] = field(default_factory=Counter)
    """Non-2xx answers (by status) that the sender retried."""
    refused: list[str] = field(default_factory=list)
    accepted_ids: dict[str, int] = field(default_factory=dict)
    """webhook-id → person of every delivery Warden accepted."""
    edits: Counter[str] = field(default_factory=Counter)
    spent: dict[str, float] = field(default_factory=lambda: {"hr": 0.0, "m365": 0.0})
    """Seconds the senders spent on HR deliveries and on M365 edits."""


class Runner:
    def __init__(
        self, warden: WardenHost, setup: Setup, secret: str, people: list[Person], outcomes: Outcomes
    ) -> None:
        self.warden = warden
        self.setup = setup
        self.secret = secret
        self.people = people
        self.out = outcomes
        self.pace = Pace(RATE)
        self.accounts: dict[str, str] = {}
        """immutable id → M365 object id, as last listed."""
        self.listed_at = 0.0
        self.accounts_lock = threading.Lock()
        self.stop = threading.Event()
        """Set when the test gives up: the senders stop after their current operation."""

    # ----------------------------------------------------------------------------------------- HR
    def deliver(self, http: httpx.Client, op: Op) -> None:
        p = self.people[op.person]
        raw = json.dumps({"type": f"employee.{op.kind}", "data": op.data})
        msg_id = f"msg_cv_{uuid.uuid4().hex}"
        outcome = "lost"
        for attempt in range(DELIVERY_ATTEMPTS):
            sent = dt.datetime.now(dt.UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(sent.timestamp())),
                "webhook-signature": Webhook(self.secret).sign(msg_id, sent, raw),
            }
            try:
                response = http.post("/api/hris/events", content=raw.encode(), headers=headers)
            except httpx.TransportError as exc:
                with self.out.lock:
                    self.out.retries[type(exc).__name__] += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code == 202:
                body = response.json()
                outcome = body["status"]
                if outcome in ("accepted", "duplicate"):
                    p.user_id = p.user_id or body.get("userId")
                    assert body.get("userId") == p.user_id, (p.employee_id, body, p.user_id)
                break
            if response.status_code >= 500 or response.status_code in (409, 429):
                with self.out.lock:
                    self.out.retries[str(response.status_code)] += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            with self.out.lock:
                self.out.refused.append(f"{op.kind} {p.employee_id}: {response.status_code} {response.text}")
            break
        with self.out.lock:
            self.out.answers[outcome] += 1
            if outcome in ("accepted", "duplicate"):
                self.out.accepted_ids[msg_id] = p.n
        if outcome in ("accepted", "duplicate"):
            self.apply(p, op)

    @staticmethod
    def apply(p: Person, op: Op) -> None:
        """What Warden does with an accepted event (the HR lifecycle, without dates)."""
        p.accepted = {k: v for k, v in op.data.items() if k not in ("directories", "occurredAt")}
        if op.kind == "terminated":
            p.state = "suspended"
        elif op.kind == "rehired" or p.state is None:
            p.state = "active"

    # --------------------------------------------------------------------------------------- M365
    def account_of(self, graph: ss.Graph, p: Person) -> str | None:
        if p.user_id is None:
            return None
        key = immutable_id(p.user_id)
        with self.accounts_lock:
            if key in self.accounts or time.monotonic() - self.listed_at < 0.5:
                return self.accounts.get(key)
            self.listed_at = time.monotonic()
        listed = {
            a["onPremisesImmutableId"]: a["id"]
            for a in list_accounts(graph, "id,onPremisesImmutableId")
            if a.get("onPremisesImmutableId")
        }
        with self.accounts_lock:
            self.accounts.update(listed)
            return self.accounts.get(key)

    def edit(self, graph: ss.Graph, op: Op) -> bool:
        """Make the edit; False when it could not be made now (no account yet, or the connection kept failing:
        ``Graph`` retries a few times; then this operation is tried again later on a fresh connection)."""
        try:
            m365_id = self.account_of(graph, self.people[op.person])
            if m365_id is None:
                return False
            response = graph.request("PATCH", f"/users/{m365_id}", json=op.edit)
        except (httpx.TransportError, AssertionError) as exc:
            with self.out.lock:
                self.out.retries[f"edit: {type(exc).__name__}"] += 1
            if graph._http is not None:
                graph._http.close()
                graph._http = None
            return False
        with self.out.lock:
            self.out.edits["made" if response.status_code == 204 else f"HTTP {response.status_code}"] += 1
        return True

    # -------------------------------------------------------------------------------------- worker
    def work(self, ops: list[Op]) -> None:
        """One lane's operations in order; an edit of an account Warden has not made yet is tried again a little
        later (after some of the lane's other operations, at most ``EDIT_TRIES`` times)."""
        app, secret = self.setup.admin_creds
        graph = ss.Graph(self.warden.stack.sim, self.setup.admin.tenant_id, app, secret)
        graph.token()
        lane = deque(ops)
        tries: Counter[int] = Counter()
        with httpx.Client(base_url=self.warden.url, timeout=60) as http:
            while lane and not self.stop.is_set():
                op = lane.popleft()
                self.pace.wait()
                t = time.monotonic()
                kind = "m365" if op.kind.startswith("m365:") else "hr"
                if kind == "hr":
                    self.deliver(http, op)
                elif not self.edit(graph, op):
                    tries[op.seq] += 1
                    if tries[op.seq] < EDIT_TRIES:
                        if len(lane) < 5:
                            time.sleep(0.5)
                        lane.insert(min(len(lane), 10), op)
                    else:
                        with self.out.lock:
                            self.out.edits["not made"] += 1
                with self.out.lock:
                    self.out.spent[kind] += time.monotonic() - t


def list_accounts(graph: ss.Graph, select: str = SELECT) -> list[dict[str, Any]]:
    """Every account of the tenant (``$top=999``, every nextLink)."""
    out: list[dict[str, Any]] = []
    body = graph.call("GET", "/users", params={"$select": select, "$top": "999"})
    while True:
        out.extend(body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            return out
        response = graph._send("GET", link, headers={"Authorization": f"Bearer {graph.token()}"})
        assert response.status_code == 200, response.text
        body = response.json()


# --------------------------------------------------------------------------------------- waiting
def queue_length(warden: WardenHost, name: str) -> int:
    return ss.queue_length(warden, name)


def clear_queue(warden: WardenHost, name: str) -> None:
    """Drop every message of the queue (one that does not exist yet has none); other storage errors fail."""
    client = QueueClient.from_connection_string(warden.stack.settings["AzureWebJobsStorage"], name)
    try:
        client.clear_messages()
    except ResourceNotFoundError:
        pass
    finally:
        client.close()


def drain(warden: WardenHost, timeout: float) -> float:
    """Wait until the user-sync and reconcile queues are empty (messages being processed, or waiting out a
    retry's visibility timeout, count too) twice in a row; the seconds it took."""
    started = time.monotonic()
    empty = 0
    print(f"  draining {queue_length(warden, 'user-sync')} queued syncs", flush=True)
    while time.monotonic() - started < timeout:
        if queue_length(warden, "user-sync") == 0 and queue_length(warden, "reconcile") == 0:
            empty += 1
            if empty >= 2:
                return time.monotonic() - started
        else:
            empty = 0
        time.sleep(0.5)
    raise AssertionError(
        f"the sync queues did not drain within {timeout:.0f} s: user-sync "
        f"{queue_length(warden, 'user-sync')}, reconcile {queue_length(warden, 'reconcile')}"
    )


def reconcile(warden: WardenHost, directory_id: str) -> dict[str, Any]:
    response = warden.call("POST", f"/directories/{directory_id}/reconcile", json={"dryRun": False})
    assert response.status_code == 202, response.text
    run_id = response.json()["runId"]
    deadline = time.monotonic() + RUN_S
    while True:
        run: dict[str, Any] = warden.ok("GET", f"/directories/{directory_id}/runs/{run_id}")
        if run["status"] in ("done", "failed", "held", "discarded") or time.monotonic() > deadline:
            return run
        time.sleep(0.3)


def store_users(warden: WardenHost, people: list[Person]) -> dict[str, list[dict[str, Any]]]:
    """employeeId → the Warden users having it."""

    def one(p: Person) -> tuple[str, list[dict[str, Any]]]:
        items = warden.ok("GET", "/users", params={"employeeId": p.employee_id})["items"]
        return p.employee_id, items

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, people))


def audit_since(warden: WardenHost, since: dt.datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"since": iso(since), "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = warden.ok("GET", "/audit", params=params)
        out.extend(page["items"])
        cursor = page.get("next")
        if not cursor:
            return out


def fault_counts(warden: WardenHost, since: int, tenant_id: str) -> Counter[str]:
    """What the simulator answered in the fault window: faults (every tenant: a faulted request is logged before
    its tenant is known) and this tenant's 429s."""
    counts: Counter[str] = Counter()
    for e in ss.RequestLog(warden.stack.sim).entries(since):
        faulted = e["status"] in (0, 500, 503) and e["resourceUnits"] == 0
        if faulted and e["kind"] in ("graph", "batch", "token", "keyvault"):
            counts[f"fault {e['status'] or 'reset/timeout'}"] += 1
        if e["status"] == 429 and e["tenantId"] == tenant_id:
            counts["429"] += 1
        if e["tenantId"] == tenant_id or e["kind"] in ("token", "keyvault"):
            counts["requests"] += 1
    return counts


# ------------------------------------------------------------------------------------------- the test
def expected_account(p: Person) -> dict[str, Any]:
    a = p.accepted
    assert a is not None
    return {
        "userPrincipalName": a["email"].lower(),
        "mail": a["email"].lower(),
        "mailNickname": p.username,
        "givenName": a["firstName"],
        "surname": a["lastName"],
        "displayName": f"{a['firstName']} {a['lastName']}",
        "jobTitle": a["jobTitle"],
        "department": a["department"],
        "employeeId": p.employee_id,
        "accountEnabled": True,
    }


def observed_account(account: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: account.get(k)
        for k in (
            "userPrincipalName",
            "mail",
            "mailNickname",
            "givenName",
            "surname",
            "displayName",
            "jobTitle",
            "department",
            "employeeId",
            "accountEnabled",
        )
    }
    for k in ("userPrincipalName", "mail", "mailNickname"):
        value = out[k]
        if isinstance(value, str):
            out[k] = value.lower()
    return out


@pytest.mark.timeout(BUDGET_S + 20)
def test_randomized_hr_and_m365_edits_under_faults_converge_after_one_reconcile(warden: WardenHost) -> None:
    started, cpu = time.monotonic(), time.process_time()
    test_start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    print(f"\nconvergence seed: {SEED} (replay with WARDEN_CONVERGENCE_SEED={SEED})")
    rng = random.Random(SEED)
    setup = convergence_tenant(warden)
    tenant = setup.tenant
    timings: dict[str, float] = {}
    try:
        path = f"/directories/{tenant.id}"
        options = warden.ok("GET", path)["options"]
        # An HR feed terminating a quarter of a 200-person tenant within minutes: the admin of this tenant
        # raised the mass-change guard (it is not what is under test here).
        guard = {"percent": 100, "count": 1_000_000}
        warden.ok("PATCH", path, json={"options": {**options, "massChangeGuard": guard}})
        secret = remember_secret(warden.ok("POST", "/hris/secret", 201)["secret"])
        warden.token("admin")  # before the faults: the admin API's token comes from the simulated Entra
        setup.admin.token()

        tag = unique("cv")
        domain = tenant.domains[0]
        people = [
            Person(
                n,
                f"E{tag}{n:03d}",
                f"{tag}{n:03d}",
                {
                    "employeeId": f"E{tag}{n:03d}",
                    "email": f"{tag}{n:03d}@{domain}",
                    "firstName": "Ada",
                    "lastName": f"Person{n:03d}",
                    "jobTitle": "Hire",
                    "department": "Onboarding",
                },
            )
            for n in range(USERS)
        ]
        ops = plan_ops(rng, people, tenant.id, domain, tag)
        kinds = Counter(op.kind for op in ops)
        print(f"operations: {len(ops)} ({dict(sorted(kinds.items()))}) over {USERS} users")
        assert len(ops) - USERS >= 500 and USERS >= 200
        lanes: list[list[Op]] = [[] for _ in range(WORKERS)]
        for op in ops:
            lanes[op.person % WORKERS].append(op)  # one person's operations stay in order, in one lane

        poisoned = queue_length(warden, "user-sync-poison")
        outcomes = Outcomes()
        runner = Runner(warden, setup, secret, people, outcomes)
        rlog = ss.RequestLog(warden.stack.sim)
        mark = rlog.mark()
        t = time.monotonic()
        warden.stack.set_faults(**FAULTS, seed=SEED)
        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                try:
                    for done in [pool.submit(runner.work, lane) for lane in lanes]:
                        done.result()
                finally:
                    runner.stop.set()
        finally:
            warden.stack.set_faults(**CALM)
        timings["fault window"] = time.monotonic() - t
        print(f"  fault window over after {timings['fault window']:.1f} s", flush=True)
        seen = fault_counts(warden, mark, tenant.graph.tenant_id)
        print(f"HR answers: {dict(outcomes.answers)}; retried: {dict(outcomes.retries)}")
        print(
            f"M365 edits: {dict(outcomes.edits)}; simulator: {dict(seen)}; "
            f"sender seconds { ({k: round(v, 1) for k, v in outcomes.spent.items()}) }"
        )
        assert outcomes.refused == [], outcomes.refused[:5]
        performed = sum(outcomes.answers.values()) - USERS + outcomes.edits["made"]
        print(f"operations performed after the hires: {performed}")
        assert performed >= 500, "HR events sent plus M365 edits made after the hires"
        assert outcomes.answers["stale"] == 0, "each person's events were sent one at a time, in order"
        assert seen["429"] > 0 and sum(v for k, v in seen.items() if k.startswith("fault")) > 0, seen

        timings["drain after faults"] = drain(warden, DRAIN_S)
        t = time.monotonic()
        run = reconcile(warden, tenant.id)
        timings["reconcile"] = time.monotonic() - t
        poisoned = queue_length(warden, "user-sync-poison") - poisoned
        print(f"syncs poisoned during the fault window: {poisoned}")
        # A sync that met a fault on each of its 5 attempts is poisoned, as in Azure; the reconcile just run
        # repairs its user (asserted below). The poison queue is shared with the tests after this one, whose
        # health checks would read it as down: the admin's part (inspect, then clear it) is done here.
        if poisoned:
            clear_queue(warden, "user-sync-poison")
        print(f"reconcile: {run['status']} counts {run.get('counts')} progress {run.get('progress')}")
        assert run["status"] == "done", run
        timings["drain after reconcile"] = drain(warden, DRAIN_S)

        # ------------------------------------------------------------------------------ read back
        t = time.monotonic()
        accounts = list_accounts(setup.admin)
        stored = store_users(warden, people)
        audit = audit_since(warden, test_start)
        timings["read back"] = time.monotonic() - t

        known = [p for p in people if p.state is not None]
        by_immutable: dict[str, list[dict[str, Any]]] = {}
        for a in accounts:
            by_immutable.setdefault(a.get("onPremisesImmutableId") or "", []).append(a)

        # (2) zero duplicate accounts
        strays = [a["userPrincipalName"] for a in by_immutable.get("", [])]
        assert strays == [], f"accounts without Warden's immutable id: {strays[:10]}"
        for prop in ("userPrincipalName", "mailNickname", "onPremisesImmutableId"):
            values = Counter(str(a.get(prop)).lower() for a in accounts)
            twice = [v for v, n in values.items() if n > 1]
            assert twice == [], f"{len(twice)} {prop} values held by several accounts: {twice[:10]}"
        ours = {immutable_id(p.user_id) for p in known if p.user_id}
        foreign = [a["userPrincipalName"] for a in accounts if a["onPremisesImmutableId"] not in ours]
        assert foreign == [], f"accounts of nobody in the HR feed: {foreign[:10]}"
        missing = [
            p.employee_id
            for p in known
            if p.state == "active" and not by_immutable.get(immutable_id(p.user_id or ""))
        ]
        assert missing == [], f"{len(missing)} active people without an account: {missing[:10]}"

        # (1) every account matches the desired state
        wrong: list[str] = []
        for p in known:
            assert p.user_id is not None
            found = by_immutable.get(immutable_id(p.user_id), [])
            if not found:
                continue  # a person terminated before any account was made: nothing to block
            (account,) = found
            if p.state == "suspended":
                if account["accountEnabled"] is not False:
                    wrong.append(f"{p.employee_id} (terminated): accountEnabled {account['accountEnabled']}")
                continue
            want, have = expected_account(p), observed_account(account)
            diff = {k: (have[k], v) for k, v in want.items() if have[k] != v}
            if diff:
                wrong.append(f"{p.employee_id}: {diff}")
        assert wrong == [], f"{len(wrong)} accounts differ from the desired state: {wrong[:10]}"

        # (3) zero accepted events lost
        lost: list[str] = []
        for p in people:
            users = stored[p.employee_id]
            if p.state is None:
                if users:
                    lost.append(f"{p.employee_id}: no event was accepted, yet Warden has {len(users)} users")
                continue
            assert p.accepted is not None
            if len(users) != 1:
                lost.append(f"{p.employee_id}: {len(users)} users in the store")
                continue
            (u,) = users
            want = {
                "id": p.user_id,
                "email": p.accepted["email"].lower(),
                "firstName": p.accepted["firstName"],
                "lastName": p.accepted["lastName"],
                "jobTitle": p.accepted["jobTitle"],
                "department": p.accepted["department"],
                "displayName": f"{p.accepted['firstName']} {p.accepted['lastName']}",
                "state": p.state,
                "username": p.username,
            }
            have = {k: (str(u.get(k)).lower() if k == "email" else u.get(k)) for k in want}
            if have != want:
                diff = {k: (have[k], v) for k, v in want.items() if have[k] != v}
                lost.append(f"{p.employee_id}: {diff}")
            link = ss.link_of(u, tenant.id) or {}
            account = by_immutable.get(immutable_id(p.user_id or ""), [{}])[0]
            if account and link.get("m365UserId") != account.get("id"):
                wrong.append(f"{p.employee_id}: link {link} is not the account {account.get('id')}")
            if account and link.get("status") != ("synced" if p.state == "active" else "blocked"):
                wrong.append(f"{p.employee_id} ({p.state}): link {link}")
        applied = Counter(
            a["after"]["webhookId"]
            for a in audit
            if a["action"] == "hris.event.applied"
            and str((a.get("after") or {}).get("webhookId") or "").startswith("msg_cv_")
        )
        unapplied = [m for m in outcomes.accepted_ids if applied[m] != 1]
        assert wrong == [], f"{len(wrong)} links differ from the accounts: {wrong[:10]}"
        assert lost == [], f"{len(lost)} people differ from their last accepted event: {lost[:10]}"
        assert unapplied == [], (
            f"{len(unapplied)} accepted deliveries not applied exactly once: {unapplied[:10]}"
        )

        accepted = sum(outcomes.answers[k] for k in ("accepted", "duplicate"))
        print(
            f"accepted events: {accepted} of {sum(outcomes.answers.values())}; people known "
            f"{len(known)}, terminated {sum(p.state == 'suspended' for p in known)}; accounts {len(accounts)}"
        )
    finally:
        warden.stack.set_faults(**CALM)
        ss.drop_tenant(warden, tenant)
        timings["total"] = time.monotonic() - started
        timings["this process's CPU"] = time.process_time() - cpu
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    assert timings["total"] < BUDGET_S, timings


def test_the_account_of_a_create_whose_answer_was_lost_is_blocked_once_the_user_is_terminated(
    warden: WardenHost,
) -> None:
    """The faults above never lose an answer after a write (the simulator fails a request before handling it);
    this is that case: Graph made the account (with the user's immutable id, as Warden's create does), Warden
    never heard back, and the person was terminated before the retry. Rule 7: their account must be blocked."""
    t = ss.make_tenant(warden, [f"cl{uuid.uuid4().hex[:8]}.example"])
    try:
        local = unique("lost")
        body = {
            "username": local,
            "email": f"{local}@{t.domains[0]}",
            "firstName": "Ada",
            "lastName": "Lovelace",
        }
        user = warden.ok("POST", "/users", 201, json=body)
        account = t.graph.create_user(
            user["email"],
            mail=user["email"],
            mailNickname=local,
            displayName="Ada Lovelace",
            onPremisesImmutableId=immutable_id(user["id"]),
        )
        warden.ok("PATCH", f"/users/{user['id']}", json={"state": "suspended"})
        ss.act(warden, "PUT", f"/users/{user['id']}/directories/{t.id}", user["id"], status=(200, 201))
        run = reconcile(warden, t.id)
        assert run["status"] == "done", run
        drain(warden, 20)
        link = ss.link_of(ss.user(warden, user["id"]), t.id)
        found = t.graph.get_user(account["id"], "id,accountEnabled")
        assert found is not None
        assert found["accountEnabled"] is False, (link, run.get("counts"))
    finally:
        ss.drop_tenant(warden, t)


def test_a_state_flip_within_the_replication_lag_still_converges(warden: WardenHost) -> None:
    """Terminated and re-activated (or the reverse) within the replication lag: once the syncs are done, each
    account's accountEnabled is what the user's state says, without a reconcile or the drift timer. (The run
    above hits this by chance: its reconcile unblocks and blocks a few accounts no M365 edit touched.)

    Deterministic on any machine: the flips are written with the simulator's clock moved ``FLIP_GAP_S`` ahead, so
    that everything before them is older than the lag used during them (``FLIP_GAP_S / 2``) while every write of
    the flips stays unseen by Graph's reads for that long; the flips and their syncs are bounded (``drain``) well
    within it. (Ahead, not back: a clock set back would make the tenants' client secrets not valid yet, as
    Entra honours a credential's startDateTime — application-addpassword.)"""
    t = ss.make_tenant(warden, [f"lg{uuid.uuid4().hex[:8]}.example"])
    sim = warden.stack.sim
    try:
        guard = {"percent": 100, "count": 1000}
        warden.ok("PATCH", f"/directories/{t.id}", json={"options": {"massChangeGuard": guard}})
        users = [unique_user(warden, t) for _ in range(8)]
        rejoin, leave = users[:4], users[4:]

        def state(group: list[dict[str, Any]], value: str) -> None:
            for u in group:
                warden.ok("PATCH", f"/users/{u['id']}", json={"state": value})

        for u in users:
            warden.ok("PUT", f"/users/{u['id']}/directories/{t.id}", (200, 201))
        drain(warden, 20)
        accounts = {u["id"]: ss.link_of(ss.user(warden, u["id"]), t.id)["m365UserId"] for u in users}  # type: ignore[index]
        state(rejoin, "suspended")
        drain(warden, 20)
        set_clock(warden, FLIP_GAP_S)  # from now on Graph's writes are FLIP_GAP_S younger than all the above
        flips = time.monotonic()
        with ss.faults(warden, replicationLagMs=FLIP_GAP_S / 2 * 1000):
            for (
                u
            ) in rejoin:  # the blocks are visible to every read; the new writes are not, for FLIP_GAP_S / 2
                seen = t.graph.get_user(str(accounts[u["id"]]), "id,accountEnabled")
                assert seen is not None and seen["accountEnabled"] is False, seen
            state(rejoin, "active")  # unblocked: accountEnabled true written ...
            state(leave, "suspended")  # blocked: accountEnabled false written ...
            drain(warden, 20)
            stale = {u["id"]: t.graph.get_user(str(accounts[u["id"]]), "id,accountEnabled") for u in users}
            assert all(
                a is not None and a["accountEnabled"] is (u in leave)
                for u, a in zip(users, stale.values(), strict=True)
            ), f"reads still show the state before the flips: {stale}"
            state(rejoin, "suspended")  # ... and blocked again: every read still shows them disabled
            state(leave, "active")  # ... and back: every read still shows them enabled
            drain(warden, 20)
            within = time.monotonic() - flips
            assert within < FLIP_GAP_S / 2, f"the flips took {within:.0f} s: longer than the lag"
        wrong = []
        for u in users:
            want = ss.user(warden, u["id"])["state"] == "active"
            found = t.graph.get_user(str(accounts[u["id"]]), "id,accountEnabled")
            if found is None or found["accountEnabled"] is not want:
                wrong.append(
                    f"{u['id']}: state active={want}, accountEnabled {found and found['accountEnabled']}"
                )
        assert wrong == [], wrong
    finally:
        set_clock(warden, 0)
        sim.control("PUT", "/_sim/faults", json={"replicationLagMs": 0}).raise_for_status()
        ss.drop_tenant(warden, t)


def set_clock(warden: WardenHost, offset: float) -> None:
    """Move the simulated cloud's clock (its writes' timestamps, hence what a lagging read sees)."""
    response = warden.stack.sim.control("PUT", "/_sim/clock", json={"offsetSeconds": offset})
    response.raise_for_status()


def unique_user(warden: WardenHost, t: ss.Tenant) -> dict[str, Any]:
    local = unique("lg")
    body = {"username": local, "email": f"{local}@{t.domains[0]}", "firstName": "Ada", "lastName": "Lovelace"}
    created: dict[str, Any] = warden.ok("POST", "/users", 201, json=body)
    return created
