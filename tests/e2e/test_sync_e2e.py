"""The per-user sync, end to end (SPEC §2 rules 1-8 and 11): admin API calls change the store and queue the
user's sync, the local functions host runs it from the ``user-sync`` queue, and the Microsoft 365 state is read
back through Graph on the simulated cloud, with the simulator's request log as the witness of what Warden wrote.

Each admin call carries an ``x-correlation-id`` of its own; the queue message carries it to the sync run, whose
``sync.done`` event the test waits for (``sync_support.act``), so every assertion looks at the run that call
woke, and one user's runs do not overlap unless a test means them to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.domain.planner import immutable_id
from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, unique
from tools import demo

DEMO_TENANT = demo.DEMO_TENANT_ID
DOMAIN = demo.DEMO_DOMAIN


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def graph(warden: WardenHost) -> ss.Graph:
    return ss.demo_graph(warden)


@pytest.fixture(scope="module")
def rlog(warden: WardenHost) -> ss.RequestLog:
    return ss.requests_log(warden)


@pytest.fixture(autouse=True)
def quiet(warden: WardenHost) -> None:
    """Each test starts once the work earlier tests queued has run: the request log after its mark is its own."""
    ss.drained(warden)


@pytest.fixture(scope="module")
def fabrikam(warden: WardenHost, demo_directory: Any) -> Iterator[ss.Tenant]:
    """A second tenant with two verified domains (and one not verified), connected for this module."""
    tag = uuid.uuid4().hex[:8]
    tenant = ss.make_tenant(
        warden,
        [f"fab{tag}.example", f"fab{tag}-two.example"],
        unverified=(f"fab{tag}-pending.example",),
        name=f"Fabrikam {tag}",
    )
    try:
        yield tenant
    finally:
        ss.drop_tenant(warden, tenant)


@pytest.fixture(autouse=True)
def _no_faults_left(warden: WardenHost) -> Iterator[None]:
    yield
    warden.stack.clear_faults()


# ---------------------------------------------------------------------------------------------- helpers
def make_user(warden: WardenHost, **fields: Any) -> dict[str, Any]:
    """POST /api/users, once the sync the creation queued has run."""
    name = unique()
    body = {
        "username": name,
        "email": f"{name}@{DOMAIN}",
        "firstName": "Ada",
        "lastName": "Lovelace",
        **fields,
    }
    correlation = ss.new_correlation()
    u: dict[str, Any] = warden.ok("POST", "/users", 201, json=body, headers={"x-correlation-id": correlation})
    ss.wait_sync_done(warden, u["id"], correlation_id=correlation)
    return u


def person(warden: WardenHost, domain: str = DOMAIN, **fields: Any) -> dict[str, Any]:
    name = unique()
    return make_user(warden, username=name, email=f"{name}@{domain}", **fields)


def bind(warden: WardenHost, user_id: str, directory_id: str) -> dict[str, Any]:
    """PUT the direct binding; the link once the sync it queued has run."""
    ss.act(warden, "PUT", f"/users/{user_id}/directories/{directory_id}", user_id, status=(200, 201))
    link = ss.link_of(ss.user(warden, user_id), directory_id)
    assert link is not None
    return link


def patch(warden: WardenHost, user_id: str, **changes: Any) -> None:
    ss.act(warden, "PATCH", f"/users/{user_id}", user_id, status=200, json=changes)


def synced_user(
    warden: WardenHost, directory_id: str, domain: str = DOMAIN, **fields: Any
) -> tuple[dict[str, Any], str]:
    """A user bound to the directory and synced there; (user, M365 id)."""
    u = person(warden, domain, **fields)
    link = bind(warden, u["id"], directory_id)
    assert link["status"] == "synced", link
    return u, str(link["m365UserId"])


def creates(rlog: ss.RequestLog, since: int, tenant: str = DEMO_TENANT) -> list[dict[str, Any]]:
    return [e for e in rlog.writes(since, tenant) if e["method"] == "POST" and e["path"] == "/v1.0/users"]


def no_password_anywhere(*documents: Any) -> None:
    for doc in documents:
        keys = [k for k in ss.keys_of(doc) if k.lower() in ("password", "passwordprofile")]
        assert not keys, f"a password field in {doc!r}"


# ------------------------------------------------------------------------------------------ provisioning
def test_bind_creates_the_account_enabled_with_the_mapped_attributes_and_a_password_nobody_knows(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    employee = unique("E")[:12]
    u = person(
        warden,
        firstName="Grace",
        lastName="Hopper",
        displayName="Grace B. Hopper",
        jobTitle="Rear Admiral",
        department="Navy",
        employeeId=employee,
        state="staged",
    )
    mark = rlog.mark()
    link = bind(warden, u["id"], demo_directory["id"])
    assert link["status"] == "synced" and link["via"] == ["direct"]
    assert link["reason"] is None and link["lastSyncAt"]

    account = graph.get_user(link["m365UserId"])
    assert account is not None
    email = u["email"]
    assert {k: account[k] for k in ss.READ_BACK.split(",") if k != "proxyAddresses"} == {
        "id": link["m365UserId"],
        "userPrincipalName": email,
        "mail": email,
        "mailNickname": u["username"],
        "accountEnabled": True,
        "givenName": "Grace",
        "surname": "Hopper",
        "displayName": "Grace B. Hopper",
        "jobTitle": "Rear Admiral",
        "department": "Navy",
        "employeeId": employee,
        "onPremisesImmutableId": immutable_id(u["id"]),
        "signInSessionsValidFromDateTime": None,
    }
    assert [a["id"] for a in graph.users_matching(email)] == [link["m365UserId"]], "exactly one account"
    made = creates(rlog, mark)
    assert [(e["kind"], e["status"]) for e in made] == [("batch-item", 201)], "created once, in a $batch"
    # The password is random and never readable: not from Graph, not from Warden's API or audit.
    assert graph.get_user(link["m365UserId"], "passwordProfile")["passwordProfile"] is None
    entries = ss.audit(warden, u["id"])
    made_entries = [e for e in entries if e["action"] == "m365.create"]
    assert len(made_entries) == 1 and made_entries[0]["result"] == "succeeded"
    assert made_entries[0]["after"]["m365UserId"] == link["m365UserId"]
    assert made_entries[0]["after"]["userPrincipalName"] == email
    no_password_anywhere(ss.user(warden, u["id"]), warden.ok("GET", "/users", 200, params={"email": email}))
    no_password_anywhere(entries)


TAKE_OVER_CASES = ["by_upn", "by_mail_with_another_upn", "by_smtp_proxy_address", "by_upn_in_other_case"]


@pytest.mark.parametrize("case", TAKE_OVER_CASES)
def test_an_existing_account_is_taken_over_never_created_and_no_password_is_sent(
    case: str, warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    name = unique()
    email = f"{name}@{DOMAIN}"
    other = f"other{uuid.uuid4().hex[:10]}@{DOMAIN}"
    old = {"givenName": "Old", "surname": "Name", "jobTitle": "Old title"}
    if case == "by_upn":
        pre = graph.create_user(email, **old)
    elif case == "by_mail_with_another_upn":
        pre = graph.create_user(other, mail=email, **old)
    elif case == "by_smtp_proxy_address":
        pre = graph.create_user(other, mail=email, **old)
        graph.patch_user(pre["id"], {"mail": f"now{uuid.uuid4().hex[:10]}@{DOMAIN}"})
        before = graph.get_user(pre["id"])
        assert before is not None and f"smtp:{email}" in before["proxyAddresses"]
        assert before["mail"] != email and before["userPrincipalName"] != email
    else:
        pre = graph.create_user(email.upper(), **old)
    assert [a["id"] for a in graph.users_matching(email)] == [pre["id"]]

    u = make_user(warden, username=name, email=email, jobTitle="Countess")
    mark = rlog.mark()
    link = bind(warden, u["id"], demo_directory["id"])

    assert link["status"] == "synced" and link["m365UserId"] == pre["id"], "the existing account is linked"
    assert creates(rlog, mark) == [], "no POST /users: the account was not created again"
    writes = rlog.writes(mark, DEMO_TENANT)
    assert [(e["method"], e["path"], e["status"]) for e in writes] == [
        ("PATCH", f"/v1.0/users/{pre['id']}", 204)
    ]
    account = graph.get_user(pre["id"])
    assert account is not None
    assert account["userPrincipalName"].lower() == email and account["mail"].lower() == email
    assert (account["givenName"], account["surname"], account["jobTitle"]) == ("Ada", "Lovelace", "Countess")
    assert account["mailNickname"] == name and account["accountEnabled"] is True
    assert account["onPremisesImmutableId"] == immutable_id(u["id"]), "set because it was missing"
    assert [a["id"] for a in graph.users_matching(email)] == [pre["id"]]
    took = ss.audit_actions(warden, u["id"], "m365.take_over")
    assert len(took) == 1 and took[0]["result"] == "succeeded"
    assert took[0]["after"]["m365UserId"] == pre["id"] and took[0]["directoryId"] == demo_directory["id"]
    assert took[0]["before"]["givenName"] == "Old"
    no_password_anywhere(ss.audit(warden, u["id"]))


def test_an_account_linked_to_another_warden_user_is_not_taken_over(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    first, m365 = synced_user(warden, d)
    old_email = first["email"]
    patch(warden, first["id"], email=f"moved{uuid.uuid4().hex[:8]}@{DOMAIN}")
    account = graph.get_user(m365)
    assert account is not None and f"smtp:{old_email}" in account["proxyAddresses"]

    second = person(warden)
    patch(warden, second["id"], email=old_email)  # Warden released the address; M365 still routes it to m365
    before = graph.get_user(m365)
    mark = rlog.mark()
    link = bind(warden, second["id"], d)
    assert link["status"] == "needs_attention" and link["m365UserId"] is None
    assert link["reason"] == "the matching account is linked to another Warden user"
    assert rlog.writes(mark, DEMO_TENANT) == [], "nothing written"
    assert graph.get_user(m365) == before
    assert ss.link_of(ss.user(warden, first["id"]), d)["m365UserId"] == m365


def test_an_apostrophe_in_the_email_is_escaped_in_every_lookup(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    name = unique()
    u = make_user(warden, username=name, email=f"o'{name}@{DOMAIN}")
    link = bind(warden, u["id"], d)
    assert link["status"] == "synced"
    account = graph.get_user(link["m365UserId"])
    assert account is not None and account["userPrincipalName"] == u["email"]
    assert [a["id"] for a in graph.users_matching(u["email"])] == [link["m365UserId"]]

    name = unique()
    email = f"d'{name}@{DOMAIN}"
    pre = graph.create_user(email)
    other = make_user(warden, username=name, email=email)
    mark = rlog.mark()
    taken = bind(warden, other["id"], d)
    assert (taken["status"], taken["m365UserId"]) == ("synced", pre["id"]) and creates(rlog, mark) == []


# ------------------------------------------------------------------------------------------------ updates
def test_name_title_department_and_manager_changes_are_written(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph
) -> None:
    d = demo_directory["id"]
    boss, boss_id = synced_user(warden, d, firstName="Boss", lastName="One")
    u, m365 = synced_user(warden, d, jobTitle="Engineer", department="R&D")
    assert graph.manager_of(m365) is None

    patch(
        warden,
        u["id"],
        firstName="Augusta",
        lastName="King",
        displayName="Augusta Ada King",
        jobTitle="Analyst",
        department="Mathematics",
        managerId=boss["id"],
    )
    account = graph.get_user(m365)
    assert account is not None
    assert (account["givenName"], account["surname"], account["displayName"]) == (
        "Augusta",
        "King",
        "Augusta Ada King",
    )
    assert (account["jobTitle"], account["department"]) == ("Analyst", "Mathematics")
    assert graph.manager_of(m365) == boss_id
    updated = ss.audit_actions(warden, u["id"], "m365.update")
    assert updated and updated[-1]["after"]["manager"] == boss_id
    assert updated[-1]["before"]["jobTitle"] == "Engineer" and updated[-1]["after"]["jobTitle"] == "Analyst"

    patch(warden, u["id"], managerId=None, department="Logic")
    assert graph.manager_of(m365) is None, "a cleared manager is removed"
    account = graph.get_user(m365)
    assert account is not None and account["department"] == "Logic"
    assert ss.link_of(ss.user(warden, u["id"]), d)["m365UserId"] == m365


def test_a_new_local_part_renames_the_upn_and_mail_of_the_same_account(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d)
    new_email = f"renamed{uuid.uuid4().hex[:8]}@{DOMAIN}"
    patch(warden, u["id"], email=new_email)

    account = graph.get_user(m365)
    assert account is not None
    assert (account["userPrincipalName"], account["mail"]) == (new_email, new_email)
    assert account["mailNickname"] == u["username"] and account["accountEnabled"] is True
    assert f"smtp:{u['email']}" in account["proxyAddresses"], "the old address still receives mail"
    assert graph.users_by_upn(u["email"]) == []
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and (link["status"], link["m365UserId"]) == ("synced", m365)
    renamed = ss.audit_actions(warden, u["id"], "m365.rename")
    assert renamed and renamed[-1]["before"]["userPrincipalName"] == u["email"]
    assert renamed[-1]["after"]["userPrincipalName"] == new_email


def test_a_new_domain_verified_in_the_same_tenant_moves_the_upn(
    warden: WardenHost, fabrikam: ss.Tenant
) -> None:
    first, second = fabrikam.domains
    u, m365 = synced_user(warden, fabrikam.id, domain=first)
    account = fabrikam.graph.get_user(m365)
    assert account is not None and account["userPrincipalName"] == u["email"]

    moved = f"{u['email'].split('@')[0]}@{second}"
    patch(warden, u["id"], email=moved)

    account = fabrikam.graph.get_user(m365)
    assert account is not None
    assert (account["userPrincipalName"], account["mail"]) == (moved, moved)
    assert account["accountEnabled"] is True
    assert [a["id"] for a in fabrikam.graph.users_matching(moved)] == [m365]
    link = ss.link_of(ss.user(warden, u["id"]), fabrikam.id)
    assert link is not None and (link["status"], link["m365UserId"]) == ("synced", m365)


def test_an_email_moved_to_another_connected_tenant_blocks_the_old_account_and_provisions_a_new_one(
    warden: WardenHost, demo_directory: Any, fabrikam: ss.Tenant, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u = person(warden, jobTitle="Traveller")
    elsewhere = bind(warden, u["id"], fabrikam.id)
    link = bind(warden, u["id"], d)
    assert link["status"] == "synced"
    old_id = link["m365UserId"]
    elsewhere = ss.link_of(ss.user(warden, u["id"]), fabrikam.id)
    assert elsewhere is not None and elsewhere["status"] == "skipped" and elsewhere["m365UserId"] is None
    assert elsewhere["reason"] == "email domain belongs to another tenant"

    mark = rlog.mark()
    moved = f"{u['username']}@{fabrikam.domains[0]}"
    patch(warden, u["id"], email=moved)

    old = graph.get_user(old_id)
    assert old is not None and old["accountEnabled"] is False, "blocked in the old tenant"
    assert old["userPrincipalName"] == u["email"], "the old account is left as it was, only blocked"
    assert old["signInSessionsValidFromDateTime"] is not None, "its sessions were revoked"
    after = ss.user(warden, u["id"])
    old_link, new_link = ss.link_of(after, d), ss.link_of(after, fabrikam.id)
    assert old_link is not None and old_link["m365UserId"] == old_id
    assert old_link["reason"] == "email domain belongs to another tenant"
    assert new_link is not None and new_link["status"] == "synced" and new_link["m365UserId"]
    new = fabrikam.graph.get_user(new_link["m365UserId"])
    assert new is not None
    assert (new["userPrincipalName"], new["mail"], new["accountEnabled"]) == (moved, moved, True)
    assert new["jobTitle"] == "Traveller" and new["onPremisesImmutableId"] == immutable_id(u["id"])
    assert len(creates(rlog, mark, fabrikam.graph.tenant_id)) == 1
    assert [(e["method"], e["path"]) for e in rlog.writes(mark, DEMO_TENANT)] == [
        ("PATCH", f"/v1.0/users/{old_id}"),
        ("POST", f"/v1.0/users/{old_id}/revokeSignInSessions"),
    ], "blocked, never deleted"


def test_an_email_at_an_unknown_domain_keeps_the_upn_applies_the_rest_and_needs_attention(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d, jobTitle="Before")
    nowhere = f"nowhere{uuid.uuid4().hex[:8]}.example"
    patch(warden, u["id"], email=f"{u['username']}@{nowhere}", jobTitle="After")

    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and link["status"] == "needs_attention" and link["m365UserId"] == m365
    assert nowhere in link["reason"] and "UPN kept" in link["reason"]
    account = graph.get_user(m365)
    assert account is not None
    assert (account["userPrincipalName"], account["mail"]) == (u["email"], u["email"]), "UPN kept"
    assert account["jobTitle"] == "After" and account["accountEnabled"] is True, "the other changes applied"

    back = f"back{uuid.uuid4().hex[:8]}@{DOMAIN}"
    patch(warden, u["id"], email=back)
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and (link["status"], link["reason"], link["m365UserId"]) == ("synced", None, m365)
    account = graph.get_user(m365)
    assert account is not None and account["userPrincipalName"] == back


# ------------------------------------------------------------------------------------ blocking (rule 7)
def test_unbinding_blocks_and_revokes_sessions_and_rebinding_unblocks_the_same_account(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d)
    mark = rlog.mark()
    ss.act(warden, "DELETE", f"/users/{u['id']}/directories/{d}", u["id"], status=204)
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and (link["status"], link["m365UserId"], link["via"]) == ("blocked", m365, [])
    assert link["reason"] == "user not bound"

    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is False
    assert account["signInSessionsValidFromDateTime"] is not None
    writes = rlog.writes(mark, DEMO_TENANT)
    assert [(e["method"], e["path"], e["status"]) for e in writes] == [
        ("PATCH", f"/v1.0/users/{m365}", 204),
        ("POST", f"/v1.0/users/{m365}/revokeSignInSessions", 200),
    ], "disabled first, then its sessions revoked; never deleted"
    blocked = ss.audit_actions(warden, u["id"], "m365.block")
    assert blocked and blocked[-1]["after"]["accountEnabled"] is False

    link = bind(warden, u["id"], d)
    assert (link["status"], link["m365UserId"]) == ("synced", m365)
    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is True
    assert [a["id"] for a in graph.users_matching(u["email"])] == [m365]
    assert ss.audit_actions(warden, u["id"], "m365.unblock")


def test_suspending_blocks_and_reactivating_unblocks(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d)
    mark = rlog.mark()
    patch(warden, u["id"], state="suspended")
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and (link["status"], link["reason"], link["m365UserId"]) == (
        "blocked",
        "user suspended",
        m365,
    )
    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is False
    assert [(e["method"], e["path"]) for e in rlog.writes(mark, DEMO_TENANT)] == [
        ("PATCH", f"/v1.0/users/{m365}"),
        ("POST", f"/v1.0/users/{m365}/revokeSignInSessions"),
    ]
    patch(warden, u["id"], state="active")
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and link["status"] == "synced"
    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is True


def test_m365_side_edits_are_put_back_and_a_reenabled_blocked_account_is_blocked_again(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d, jobTitle="Engineer")
    graph.patch_user(m365, {"jobTitle": "Edited in M365", "displayName": "Someone else"})
    ss.act(warden, "PUT", f"/users/{u['id']}/directories/{d}", u["id"], status=200)  # any wake-up
    account = graph.get_user(m365)
    assert account is not None
    assert (account["jobTitle"], account["displayName"]) == ("Engineer", u["displayName"])
    put_back = ss.audit_actions(warden, u["id"], "m365.update")
    assert put_back and put_back[-1]["before"]["jobTitle"] == "Edited in M365"

    ss.act(warden, "DELETE", f"/users/{u['id']}/directories/{d}", u["id"], status=204)
    graph.patch_user(m365, {"accountEnabled": True})
    mark = rlog.mark()
    patch(warden, u["id"], department="Anything")  # any wake-up
    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is False, "blocked again"
    assert [(e["method"], e["path"]) for e in rlog.writes(mark, DEMO_TENANT)] == [
        ("PATCH", f"/v1.0/users/{m365}"),
        ("POST", f"/v1.0/users/{m365}/revokeSignInSessions"),
    ]


def test_group_bindings_provision_members_and_leaving_or_deleting_the_group_blocks_them(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph
) -> None:
    d = demo_directory["id"]
    gid = warden.ok("POST", "/groups", 201, json={"name": unique("Provisioning - Office 365 ")})["id"]
    doomed = warden.ok("POST", "/groups", 201, json={"name": unique("Doomed ")})["id"]
    only_group, both, in_doomed = person(warden), person(warden), person(warden)
    bind(warden, both["id"], d)
    for u in (only_group, both):
        ss.act(warden, "PUT", f"/groups/{gid}/members/{u['id']}", u["id"], status=201)
    ss.act(warden, "PUT", f"/groups/{doomed}/members/{in_doomed['id']}", in_doomed["id"], status=201)
    ss.act(warden, "PUT", f"/groups/{gid}/directories/{d}", only_group["id"], both["id"], status=201)
    ss.act(warden, "PUT", f"/groups/{doomed}/directories/{d}", in_doomed["id"], status=201)

    links = {u["id"]: ss.link_of(ss.user(warden, u["id"]), d) for u in (only_group, both, in_doomed)}
    assert links[only_group["id"]]["via"] == [f"group:{gid}"]
    assert sorted(links[both["id"]]["via"]) == sorted(["direct", f"group:{gid}"])
    for u in (only_group, both, in_doomed):
        link = links[u["id"]]
        assert link["status"] == "synced", link
        account = graph.get_user(link["m365UserId"])
        assert account is not None and account["accountEnabled"] is True
        assert account["userPrincipalName"] == u["email"]

    for u in (only_group, both):
        ss.act(warden, "DELETE", f"/groups/{gid}/members/{u['id']}", u["id"], status=204)
    ss.act(warden, "DELETE", f"/groups/{doomed}", in_doomed["id"], status=204)
    for u in (only_group, in_doomed):
        link = ss.link_of(ss.user(warden, u["id"]), d)
        assert link is not None and (link["status"], link["m365UserId"]) == (
            "blocked",
            links[u["id"]]["m365UserId"],
        )
        account = graph.get_user(link["m365UserId"])
        assert account is not None and account["accountEnabled"] is False
    still = ss.link_of(ss.user(warden, both["id"]), d)
    assert still is not None and (still["status"], still["via"]) == ("synced", ["direct"])
    kept = graph.get_user(still["m365UserId"])
    assert kept is not None and kept["accountEnabled"] is True, "still bound directly: not blocked"


def test_deleting_the_warden_user_blocks_the_account_and_never_deletes_it(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d)
    mark = rlog.mark()
    ss.act(warden, "DELETE", f"/users/{u['id']}", u["id"], status=204)
    assert warden.call("GET", f"/users/{u['id']}").status_code == 404

    account = graph.get_user(m365)
    assert account is not None and account["accountEnabled"] is False
    assert account["signInSessionsValidFromDateTime"] is not None
    assert [a["id"] for a in graph.users_matching(u["email"])] == [m365], "still there"
    assert [(e["method"], e["path"]) for e in rlog.writes(mark, DEMO_TENANT)] == [
        ("PATCH", f"/v1.0/users/{m365}"),
        ("POST", f"/v1.0/users/{m365}/revokeSignInSessions"),
    ], "no DELETE /users/..."
    blocked = ss.audit_actions(warden, u["id"], "m365.block")
    assert blocked and blocked[-1]["after"]["reason"] == "user deleted"


# ------------------------------------------------------------------------------ eligibility (1, 11)
def test_with_two_directories_a_user_is_synced_only_where_its_domain_belongs(
    warden: WardenHost, demo_directory: Any, fabrikam: ss.Tenant, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    mark = rlog.mark()
    u = person(warden)
    alone = bind(warden, u["id"], fabrikam.id)
    assert (alone["status"], alone["reason"]) == ("error", "domain not verified in tenant"), "rule 1"
    link = bind(warden, u["id"], d)
    assert link["status"] == "synced" and link["m365UserId"]
    other = ss.link_of(ss.user(warden, u["id"]), fabrikam.id)
    assert other is not None and other["m365UserId"] is None
    assert (other["status"], other["reason"]) == ("skipped", "email domain belongs to another tenant"), (
        "rule 11"
    )
    assert rlog.writes(mark, fabrikam.graph.tenant_id) == [], "nothing written in the other tenant"
    assert fabrikam.graph.users_matching(u["email"]) == []
    assert len(creates(rlog, mark)) == 1


def test_an_email_domain_no_tenant_verified_is_an_error_and_nothing_is_written(
    warden: WardenHost, demo_directory: Any, fabrikam: ss.Tenant, rlog: ss.RequestLog
) -> None:
    pending = next(x["id"] for x in fabrikam.directory["domains"] if not x["isVerified"])
    mark = rlog.mark()
    stranger = person(warden, domain=f"nowhere{uuid.uuid4().hex[:8]}.example")
    link = bind(warden, stranger["id"], demo_directory["id"])
    assert (link["status"], link["reason"], link["m365UserId"]) == (
        "error",
        "domain not verified in tenant",
        None,
    )
    unverified = person(warden, domain=pending)
    link = bind(warden, unverified["id"], fabrikam.id)
    assert (link["status"], link["reason"], link["m365UserId"]) == (
        "error",
        "domain not verified in tenant",
        None,
    )
    assert rlog.writes(mark, DEMO_TENANT) == [] and rlog.writes(mark, fabrikam.graph.tenant_id) == []


# ----------------------------------------------------------------------------------- ambiguity (rule 2)
def _two_matches(graph: ss.Graph, email: str) -> tuple[dict[str, Any], dict[str, Any]]:
    by_upn = graph.create_user(email, mail=f"x{uuid.uuid4().hex[:10]}@{DOMAIN}", givenName="First")
    by_mail = graph.create_user(f"y{uuid.uuid4().hex[:10]}@{DOMAIN}", mail=email, givenName="Second")
    assert sorted(a["id"] for a in graph.users_matching(email)) == sorted([by_upn["id"], by_mail["id"]])
    return by_upn, by_mail


def test_two_matching_accounts_need_attention_and_nothing_is_written(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    name = unique()
    email = f"{name}@{DOMAIN}"
    by_upn, by_mail = _two_matches(graph, email)
    before = {a["id"]: graph.get_user(a["id"]) for a in (by_upn, by_mail)}
    u = make_user(warden, username=name, email=email)
    mark = rlog.mark()
    link = bind(warden, u["id"], d)
    assert link["status"] == "needs_attention" and link["m365UserId"] is None
    assert link["reason"] == f"2 accounts match {email}"
    assert rlog.writes(mark, DEMO_TENANT) == [], "no POST or PATCH for either account"
    assert {i: graph.get_user(i) for i in before} == before, "both accounts untouched"
    ss.act(warden, "PUT", f"/users/{u['id']}/directories/{d}", u["id"], status=200)
    assert rlog.writes(mark, DEMO_TENANT) == [], "nor on a later run"


def test_the_candidates_of_an_ambiguous_match_are_shown(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph
) -> None:
    name = unique()
    email = f"{name}@{DOMAIN}"
    by_upn, by_mail = _two_matches(graph, email)
    u = make_user(warden, username=name, email=email)
    link = bind(warden, u["id"], demo_directory["id"])
    assert link["status"] == "needs_attention"
    shown = str(ss.user(warden, u["id"])) + str(ss.audit(warden, u["id"]))
    assert by_upn["id"] in shown and by_mail["id"] in shown


# --------------------------------------------------------------------------------- passwords (rule 6)
def test_a_pushed_password_is_set_in_the_linked_directory(
    warden: WardenHost, demo_directory: Any, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u, m365 = synced_user(warden, d)
    for password in (remember_secret(f"Pw-{uuid.uuid4().hex[:16]}!"), remember_secret("short1A!")):
        mark = rlog.mark()
        answer = warden.ok("POST", f"/users/{u['id']}/password", 200, json={"password": password})
        assert answer == {"directories": [{"directoryId": d, "status": "set", "detail": None}]}
        writes = rlog.writes(mark, DEMO_TENANT)
        assert [(e["method"], e["path"], e["status"]) for e in writes] == [
            ("PATCH", f"/v1.0/users/{m365}", 204)
        ]
        assert password not in str(ss.audit(warden, u["id"])) + str(ss.user(warden, u["id"]))
    pushed = ss.audit_actions(warden, u["id"], "m365.password")
    assert [e["after"] for e in pushed] == [{"password": "set"}] * 2


def test_a_password_outside_entras_policy_is_a_400_before_any_directory_is_touched(
    warden: WardenHost, demo_directory: Any, rlog: ss.RequestLog
) -> None:
    """Entra's password policy (8-256 of its characters, three of four kinds) is in the document, so a password
    Graph would refuse for it never leaves Warden."""
    d = demo_directory["id"]
    u, _ = synced_user(warden, d)
    mark = rlog.mark()
    for weak in ("aaaaaaaa", "Abcdéfg1", "Short1!"):
        response = warden.call("POST", f"/users/{u['id']}/password", json={"password": remember_secret(weak)})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["password"]
        assert weak not in response.text
    assert rlog.writes(mark, DEMO_TENANT) == []
    assert ss.audit_actions(warden, u["id"], "m365.password") == []
    assert weak not in response.text


def test_a_password_for_a_user_linked_nowhere_is_a_conflict(
    warden: WardenHost, demo_directory: Any, rlog: ss.RequestLog
) -> None:
    stranger = person(warden, domain=f"nowhere{uuid.uuid4().hex[:8]}.example")
    assert bind(warden, stranger["id"], demo_directory["id"])["status"] == "error"
    mark = rlog.mark()
    password = remember_secret(f"Pw-{uuid.uuid4().hex[:16]}!")
    response = warden.call("POST", f"/users/{stranger['id']}/password", json={"password": password})
    assert response.status_code == 409, response.text
    assert "not linked" in response.json()["detail"] and password not in response.text
    assert rlog.writes(mark, DEMO_TENANT) == []


# ----------------------------------------------------------------------------- level-triggered (rule 8)
def test_a_rerun_on_a_converged_user_writes_nothing(
    warden: WardenHost, demo_directory: Any, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    boss, _ = synced_user(warden, d)
    u, m365 = synced_user(
        warden,
        d,
        jobTitle="Engineer",
        department="R&D",
        employeeId=unique("E")[:12],
        managerId=boss["id"],
        displayName="Someone Else",
    )
    mark = rlog.mark()
    ss.act(warden, "PUT", f"/users/{u['id']}/directories/{d}", u["id"], status=200)  # the same binding again
    done = ss.sync_events(warden, u["id"])[-1]
    assert (done["event"], done["writes"], done["outcomes"]) == ("sync.done", 0, ["none"])
    seen = rlog.entries(mark, DEMO_TENANT)
    assert [(e["method"], e["path"].split("?")[0]) for e in seen if e["kind"] == "graph"] == [
        ("GET", f"/v1.0/users/{m365}")
    ], "one read of the linked account"
    assert {e["method"] for e in seen} <= {"GET", "POST"} and all(e["kind"] != "batch" for e in seen)
    assert rlog.writes(mark, DEMO_TENANT) == [], "no POST/PATCH/PUT/DELETE"


# ------------------------------------------------------------------------------------ crash safety (2)
def test_replication_lag_never_makes_a_second_account(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u = person(warden, jobTitle="First")
    mark = rlog.mark()
    with ss.faults(warden, replicationLagMs=2000):
        link = bind(warden, u["id"], d)
        assert link["status"] == "synced"
        # At once, while the new account is not visible yet: another change, another run.
        patch(warden, u["id"], jobTitle="Second")
    matching = ss.wait_until(lambda: graph.users_by_upn(u["email"]), what="the account to be listed")
    assert [a["id"] for a in matching] == [link["m365UserId"]], "exactly one account"
    assert matching[0]["jobTitle"] == "Second"
    after = ss.link_of(ss.user(warden, u["id"]), d)
    assert after is not None and (after["status"], after["m365UserId"]) == ("synced", link["m365UserId"])
    # The second run found its linked account not visible yet and was retried later: it never tried to create.
    assert [e["status"] for e in creates(rlog, mark)] == [201], "one create, never a second attempt"


def test_a_create_whose_answer_was_lost_is_found_and_linked_not_created_twice(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    """The state a lost create answer leaves: the account exists (UPN = email, Warden's immutable id) but
    Warden recorded nothing, and replication lag hides it from the next run's reads, so that run's create is
    refused as a duplicate. (The simulator's ``reset`` fault drops a request before it is handled, so it cannot
    commit a create and lose its answer by itself.)"""
    d = demo_directory["id"]
    u = person(warden, firstName="Lost", lastName="Answer")
    with ss.faults(warden, replicationLagMs=3000):
        twin = graph.create_user(
            u["email"],
            mailNickname=u["username"],
            displayName="Lost Answer",
            onPremisesImmutableId=immutable_id(u["id"]),
        )
        assert graph.get_user(twin["id"]) is None, "not visible yet"
        mark = rlog.mark()
        link = bind(warden, u["id"], d)
    assert (link["status"], link["m365UserId"]) == ("synced", twin["id"]), "the existing account is linked"
    assert [e["status"] for e in creates(rlog, mark)] == [400], "the create was refused as a duplicate"
    assert [a["id"] for a in graph.users_matching(u["email"])] == [twin["id"]]
    assert ss.audit_actions(warden, u["id"], "m365.take_over")


def test_connection_resets_during_a_bind_converge_to_exactly_one_account(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    d = demo_directory["id"]
    u = person(warden)
    mark = rlog.mark()
    correlation = ss.new_correlation()
    with ss.faults(warden, errorRate=0.5, errorKinds=["reset"], seed=7):
        warden.ok("PUT", f"/users/{u['id']}/directories/{d}", 201, headers={"x-correlation-id": correlation})
        first = ss.wait_until(
            lambda: [e for e in ss.sync_events(warden, u["id"]) if e["correlationId"] == correlation],
            what="the first sync attempt under faults",
        )
    resets = [e for e in rlog.entries(mark) if e["status"] == 0]
    assert resets, "the faults hit some of Warden's requests"
    # A failed attempt is retried from the queue (visibilityTimeout 10 s) with the same message.
    ss.wait_sync_done(warden, u["id"], correlation_id=correlation)
    link = ss.link_of(ss.user(warden, u["id"]), d)
    assert link is not None and link["status"] == "synced"
    matching = graph.users_matching(u["email"])
    assert [a["id"] for a in matching] == [link["m365UserId"]], f"exactly one account (first try: {first})"
    assert matching[0]["accountEnabled"] is True


def test_a_slow_run_never_rolls_back_what_a_later_run_wrote(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    """Rule 8 with two runs of one user in flight: run A (jobTitle 'v1') cannot see the new account yet
    (replication lag), is refused as a duplicate and waits for it to appear; meanwhile the account becomes
    visible and run B (jobTitle 'v2', queued later) writes. A must not then write its older 'v1'."""
    d = demo_directory["id"]
    u = person(warden, jobTitle="v0")
    lag = 5.0
    with ss.faults(warden, replicationLagMs=lag * 1000):
        mark = rlog.mark()
        link = bind(warden, u["id"], d)
        assert link["status"] == "synced"
        assert 201 in [e["status"] for e in creates(rlog, mark)], "the account was made"
        first = ss.new_correlation()
        warden.ok(
            "PATCH", f"/users/{u['id']}", 200, json={"jobTitle": "v1"}, headers={"x-correlation-id": first}
        )
        ss.wait_for(
            lambda: graph.get_user(link["m365UserId"]),
            lambda account: account is not None,
            timeout=lag + 5,
            what="the new account to become visible",
        )
        patch(warden, u["id"], jobTitle="v2")  # run B, done while A still waits
        ss.wait_sync_done(warden, u["id"], correlation_id=first)
    assert ss.user(warden, u["id"])["jobTitle"] == "v2"
    account = graph.get_user(link["m365UserId"])
    assert account is not None and account["jobTitle"] == "v2", "M365 shows what the store says"


def test_a_rename_while_the_new_account_is_not_visible_yet_never_makes_a_second_account(
    warden: WardenHost, demo_directory: Any, graph: ss.Graph, rlog: ss.RequestLog
) -> None:
    """Rule 2: once linked, the M365 object id is the match. A GET of a just-created account can answer 404
    (replication lag, GRAPH-NOTES); that is no reason to create another one for the same person."""
    d = demo_directory["id"]
    u = person(warden)
    renamed = unique()
    with ss.faults(warden, replicationLagMs=3000):
        mark = rlog.mark()
        link = bind(warden, u["id"], d)
        assert link["status"] == "synced"
        patch(warden, u["id"], username=renamed, email=f"{renamed}@{DOMAIN}")
    mine = ss.wait_until(
        lambda: graph.users_where(f"onPremisesImmutableId eq {ss.odata(immutable_id(u['id']))}"),
        what="the accounts to be listed",
    )
    assert [a["id"] for a in mine] == [link["m365UserId"]], f"one account for one person: {mine}"
    assert mine[0]["userPrincipalName"] == f"{renamed}@{DOMAIN}", "renamed"
    assert [e["status"] for e in creates(rlog, mark) if e["status"] == 201] == [201]
