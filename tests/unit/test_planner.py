"""The planner, rule by rule (SPEC §2 rules 1-8 and 11), and its defining property: applying a plan and planning
again yields nothing to write."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.model import Link, User, UserDirectory
from shared.domain.planner import (
    BLOCKED,
    Desired,
    M365Account,
    Observation,
    PlanItem,
    Target,
    check_mapping,
    desired_attributes,
    fingerprint,
    immutable_id,
    plan_user,
)

T0 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
D1, D2 = "dir-contoso", "dir-fabrikam"
TARGETS = {
    D1: Target(D1, frozenset({"contoso.example", "contoso.dev"}), True),
    D2: Target(D2, frozenset({"fabrikam.example"}), True),
}


def user(**kw: Any) -> User:
    base: dict[str, Any] = {
        "id": str(uuid.UUID(int=7)),
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


def account(u: User, **kw: Any) -> M365Account:
    """The account exactly as Warden would have written it for ``u`` in D1."""
    a = desired_attributes(u, TARGETS[D1], enabled=True)
    base: dict[str, Any] = {
        "id": "m-1",
        "user_principal_name": a["userPrincipalName"],
        "account_enabled": True,
        "mail": a["mail"],
        "mail_nickname": a["mailNickname"],
        "given_name": a["givenName"],
        "surname": a["surname"],
        "display_name": a["displayName"],
        "job_title": a["jobTitle"],
        "department": a["department"],
        "employee_id": a["employeeId"],
        "on_premises_immutable_id": a["onPremisesImmutableId"],
    }
    return M365Account(**{**base, **kw})


def bound(directory: str = D1, *, via: tuple[str, ...] = ("direct",), **link: Any) -> UserDirectory:
    return UserDirectory(directory, via, Link(str(uuid.UUID(int=7)), directory, **link))


def plan(
    u: User, *dirs: UserDirectory, obs: dict[str, Observation] | None = None, **kw: Any
) -> list[PlanItem]:
    return plan_user(Desired(u, dirs, **kw), TARGETS, obs or {})


def one(items: list[PlanItem]) -> PlanItem:
    assert len(items) == 1, items
    return items[0]


# --- rule 1: eligibility by verified domain -------------------------------------------------------------
def test_rule1_a_user_whose_domain_no_tenant_verified_gets_an_error_and_no_account() -> None:
    item = one(plan(user(email="ada@elsewhere.example"), bound()))
    assert (item.action, item.status, item.reason) == ("error", "error", "domain not verified in tenant")
    assert not item.writes


# --- rule 2: match, then take over or create -------------------------------------------------------------
def test_rule2_no_match_creates_the_account_with_every_managed_attribute() -> None:
    u = user(department="R&D", employee_id="E1")
    item = one(plan(u, bound()))
    assert item.action == "create" and item.status == "synced"
    after = {k: v[1] for k, v in item.changes.items()}
    assert after["userPrincipalName"] == after["mail"] == "ada@contoso.example"
    assert after["mailNickname"] == "ada" and after["accountEnabled"] is True
    assert after["onPremisesImmutableId"] == immutable_id(u.id)
    assert (after["givenName"], after["surname"], after["department"], after["employeeId"]) == (
        "Ada",
        "Lovelace",
        "R&D",
        "E1",
    )


def test_rule2_one_match_is_taken_over_without_a_password_and_gets_the_immutable_id_if_missing() -> None:
    u = user()
    found = account(
        u, id="m-9", on_premises_immutable_id=None, job_title="Old", user_principal_name="ADA@contoso.example"
    )
    item = one(plan(u, bound(), obs={D1: Observation(candidates=(found,))}))
    assert (item.action, item.m365_user_id, item.password) == ("take_over", "m-9", None)
    assert item.changes == {
        "onPremisesImmutableId": (None, immutable_id(u.id)),
        "jobTitle": ("Old", "Analyst"),
    }


def test_rule2_an_existing_immutable_id_is_never_overwritten() -> None:
    u = user()
    found = account(u, on_premises_immutable_id="federatedAlready==")
    assert one(plan(u, bound(), obs={D1: Observation(candidates=(found,))})).changes == {}


def test_rule2_several_matches_need_attention_with_the_candidates_and_write_nothing() -> None:
    u = user()
    a, b = account(u, id="m-2"), account(u, id="m-1", user_principal_name="other@contoso.example")
    item = one(plan(u, bound(), obs={D1: Observation(candidates=(a, b))}))
    assert (item.action, item.candidates, item.writes) == ("needs_attention", ("m-1", "m-2"), False)


def test_rule2_a_match_linked_to_another_warden_user_needs_attention() -> None:
    u = user()
    obs = Observation(candidates=(account(u),), taken=frozenset({"m-1"}))
    item = one(plan(u, bound(), obs={D1: obs}))
    assert item.action == "needs_attention" and "another Warden user" in (item.reason or "")


def test_rule2_without_create_missing_users_no_match_needs_attention() -> None:
    targets = {**TARGETS, D1: dataclasses.replace(TARGETS[D1], create_missing_users=False)}
    item = one(plan_user(Desired(user(), (bound(),)), targets, {}))
    assert item.action == "needs_attention" and "createMissingUsers" in (item.reason or "")


def test_rule2_a_linked_account_that_vanished_is_re_matched_by_email() -> None:
    u = user()
    found = account(u, id="m-new")
    item = one(
        plan(u, bound(m365_user_id="m-old", status="synced"), obs={D1: Observation(candidates=(found,))})
    )
    assert (item.action, item.m365_user_id) == ("take_over", "m-new") and "re-matched" in (item.reason or "")


GA = ("Global Administrator",)


def test_rule23_a_protected_match_is_never_taken_over_nor_linked() -> None:
    u = user()
    item = one(plan(u, bound(), obs={D1: Observation(candidates=(account(u, protected_by=GA),))}))
    assert (item.action, item.writes, item.m365_user_id, item.candidates) == (
        "needs_attention",
        False,
        None,
        ("m-1",),
    )
    assert item.reason == "protected account (Global Administrator)"


def test_rule23_a_protected_account_among_several_matches_is_named_and_nothing_is_written() -> None:
    u = user()
    twins = (account(u, protected_by=GA), account(u, id="m-2"))
    item = one(plan(u, bound(), obs={D1: Observation(candidates=twins)}))
    assert (item.action, item.writes, item.m365_user_id) == ("needs_attention", False, None)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"state": "suspended"}, ("marked by admin:oid-1",)),
        ({"job_title": "Director"}, GA),
        ({"email": "ada.l@contoso.example"}, ("User Administrator (eligible)",)),
        ({}, GA),
    ],
)
def test_rule23_a_linked_account_that_became_protected_is_frozen_whatever_the_user_wants(
    change: dict[str, Any], why: tuple[str, ...]
) -> None:
    u = user()
    linked = account(u, protected_by=why)
    item = one(
        plan(user(**change), bound(m365_user_id="m-1", status="synced"), obs={D1: Observation(linked=linked)})
    )
    assert (item.action, item.writes, item.status, item.m365_user_id) == (
        "needs_attention",
        False,
        "needs_attention",
        "m-1",
    )
    assert item.reason == f"protected account ({', '.join(why)})" and not item.revoke_sessions


def test_rule23_an_unbound_users_own_protected_account_is_not_blocked() -> None:
    u = user()
    own = account(u, id="m-own", protected_by=GA)
    item = one(plan(u, bound(via=()), obs={D1: Observation(candidates=(own,))}))
    assert (item.action, item.writes, item.m365_user_id) == ("needs_attention", False, None)


def test_rule23_without_the_role_holders_a_take_over_waits_but_a_create_goes_ahead() -> None:
    targets = {D1: dataclasses.replace(TARGETS[D1], roles_verified=False)}
    u = user()
    held = one(plan_user(Desired(u, (bound(),)), targets, {D1: Observation(candidates=(account(u),))}))
    assert (held.action, held.writes, held.reason) == (
        "needs_attention",
        False,
        "cannot verify this account holds no admin role",
    )
    created = one(plan_user(Desired(u, (bound(),)), targets, {D1: Observation()}))
    assert created.action == "create"


# --- rule 3: creation ------------------------------------------------------------------------------------
def test_rule3_a_staged_user_is_created_enabled_with_a_random_password() -> None:
    item = one(plan(user(state="staged"), bound(), has_initial_password=True))
    assert (
        item.action == "create"
        and item.changes["accountEnabled"] == (None, True)
        and item.password == "random"
    )


def test_rule3_an_active_user_with_an_initial_password_gets_it() -> None:
    assert one(plan(user(), bound(), has_initial_password=True)).password == "initial"
    assert one(plan(user(), bound())).password == "random"


def test_rule3_the_immutable_id_is_stable_derived_and_free_of_characters_graph_refuses() -> None:
    uid = str(uuid.uuid4())
    assert immutable_id(uid) == immutable_id(uid) and len(immutable_id(uid)) == 24
    assert not {"$", "_"} & set(immutable_id(uid))
    assert immutable_id(uid) != immutable_id(str(uuid.uuid4()))


# --- rule 4: managed attributes and the per-directory mapping ---------------------------------------------
def test_rule4_edited_managed_attributes_are_restored_and_a_converged_user_plans_nothing() -> None:
    u = user()
    item = one(
        plan(
            u,
            bound(m365_user_id="m-1", status="synced"),
            obs={D1: Observation(linked=account(u, job_title="Hacked"))},
        )
    )
    assert (item.action, item.changes) == ("update", {"jobTitle": ("Hacked", "Analyst")})
    same = one(plan(u, bound(m365_user_id="m-1", status="synced"), obs={D1: Observation(linked=account(u))}))
    assert (same.action, same.changes, same.writes) == ("none", {}, False)


def test_rule4_a_directory_may_leave_an_attribute_unmanaged_or_feed_it_from_another_field() -> None:
    mapping = {
        "givenName": "first_name",
        "surname": "last_name",
        "displayName": "display_name",
        "jobTitle": None,
        "department": "department",
        "employeeId": "employee_id",
    }
    targets = {D1: dataclasses.replace(TARGETS[D1], mapping=mapping)}
    u = user()
    item = one(
        plan_user(
            Desired(u, (bound(m365_user_id="m-1"),)),
            targets,
            {D1: Observation(linked=account(u, job_title="Theirs"))},
        )
    )
    assert item.changes == {}, "jobTitle is not managed in this directory"
    check_mapping({"givenName": "display_name"})
    with pytest.raises(ValueError, match="cannot be mapped"):
        check_mapping({"userPrincipalName": "email"})
    with pytest.raises(ValueError, match="not 'job_title'"):
        check_mapping({"givenName": "job_title"})


def test_rule4_a_manager_change_is_written_once_and_remembered() -> None:
    u = user()
    item = one(
        plan(
            u, bound(m365_user_id="m-1"), obs={D1: Observation(linked=account(u))}, manager_ids={D1: "m-boss"}
        )
    )
    assert (item.action, item.changes) == ("update", {"manager": (None, "m-boss")})
    done = one(
        plan(
            u,
            bound(m365_user_id="m-1", manager_m365_id="m-boss"),
            obs={D1: Observation(linked=account(u))},
            manager_ids={D1: "m-boss"},
        )
    )
    assert done.action == "none"


# --- rule 5: email changes ----------------------------------------------------------------------------------
def test_rule5_a_new_local_part_renames_upn_mail_and_keeps_the_account() -> None:
    old = user()
    new = user(email="ada.lovelace@contoso.example")
    item = one(plan(new, bound(m365_user_id="m-1"), obs={D1: Observation(linked=account(old))}))
    assert item.action == "rename" and item.m365_user_id == "m-1"
    assert item.changes["userPrincipalName"] == ("ada@contoso.example", "ada.lovelace@contoso.example")
    assert item.changes["mail"][1] == "ada.lovelace@contoso.example"


def test_rule5_a_domain_of_the_same_tenant_moves_the_upn() -> None:
    item = one(
        plan(
            user(email="ada@contoso.dev"),
            bound(m365_user_id="m-1"),
            obs={D1: Observation(linked=account(user()))},
        )
    )
    assert item.action == "rename" and item.changes["userPrincipalName"][1] == "ada@contoso.dev"


def test_rule5_a_domain_of_another_connected_directory_blocks_here_and_provisions_there() -> None:
    moved = user(email="ada@fabrikam.example")
    items = plan(
        moved,
        bound(D1, m365_user_id="m-1", status="synced"),
        bound(D2),
        obs={D1: Observation(linked=account(user()))},
    )
    here, there = items
    assert (here.action, here.status, here.revoke_sessions) == ("block", "skipped", True)
    assert here.reason == "email domain belongs to another tenant"
    assert (there.action, there.directory_id) == ("create", D2)


def test_rule5_an_unknown_new_domain_keeps_the_upn_applies_the_rest_and_needs_attention() -> None:
    moved = user(email="ada@unknown.example", job_title="Lead")
    item = one(plan(moved, bound(m365_user_id="m-1"), obs={D1: Observation(linked=account(user()))}))
    assert item.status == "needs_attention" and "unknown.example" in (item.reason or "")
    assert "userPrincipalName" not in item.changes and "mail" not in item.changes
    assert item.changes["jobTitle"] == ("Analyst", "Lead") and item.action == "update"


# --- rule 7: block, never delete ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("u", "directory", "why"),
    [
        (user(state="suspended"), bound(m365_user_id="m-1", status="synced"), "user suspended"),
        (user(deleted_at=T0), bound(m365_user_id="m-1", status="synced"), "user deleted"),
        (
            user(),
            UserDirectory(D1, (), Link(str(uuid.UUID(int=7)), D1, m365_user_id="m-1", status="synced")),
            "user not bound",
        ),
    ],
)
def test_rule7_suspended_deleted_or_unbound_users_are_blocked_and_signed_out(
    u: User, directory: UserDirectory, why: str
) -> None:
    item = one(plan(u, directory, obs={D1: Observation(linked=account(user()))}))
    assert (item.action, item.status, item.reason) == ("block", "blocked", why)
    assert item.changes == {"accountEnabled": (True, False)} and item.revoke_sessions


def test_rule7_an_already_blocked_account_plans_nothing_and_a_rebind_unblocks() -> None:
    off = account(user(), account_enabled=False)
    unbound = UserDirectory(D1, (), Link(str(uuid.UUID(int=7)), D1, m365_user_id="m-1", status="blocked"))
    assert one(plan(user(), unbound, obs={D1: Observation(linked=off)})).action == "none"
    again = one(plan(user(), bound(m365_user_id="m-1", status="blocked"), obs={D1: Observation(linked=off)}))
    assert (again.action, again.changes) == ("unblock", {"accountEnabled": (False, True)})


def test_rule7_a_disabled_account_not_yet_recorded_as_blocked_is_blocked_again_and_signed_out() -> None:
    """The read may not show Warden's own unblock of minutes ago: a block always writes accountEnabled false."""
    off = account(user(), account_enabled=False)
    item = one(
        plan(
            user(state="suspended"),
            bound(m365_user_id="m-1", status="synced"),
            obs={D1: Observation(linked=off)},
        )
    )
    expected = ("block", {"accountEnabled": (False, False)}, True, BLOCKED)
    assert (item.action, item.changes, item.revoke_sessions, item.fingerprint) == expected


