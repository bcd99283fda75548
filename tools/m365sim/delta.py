"""Object history, replication lag and delta query for the simulated directory.

Every write goes to the primary copy at once and is recorded as a timestamped ``Version`` and a ``Change``
in a per-tenant change log with a sequence number. Reads see the replicas: each object as it was
``replication_lag()`` seconds ago (https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays,
"some requests might have replication delays for objects that were recently created, updated, or deleted").

Delta query follows https://learn.microsoft.com/en-us/graph/delta-query-overview and
https://learn.microsoft.com/en-us/graph/api/user-delta / group-delta:
- the first call pages through all current objects (``$skiptoken``); the last page carries a ``$deltatoken``;
- a deltaLink returns the objects changed since, with the full current state of the selected properties
  (without ``$select``, the default ones, which are also the only ones tracked); properties never set are left
  out ("If the property has never been set before it will not be included in the response at all");
  removed users come as ``@removed: {"reason": "changed"}`` (restorable), removed groups ``"deleted"``;
- ``Prefer: return=minimal`` on a change round's request keeps only **id** and the properties changed in the
  round (objects created in it come whole), and the answer carries ``Preference-Applied: return=minimal``;
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
from collections.abc import Callable, Collection, Iterator, Mapping
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
        defaults: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.render = render
        self.parse_select = parse_select
        self.defaults = defaults or {}
        """kind → the properties tracked without $select (user-delta Example 1: "There is no $select parameter,
        so a default set of properties is tracked and returned"); a kind not named here tracks every change."""

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
            return self._respond(req, state, value, next_state)
        minimal = self._prefers_minimal(req)
        value, next_state = self._changes_page(state, minimal)
        return self._respond(req, state, value, next_state, minimal=minimal)

    @staticmethod
    def _prefers_minimal(req: GraphRequest) -> bool:
        """``Prefer: return=minimal`` (user-delta / group-delta, "Request headers"), among other preferences.

        Read on every request, never stored in a token: "The header can be added to a deltaLink request at any
        point in time in the delta cycle. The header only affects the set of properties included in the response
        and it does not affect how the delta query is executed." On the initial round it has no effect (its
        pages "include the same set of properties as in the initial delta query request ... to capture the full
        current state"), so Preference-Applied is sent only with change rounds (deltaLink and their nextLinks).
        """
        for preference in req.headers.get("prefer", "").split(","):
            name, _, value = preference.split(";")[0].partition("=")
            if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
                return True
        return False

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
        req: GraphRequest,
        state: DeltaState,
        value: list[Data],
        next_state: DeltaState,
        *,
        minimal: bool = False,
    ) -> GraphResponse:
        body: Data = {"@odata.context": f"{req.base_url}/$metadata#{state.kind}", "value": value}
        link = f"{req.base_url}/{state.kind}/delta?"
        if next_state.phase == "d":
            body["@odata.deltaLink"] = link + urlencode({"$deltatoken": next_state.token()})
        else:
            body["@odata.nextLink"] = link + urlencode({"$skiptoken": next_state.token()})
        # RFC 7240 section 3: a server that honours a preference says so in Preference-Applied.
        return GraphResponse(200, body, {"Preference-Applied": "return=minimal"} if minimal else {})

    def _initial_page(self, state: DeltaState) -> tuple[list[Data], DeltaState]:
        wanted = set(state.ids) if state.ids is not None else None
        value: list[Data] = []
        last = state.after
        for obj_id, version in self.store.visible_versions(state.kind, state.after or None):
            if wanted is not None and obj_id not in wanted:
                continue
            if len(value) == DELTA_PAGE_SIZE:
                return value, replace(state, after=last)
            value.append(self._present(state, version, None, None))
            last = obj_id
        return value, replace(state, phase="d", issued=self.store.clock())

    def _changes_page(self, state: DeltaState, minimal: bool) -> tuple[list[Data], DeltaState]:
        if state.phase == "d":
            state = replace(state, phase="c", since=state.seq, seq=self.store.visible_upto(), offset=0)
        changes = self.store.changes(state.kind, state.since, state.seq)
        ids = changes.ids
        if state.ids is not None:
            wanted = set(state.ids)
            ids = [i for i in ids if i in wanted]
        tracked_names = state.select if state.select is not None else self.defaults.get(state.kind)
        if tracked_names is not None:
            # delta-query-overview: "If a change occurs to a property that is not selected, the resource for which
            # that property changed does not appear in the delta response"; without $select the default set is
            # the one tracked (user-delta / group-delta, first example).
            tracked = {*tracked_names, "*"} | ({"_members"} if "members" in tracked_names else set())
            ids = [i for i in ids if changes.props.get(i, set()) & tracked]
        page = ids[state.offset : state.offset + DELTA_PAGE_SIZE]
        value = [self._changed(state, obj_id, changes, minimal) for obj_id in page]
        if state.offset + DELTA_PAGE_SIZE < len(ids):
            return value, replace(state, offset=state.offset + DELTA_PAGE_SIZE)
        return value, replace(state, phase="d", since=0, offset=0, issued=self.store.clock())

    def _changed(self, state: DeltaState, obj_id: str, changes: ChangeSet, minimal: bool) -> Data:
        version = self.store.visible_version(state.kind, obj_id)
        if version is None or version.data is None:
            reason = "changed" if state.kind == "users" else "deleted"
            return {"id": obj_id, "@removed": {"reason": reason}}
        changed = changes.props.get(obj_id, {"*"}) if minimal else None
        return self._present(state, version, changes.members.get(obj_id, {}), changed)

    def _present(
        self, state: DeltaState, version: Version, delta: dict[str, bool] | None, changed: set[str] | None
    ) -> Data:
        """An object as delta returns it.

        user-delta / group-delta, "Default: return the same properties as initial delta request": a changed
        property comes with its new value ("This includes properties being set to null value"), an unchanged one
        with its old value, and "If the property has never been set before it will not be included in the
        response at all". Microsoft documents that rule for requests using a deltaLink or nextLink; the simulator
        applies it to the first page of the initial round too, so that every page of a round looks alike (our
        choice: the first page is the one request the sentence does not name). "Set" means having held a
        non-null value; an empty collection is a value (Graph never returns a collection as null), so
        ``businessPhones: []`` stays.

        ``changed`` (``Prefer: return=minimal``, "Alternative: return only the changed properties"): the
        properties changed in this round; only those and **id** are kept ("If the property hasn't changed, the
        property isn't included in the response at all"). An object created in the round ("*") is all new and
        comes whole, in "its standard representation" (delta-query-overview, "Resource representation in the
        delta query response"). A property changed and changed back within one round still counts as changed
        (the change log records writes, not net values; Microsoft does not say).
        """
        data = version.data
        assert data is not None
        rendered = {
            name: value
            for name, value in self.render(state.kind, data, state.select).items()
            if name == "id" or value is not None or name in version.ever_set
        }
        if changed is not None and "*" not in changed:
            rendered = {name: value for name, value in rendered.items() if name == "id" or name in changed}
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
