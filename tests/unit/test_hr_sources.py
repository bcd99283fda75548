"""HR sources' pure rules and the use case around them, with in-memory ports: mappings checked per kind, quiet
sources, SCIM tokens and their constant-time comparison with a 24-hour overlap, throttled refusal notes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from shared.domain.errors import Conflict, Invalid
from shared.domain.sources import (
    BUILT_IN_ID,
    DEFAULT_MAPPINGS,
    Credentials,
    HrSource,
    MappingError,
    SourceActivity,
    check_mapping,
    quiet,
    scim_token,
    token_source,
)
from shared.service.context import Actor, Auditor
from shared.service.hr.events import SigningKeys
from shared.service.hr.sources import SourceRefused, Sources

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
ADMIN = Actor("admin:tester")


# ------------------------------------------------------------------------------------------------ mappings
@pytest.mark.parametrize("kind", ["scim", "bamboohr", "standard"])
def test_each_kinds_default_mapping_is_valid(kind: str) -> None:
    check_mapping(kind, DEFAULT_MAPPINGS[kind])


@pytest.mark.parametrize(
    ("kind", "mapping", "says"),
    [
        (
            "scim",
            {"userName": "username", "name.givenName": "firstName", "name.familyName": "lastName"},
            "email",
        ),
        ("scim", {**DEFAULT_MAPPINGS["scim"], "userName": "displayName"}, "userName"),
        ("scim", {**DEFAULT_MAPPINGS["scim"], "nickName": "email"}, "both"),
        ("scim", {**DEFAULT_MAPPINGS["scim"], "x": "status"}, "not a field a scim source may feed"),
        (
            "bamboohr",
            {k: v for k, v in DEFAULT_MAPPINGS["bamboohr"].items() if v != "employeeId"},
            "employeeId",
        ),
        ("standard", {"a": "email"}, "takes no mapping"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused_naming_the_field(
    kind: str, mapping: dict[str, str], says: str
) -> None:
    with pytest.raises(MappingError, match=says):
        check_mapping(kind, mapping)


# --------------------------------------------------------------------------------------------- quiet, tokens
def source(**kw: Any) -> HrSource:
    base = HrSource(
        "11111111-2222-4333-8444-555555555555",
        "feed",
        "scim",
        (),
        "enabled",
        T0,
        T0,
        quiet_after_hours=72,
        credential_set_at=T0,
    )
    return replace(base, **kw)


def test_a_source_is_quiet_once_it_sent_nothing_for_longer_than_its_threshold() -> None:
    s = source()
    assert quiet(s, SourceActivity(), T0 + dt.timedelta(hours=72)) is None
    found = quiet(s, SourceActivity(), T0 + dt.timedelta(hours=73))
    assert found is not None and found.since == T0 and round(found.hours) == 73
    sent = SourceActivity(last_event_at=T0 + dt.timedelta(hours=50))
    assert quiet(s, sent, T0 + dt.timedelta(hours=73)) is None, "counted from its last event"
    assert quiet(replace(s, status="disabled"), SourceActivity(), T0 + dt.timedelta(days=30)) is None
    assert quiet(replace(s, credential_set_at=None), SourceActivity(), T0 + dt.timedelta(days=30)) is None


def test_a_scim_token_names_its_source_and_nothing_else_does() -> None:
    s = source()
    token = scim_token(s.id, "A" * 43)
    assert token_source(token) == s.id
    for other in (
        "Bearer x",
        token + "x",
        token.replace("wscim", "wxcim"),
        "wscim_" + "g" * 32 + "_" + "A" * 43,
    ):
        assert token_source(other) is None


def test_a_rotated_credential_keeps_the_previous_one_for_24_hours() -> None:
    creds = Credentials("secret-one").rotated("secret-two", T0)
    assert creds.valid(T0 + dt.timedelta(hours=23)) == ("secret-two", "secret-one")
    assert creds.valid(T0 + dt.timedelta(hours=24)) == ("secret-two",)
    assert "secret" not in repr(creds)


# ------------------------------------------------------------------------------------------------ use case
class Repo:
    def __init__(self) -> None:
        self.rows: dict[str, HrSource] = {}
        self.activity_rows: dict[str, SourceActivity] = {}
        self.notes: list[dict[str, Any]] = []

    async def add(self, s: HrSource) -> str:
        if s.id in self.rows:
            raise Conflict("exists")
        self.rows[s.id] = s
        return "e1"

    async def get(self, source_id: str) -> tuple[HrSource, str] | None:
        return (self.rows[source_id], "e1") if source_id in self.rows else None

    async def all(self) -> list[HrSource]:
        return list(self.rows.values())

    async def update(self, s: HrSource, etag: str | None) -> str:
        self.rows[s.id] = s
        return "e2"

    async def delete(self, source_id: str) -> None:
        self.rows.pop(source_id, None)

    async def activity(self) -> dict[str, SourceActivity]:
        return dict(self.activity_rows)

    async def note(self, source_id: str, **kw: Any) -> None:
        self.notes.append({"source": source_id, **kw})
        old = self.activity_rows.get(source_id, SourceActivity())
        self.activity_rows[source_id] = SourceActivity(
            last_event_at=kw.get("event_at") or old.last_event_at,
            last_failure_at=kw.get("failure_at") or old.last_failure_at,
            last_failure=kw.get("failure") or old.last_failure,
        )


class Vault:
    def __init__(self) -> None:
        self.values: dict[str, Credentials] = {}

    async def read(self, s: HrSource, *, fresh: bool = False) -> Credentials | None:
        return self.values.get(s.id)

    async def write(self, s: HrSource, c: Credentials) -> None:
        self.values[s.id] = c

    async def delete(self, s: HrSource) -> None:
        self.values.pop(s.id, None)


class Claims:
    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    async def insert(self, kind: str, value: str, owner: str, at: dt.datetime) -> Any:
        if (kind, value) in self.owners:
            from shared.service.ports import Claim

            return Claim(kind, value, self.owners[(kind, value)], at, "e")
        self.owners[(kind, value)] = owner
        return None

    async def take_over(self, claim: Any, owner: str, at: dt.datetime) -> bool:
        return False

    async def release(self, kind: str, value: str, owner: str) -> None:
        if self.owners.get((kind, value)) == owner:
            del self.owners[(kind, value)]

    async def owner(self, kind: str, value: str) -> str | None:
        return self.owners.get((kind, value))


class Log:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def record(self, entry: Any) -> None:
        self.entries.append(entry)

    async def record_all(self, entries: Any) -> None:
        self.entries.extend(entries)

    async def page(self, *a: Any) -> Any:
        raise NotImplementedError


class Records:
    async def drop(self, source_id: str) -> None:
        return None


class Keys:
    async def read(self, *, fresh: bool = False) -> SigningKeys | None:
        return None

    async def write(self, keys: SigningKeys) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.tick = 0.0

    def __call__(self) -> dt.datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick


def sources(clock: Clock, checked: list[Any] | None = None) -> tuple[Sources, Repo, Log]:
    repo, log = Repo(), Log()
    ids = iter(f"00000000-0000-4000-8000-{i:012d}" for i in range(2, 100))

    def check(kind: str, mapping: Mapping[str, str]) -> None:
        if checked is not None:
            checked.append((kind, dict(mapping)))
        if "bad.path" in mapping:
            raise ValueError("mapping.bad.path: not a SCIM attribute path")

    s = Sources(
        repo,
        Vault(),
        Records(),
        Claims(),
        None,  # type: ignore[arg-type]
        lambda *a: T0,
        lambda *a: T0,
        Auditor(log, clock, lambda: "a"),
        clock,
        lambda: next(ids),
        built_in_keys=Keys(),
        check_mapping=check,
        monotonic=clock.monotonic,
    )
    return s, repo, log


async def test_a_scim_token_is_shown_once_compared_with_current_and_previous_and_then_refused() -> None:
    clock = Clock()
    s, _, _ = sources(clock)
    created = await s.create("feed", "scim", None, None, ADMIN)
    token = created.credential
    assert token is not None and (await s.scim_source(token)).id == created.view.source.id
    rotated = await s.rotate(created.view.source.id, ADMIN)
    assert (await s.scim_source(token)).name == "feed", "the previous token works for 24 h"
    assert (await s.scim_source(rotated.credential)).name == "feed"
    clock.now = T0 + dt.timedelta(hours=24, seconds=1)
    clock.tick = 100.0
    with pytest.raises(SourceRefused, match="rotated"):
        await s.scim_source(token)
    with pytest.raises(SourceRefused):
        await s.scim_source(token[:-1] + ("A" if token[-1] != "A" else "B"))


async def test_a_mapping_is_checked_by_kind_and_by_the_contracts_path_check_on_every_write() -> None:
    checked: list[Any] = []
    s, _, _ = sources(Clock(), checked)
    with pytest.raises(Invalid, match=r"bad\.path"):
        mapping = {k: v for k, v in DEFAULT_MAPPINGS["scim"].items() if v != "department"}
        await s.create("feed", "scim", {**mapping, "bad.path": "department"}, None, ADMIN)
    created = await s.create("feed", "scim", None, None, ADMIN)
    with pytest.raises(Invalid, match="email"):
        await s.update(created.view.source.id, {"mapping": {"userName": "username"}}, None, ADMIN)
    assert [k for k, _ in checked] == ["scim", "scim"], "the kind's rules first, then the paths"
    with pytest.raises(Conflict):
        await s.create("webhook", "standard", None, None, ADMIN)
    with pytest.raises(Conflict):
        await s.delete(BUILT_IN_ID, None, ADMIN)


async def test_refusals_are_noted_and_audited_at_most_every_ten_seconds_with_their_count() -> None:
    clock = Clock()
    s, repo, log = sources(clock)
    created = await s.create("feed", "scim", None, None, ADMIN)
    bad = scim_token(created.view.source.id, "B" * 43)
    for i in range(5):
        clock.tick = float(i)
        with pytest.raises(SourceRefused):
            await s.scim_source(bad)
    clock.tick = 11.0
    with pytest.raises(SourceRefused):
        await s.scim_source(bad)
    refused = [e for e in log.entries if e.action == "hris.source.refused"]
    assert [e.after["refusals"] for e in refused] == [1, 5], "the first, then the next ten seconds' five"
    assert len([n for n in repo.notes if "failure_at" in n]) == 2


async def test_a_quiet_source_is_a_health_warning_and_one_that_sends_is_up() -> None:
    clock = Clock()
    s, _, _ = sources(clock)
    created = await s.create("feed", "scim", None, 24, ADMIN)
    assert [(c.status, c.labels["source"]) for c in await s.health()] == [("up", "feed")]
    clock.now = T0 + dt.timedelta(hours=25)
    [warning] = await s.health()
    assert warning.status == "warning" and "25 h" in (warning.detail or "")
    assert created.credential is not None
    await s.scim_source(created.credential)
    [up] = await s.health()
    assert up.status == "up" and up.labels["lastEventAt"].startswith("2026-12-02T10:00")