def test_rule7_an_unlinked_account_carrying_the_users_immutable_id_is_blocked_and_linked() -> None:
    """A create whose answer was lost: the account exists with the id Warden derives from the user, and the
    user was suspended before any sync could link it."""
    u = user(state="suspended")
    own = account(u, id="m-lost")
    item = one(plan(u, bound(), obs={D1: Observation(candidates=(own,))}))
    assert (item.action, item.m365_user_id, item.status) == ("block", "m-lost", "blocked")
    assert item.changes == {"accountEnabled": (True, False)} and item.revoke_sessions


def test_rule7_an_account_matching_only_by_email_or_claimed_by_another_user_is_never_blocked() -> None:
    u = user(state="suspended")
    by_email = account(u, id="m-mail", on_premises_immutable_id="somebody-elses")
    claimed = account(u, id="m-other")
    assert one(plan(u, bound(), obs={D1: Observation(candidates=(by_email,))})).action == "none"
    taken = Observation(candidates=(claimed,), taken=frozenset({"m-other"}))
    assert one(plan(u, bound(), obs={D1: taken})).action == "none"


# --- replication lag: a read may predate Warden's own write of minutes ago ------------------------------
def test_lag_a_block_right_after_an_unblock_writes_account_enabled_false_although_the_read_shows_it() -> None:
    u = user()
    synced = fingerprint(desired_attributes(u, TARGETS[D1], enabled=True), None)
    link = bound(m365_user_id="m-1", status="synced", fingerprint=synced)
    stale = Observation(linked=account(u, account_enabled=False), recent=True)
    item = one(plan(user(state="suspended"), link, obs={D1: stale}))
    assert (item.action, item.changes["accountEnabled"], item.revoke_sessions) == (
        "block",
        (False, False),
        True,
    )


