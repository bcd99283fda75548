"""Delta query for users and groups.

Follows https://learn.microsoft.com/en-us/graph/delta-query-overview, /graph/api/user-delta and
/graph/api/group-delta.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sim.directory_support import BASE, TENANT, Sim, error_of, make_sim, ref
from tools.m365sim.backends.graph.odata import decode_token, encode_token

WEEK = 7 * 24 * 3600


def full_round(sim: Sim, path: str, query: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Follow nextLinks to the deltaLink; returns every object and the deltaLink."""
    response = sim.call("GET", path, query)
    objects: list[dict[str, Any]] = []
    while True:
        assert response.status == 200, response.body
        objects += response.body["value"]
        if "@odata.deltaLink" in response.body:
            return objects, response.body["@odata.deltaLink"]
        response = sim.follow(response.body["@odata.nextLink"])


def changes(sim: Sim, delta_link: str) -> tuple[list[dict[str, Any]], str]:
    response = sim.follow(delta_link)
    assert response.status == 200, response.body
    assert "@odata.nextLink" not in response.body
    return response.body["value"], response.body["@odata.deltaLink"]


def test_initial_round_pages_then_delta_link() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview (nextLink with $skiptoken until deltaLink)"""
    sim = make_sim(250)
    first = sim.call("GET", "/users/delta")
    assert first.body["@odata.context"] == f"{BASE}/$metadata#users"
    assert first.body["@odata.nextLink"].startswith(f"{BASE}/users/delta?%24skiptoken=")
    users, link = full_round(sim, "/users/delta")
    assert len({u["id"] for u in users}) == 250
    assert link.startswith(f"{BASE}/users/delta?%24deltatoken=")
    # The default properties, less mobilePhone and officeLocation: seeded users never had them set, and user-delta
    # says "If the property has never been set before it will not be included in the response at all".
    assert set(users[0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }


def test_round_trip_create_update_delete() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta (changed objects with their state; removed users
    carry @removed reason "changed": restorable from deleted items)"""
    sim = make_sim(5)
    _, link = full_round(sim, "/users/delta", {"$select": "displayName,jobTitle"})
    assert changes(sim, link)[0] == []
    new_id = sim.create_user("newbie").body["id"]
    sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "Boss"})
    sim.call("PATCH", "/users/user0003@contoso.com", body={"department": "Not selected: not tracked"})
    gone_id = sim.call("GET", "/users/user0002@contoso.com").body["id"]
    sim.call("DELETE", "/users/user0002@contoso.com")
    value, link = changes(sim, link)
    by_id = {v["id"]: v for v in value}
    assert set(by_id) == {new_id, gone_id, sim.call("GET", "/users/user0001@contoso.com").body["id"]}
    assert by_id[new_id] == {"id": new_id, "displayName": "Newbie"}  # jobTitle never set: left out
    assert by_id[gone_id] == {"id": gone_id, "@removed": {"reason": "changed"}}
    boss = next(v for v in value if v.get("jobTitle") == "Boss")
    assert set(boss) == {"id", "displayName", "jobTitle"}
    assert changes(sim, link)[0] == []


def test_latest_returns_only_a_delta_link() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview ("$deltaToken=latest ... no resource data")"""
    sim = make_sim(5)
    response = sim.call("GET", "/users/delta", {"$deltatoken": "latest"})
    assert response.body["value"] == [] and "@odata.nextLink" not in response.body
    sim.call("PATCH", "/users/user0004@contoso.com", body={"displayName": "Four"})
    value, _ = changes(sim, response.body["@odata.deltaLink"])
    assert [v["displayName"] for v in value] == ["Four"]


def test_expired_token_is_410_sync_state_not_found() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview ("Token duration": seven days for directory
    objects; expired → syncStateNotFound; "Synchronization reset": 410 Gone with a Location to restart)"""
    sim = make_sim(3)
    _, link = full_round(sim, "/users/delta")
    sim.clock.advance(WEEK + 1)
    response = sim.follow(link)
    assert error_of(response) == (
        410,
        "syncStateNotFound",
        "The sync state generation is not found. The delta "
        "token is expired and data must be synchronized again.",
    )
    assert response.headers["Location"] == f"{BASE}/users/delta"


