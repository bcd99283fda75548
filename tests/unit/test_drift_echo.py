"""Drift knows its own writes (rule 9): a change in Graph's user delta whose managed values are exactly what Warden
last applied through the link is Warden's own write coming back, and costs no read and no sync; anything else a
managed account shows — one managed value off, ``accountEnabled`` flipped by someone — is synced. And the deltaLinks
a directory's first round reads from are taken when it is connected (``Baselines``).

The accounts here are what the planner's own items leave in Graph: the user's desired attributes as the plan wrote
them, as user delta reports an account (every selected property, the ones never set left out)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.claims import claim_kind
from shared.domain.model import Directory, DirectoryOptions, Domain, Link, User, UserDirectory
from shared.domain.planner import (
    BLOCKED,
    DEFAULT_MAPPING,
    IDENTITY,
    MANAGEABLE,
    Desired,
    M365Account,
    Observation,
    PlanItem,
    desired_attributes,
    echoes,
    plan_user,
    target_of,
)
from shared.domain.runs import Run
from shared.service.context import Actor
from shared.service.ports import Delta, UserRecord
from shared.service.runs.drift import DELTA_KEY, GROUPS_DELTA_KEY, Baselines, Drift

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
UID = str(uuid.UUID(int=7))
M365_ID = "m-1"
DIRECTORY = Directory(
    id="dir-1",
    name="Contoso",
    tenant_id="t-1",
    auth_mode="app",
    client_id="c-1",
    secret_name="s",
    domains=(Domain("contoso.example", True, True, "Managed"),),
    status="active",
    options=DirectoryOptions(),
    created_at=T0,
    updated_at=T0,
)
TARGET = target_of(DIRECTORY)


def user(**kw: Any) -> User:
    base: dict[str, Any] = {
        "id": UID,
        "username": "ada",
        "email": "ada@contoso.example",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "display_name": "Ada Lovelace",
        "state": "active",
        "source": "admin",
        "created_at": T0,
        "updated_at": T0,
        "job_title": "Analyst",
    }
    return User(**{**base, **kw})


def as_delta(attrs: dict[str, Any], m365_id: str = M365_ID) -> dict[str, Any]:
    """An account as user delta reports it: the selected properties, those never set left out."""
    return {"id": m365_id, **{k: v for k, v in attrs.items() if v is not None}}


def applied(item: PlanItem) -> Link:
    """The link the item leaves once applied (``shared.service.sync.links``)."""
    return Link(UID, DIRECTORY.id, status=item.status, m365_user_id=M365_ID, fingerprint=item.fingerprint)


def converge(u: User, account: M365Account, link: Link | None = None) -> PlanItem:
    """The planner's item for ``u`` whose linked account is ``account``."""
    ud = UserDirectory(DIRECTORY.id, ("direct",), link or Link(UID, DIRECTORY.id, m365_user_id=M365_ID))
    (item,) = plan_user(
        Desired(u, (ud,)), {DIRECTORY.id: TARGET}, {DIRECTORY.id: Observation(linked=account)}
    )
    return item


def drifted_account(u: User, **changes: Any) -> M365Account:
    """The account as it was before Warden's correction: what Warden wants, with ``changes``."""
    a = desired_attributes(u, TARGET, enabled=True)
    return M365Account(
        id=M365_ID,
        user_principal_name=a["userPrincipalName"],
        account_enabled=changes.get("account_enabled", True),
        mail=a["mail"],
        mail_nickname=a["mailNickname"],
        given_name=a["givenName"],
        surname=a["surname"],
        display_name=a["displayName"],
        job_title=changes.get("job_title", a["jobTitle"]),
        department=a["department"],
        employee_id=a["employeeId"],
        on_premises_immutable_id=changes.get("on_premises_immutable_id", a["onPremisesImmutableId"]),
    )


