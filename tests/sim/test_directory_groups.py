"""Groups and group membership in the simulated directory."""

from __future__ import annotations

import pytest

from tests.sim.directory_support import BASE, Sim, error_of, make_sim, ref

ALREADY = (
    "One or more added object references already exist for the following modified properties: 'members'."
)


@pytest.fixture
def sim() -> Sim:
    return make_sim(30)


def user_ids(sim: Sim, count: int) -> list[str]:
    body = sim.call("GET", "/users", {"$top": str(count), "$select": "id"}).body
    return [u["id"] for u in body["value"]]


def binds(ids: list[str]) -> list[str]:
    return [ref(i)["@odata.id"] for i in ids]


def test_create_security_group_201(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-groups (201 Created with the group)"""
    response = sim.create_group("sec-team", description="Security team")
    assert response.status == 201
    body = response.body
    assert body["@odata.context"] == f"{BASE}/$metadata#groups/$entity"
    assert (body["displayName"], body["mailEnabled"], body["securityEnabled"], body["mail"]) == (
        "sec-team",
        False,
        True,
        None,
    )
    assert body["groupTypes"] == [] and body["description"] == "Security team"
    assert sim.call("GET", f"/groups/{body['id']}").body["displayName"] == "sec-team"


def test_create_unified_group_gets_mail(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-groups (Microsoft 365 group: groupTypes Unified)"""
    body = sim.create_group("m365", mailEnabled=True, securityEnabled=False, groupTypes=["Unified"]).body
    assert (body["mail"], body["proxyAddresses"], body["visibility"]) == (
        "m365@contoso.com",
        ["SMTP:m365@contoso.com"],
        "Public",
    )


def test_mail_enabled_security_group_is_refused(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-groups (mail-enabled security groups can't be created
    through Graph); message as Graph answers it."""
    assert error_of(sim.create_group("mesg", mailEnabled=True)) == (
        400,
        "Request_BadRequest",
        "The service does not currently support writes of mail-enabled groups. Please "
        "ensure that the mail-enablement property is unset and the security-enablement property is set.",
    )


@pytest.mark.parametrize("missing", ["displayName", "mailEnabled", "mailNickname", "securityEnabled"])
def test_create_requires_properties(sim: Sim, missing: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-groups (required properties)"""
    body = {"displayName": "g", "mailEnabled": False, "mailNickname": "g", "securityEnabled": True}
    del body[missing]
    assert error_of(sim.call("POST", "/groups", body=body)) == (
        400,
        "Request_BadRequest",
        f"Property {missing} value is required but is empty or missing.",
    )


@pytest.mark.parametrize(("prop", "limit"), [("displayName", 256), ("mailNickname", 64)])
def test_group_maximum_lengths(sim: Sim, prop: str, limit: int) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/group (displayName "Maximum length is 256
    characters"; mailNickname "Maximum length is 64 characters"), on create and on PATCH."""
    assert sim.create_group("atlimit", **{prop: "a" * limit}).status == 201
    invalid = (
        400,
        "Request_BadRequest",
        f"Invalid value specified for property '{prop}' of resource 'Group'.",
    )
    assert error_of(sim.create_group("overlimit", **{prop: "a" * (limit + 1)})) == invalid
    group_id = sim.create_group("patched").body["id"]
    assert error_of(sim.call("PATCH", f"/groups/{group_id}", body={prop: "b" * (limit + 1)})) == invalid


def test_members_odata_bind_20_ok_21_refused(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-update ("up to 20 members" with members@odata.bind)"""
    ids = user_ids(sim, 30)
    created = sim.create_group("bound", **{"members@odata.bind": binds(ids[:20])})
    assert created.status == 201
    group_id = created.body["id"]
    members = sim.call("GET", f"/groups/{group_id}/members", {"$select": "id"}).body["value"]
    assert sorted(m["id"] for m in members) == sorted(ids[:20])
    too_many = sim.call("PATCH", f"/groups/{group_id}", body={"members@odata.bind": binds(ids[:21])})
    status, code, _ = error_of(too_many)
    assert (status, code) == (400, "Request_BadRequest")
    more = sim.call("PATCH", f"/groups/{group_id}", body={"members@odata.bind": binds(ids[20:30])})
    assert more.status == 204
    assert len(sim.call("GET", f"/groups/{group_id}/members").body["value"]) == 30
    again = sim.call("PATCH", f"/groups/{group_id}", body={"members@odata.bind": binds(ids[:1])})
    assert error_of(again) == (400, "Request_BadRequest", ALREADY)


def test_add_member_ref_and_already_a_member(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-members (204; existing member → 400)"""
    group_id = sim.create_group("team").body["id"]
    user_id = user_ids(sim, 1)[0]
    assert sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id)).status == 204
    assert error_of(sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id))) == (
        400,
        "Request_BadRequest",
        ALREADY,
    )
    member = sim.call("GET", f"/groups/{group_id}/members").body
    assert member["@odata.context"] == f"{BASE}/$metadata#directoryObjects"
    assert member["value"][0]["@odata.type"] == "#microsoft.graph.user"
    assert member["value"][0]["id"] == user_id


