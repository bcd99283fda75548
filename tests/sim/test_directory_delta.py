"""Delta query for users and groups.

Follows https://learn.microsoft.com/en-us/graph/delta-query-overview, /graph/api/user-delta and
/graph/api/group-delta.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sim.directory_support import BASE, TENANT, Sim, error_of, make_sim, ref
from tools.m365sim.odata import decode_token, encode_token

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
    assert set(users[0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
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
    assert by_id[new_id] == {"id": new_id, "displayName": "Newbie", "jobTitle": None}
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