def test_lag_an_unblock_right_after_a_block_writes_every_managed_property_although_the_read_shows_them() -> (
    None
):
    u = user()
    link = bound(m365_user_id="m-1", status="blocked", fingerprint=BLOCKED)
    stale = Observation(linked=account(u), recent=True)  # still shows the account as it was before the block
    item = one(plan(u, link, obs={D1: stale}))
    assert item.action == "unblock"
    assert item.changes["accountEnabled"] == (True, True)
    written = set(item.changes) - {"onPremisesImmutableId"}
    assert written == set(desired_attributes(u, TARGETS[D1], enabled=True)) - {"onPremisesImmutableId"}
    assert one(plan(u, link, obs={D1: dataclasses.replace(stale, recent=False)})).action == "none"


def test_lag_recency_never_hides_a_change_made_behind_wardens_back() -> None:
    u = user()
    synced = fingerprint(desired_attributes(u, TARGETS[D1], enabled=True), None)
    link = bound(m365_user_id="m-1", status="synced", fingerprint=synced)
    assert one(plan(u, link, obs={D1: Observation(linked=account(u), recent=True)})).action == "none"
    edited = Observation(linked=account(u, job_title="Mole", account_enabled=False), recent=True)
    item = one(plan(u, link, obs={D1: edited}))
    assert item.action == "unblock"
    assert item.changes == {"jobTitle": ("Mole", "Analyst"), "accountEnabled": (False, True)}
    blocked = bound(m365_user_id="m-1", status="blocked", fingerprint=BLOCKED)
    re_enabled = Observation(linked=account(u), recent=True)
    assert one(plan(user(state="suspended"), blocked, obs={D1: re_enabled})).action == "block"