# ------------------------------------------------------------------------------------------------ the rule
def test_warden_s_own_correction_coming_back_is_an_echo() -> None:
    u = user()
    item = converge(u, drifted_account(u, job_title="Chief of Everything"))
    assert item.action == "update" and item.changes == {"jobTitle": ("Chief of Everything", "Analyst")}
    after = as_delta(desired_attributes(u, TARGET, enabled=True))
    assert echoes(applied(item), after, TARGET.mapping)


def test_one_managed_value_other_than_warden_s_is_not_an_echo() -> None:
    u = user()
    link = applied(converge(u, drifted_account(u, job_title="Chief")))
    after = as_delta(desired_attributes(u, TARGET, enabled=True))
    assert echoes(link, after, TARGET.mapping)
    assert not echoes(link, {**after, "jobTitle": "Chief"}, TARGET.mapping)
    assert not echoes(link, {**after, "department": "Sales"}, TARGET.mapping), (
        "a value set where Warden has none"
    )
    del after["jobTitle"]
    assert not echoes(link, after, TARGET.mapping), "a managed value cleared"


def test_account_enabled_flipped_by_someone_is_never_an_echo() -> None:
    u = user()
    synced = applied(converge(u, drifted_account(u, job_title="x")))
    after = as_delta(desired_attributes(u, TARGET, enabled=True))
    assert not echoes(synced, {**after, "accountEnabled": False}, TARGET.mapping), (
        "disabled behind Warden's back"
    )
    blocked = dataclasses.replace(synced, status="blocked", fingerprint=BLOCKED)
    assert echoes(blocked, {**after, "accountEnabled": False}, TARGET.mapping), "Warden's own block"
    assert not echoes(blocked, {**after, "accountEnabled": True}, TARGET.mapping), "re-enabled: blocked again"
    assert not echoes(blocked, {k: v for k, v in after.items() if k != "accountEnabled"}, TARGET.mapping), (
        "a change that does not say accountEnabled vouches for nothing"
    )


def test_an_unmanaged_property_and_an_immutable_id_warden_keeps_do_not_count() -> None:
    mapping = {**DEFAULT_MAPPING, "department": None}
    u = user(department="Sales")
    d = dataclasses.replace(
        DIRECTORY, options=DirectoryOptions(attribute_mapping=tuple(sorted(mapping.items())))
    )
    target = target_of(d)
    attrs = desired_attributes(u, target, enabled=True)
    ud = UserDirectory(d.id, ("direct",), Link(UID, d.id, m365_user_id=M365_ID))
    federated = drifted_account(u, job_title="x", on_premises_immutable_id="federated-id==")
    (item,) = plan_user(Desired(u, (ud,)), {d.id: target}, {d.id: Observation(linked=federated)})
    assert "onPremisesImmutableId" not in item.changes, "a present immutable id stays (rule 2)"
    after = as_delta(
        {**attrs, "onPremisesImmutableId": "federated-id==", "department": "Edited in the portal"}
    )
    assert echoes(applied(item), after, target.mapping)


def test_only_a_link_whose_last_sync_succeeded_and_only_its_own_account() -> None:
    u = user()
    link = applied(converge(u, drifted_account(u, job_title="x")))
    after = as_delta(desired_attributes(u, TARGET, enabled=True))
    assert not echoes(dataclasses.replace(link, status="error"), after, TARGET.mapping)
    assert not echoes(dataclasses.replace(link, fingerprint=None), after, TARGET.mapping)
    assert not echoes(link, {**after, "id": "m-2"}, TARGET.mapping)
    assert not echoes(link, {**after, "@removed": {"reason": "changed"}}, TARGET.mapping)
    assert not echoes(dataclasses.replace(link, manager_m365_id="m-boss"), after, TARGET.mapping), (
        "the fingerprint covers the manager last applied"
    )


def test_echo_reads_the_same_properties_the_planner_writes() -> None:
    attrs = desired_attributes(user(), TARGET, enabled=True)
    assert set(attrs) == set(IDENTITY) | {p for p, s in TARGET.mapping.items() if s is not None}


