"""The token refresh round's decisions (rule 17, 18), on in-memory ports: when a token is forced, where an expiry
comes from, rule 17 re-checked, a lapse marked once, one directory's failure its own, deferred syncs replayed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from shared.domain.connections import AppCredential
from shared.domain.errors import CredentialRefused, PreconditionFailed, Upstream
from shared.domain.model import ON_PREMISES_SYNC_REASON, Directory, DirectoryOptions
from shared.domain.runs import Run
from shared.service.connections.ports import ConnectionCheck, Deferred
from shared.service.connections.refresh import TokenRefresh
from shared.service.connections.status import ConnectionStatus
from shared.service.context import Actor, Auditor
from shared.service.notifications import Notifier

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
ACTOR = Actor("timer:token_refresh")


def directory(n: int, **kw: Any) -> Directory:
    base = Directory(
        f"d{n}",
        f"Dir {n}",
        f"t{n}",
        "app",
        f"c{n}",
        f"directory-d{n}-client-secret",
        (),
        "active",
        DirectoryOptions(notify_url="https://hooks.example/w"),
        NOW,
        NOW,
    )
    return dataclasses.replace(base, **kw)


@dataclass
class World:
    directories: dict[str, Directory]
    checks: dict[str, ConnectionCheck | Exception] = field(default_factory=dict)
    asked: list[tuple[str, bool]] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    audit: list[tuple[str, str | None]] = field(default_factory=list)
    queued: list[Any] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)
    deferred: dict[str, list[Deferred]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    # DirectoryRepository
    async def get(self, directory_id: str) -> tuple[Directory, str] | None:
        d = self.directories.get(directory_id)
        return (d, str(self.versions.get(directory_id, 0))) if d else None

    async def all(self) -> list[Directory]:
        return list(self.directories.values())

    async def update(self, d: Directory, etag: str | None) -> str:
        if etag is not None and etag != str(self.versions.get(d.id, 0)):
            raise PreconditionFailed("changed")
        self.directories[d.id] = d
        self.versions[d.id] = self.versions.get(d.id, 0) + 1
        return str(self.versions[d.id])

    async def bound_groups(self, directory_id: str) -> list[str]:
        return []

    # DirectoryConnections
    async def check(self, d: Directory, *, refresh: bool) -> ConnectionCheck:
        self.asked.append((d.id, refresh))
        answer = self.checks[d.id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    # Deferrals
    async def waiting(self) -> frozenset[str]:
        return frozenset(k for k, v in self.deferred.items() if v)

    async def pending(self, directory_id: str) -> list[Deferred]:
        return list(self.deferred.get(directory_id, []))

    async def done(self, entries: list[Deferred]) -> None:
        for e in entries:
            self.deferred[e.directory_id].remove(e)

    # queues, audit, runs, alerts
    async def enqueue(self, items: Any, *args: Any, **kwargs: Any) -> None:
        (self.synced if isinstance(items, list) else self.queued).extend(
            items if isinstance(items, list) else [items]
        )

    async def record(self, entry: Any) -> None:
        self.audit.append((entry.action, entry.directory_id))

    async def add(self, run: Run) -> None:
        self.runs.append(run)

    async def latest(self, directory_id: str, limit: int) -> list[Run]:
        return self.runs[-limit:]

    async def start(self, directory_id: str, dry_run: bool, actor: Actor) -> Run:
        raise AssertionError("no reconcile in a refresh round")

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append(event)


class Notifications:
    def __init__(self, world: World) -> None:
        self.world = world

    async def enqueue(self, notification: Any, **kwargs: Any) -> None:
        self.world.queued.append(notification.type)


def refresh(w: World) -> TokenRefresh:
    clock = lambda: NOW  # noqa: E731
    ids = iter(f"id{n}" for n in range(1000))
    auditor = Auditor(w, clock, lambda: next(ids))  # type: ignore[arg-type]
    notifier = Notifier(Notifications(w), clock, lambda: next(ids), w)  # type: ignore[arg-type]
    status = ConnectionStatus(w, w, w, w, w, notifier, auditor, w, clock)  # type: ignore[arg-type]
    return TokenRefresh(w, w, status, w, w, auditor, clock, lambda: next(ids))  # type: ignore[arg-type]


SECRET = AppCredential("k1", "secret", NOW + dt.timedelta(days=300), hint="abc")


def ok(**kw: Any) -> ConnectionCheck:
    return ConnectionCheck(
        **{
            "refreshed": False,
            "on_premises_sync_enabled": None,
            "credentials": (SECRET,),
            "hint": "abc",
            **kw,
        }
    )


async def test_app_only_always_takes_a_fresh_token_and_delegated_only_once_a_week_old() -> None:
    w = World(
        {
            "d1": directory(1),
            "d2": directory(2, auth_mode="delegated", token_refreshed_at=NOW - dt.timedelta(days=6)),
            "d3": directory(3, auth_mode="delegated", token_refreshed_at=NOW - dt.timedelta(days=7)),
            "d4": directory(4, status="pending_consent"),
        },
        {"d1": ok(), "d2": ok(), "d3": ok(refreshed=True)},
    )
    done = await refresh(w).round(ACTOR)
    assert sorted(w.asked) == [("d1", True), ("d2", False), ("d3", True)], (
        "a directory awaiting consent is skipped"
    )
    assert w.directories["d3"].token_refreshed_at == NOW and w.directories["d2"].token_refreshed_at != NOW
    assert done.run.counts | {} == {
        "directories": 4,
        "checked": 3,
        "refreshed": 1,
        "expiring": 0,
        "lapsed": 0,
        "failed": 0,
        "skipped": 1,
        "replayed": 0,
    }
    assert done.run.kind == "token_refresh" and done.run.status == "done" and w.runs == [done.run]


async def test_the_expiry_comes_from_graph_else_stays_with_a_warning_saying_why() -> None:
    w = World(
        {
            "d1": directory(1, credential_expires_at=NOW + dt.timedelta(days=30), expiry_source="admin"),
            "d2": directory(2, credential_expires_at=NOW + dt.timedelta(days=30), expiry_source="admin"),
        },
        {"d1": ok(), "d2": ok(credentials=None, unreadable="the app may not read its own registration")},
    )
    await refresh(w).round(ACTOR)
    d1, d2 = w.directories["d1"], w.directories["d2"]
    assert (d1.credential_expires_at, d1.expiry_source, d1.credential_key_id) == (SECRET.end, "graph", "k1")
    assert d1.check_warnings == ()
    assert d2.expiry_source == "admin" and d2.credential_expires_at == NOW + dt.timedelta(days=30)
    assert d2.check_warnings == (
        "the app may not read its own registration; the client secret's expiry shown is the date an admin gave",
    )


async def test_an_expiry_within_a_week_is_announced_once() -> None:
    soon = AppCredential("k1", "secret", NOW + dt.timedelta(days=5), hint="abc")
    w = World({"d1": directory(1)}, {"d1": ok(credentials=(soon,))})
    first = await refresh(w).round(ACTOR)
    await refresh(w).round(ACTOR)
    assert first.run.counts["expiring"] == 1
    assert [a for a in w.audit if a[0] == "directory.credential_expiring"] == [
        ("directory.credential_expiring", "d1")
    ]
    assert (
        w.queued.count("directory.credential_expiring") == 1
        and w.warnings.count("directory.credential_expiring") == 1
    )


async def test_rule_17_is_checked_again_both_ways() -> None:
    w = World(
        {"d1": directory(1), "d2": directory(2, status="blocked", status_reason=ON_PREMISES_SYNC_REASON)},
        {"d1": ok(on_premises_sync_enabled=True), "d2": ok(on_premises_sync_enabled=False)},
    )
    await refresh(w).round(ACTOR)
    assert (w.directories["d1"].status, w.directories["d1"].status_reason) == (
        "blocked",
        ON_PREMISES_SYNC_REASON,
    )
    assert (w.directories["d2"].status, w.directories["d2"].status_reason) == ("active", None)
    assert {a[0] for a in w.audit} >= {"directory.blocked", "directory.unblocked"}


async def test_a_refusal_lapses_the_directory_once_and_a_failure_is_only_its_own() -> None:
    refused = CredentialRefused(
        "d1", "invalid_grant", (700082,), "AADSTS700082: The refresh token has expired"
    )
    w = World(
        {"d1": directory(1, auth_mode="delegated"), "d2": directory(2), "d3": directory(3)},
        {"d1": refused, "d2": Upstream("Graph answered its $batch with HTTP 503"), "d3": ok()},
    )
    done = await refresh(w).round(ACTOR)
    d1 = w.directories["d1"]
    assert (d1.status, d1.status_code) == ("needs_reactivation", "AADSTS700082")
    assert w.directories["d2"].status == "active"
    assert w.directories["d2"].check_warnings == (
        "the last check failed: Graph answered its $batch with HTTP 503",
    )
    assert (done.run.counts["lapsed"], done.run.counts["failed"], done.run.counts["checked"]) == (1, 1, 1)
    assert done.run.status == "failed" and "d2: Graph answered" in (done.run.error or "")
    assert w.queued == ["directory.needs_reactivation"] and w.warnings == ["directory.needs_reactivation"]
    again = await refresh(w).round(ACTOR)
    assert again.run.counts["skipped"] == 1 and w.queued == ["directory.needs_reactivation"], "announced once"


async def test_a_working_directory_with_deferred_syncs_replays_them_oldest_first() -> None:
    def wait(user: str, minutes: int) -> Deferred:
        return Deferred("d1", user, NOW - dt.timedelta(minutes=minutes), NOW, 1)

    w = World({"d1": directory(1), "d2": directory(2)}, {"d1": ok(), "d2": ok()})
    w.deferred["d1"] = [wait("u-old", 30), wait("u-new", 5)]
    w.deferred["d1"].sort(key=lambda d: d.first_at)
    done = await refresh(w).round(ACTOR)
    assert w.synced == ["u-old", "u-new"] and w.deferred["d1"] == [] and done.run.counts["replayed"] == 2
