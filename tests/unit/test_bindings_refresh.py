"""A refresh rewrites a user's directory-index rows from its partition; refreshing many users (a reconcile chunk,
a group's members) lists the directories once, not once per user, and gives each user the same rows a refresh of
that user alone would."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from shared.domain.model import Link
from shared.service.ports import IndexEntry, UserRecord
from shared.service.store.bindings import Bindings
from tests.unit.test_hris_events import user


class Users:
    def __init__(self, records: dict[str, UserRecord]) -> None:
        self.records = records

    async def get(self, user_id: str) -> UserRecord | None:
        return self.records.get(user_id)


class Groups:
    async def bindings_of(self, group_ids: Sequence[str]) -> dict[str, list[Any]]:
        return {g: [SimpleNamespace(directory_id="d2")] for g in group_ids}


class Directories:
    def __init__(self) -> None:
        self.listed = 0

    async def all(self) -> list[Any]:
        self.listed += 1
        return [SimpleNamespace(id=d) for d in ("d1", "d2", "d3")]


class Index:
    def __init__(self) -> None:
        self.rows: set[tuple[str, str, tuple[str, ...]]] = set()
        self.removed: set[tuple[str, str]] = set()

    async def put(self, entries: Sequence[IndexEntry]) -> None:
        self.rows |= {(e.directory_id, e.user_id, tuple(e.via)) for e in entries}

    async def remove(self, directory_id: str, user_ids: Sequence[str]) -> None:
        self.removed |= {(directory_id, u) for u in user_ids}


def records() -> dict[str, UserRecord]:
    out = {}
    for n in range(40):
        uid = f"u{n}"
        direct = frozenset({"d1"}) if n % 2 else frozenset()
        groups = frozenset({"g1"}) if n % 3 == 0 else frozenset()
        links = {"d3": Link(uid, "d3", "synced")} if n % 5 == 0 else {}
        out[uid] = UserRecord(user(id=uid), "etag", direct, groups, links)
    return out


def bindings() -> tuple[Bindings, Directories, Index]:
    directories, index = Directories(), Index()
    return Bindings(Users(records()), Groups(), directories, index), directories, index  # type: ignore[arg-type]


async def test_refreshing_many_users_lists_the_directories_once_and_writes_what_one_by_one_would() -> None:
    one_by_one, listed_each, each = bindings()
    for uid in records():
        await one_by_one.refresh(uid)
    together, listed_once, once = bindings()
    await together.refresh_many([*records(), "u3", "u7"])  # repeats are refreshed once
    assert (listed_each.listed, listed_once.listed) == (40, 1)
    assert once.rows == each.rows and once.removed == each.removed
    assert ("d2", "u3", ("group:g1",)) in once.rows and ("d1", "u3", ("direct",)) in once.rows
    assert ("d3", "u0", ()) in once.rows  # a link with no binding stays indexed (to be blocked)
    assert ("d1", "u2") in once.removed and ("d3", "u1") in once.removed


async def test_refreshing_no_one_reads_nothing() -> None:
    together, directories, index = bindings()
    await together.refresh_many([])
    assert directories.listed == 0 and not index.rows and not index.removed
