"""Object history, replication lag and delta query for the simulated directory.

Every write goes to the primary copy at once and is recorded as a timestamped ``Version`` and a ``Change``
in a per-tenant change log with a sequence number. Reads see the replicas: each object as it was
``replication_lag()`` seconds ago (https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays,
"some requests might have replication delays for objects that were recently created, updated, or deleted").

Delta query follows https://learn.microsoft.com/en-us/graph/delta-query-overview and
https://learn.microsoft.com/en-us/graph/api/user-delta / group-delta:
- the first call pages through all current objects (``$skiptoken``); the last page carries a ``$deltatoken``;
- a deltaLink returns the objects changed since, with the full current state of the selected properties;
  removed users come as ``@removed: {"reason": "changed"}`` (restorable), removed groups ``"deleted"``;
- ``$deltatoken=latest`` returns only a deltaLink;
- ``$top``, ``$expand``, ``$orderby`` are not supported; ``$filter`` only by ``id eq '…'`` (at most 50);
- tokens of directory objects are valid for seven days ("Token duration").

Expired tokens: the overview says the service answers "a 40X-series error with error codes such as
``syncStateNotFound``" and, under "Synchronization reset", ``410 Gone`` with a ``Location`` header holding the
initial delta URL. The simulator answers both at once: ``410`` + code ``syncStateNotFound`` + ``Location``. It
does so for tokens older than seven days, tokens whose history was pruned, and tokens of another tenant
(their sync state cannot be found here). A token that does not decode at all is a malformed request:
``400 Request_BadRequest`` "Invalid delta token." (our choice; Microsoft documents no message for it).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from tools.m365sim.errors import graph_error
from tools.m365sim.model import Clock, GraphRequest, GraphResponse
from tools.m365sim.odata import QueryError, decode_token, encode_token, filter_ids

TOKEN_LIFETIME = 7 * 24 * 3600.0
"""Delta tokens for directory objects last seven days (delta-query-overview, "Token duration")."""
HISTORY_WINDOW = 3600.0
"""Versions older than this (or than twice the lag, if larger) are pruned, keeping the one visible then."""
DELTA_PAGE_SIZE = 100
MAX_DELTA_IDS = 50
SYNC_STATE_NOT_FOUND = (
    "The sync state generation is not found. The delta token is expired and data must be synchronized again."
)

Data = dict[str, Any]


@dataclass(frozen=True)
class Version:
    seq: int
    time: float
    immediate: bool
    data: Data | None
    """None: the object was deleted."""

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
        self._objects: dict[str, dict[str, list[Version]]] = {"users": {}, "groups": {}}
        self._order: dict[str, list[str]] = {"users": [], "groups": []}
        self._log: list[Change] = []
        self._log_start = 0

    # -- reads ---------------------------------------------------------------------------------------------
    def cutoff(self) -> float:
        return self.clock() - max(0.0, float(self.lag()))

    def primary(self, kind: str, obj_id: str) -> Data | None:
        versions = self._objects[kind].get(obj_id)
        return versions[-1].data if versions else None

    def visible(self, kind: str, obj_id: str, cutoff: float | None = None) -> Data | None:
        versions = self._objects[kind].get(obj_id)
        if not versions:
            return None
        limit = self.cutoff() if cutoff is None else cutoff
        for version in reversed(versions):
            if version.visible(limit):
                return version.data
        return None

    def kind_of(self, obj_id: str) -> str | None:
        """'users' or 'groups' for an id that was ever stored."""
        return next((kind for kind, objects in self._objects.items() if obj_id in objects), None)

    def visible_all(self, kind: str, after: str | None = None) -> Iterator[tuple[str, Data]]:
        """Visible objects of a kind in id order, starting after ``after``."""
        cutoff = self.cutoff()
        order = self._order[kind]
        start = bisect.bisect_right(order, after) if after else 0
        for obj_id in order[start:]:
            data = self.visible(kind, obj_id, cutoff)
            if data is not None:
                yield obj_id, data

    # -- writes --------------------------------------------------------------------------------------------
    def write(self, kind: str, obj_id: str, data: Data | None, *, immediate: bool = False) -> None:
        self.seq += 1
        now = self.clock()
        versions = self._objects[kind].setdefault(obj_id, [])
        if not versions:
            bisect.insort(self._order[kind], obj_id)
        before = versions[-1].data if versions else None
        versions.append(Version(self.seq, now, immediate, None if data is None else dict(data)))
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


# ---------------------------------------------------------------------------------------------------------
# The delta function
# ---------------------------------------------------------------------------------------------------------

Renderer = Callable[[str, Data, list[str] | None], Data]
"""(kind, stored object, selected properties or None) → the object as delta returns it."""


@dataclass(frozen=True)
class DeltaState:
    kind: str
    tenant: str
    phase: str
    """'i': initial round (after = last id sent); 'c': changes round (offset into the change set); 'd': delta."""
    seq: int
    since: int = 0
    after: str = ""
    offset: int = 0
    select: list[str] | None = None
    ids: list[str] | None = None
    issued: float = 0.0

    def token(self) -> str:
        return encode_token(
            {
                "k": self.kind,
                "t": self.tenant,
                "p": self.phase,
                "s": self.seq,
                "f": self.since,
                "a": self.after,
                "o": self.offset,
                "sel": self.select,
                "ids": self.ids,
                "ts": self.issued,
            }
        )

    @staticmethod
    def parse(token: str) -> DeltaState | None:
        raw = decode_token(token)
        try:
            assert raw is not None and raw["p"] in ("i", "c", "d")
            return DeltaState(
                kind=str(raw["k"]),
                tenant=str(raw["t"]),
                phase=raw["p"],
                seq=int(raw["s"]),
                since=int(raw["f"]),
                after=str(raw["a"]),
                offset=int(raw["o"]),
                select=raw["sel"],
                ids=raw["ids"],
                issued=float(raw["ts"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return None


class DeltaQuery:
    """``GET /users/delta`` and ``GET /groups/delta`` for one tenant."""

    def __init__(
        self,
        store: VersionedStore,
        tenant_id: str,
        render: Renderer,
        parse_select: Callable[[str, str | None], list[str] | None],
    ) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.render = render
        self.parse_select = parse_select

    def handle(self, req: GraphRequest, kind: str) -> GraphResponse:
        query = {k.lower(): v for k, v in req.query.items()}
        try:
            state = self._state(query, kind)
        except QueryError as exc:
            return graph_error(exc.status, exc.code, exc.message)
        if state is None:
            return self._expired(req, kind)
        if query.get("$deltatoken") == "latest":
            return self._respond(req, state, [], state)
        if "$select" in query and state.phase == "d":
            state = replace(state, select=self.parse_select(kind, query["$select"]))
        if state.phase == "i":
            value, next_state = self._initial_page(state)
        else:
            value, next_state = self._changes_page(state)
        return self._respond(req, state, value, next_state)

    # -- state from the request --------------------------------------------------------------------------
    def _state(self, query: dict[str, str], kind: str) -> DeltaState | None:
        """The state to continue from; None when its sync state is gone (expired, pruned, other tenant)."""
        token = query.get("$deltatoken") or query.get("$skiptoken")
        now = self.store.clock()
        if token is None:
            return self._initial(query, kind, now)
        if token == "latest" and "$deltatoken" in query:
            return DeltaState(
                kind,
                self.tenant_id,
                "d",
                self.store.visible_upto(),
                select=self._select(query, kind),
                ids=self._ids(query),
                issued=now,
            )
        state = DeltaState.parse(token)
        if state is None or state.kind != kind:
            raise QueryError("Request_BadRequest", "Invalid delta token.")
        if (
            state.tenant != self.tenant_id
            or now - state.issued > TOKEN_LIFETIME
            or min(state.seq, state.since if state.phase == "c" else state.seq) < self.store.pruned_upto
        ):
            return None
        return state

    def _initial(self, query: dict[str, str], kind: str, now: float) -> DeltaState:
        for option in ("$top", "$expand", "$orderby", "$search", "$count"):
            if option in query:
                # user-delta / group-delta: "$expand is not supported. $top is not supported. ..."
                raise QueryError(
                    "Request_UnsupportedQuery",
                    f"The query option '{option}' is not supported with delta queries on this resource.",
                )
        return DeltaState(
            kind,
            self.tenant_id,
            "i",
            self.store.visible_upto(),
            select=self._select(query, kind),
            ids=self._ids(query),
            issued=now,
        )

    def _select(self, query: dict[str, str], kind: str) -> list[str] | None:
        return self.parse_select(kind, query.get("$select"))

    @staticmethod
    def _ids(query: dict[str, str]) -> list[str] | None:
        if "$filter" not in query:
            return None
        ids = filter_ids(query["$filter"])
        if len(ids) > MAX_DELTA_IDS:
            raise QueryError(
                "Request_UnsupportedQuery",
                f"The number of filtered objects exceeds the maximum of {MAX_DELTA_IDS}.",
            )
        return ids

    @staticmethod
    def _expired(req: GraphRequest, kind: str) -> GraphResponse:
        # delta-query-overview, "Synchronization reset": 410 + Location with the initial delta URL.
        return graph_error(
            410,
            "syncStateNotFound",
            SYNC_STATE_NOT_FOUND,
            headers={"Location": f"{req.base_url}/{kind}/delta"},
        )

    # -- pages -------------------------------------------------------------------------------------------
    @staticmethod
    def _respond(
        req: GraphRequest, state: DeltaState, value: list[Data], next_state: DeltaState
    ) -> GraphResponse:
        body: Data = {"@odata.context": f"{req.base_url}/$metadata#{state.kind}", "value": value}
        link = f"{req.base_url}/{state.kind}/delta?"
        if next_state.phase == "d":
            body["@odata.deltaLink"] = link + urlencode({"$deltatoken": next_state.token()})
        else:
            body["@odata.nextLink"] = link + urlencode({"$skiptoken": next_state.token()})
        return GraphResponse(200, body, {})

    def _initial_page(self, state: DeltaState) -> tuple[list[Data], DeltaState]:
        wanted = set(state.ids) if state.ids is not None else None
        value: list[Data] = []
        last = state.after
        for obj_id, data in self.store.visible_all(state.kind, state.after or None):
            if wanted is not None and obj_id not in wanted:
                continue
            if len(value) == DELTA_PAGE_SIZE:
                return value, replace(state, after=last)
            value.append(self._with_members(state, obj_id, data, None))
            last = obj_id
        return value, replace(state, phase="d", issued=self.store.clock())

    def _changes_page(self, state: DeltaState) -> tuple[list[Data], DeltaState]:
        if state.phase == "d":
            state = replace(state, phase="c", since=state.seq, seq=self.store.visible_upto(), offset=0)
        changes = self.store.changes(state.kind, state.since, state.seq)
        ids = changes.ids
        if state.ids is not None:
            wanted = set(state.ids)
            ids = [i for i in ids if i in wanted]
        if state.select is not None:
            # delta-query-overview: "If a change occurs to a property that is not selected, the resource for which
            # that property changed does not appear in the delta response".
            tracked = {*state.select, "*"} | ({"_members"} if "members" in state.select else set())
            ids = [i for i in ids if changes.props.get(i, set()) & tracked]
        page = ids[state.offset : state.offset + DELTA_PAGE_SIZE]
        value = [self._changed(state, obj_id, changes) for obj_id in page]
        if state.offset + DELTA_PAGE_SIZE < len(ids):
            return value, replace(state, offset=state.offset + DELTA_PAGE_SIZE)
        return value, replace(state, phase="d", since=0, offset=0, issued=self.store.clock())

    def _changed(self, state: DeltaState, obj_id: str, changes: ChangeSet) -> Data:
        data = self.store.visible(state.kind, obj_id)
        if data is None:
            reason = "changed" if state.kind == "users" else "deleted"
            return {"id": obj_id, "@removed": {"reason": reason}}
        return self._with_members(state, obj_id, data, changes.members.get(obj_id, {}))

    def _with_members(
        self, state: DeltaState, obj_id: str, data: Data, delta: dict[str, bool] | None
    ) -> Data:
        rendered = self.render(state.kind, data, state.select)
        tracks_members = state.kind == "groups" and (state.select is None or "members" in state.select)
        if not tracks_members:
            return rendered
        if delta is None:
            delta = {member: True for member in data.get("_members", [])}
        if delta or state.phase == "i":
            rendered["members@delta"] = [self._member_ref(m, added) for m, added in delta.items()]
        return rendered

    def _member_ref(self, member_id: str, added: bool) -> Data:
        kind = self.store.kind_of(member_id) or "users"
        ref: Data = {"@odata.type": f"#microsoft.graph.{kind[:-1]}", "id": member_id}
        if not added:
            ref["@removed"] = {"reason": "deleted"}
        return ref