@settings(max_examples=60, deadline=None)
@given(
    prop=st.sampled_from(sorted({*IDENTITY, *MANAGEABLE} - {"onPremisesImmutableId"})),
    value=st.one_of(st.none(), st.text(min_size=1, max_size=12), st.booleans()),
)
def test_any_one_managed_value_changed_is_not_an_echo(prop: str, value: Any) -> None:
    u = user(department="Sales", employee_id="E-7")
    link = applied(converge(u, drifted_account(u, job_title="x")))
    attrs = desired_attributes(u, TARGET, enabled=True)
    if value == attrs[prop] or (value is None and attrs[prop] is None):
        return
    assert not echoes(link, as_delta({**attrs, prop: value}), TARGET.mapping)


# ------------------------------------------------------------------------------------- the round, with fakes
class FakeM365:
    def __init__(self, changes: list[dict[str, Any]]) -> None:
        self.changes = changes
        self.calls: list[tuple[str | None, bool, str]] = []

    def usage(self, directory_id: str) -> dict[str, float]:
        return {"requests": float(len(self.calls))}

    async def delta(
        self, directory: Directory, delta_link: str | None, *, latest: bool = False, resource: str = "users"
    ) -> Delta:
        self.calls.append((delta_link, latest, resource))
        changes = [] if latest or delta_link is None else self.changes
        return Delta(changes, f"https://graph/{resource}/delta?$deltatoken={len(self.calls)}")


class FakeDirectories:
    def __init__(self) -> None:
        self.state: dict[tuple[str, str], str] = {}

    async def all(self) -> list[Directory]:
        return [DIRECTORY]

    async def get_state(self, directory_id: str, key: str) -> str | None:
        return self.state.get((directory_id, key))

    async def set_state(self, directory_id: str, key: str, value: str | None) -> None:
        if value is not None:
            self.state[(directory_id, key)] = value

    async def bound_groups(self, directory_id: str) -> list[str]:
        return []


class FakeUniques:
    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    async def owner(self, kind: str, value: str) -> str | None:
        assert kind == claim_kind(DIRECTORY.id)
        return self.owners.get(value)


class FakeUsers:
    def __init__(self, records: dict[str, UserRecord]) -> None:
        self.records = records
        self.reads = 0

    async def get(self, user_id: str) -> UserRecord | None:
        self.reads += 1
        return self.records.get(user_id)


class RecordingQueue:
    def __init__(self) -> None:
        self.queued: list[tuple[str, bool]] = []

    async def enqueue(self, user_ids: Sequence[str], correlation_id: str | None, **kw: Any) -> None:
        self.queued.extend((u, bool(kw.get("gone"))) for u in user_ids)


class Runs:
    def __init__(self) -> None:
        self.runs: list[Run] = []

    async def add(self, run: Run) -> None:
        self.runs.append(run)


def drift(m365: FakeM365, users: FakeUsers, owners: dict[str, str], directories: FakeDirectories) -> Drift:
    return Drift(
        directories,  # type: ignore[arg-type]
        FakeUniques(owners),  # type: ignore[arg-type]
        m365,  # type: ignore[arg-type]
        RecordingQueue(),
        None,  # type: ignore[arg-type]  # no reconciler: no deltaLink expires here
        Runs(),
        lambda: T0,
        lambda: str(uuid.uuid4()),
        users=users,  # type: ignore[arg-type]
    )


def record(u: User, link: Link) -> UserRecord:
    return UserRecord(u, "etag", frozenset({DIRECTORY.id}), frozenset(), {DIRECTORY.id: link})