# --- rule 11: several directories --------------------------------------------------------------------------
def test_rule11_a_user_bound_to_two_directories_is_synced_only_where_its_domain_belongs() -> None:
    here, there = plan(user(), bound(D1), bound(D2))
    assert here.action == "create"
    assert (there.action, there.status, there.reason) == (
        "none",
        "skipped",
        "email domain belongs to another tenant",
    )


def test_rule17_a_directory_warden_may_not_write_is_skipped() -> None:
    targets = {
        D1: dataclasses.replace(
            TARGETS[D1], writable=False, status_reason="directory synchronization from on-premises is enabled"
        )
    }
    item = one(plan_user(Desired(user(), (bound(),)), targets, {}))
    assert (item.action, item.writes, item.status) == ("skip", False, "skipped")


# --- the defining property: plan(plan applied) is empty ---------------------------------------------------
def applied(item: PlanItem, before: M365Account | None) -> M365Account:
    """What the account looks like after the applier wrote ``item``."""
    names = {
        "userPrincipalName": "user_principal_name",
        "accountEnabled": "account_enabled",
        "mail": "mail",
        "mailNickname": "mail_nickname",
        "givenName": "given_name",
        "surname": "surname",
        "displayName": "display_name",
        "jobTitle": "job_title",
        "department": "department",
        "employeeId": "employee_id",
        "onPremisesImmutableId": "on_premises_immutable_id",
    }
    start = before or M365Account("m-new", "", True)
    return dataclasses.replace(start, **{names[k]: v[1] for k, v in item.changes.items() if k in names})