def test_token_of_another_tenant_and_garbage() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview#state-tokens (tokens are opaque, per
    collection); our documented choice: foreign state → 410 syncStateNotFound, undecodable → 400."""
    sim = make_sim(3)
    _, link = full_round(sim, "/users/delta")
    state = decode_token(parse_qs(urlsplit(link).query)["$deltatoken"][0])
    assert state is not None and state["t"] == TENANT
    foreign = encode_token({**state, "t": "another-tenant"})
    assert error_of(sim.call("GET", "/users/delta", {"$deltatoken": foreign}))[:2] == (
        410,
        "syncStateNotFound",
    )
    assert error_of(sim.call("GET", "/users/delta", {"$deltatoken": "garbage!"})) == (
        400,
        "Request_BadRequest",
        "Invalid delta token.",
    )
    group_link = sim.call(
        "GET", "/groups/delta", {"$deltatoken": parse_qs(urlsplit(link).query)["$deltatoken"][0]}
    )
    assert error_of(group_link)[0] == 400


def test_token_survives_many_changes_and_pages_large_change_sets() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview (change responses page with nextLink too)"""
    sim = make_sim(0)
    _, link = full_round(sim, "/users/delta")
    for i in range(230):
        sim.create_user(f"bulk{i}")
    response = sim.follow(link)
    seen = list(response.body["value"])
    while "@odata.nextLink" in response.body:
        response = sim.follow(response.body["@odata.nextLink"])
        seen += response.body["value"]
    assert len({v["id"] for v in seen}) == 230
    assert changes(sim, response.body["@odata.deltaLink"])[0] == []


def test_unsupported_options_on_the_first_call() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview ($expand, $top, $orderby not supported for
    users and groups; $filter only by id)"""
    sim = make_sim(3)
    for option in ("$top", "$expand", "$orderby"):
        assert error_of(sim.call("GET", "/users/delta", {option: "5"}))[:2] == (
            400,
            "Request_UnsupportedQuery",
        )
    assert error_of(sim.call("GET", "/users/delta", {"$filter": "displayName eq 'x'"}))[0] == 400


def test_filter_by_id_tracks_only_those_objects() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ($filter=id eq '…' or id eq '…')"""
    sim = make_sim(5)
    one = sim.call("GET", "/users/user0001@contoso.com").body["id"]
    users, link = full_round(sim, "/users/delta", {"$filter": f"id eq '{one}'"})
    assert [u["id"] for u in users] == [one]
    sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "a"})
    sim.call("PATCH", "/users/user0002@contoso.com", body={"jobTitle": "b"})
    assert [v["id"] for v in changes(sim, link)[0]] == [one]


def test_delta_respects_replication_lag() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays (late changes arrive in a
    later round)"""
    sim = make_sim(2)
    sim.lag.seconds = 30
    _, link = full_round(sim, "/users/delta")
    new_id = sim.create_user("late").body["id"]
    value, link = changes(sim, link)
    assert value == []
    sim.clock.advance(30)
    value, _ = changes(sim, link)
    assert [v["id"] for v in value] == [new_id]


def test_groups_delta_members_and_deletion() -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-delta (members@delta; deleted groups @removed)"""
    sim = make_sim(3)
    u1, u2, u3 = (sim.call("GET", f"/users/user000{i}@contoso.com").body["id"] for i in (1, 2, 3))
    group = sim.create_group("team", **{"members@odata.bind": [ref(u1)["@odata.id"], ref(u2)["@odata.id"]]})
    group_id = group.body["id"]
    groups, link = full_round(sim, "/groups/delta")
    assert groups[0]["id"] == group_id and groups[0]["displayName"] == "team"
    assert sorted(groups[0]["members@delta"], key=lambda m: m["id"]) == sorted(
        [
            {"@odata.type": "#microsoft.graph.user", "id": u1},
            {"@odata.type": "#microsoft.graph.user", "id": u2},
        ],
        key=lambda m: m["id"],
    )
    sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(u3))
    sim.call("DELETE", f"/groups/{group_id}/members/{u1}/$ref")
    value, link = changes(sim, link)
    assert sorted(value[0]["members@delta"], key=lambda m: m["id"]) == sorted(
        [
            {"@odata.type": "#microsoft.graph.user", "id": u3},
            {"@odata.type": "#microsoft.graph.user", "id": u1, "@removed": {"reason": "deleted"}},
        ],
        key=lambda m: m["id"],
    )
    sim.call("DELETE", f"/groups/{group_id}")
    value, _ = changes(sim, link)
    assert value == [{"id": group_id, "@removed": {"reason": "deleted"}}]