async def test_a_round_after_a_correction_queues_nothing_for_warden_s_echoes_and_syncs_the_rest() -> None:
    ada, bob = user(), user(id=str(uuid.UUID(int=8)), username="bob", email="bob@contoso.example")
    ada_link = applied(converge(ada, drifted_account(ada, job_title="x")))
    bob_item = converge(bob, drifted_account(bob, job_title="x"))
    bob_link = dataclasses.replace(applied(bob_item), user_id=bob.id, m365_user_id="m-2")
    bob_after = as_delta(desired_attributes(bob, TARGET, enabled=True), "m-2")
    changes = [
        as_delta(desired_attributes(ada, TARGET, enabled=True)),  # Warden's own correction, back in the delta
        {**bob_after, "jobTitle": "Edited again"},  # someone edited bob after Warden's write
        {"id": "m-stranger", "jobTitle": "Not Warden's"},
    ]
    directories = FakeDirectories()
    directories.state[(DIRECTORY.id, DELTA_KEY)] = "https://graph/users/delta?$deltatoken=0"
    users = FakeUsers({ada.id: record(ada, ada_link), bob.id: record(bob, bob_link)})
    d = drift(FakeM365(changes), users, {M365_ID: ada.id, "m-2": bob.id}, directories)
    (result,) = await d.round(Actor("timer:drift"))
    assert (result.changed, result.corrections, result.echoes) == (3, 1, 1)
    assert d.sync_queue.queued == [(bob.id, False)]  # type: ignore[attr-defined]
    assert d.m365.calls == [("https://graph/users/delta?$deltatoken=0", False, "users")]  # type: ignore[attr-defined]
    assert d.runs.runs[0].counts == {"changed": 3, "corrections": 1, "echoes": 1}  # type: ignore[attr-defined]


async def test_a_removed_account_is_never_an_echo() -> None:
    ada = user()
    link = applied(converge(ada, drifted_account(ada, job_title="x")))
    directories = FakeDirectories()
    directories.state[(DIRECTORY.id, DELTA_KEY)] = "https://graph/users/delta?$deltatoken=0"
    removed = {"id": M365_ID, "@removed": {"reason": "changed"}}
    d = drift(FakeM365([removed]), FakeUsers({ada.id: record(ada, link)}), {M365_ID: ada.id}, directories)
    (result,) = await d.round(Actor("timer:drift"))
    assert d.sync_queue.queued == [(ada.id, True)] and result.echoes == 0  # type: ignore[attr-defined]


async def test_a_baseline_takes_both_delta_links_and_reactivation_keeps_a_stored_one() -> None:
    directories = FakeDirectories()
    m365 = FakeM365([])
    b = Baselines(directories, m365)  # type: ignore[arg-type]
    await b.baseline(DIRECTORY)
    assert sorted(m365.calls, key=lambda c: c[2]) == [(None, True, "groups"), (None, True, "users")]
    taken = dict(directories.state)
    assert set(taken) == {(DIRECTORY.id, DELTA_KEY), (DIRECTORY.id, GROUPS_DELTA_KEY)}
    await b.baseline(DIRECTORY, keep=True)
    assert directories.state == taken and len(m365.calls) == 2, "a stored deltaLink covers everything since"
    del directories.state[(DIRECTORY.id, GROUPS_DELTA_KEY)]
    await b.baseline(DIRECTORY, keep=True)
    assert (
        m365.calls[-1] == (None, True, "groups")
        and directories.state[(DIRECTORY.id, DELTA_KEY)] == (taken[(DIRECTORY.id, DELTA_KEY)])
    )


async def test_the_first_round_after_a_baseline_reads_the_changes_made_since() -> None:
    ada = user()
    link = applied(converge(ada, drifted_account(ada, job_title="x")))
    directories = FakeDirectories()
    m365 = FakeM365([{**as_delta(desired_attributes(ada, TARGET, enabled=True)), "jobTitle": "Edited"}])
    d = drift(m365, FakeUsers({ada.id: record(ada, link)}), {M365_ID: ada.id}, directories)
    await Baselines(directories, m365).baseline(DIRECTORY)  # type: ignore[arg-type]
    (result,) = await d.round(Actor("timer:drift"))
    assert d.sync_queue.queued == [(ada.id, False)] and result.corrections == 1  # type: ignore[attr-defined]
