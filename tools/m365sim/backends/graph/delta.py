"""Delta query over the change log of a tenant's directory (``tools.m365sim.backends.graph.store``).

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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from tools.m365sim.backends.errors import SyncStateNotFound
from tools.m365sim.backends.graph.odata import QueryError, decode_token, encode_token, filter_ids
from tools.m365sim.backends.graph.store import TOKEN_LIFETIME, ChangeSet, Data, Version, VersionedStore

DELTA_PAGE_SIZE = 100
MAX_DELTA_IDS = 50


@dataclass(frozen=True)
class DeltaPage:
    """One page of a delta round: the objects, the state token of the next link, and which link it is."""

    kind: str
    value: list[Data]
    token: str
    final: bool
    """True: the token goes into an ``@odata.deltaLink`` (``$deltatoken``); else a nextLink (``$skiptoken``)."""
    minimal: bool = False
    """``Prefer: return=minimal`` was honoured (the answer says so in ``Preference-Applied``)."""


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

    def page(self, kind: str, query: Mapping[str, str], prefer_minimal: bool) -> DeltaPage:
        """The page a delta request asks for. ``query``: the request's query options (names in any case);
        ``prefer_minimal``: it carried ``Prefer: return=minimal``, which is read on every request, never stored
        in a token (user-delta / group-delta, "Request headers": "The header can be added to a deltaLink request
        at any point in time in the delta cycle. The header only affects the set of properties included in the
        response and it does not affect how the delta query is executed."). On the initial round it has no effect
        (its pages "include the same set of properties as in the initial delta query request ... to capture the
        full current state"), so it is applied only to change rounds (deltaLink and their nextLinks). Raises
        ``SyncStateNotFound`` when the token's sync state is gone."""
        lowered = {k.lower(): v for k, v in query.items()}
        state = self._state(lowered, kind)
        if state is None:
            raise SyncStateNotFound(kind)
        if lowered.get("$deltatoken") == "latest":
            return DeltaPage(kind, [], state.token(), final=True)
        if "$select" in lowered and state.phase == "d":
            state = replace(state, select=self.parse_select(kind, lowered["$select"]))
        if state.phase == "i":
            value, next_state = self._initial_page(state)
            return DeltaPage(kind, value, next_state.token(), final=next_state.phase == "d")
        value, next_state = self._changes_page(state, prefer_minimal)
        return DeltaPage(kind, value, next_state.token(), next_state.phase == "d", minimal=prefer_minimal)

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