def test_groups_delta_select_without_members() -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview ($select limits the tracked properties;
    members are tracked only when selected)"""
    sim = make_sim(1)
    sim.create_group("team")
    groups, _ = full_round(sim, "/groups/delta", {"$select": "displayName"})
    assert set(groups[0]) == {"id", "displayName"}


MINIMAL = {"prefer": "return=minimal"}


def test_never_set_properties_are_left_out_of_delta_but_not_of_lists() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("Default: return the same properties as initial
    delta request": "If the property has never been set before it will not be included in the response at all";
    a property set to null is included: "This includes properties being set to null value"). GET /users still
    returns null for unset selected properties (https://learn.microsoft.com/en-us/graph/api/user-list)."""
    sim = make_sim(0)
    user_id = sim.create_user("fresh").body["id"]
    select = {"$select": "displayName,jobTitle,mobilePhone,businessPhones"}
    users, link = full_round(sim, "/users/delta", select)
    assert users == [{"id": user_id, "displayName": "Fresh", "businessPhones": []}]
    listed = sim.call("GET", "/users", select).body["value"]
    assert listed == [{"displayName": "Fresh", "jobTitle": None, "mobilePhone": None, "businessPhones": []}]
    sim.call("PATCH", f"/users/{user_id}", body={"jobTitle": "Chief"})
    value, link = changes(sim, link)
    assert value == [{"id": user_id, "displayName": "Fresh", "jobTitle": "Chief", "businessPhones": []}]
    sim.call("PATCH", f"/users/{user_id}", body={"jobTitle": None})
    value, link = changes(sim, link)
    assert value == [{"id": user_id, "displayName": "Fresh", "jobTitle": None, "businessPhones": []}]
    users, _ = full_round(sim, "/users/delta", select)  # once set, a cleared property stays in as null
    assert users == [{"id": user_id, "displayName": "Fresh", "jobTitle": None, "businessPhones": []}]


