"""Object history and replication lag of a tenant's directory objects (users and groups).

Every write goes to the primary copy at once and is recorded as a timestamped ``Version`` and a ``Change`` in a
per-tenant change log with a sequence number. Reads see the replicas: each object as it was ``lag()`` seconds ago
(https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays, "some requests might have
replication delays for objects that were recently created, updated, or deleted"). The change log feeds delta
query (``tools.m365sim.backends.graph.delta``) for seven days ("Token duration").
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tools.m365sim.backends.clock import Clock

KINDS = ("users", "groups")

TOKEN_LIFETIME = 7 * 24 * 3600.0
"""Delta tokens for directory objects last seven days (delta-query-overview, "Token duration")."""
HISTORY_WINDOW = 3600.0
"""Versions older than this (or than twice the lag, if larger) are pruned, keeping the one visible then."""
Data = dict[str, Any]


@dataclass(frozen=True)
class Version:
    seq: int
    time: float
    immediate: bool
    data: Data | None
    """None: the object was deleted."""
    ever_set: frozenset[str] = frozenset()
    """Properties that have held a non-null value in this or an earlier version (user-delta / group-delta:
    "If the property has never been set before it will not be included in the response at all")."""

    def visible(self, cutoff: float) -> bool:
        return self.immediate or self.time <= cutoff


@dataclass(frozen=True)
class Change:
    seq: int
    time: float
    immediate: bool
    kind: str
    obj_id: str
    member_id: str | None = None
    added: bool = False
    props: frozenset[str] = frozenset({"*"})
    """Changed property names; "*" for a created or deleted object."""

    def visible(self, cutoff: float) -> bool:
        return self.immediate or self.time <= cutoff


@dataclass
class ChangeSet:
    ids: list[str] = field(default_factory=list)
    """Changed object ids, in order of their last change."""
    members: dict[str, dict[str, bool]] = field(default_factory=dict)
    """group id → member id → True (added) / False (removed), net of the range."""
    props: dict[str, set[str]] = field(default_factory=dict)
    """object id → the properties changed in the range ("*": created or deleted)."""


def _changed_props(before: Data | None, after: Data | None) -> frozenset[str]:
    if before is None or after is None:
        return frozenset({"*"})
    return frozenset(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class VersionedStore:
    """Primary copies with timestamped history; ``visible`` reads the lagging replica."""

    def __init__(self, clock: Clock, lag: Callable[[], float]) -> None:
        self.clock = clock
        self.lag = lag
        self.seq = 0
        self.pruned_upto = 0
        self._objects: dict[str, dict[str, list[Version]]] = {kind: {} for kind in KINDS}
        self._order: dict[str, list[str]] = {kind: [] for kind in KINDS}
        self._log: list[Change] = []
        self._log_start = 0

    # -- reads ---------------------------------------------------------------------------------------------
    def cutoff(self) -> float:
        return self.clock() - max(0.0, float(self.lag()))

    def primary(self, kind: str, obj_id: str) -> Data | None:
        versions = self._objects[kind].get(obj_id)
        return versions[-1].data if versions else None

    def visible(self, kind: str, obj_id: str, cutoff: float | None = None) -> Data | None:
        version = self.visible_version(kind, obj_id, cutoff)
        return None if version is None else version.data

    def visible_version(self, kind: str, obj_id: str, cutoff: float | None = None) -> Version | None:
        """The version the replicas show (its ``data`` is None for a deleted object); None if none yet."""
        versions = self._objects[kind].get(obj_id)
        if not versions:
            return None
        limit = self.cutoff() if cutoff is None else cutoff
        for version in reversed(versions):
            if version.visible(limit):
                return version
        return None

    def kind_of(self, obj_id: str) -> str | None:
        """'users' or 'groups' for an id that was ever stored."""
        return next((kind for kind, objects in self._objects.items() if obj_id in objects), None)

    def visible_all(self, kind: str, after: str | None = None) -> Iterator[tuple[str, Data]]:
        """Visible objects of a kind in id order, starting after ``after``."""
        for obj_id, version in self.visible_versions(kind, after):
            assert version.data is not None
            yield obj_id, version.data

    def visible_versions(self, kind: str, after: str | None = None) -> Iterator[tuple[str, Version]]:
        """The visible versions of the live objects of a kind in id order, starting after ``after``."""
        cutoff = self.cutoff()
        order = self._order[kind]
        start = bisect.bisect_right(order, after) if after else 0
        for obj_id in order[start:]:
            version = self.visible_version(kind, obj_id, cutoff)
            if version is not None and version.data is not None:
                yield obj_id, version

    # -- writes --------------------------------------------------------------------------------------------
    def write(self, kind: str, obj_id: str, data: Data | None, *, immediate: bool = False) -> None:
        self.seq += 1
        now = self.clock()
        versions = self._objects[kind].setdefault(obj_id, [])
        if not versions:
            bisect.insort(self._order[kind], obj_id)
        before = versions[-1].data if versions else None
        ever_set = versions[-1].ever_set if versions else frozenset()
        if data is not None:
            ever_set |= {k for k, v in data.items() if v is not None}
        versions.append(Version(self.seq, now, immediate, None if data is None else dict(data), ever_set))
        self._prune_versions(versions, now)
        self._append(Change(self.seq, now, immediate, kind, obj_id, props=_changed_props(before, data)))

    def member_change(self, group_id: str, member_id: str, added: bool) -> None:
        self.seq += 1
        self._append(
            Change(
                self.seq, self.clock(), False, "groups", group_id, member_id, added, frozenset({"_members"})
            )
        )

    def _prune_versions(self, versions: list[Version], now: float) -> None:
        horizon = now - max(HISTORY_WINDOW, 2 * float(self.lag()))
        while len(versions) > 1 and versions[1].visible(horizon):
            del versions[0]

    def _append(self, change: Change) -> None:
        self._log.append(change)
        horizon = change.time - TOKEN_LIFETIME
        while self._log_start < len(self._log) and self._log[self._log_start].time < horizon:
            self.pruned_upto = self._log[self._log_start].seq
            self._log_start += 1
        if self._log_start > 1024 and self._log_start * 2 > len(self._log):
            del self._log[: self._log_start]
            self._log_start = 0

    # -- change tracking -------------------------------------------------------------------------------------
    def visible_upto(self) -> int:
        """The highest sequence number up to which every change is visible on the replicas."""
        cutoff = self.cutoff()
        upto = self.seq
        for index in range(len(self._log) - 1, self._log_start - 1, -1):
            change = self._log[index]
            if change.time <= cutoff:
                break  # the log is in time order: everything older is visible too
            if not change.immediate:
                upto = change.seq - 1
        return upto

    def changes(self, kind: str, after: int, upto: int) -> ChangeSet:
        """Objects of ``kind`` changed in (after, upto], and the net membership changes of groups."""
        result = ChangeSet()
        last: dict[str, int] = {}
        start = bisect.bisect_right(self._log, after, lo=self._log_start, key=lambda c: c.seq)
        for change in self._log[start:]:
            if change.seq > upto:
                break
            if change.kind != kind:
                continue
            last[change.obj_id] = change.seq
            result.props.setdefault(change.obj_id, set()).update(change.props)
            if change.member_id is not None:
                result.members.setdefault(change.obj_id, {})[change.member_id] = change.added
        result.ids = sorted(last, key=last.__getitem__)
        return result

    # -- persistence ---------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole history as plain JSON values (``restore`` reads it back)."""
        return {
            "seq": self.seq,
            "prunedUpto": self.pruned_upto,
            "objects": {
                kind: {
                    obj_id: [[v.seq, v.time, v.immediate, v.data, sorted(v.ever_set)] for v in versions]
                    for obj_id, versions in objects.items()
                }
                for kind, objects in self._objects.items()
            },
            "log": [
                [c.seq, c.time, c.immediate, c.kind, c.obj_id, c.member_id, c.added, sorted(c.props)]
                for c in self._log[self._log_start :]
            ],
        }

    @classmethod
    def restore(cls, clock: Clock, lag: Callable[[], float], state: dict[str, Any]) -> VersionedStore:
        store = cls(clock, lag)
        store.seq = int(state["seq"])
        store.pruned_upto = int(state["prunedUpto"])
        for kind in KINDS:
            for obj_id, versions in state["objects"].get(kind, {}).items():
                store._objects[kind][obj_id] = [
                    Version(int(s), float(t), bool(i), d, frozenset(e)) for s, t, i, d, e in versions
                ]
            store._order[kind] = sorted(store._objects[kind])
        store._log = [
            Change(int(s), float(t), bool(i), k, o, m, bool(a), frozenset(p))
            for s, t, i, k, o, m, a, p in state["log"]
        ]
        return store

    def ids(self, kind: str) -> list[str]:
        """Every id of ``kind`` ever stored, in id order (deleted ones included)."""
        return list(self._order[kind])