def test_add_member_bad_reference_and_missing_objects(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-members (@odata.id of a directoryObject)"""
    group_id = sim.create_group("team").body["id"]
    bad = sim.call("POST", f"/groups/{group_id}/members/$ref", body={"@odata.id": "https://x/v1.0/me"})
    assert error_of(bad) == (400, "Request_BadRequest", "Invalid object identifier 'https://x/v1.0/me'.")
    ghost = "00000000-0000-0000-0000-000000000001"
    assert error_of(sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(ghost)))[:2] == (
        404,
        "Request_ResourceNotFound",
    )
    assert (
        error_of(sim.call("POST", f"/groups/{ghost}/members/$ref", body=ref(user_ids(sim, 1)[0])))[0] == 404
    )


def test_nested_group_member(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-members (members can be groups)"""
    parent = sim.create_group("parent").body["id"]
    child = sim.create_group("child").body["id"]
    assert sim.call("POST", f"/groups/{parent}/members/$ref", body=ref(child)).status == 204
    value = sim.call("GET", f"/groups/{parent}/members").body["value"]
    assert value[0]["@odata.type"] == "#microsoft.graph.group" and value[0]["displayName"] == "child"


def test_remove_member_and_not_a_member(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-delete-members (204; a non-member → 404
    Request_ResourceNotFound, as reported in github.com/KelvinTegelaar/CIPP/issues/2141)"""
    group_id = sim.create_group("team").body["id"]
    user_id = user_ids(sim, 1)[0]
    sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id))
    assert sim.call("DELETE", f"/groups/{group_id}/members/{user_id}/$ref").status == 204
    assert error_of(sim.call("DELETE", f"/groups/{group_id}/members/{user_id}/$ref")) == (
        404,
        "Request_ResourceNotFound",
        f"Resource '{user_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def test_members_are_paged(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-list-members ($top and @odata.nextLink)"""
    ids = user_ids(sim, 25)
    group_id = sim.create_group("big", **{"members@odata.bind": binds(ids[:20])}).body["id"]
    sim.call("PATCH", f"/groups/{group_id}", body={"members@odata.bind": binds(ids[20:])})
    first = sim.call("GET", f"/groups/{group_id}/members", {"$top": "10", "$select": "id,displayName"})
    assert len(first.body["value"]) == 10 and set(first.body["value"][0]) == {
        "@odata.type",
        "id",
        "displayName",
    }
    seen = [m["id"] for m in first.body["value"]]
    response = first
    while "@odata.nextLink" in response.body:
        response = sim.follow(response.body["@odata.nextLink"])
        seen += [m["id"] for m in response.body["value"]]
    assert sorted(seen) == sorted(ids)


def test_deleted_user_leaves_its_groups(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delete (a deleted user is no longer a member)"""
    group_id = sim.create_group("team").body["id"]
    user_id = user_ids(sim, 1)[0]
    sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id))
    sim.call("DELETE", f"/users/{user_id}")
    assert sim.call("GET", f"/groups/{group_id}/members").body["value"] == []


def test_list_filter_select_and_update_delete(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-list, group-update (204), group-delete (204)"""
    sim.create_group("alpha-sec")
    unified = sim.create_group("alpha-365", mailEnabled=True, securityEnabled=False, groupTypes=["Unified"])
    sim.create_group("beta")

    def names(expression: str) -> list[str]:
        body = sim.call("GET", "/groups", {"$filter": expression, "$select": "displayName"}).body
        return sorted(g["displayName"] for g in body["value"])

    assert names("startswith(displayName,'ALPHA')") == ["alpha-365", "alpha-sec"]
    assert names("mailEnabled eq true") == ["alpha-365"]
    assert names("groupTypes/any(c:c eq 'Unified')") == ["alpha-365"]
    assert names("securityEnabled eq true and mailNickname eq 'beta'") == ["beta"]
    group_id = unified.body["id"]
    assert sim.call("PATCH", f"/groups/{group_id}", body={"description": "changed"}).status == 204
    assert sim.call("GET", f"/groups/{group_id}", {"$select": "description"}).body["description"] == "changed"
    assert error_of(sim.call("PATCH", f"/groups/{group_id}", body={"mailEnabled": False}))[2] == (
        "Property 'mailEnabled' is read-only and cannot be set."
    )
    assert sim.call("DELETE", f"/groups/{group_id}").status == 204
    assert error_of(sim.call("GET", f"/groups/{group_id}"))[:2] == (404, "Request_ResourceNotFound")


def test_group_permissions(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/group-post-members#permissions (GroupMember.ReadWrite.All)"""
    group_id = sim.create_group("team").body["id"]
    user_id = user_ids(sim, 1)[0]
    member_writer = frozenset({"GroupMember.ReadWrite.All"})
    assert (
        sim.call("POST", f"/groups/{group_id}/members/$ref", body=ref(user_id), perms=member_writer).status
        == 204
    )
    assert error_of(sim.call("POST", "/groups", body={}, perms=member_writer))[0] == 403
    assert sim.call("GET", "/groups", perms=frozenset({"GroupMember.Read.All"})).status == 200
    assert error_of(sim.call("GET", "/groups", perms=frozenset({"User.Read.All"})))[0] == 403