def test_never_set_group_properties_are_left_out_of_delta() -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-delta ("If the property has never been set before it
    will not be included in the response at all"); GET /groups keeps null
    (https://learn.microsoft.com/en-us/graph/api/group-list)."""
    sim = make_sim(0)
    group_id = sim.create_group("team").body["id"]
    groups, link = full_round(sim, "/groups/delta", {"$select": "displayName,description,mail"})
    assert groups == [{"id": group_id, "displayName": "team"}]
    listed = sim.call("GET", "/groups", {"$select": "displayName,description,mail"}).body["value"]
    assert listed == [{"displayName": "team", "description": None, "mail": None}]
    sim.call("PATCH", f"/groups/{group_id}", body={"description": "About"})
    assert changes(sim, link)[0] == [{"id": group_id, "displayName": "team", "description": "About"}]


def test_prefer_minimal_returns_only_changed_properties() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("Request headers": Prefer: return=minimal "with a
    request that uses a deltaLink would return only the object properties that have changed since the last
    round"; "Example 3: Alternative minimal response behavior"; removed users keep @removed,
    https://learn.microsoft.com/en-us/graph/delta-query-overview). Without the header the full selected
    properties come back; RFC 7240 Preference-Applied marks the minimal answer."""
    sim = make_sim(4)
    ids = [sim.call("GET", f"/users/user000{i}@contoso.com").body["id"] for i in (1, 2, 3, 4)]
    _, link = full_round(sim, "/users/delta", {"$select": "displayName,jobTitle,mobilePhone,accountEnabled"})
    sim.call("PATCH", f"/users/{ids[0]}", body={"displayName": "Renamed", "jobTitle": None})
    sim.call("PATCH", f"/users/{ids[1]}", body={"accountEnabled": False})
    sim.call("PATCH", f"/users/{ids[2]}", body={"department": "Not selected: not tracked"})
    sim.call("DELETE", f"/users/{ids[3]}")
    new_id = sim.create_user("newbie", mobilePhone="+1 555 0100").body["id"]
    minimal = sim.follow(link, headers=MINIMAL)
    assert minimal.status == 200 and minimal.headers == {"Preference-Applied": "return=minimal"}
    by_id = {v["id"]: v for v in minimal.body["value"]}
    assert by_id == {
        ids[0]: {"id": ids[0], "displayName": "Renamed", "jobTitle": None},
        ids[1]: {"id": ids[1], "accountEnabled": False},
        ids[3]: {"id": ids[3], "@removed": {"reason": "changed"}},
        # created in the round: its standard representation (never-set jobTitle left out)
        new_id: {"id": new_id, "displayName": "Newbie", "mobilePhone": "+1 555 0100", "accountEnabled": True},
    }
    full = sim.follow(link)  # the same deltaLink without the header: same objects, every selected property
    assert "Preference-Applied" not in full.headers
    assert [v["id"] for v in full.body["value"]] == [v["id"] for v in minimal.body["value"]]
    first = next(v for v in full.body["value"] if v["id"] == ids[0])
    assert first == {"id": ids[0], "displayName": "Renamed", "jobTitle": None, "accountEnabled": True}
    assert changes(sim, minimal.body["@odata.deltaLink"])[0] == []


def test_prefer_minimal_has_no_effect_on_the_initial_round() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta (Response: nextLink pages of the initial round
    include "the same set of properties as in the initial delta query request ... to capture the full current
    state"; the header applies to requests that use a deltaLink), so no Preference-Applied there."""
    sim = make_sim(3)
    response = sim.call("GET", "/users/delta", {"$select": "displayName,jobTitle"}, headers=MINIMAL)
    assert "Preference-Applied" not in response.headers
    assert all(set(v) == {"id", "displayName", "jobTitle"} for v in response.body["value"])
    latest = sim.call("GET", "/users/delta", {"$deltatoken": "latest"}, headers=MINIMAL)
    assert latest.body["value"] == [] and "Preference-Applied" not in latest.headers


def test_prefer_minimal_at_any_point_and_across_next_links() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("The header can be added to a deltaLink request at
    any point in time in the delta cycle ... it does not affect how the delta query is executed"): a change round
    that pages keeps honouring the header on its nextLinks; other preferences may share the header."""
    sim = make_sim(150)
    _, link = full_round(sim, "/users/delta")
    for i in range(1, 121):
        sim.call("PATCH", f"/users/user{i:04d}@contoso.com", body={"officeLocation": f"B{i}"})
    headers = {"prefer": 'odata.maxpagesize=50, return="minimal"'}
    response = sim.follow(link, headers=headers)
    seen = list(response.body["value"])
    assert response.headers == {"Preference-Applied": "return=minimal"}
    assert "@odata.nextLink" in response.body
    response = sim.follow(response.body["@odata.nextLink"], headers=headers)
    assert response.headers == {"Preference-Applied": "return=minimal"}
    seen += response.body["value"]
    assert "@odata.deltaLink" in response.body
    assert len(seen) == 120 and all(set(v) == {"id", "officeLocation"} for v in seen)
    sim.call("PATCH", "/users/user0001@contoso.com", body={"surname": "Later"})
    value, _ = changes(sim, response.body["@odata.deltaLink"])  # no header: the full default set
    assert value[0]["surname"] == "Later" and value[0]["officeLocation"] == "B1" and "givenName" in value[0]


def test_prefer_minimal_groups_members_only() -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-delta ("Alternative: return only the changed
    properties"; members@delta carries membership changes)"""
    sim = make_sim(2)
    u1 = sim.call("GET", "/users/user0001@contoso.com").body["id"]
    group_id = sim.create_group("team").body["id"]
    _, link = full_round(sim, "/groups/delta", {"$select": "displayName,description,members"})
    sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(u1))
    response = sim.follow(link, headers=MINIMAL)
    assert response.body["value"] == [
        {"id": group_id, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": u1}]}
    ]
    sim.call("PATCH", f"/groups/{group_id}", body={"displayName": "crew"})
    value = sim.follow(response.body["@odata.deltaLink"], headers=MINIMAL).body["value"]
    assert value == [{"id": group_id, "displayName": "crew"}]


def test_without_select_only_the_default_properties_are_tracked() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("Example 1: Default properties": "There is no
    $select parameter, so a default set of properties is tracked and returned") and
    https://learn.microsoft.com/en-us/graph/delta-query-overview (a change to an untracked property does not make
    the resource appear). To see accountEnabled changes, select it."""
    sim = make_sim(3)
    one, two = (sim.call("GET", f"/users/user000{i}@contoso.com").body["id"] for i in (1, 2))
    _, link = full_round(sim, "/users/delta")
    sim.call("PATCH", f"/users/{one}", body={"accountEnabled": False, "department": "Elsewhere"})
    sim.call("PATCH", f"/users/{two}", body={"jobTitle": "Chief"})
    minimal = sim.follow(link, headers=MINIMAL).body["value"]
    assert minimal == [{"id": two, "jobTitle": "Chief"}]
    value, _ = changes(sim, link)
    assert [v["id"] for v in value] == [two] and "accountEnabled" not in value[0]
    _, selected = full_round(sim, "/users/delta", {"$select": "accountEnabled"})
    sim.call("PATCH", f"/users/{one}", body={"accountEnabled": True})
    assert changes(sim, selected)[0] == [{"id": one, "accountEnabled": True}]