names_ = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from(["staged", "active", "suspended"]),
    local=names_,
    domain=st.sampled_from(["contoso.example", "contoso.dev", "fabrikam.example", "nowhere.example"]),
    title=st.none() | names_,
    observed_title=st.none() | names_,
    enabled=st.booleans(),
    linked=st.booleans(),
    is_bound=st.booleans(),
    manager=st.none() | st.sampled_from(["m-a", "m-b"]),
    recent=st.booleans(),
    reread_recent=st.booleans(),
    prior=st.none() | st.sampled_from([BLOCKED, "0" * 32]),
)
def test_planning_again_after_applying_a_plan_writes_nothing(
    state: str,
    local: str,
    domain: str,
    title: str | None,
    observed_title: str | None,
    enabled: bool,
    linked: bool,
    is_bound: bool,
    manager: str | None,
    recent: bool,
    reread_recent: bool,
    prior: str | None,
) -> None:
    u = user(state=state, email=f"{local}@{domain}", job_title=title)
    before = account(user(), job_title=observed_title, account_enabled=enabled) if linked else None
    link_args: dict[str, Any] = (
        {"m365_user_id": "m-1", "status": "synced", "fingerprint": prior} if linked else {}
    )
    directory = UserDirectory(D1, ("direct",) if is_bound else (), Link(u.id, D1, **link_args))
    observed = Observation(linked=before, recent=recent and linked)
    item = one(plan_user(Desired(u, (directory,), {D1: manager}), TARGETS, {D1: observed}))
    if not item.writes:
        return
    after = applied(item, before)
    link = Link(
        u.id,
        D1,
        status=item.status,
        m365_user_id=after.id,
        fingerprint=item.fingerprint,
        manager_m365_id=manager
        if "manager" in item.changes or item.action == "create"
        else directory.link.manager_m365_id,
    )
    again = one(
        plan_user(
            Desired(u, (UserDirectory(D1, directory.via, link),), {D1: manager}),
            TARGETS,
            {D1: Observation(linked=after, recent=reread_recent)},
        )
    )
    assert not again.writes, (item, again)


