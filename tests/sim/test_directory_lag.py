"""Replication lag: writes hit the primary at once, reads see each object as it was ``lag`` seconds ago.

Follows https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays ("some requests might have
replication delays for objects that were recently created, updated, or deleted") and GRAPH-NOTES ("Lists may lag
behind just-created/updated/deleted users").
"""

from __future__ import annotations

import pytest

from tests.sim.directory_support import Sim, error_of, make_sim, ref, user_body


@pytest.fixture
def sim() -> Sim:
    sim = make_sim(5)
    sim.lag.seconds = 10.0
    return sim


def test_just_created_user_is_404_until_replicated(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-get (404 Request_ResourceNotFound right after create)"""
    created = sim.create_user("fresh")
    assert created.status == 201
    user_id = created.body["id"]
    assert error_of(sim.call("GET", f"/users/{user_id}"))[:2] == (404, "Request_ResourceNotFound")
    assert sim.call("GET", "/users/fresh@contoso.com").status == 404
    listed = sim.call("GET", "/users", {"$filter": "mailNickname eq 'fresh'"}).body["value"]
    assert listed == []
    sim.clock.advance(9.9)
    assert sim.call("GET", f"/users/{user_id}").status == 404
    sim.clock.advance(0.1)
    assert sim.call("GET", "/users/fresh@contoso.com").body["id"] == user_id


def test_writes_on_an_invisible_object_are_404_but_uniqueness_uses_the_primary(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update (a PATCH right after create can 404); uniqueness is
    enforced on the directory itself (user-post-users, ObjectConflict)."""
    user_id = sim.create_user("fresh").body["id"]
    assert error_of(sim.call("PATCH", f"/users/{user_id}", body={"jobTitle": "x"}))[0] == 404
    assert error_of(sim.call("DELETE", f"/users/{user_id}"))[0] == 404
    again = sim.call("POST", "/users", body=user_body("fresh"))
    assert (
        error_of(again)[2]
        == "Another object with the same value for property userPrincipalName already exists."
    )
    group_id = sim.create_group("team").body["id"]
    assert error_of(sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id)))[0] == 404


def test_updates_are_stale_until_replicated(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays"""
    assert sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "Chief"}).status == 204
    sim.clock.advance(5)
    assert sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "Chiefer"}).status == 204

    def title() -> str:
        return str(sim.call("GET", "/users/user0001@contoso.com").body["jobTitle"])

    assert title() == "Analyst"
    sim.clock.advance(5)
    assert title() == "Chief"
    sim.clock.advance(5)
    assert title() == "Chiefer"


def test_deleted_user_stays_readable_until_replicated(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delete (lists lag behind deletions)"""
    assert sim.call("DELETE", "/users/user0002@contoso.com").status == 204
    assert sim.call("GET", "/users/user0002@contoso.com").status == 200
    assert len(sim.call("GET", "/users").body["value"]) == 5
    sim.clock.advance(10)
    assert sim.call("GET", "/users/user0002@contoso.com").status == 404
    assert len(sim.call("GET", "/users").body["value"]) == 4


def test_lag_can_change_at_runtime(sim: Sim) -> None:
    """The simulator's lag is a live setting: a lag of 0 makes every write visible at once."""
    user_id = sim.create_user("fresh").body["id"]
    assert sim.call("GET", f"/users/{user_id}").status == 404
    sim.lag.seconds = 0.0
    assert sim.call("GET", f"/users/{user_id}").status == 200


def test_renamed_user_is_found_by_its_old_upn_until_replicated(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-get (by userPrincipalName, on a lagging replica)"""
    sim.call("PATCH", "/users/user0003@contoso.com", body={"userPrincipalName": "new3@contoso.com"})
    assert sim.call("GET", "/users/user0003@contoso.com").status == 200
    assert sim.call("GET", "/users/new3@contoso.com").status == 404
    sim.clock.advance(10)
    assert sim.call("GET", "/users/user0003@contoso.com").status == 404
    assert sim.call("GET", "/users/new3@contoso.com").status == 200


def test_seeded_users_are_visible_at_once(sim: Sim) -> None:
    """Seeding builds the tenant before any lag applies."""
    sim.directory.seed_users(2)
    assert sim.call("GET", "/users/user0007@contoso.com").status == 200