# --- rule 23's property: for any store and tenant, no plan writes to a protected account -----------------
ADDRESSES = [f"{n}@{d}" for n in ("ada", "bob", "cy") for d in ("contoso.example", "fabrikam.example")]
USER_IDS = [str(uuid.UUID(int=n)) for n in range(1, 5)]


@st.composite
def tenant_accounts(draw: st.DrawFn) -> list[M365Account]:
    out = []
    for n in range(draw(st.integers(0, 6))):
        upn = draw(st.sampled_from(ADDRESSES))
        out.append(
            M365Account(
                f"m-{n}",
                upn,
                draw(st.booleans()),
                mail=draw(st.none() | st.sampled_from(ADDRESSES)),
                mail_nickname=upn.split("@")[0],
                on_premises_immutable_id=draw(
                    st.none() | st.sampled_from([immutable_id(u) for u in USER_IDS])
                ),
                protected_by=draw(st.sampled_from([(), GA, ("marked by admin:oid",)])),
            )
        )
    return out


@st.composite
def stored_users(draw: st.DrawFn, accounts: list[M365Account]) -> list[Desired]:
    ids = [a.id for a in accounts]
    out = []
    for user_id in draw(st.lists(st.sampled_from(USER_IDS), unique=True, max_size=4)):
        email = draw(st.sampled_from(ADDRESSES))
        u = user(
            id=user_id,
            email=email,
            username=email.split("@")[0],
            state=draw(st.sampled_from(["staged", "active", "suspended"])),
            deleted_at=draw(st.none() | st.just(T0)),
            job_title=draw(st.none() | names_),
        )
        linked = draw(st.none() | st.sampled_from(ids)) if ids else None
        link = Link(
            user_id,
            D1,
            status=draw(st.sampled_from(["pending", "synced", "blocked", "needs_attention", "error"])),
            m365_user_id=linked,
            fingerprint=draw(st.none() | st.just(BLOCKED)),
        )
        via = ("direct",) if draw(st.booleans()) else ()
        out.append(
            Desired(u, (UserDirectory(D1, via, link),), {D1: draw(st.none() | st.sampled_from(ids or ["x"]))})
        )
    return out


def observation(d: Desired, accounts: list[M365Account], linked_elsewhere: set[str]) -> Observation:
    """What a reconcile observes for ``d`` (``shared.service.runs.reconcile.TenantView``): the linked account, or
    every account matching the email or carrying the user's immutable id."""
    by_id = {a.id: a for a in accounts}
    link = d.directories[0].link
    if link.m365_user_id in by_id:
        return Observation(linked=by_id[link.m365_user_id])
    email, own = d.user.email.lower(), immutable_id(d.user.id)
    found = tuple(
        a
        for a in accounts
        if email in {a.user_principal_name.lower(), (a.mail or "").lower()}
        or a.on_premises_immutable_id == own
    )
    return Observation(candidates=found, taken=frozenset(a.id for a in found if a.id in linked_elsewhere))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), roles_verified=st.booleans(), recent=st.booleans())
def test_rule23_for_any_store_and_tenant_no_plan_contains_a_write_to_a_protected_account(
    data: st.DataObject, roles_verified: bool, recent: bool
) -> None:
    accounts = data.draw(tenant_accounts())
    store = data.draw(stored_users(accounts))
    protected = {a.id for a in accounts if a.protected}
    targets = {**TARGETS, D1: dataclasses.replace(TARGETS[D1], roles_verified=roles_verified)}
    linked = {d.directories[0].link.m365_user_id for d in store} - {None}
    for d in store:
        obs = observation(d, accounts, {x for x in linked if x != d.directories[0].link.m365_user_id})
        obs = dataclasses.replace(obs, recent=recent and obs.linked is not None)
        for item in plan_user(d, targets, {D1: obs}):
            if not item.writes:
                if item.m365_user_id in protected:
                    assert item.status == "needs_attention" and (item.reason or "").startswith(
                        "protected account"
                    )
                continue
            assert item.m365_user_id not in protected, item
            if item.action == "create":
                assert not obs.candidates, (
                    item
                )  # never created over an account that matches, protected or not
            if item.action == "take_over":
                assert roles_verified, item
