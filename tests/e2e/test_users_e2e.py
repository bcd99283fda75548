"""Users, groups, bindings and the audit trail through the admin API, end to end (local host + Azurite)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.conftest import WardenHost, new_user, unique
from tools import demo


def test_create_then_read_a_user_with_its_etag(warden: WardenHost) -> None:
    manager = new_user(warden)
    name = unique()
    body = {
        "username": name,
        "email": f"{name}@Contoso.Example",
        "firstName": "Grace",
        "lastName": "Hopper",
        "employeeId": unique("E")[:12],
        "jobTitle": "Rear Admiral",
        "department": "Navy",
        "managerId": manager["id"],
        "state": "staged",
        "startAt": "2027-01-04",
        "timeZone": "Europe/Berlin",
    }
    response = warden.call("POST", "/users", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/api/users/{created['id']}"
    assert created["email"] == f"{name}@contoso.example", "the domain is stored in lower case"
    assert created["displayName"] == "Grace Hopper" and created["source"] == "admin"
    assert created["directories"] == [] and created["groups"] == []
    read = warden.call("GET", f"/users/{created['id']}", role="reader")
    assert read.status_code == 200 and read.json() == created
    assert read.headers["ETag"] == response.headers["ETag"] and not read.headers["ETag"].startswith("W/")


def test_validation_names_each_bad_field(warden: WardenHost) -> None:
    body = {
        "username": "has space",
        "email": "first+tag@contoso.example",
        "firstName": "",
        "lastName": "x" * 65,
        "employeeId": "E" * 17,
        "state": "retired",
        "timeZone": "Mars/Olympus",
        "startAt": "04/01/2027",
        "unknown": 1,
    }
    response = warden.call("POST", "/users", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields >= {
        "username",
        "email",
        "firstName",
        "lastName",
        "employeeId",
        "state",
        "timeZone",
        "startAt",
        "unknown",
    }


def test_bad_input_shapes_get_4xx_never_5xx(warden: WardenHost) -> None:
    assert (
        warden.call("POST", "/users", content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert (
        warden.call("POST", "/users", content=b"[]", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert (
        warden.call("POST", "/users", content=b"a=b", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    big = b'{"username": "' + b"a" * 70_000 + b'"}'
    assert (
        warden.call("POST", "/users", content=big, headers={"content-type": "application/json"}).status_code
        == 413
    )
    assert warden.call("GET", "/users/not-a-guid").status_code == 404
    assert warden.call("GET", "/users", params={"limit": "0"}).status_code == 400
    assert warden.call("GET", "/users", params={"cursor": "garbage!"}).status_code == 400
    assert warden.call("GET", "/users", params={"nosuchfilter": "1"}).status_code == 400
    end_before_start = {"startAt": "2027-02-01", "endAt": "2027-01-01", "timeZone": "UTC"}
    user = new_user(warden)
    # Well-formed, but refused for what the document cannot say: 422.
    assert warden.call("PATCH", f"/users/{user['id']}", json=end_before_start).status_code == 422
    assert warden.call("PATCH", f"/users/{user['id']}", json={"managerId": user["id"]}).status_code == 422
    assert warden.call("PATCH", f"/users/{user['id']}", json={"email": None}).status_code == 400
    assert warden.call("PATCH", f"/users/{user['id']}", json={"jobTitle": 7}).status_code == 400, (
        "no coercion"
    )


def test_duplicate_username_email_or_employee_id_is_a_conflict_case_insensitively(warden: WardenHost) -> None:
    first = new_user(warden, employeeId=unique("E")[:12])
    for field, value in (
        ("username", first["username"].upper()),
        ("email", first["email"].upper().replace("CONTOSO.EXAMPLE", "contoso.example")),
        ("employeeId", first["employeeId"].lower()),
    ):
        response = warden.call("POST", "/users", json={**_fresh(), field: value})
        assert response.status_code == 409, (field, response.text)
        assert response.json()["field"] == field


def _fresh() -> dict[str, Any]:
    name = unique()
    return {"username": name, "email": f"{name}@{demo.DEMO_DOMAIN}", "firstName": "A", "lastName": "B"}


def test_patch_changes_only_given_fields_and_frees_the_old_email(warden: WardenHost) -> None:
    user = new_user(warden, jobTitle="Engineer", department="R&D")
    new_email = f"{unique()}@{demo.DEMO_DOMAIN}"
    patched = warden.ok("PATCH", f"/users/{user['id']}", json={"email": new_email, "department": None})
    assert (
        patched["email"] == new_email and patched["department"] is None and patched["jobTitle"] == "Engineer"
    )
    reuse = warden.call("POST", "/users", json={**_fresh(), "email": user["email"]})
    assert reuse.status_code == 201, "the old email was released"
    taken = warden.call("PATCH", f"/users/{user['id']}", json={"email": reuse.json()["email"]})
    assert taken.status_code == 409


def test_if_match_mismatch_is_412_and_a_match_applies(warden: WardenHost) -> None:
    user = new_user(warden)
    etag = warden.call("GET", f"/users/{user['id']}").headers["ETag"]
    warden.ok("PATCH", f"/users/{user['id']}", json={"jobTitle": "One"})
    stale = warden.call("PATCH", f"/users/{user['id']}", json={"jobTitle": "Two"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    fresh = warden.call("GET", f"/users/{user['id']}").headers["ETag"]
    ok = warden.call("PATCH", f"/users/{user['id']}", json={"jobTitle": "Two"}, headers={"If-Match": fresh})
    assert ok.status_code == 200 and ok.json()["jobTitle"] == "Two" and ok.headers["ETag"] != fresh
    assert warden.call("DELETE", f"/users/{user['id']}", headers={"If-Match": fresh}).status_code == 412


def test_filters_and_cursor_paging(warden: WardenHost, demo_directory: Any) -> None:
    made = [new_user(warden, state="suspended") for _ in range(5)]
    by_email = warden.ok("GET", "/users", params={"email": made[0]["email"].upper()})
    assert [u["id"] for u in by_email["items"]] == [made[0]["id"]] and by_email["next"] is None
    emp = new_user(warden, employeeId=unique("E")[:12])
    assert [
        u["id"] for u in warden.ok("GET", "/users", params={"employeeId": emp["employeeId"]})["items"]
    ] == [emp["id"]]
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        params = {"state": "suspended", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = warden.ok("GET", "/users", params=params)
        assert len(page["items"]) <= 2 and all(u["state"] == "suspended" for u in page["items"])
        seen += [u["id"] for u in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert {u["id"] for u in made} <= set(seen) and len(seen) == len(set(seen)), "every item once"
    cross = warden.call(
        "GET",
        "/users",
        params={
            "state": "active",
            "cursor": warden.ok("GET", "/users", params={"state": "suspended", "limit": "1"})["next"],
        },
    )
    assert cross.status_code == 422, "a cursor only continues the query it came from"
    for u in made[:3]:
        warden.ok("PUT", f"/users/{u['id']}/directories/{demo_directory['id']}", 201)
    ids = {u["id"] for u in made[:3]}
    in_dir = warden.ok("GET", "/users", params={"directoryId": demo_directory["id"], "limit": "200"})
    assert ids <= {u["id"] for u in in_dir["items"]}
    assert not {u["id"] for u in made[3:]} & {u["id"] for u in in_dir["items"]}
    # Suspended users get no account: once synced, their links read "skipped" (reason "user suspended").
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        params = {"directoryId": demo_directory["id"], "status": "skipped", "limit": "200"}
        skipped = {u["id"] for u in warden.ok("GET", "/users", params=params)["items"]}
        if ids <= skipped:
            break
        time.sleep(0.2)
    assert ids <= skipped
    assert warden.call("GET", "/users", params={"status": "pending"}).status_code == 422


def test_direct_and_group_bindings_show_on_the_user(warden: WardenHost, demo_directory: Any) -> None:
    user = new_user(warden)
    d = demo_directory["id"]
    bound = warden.call("PUT", f"/users/{user['id']}/directories/{d}")
    assert bound.status_code == 201
    assert bound.json()["directories"] == [
        {
            "directoryId": d,
            "via": ["direct"],
            "status": "pending",
            "reason": None,
            "m365UserId": None,
            "lastSyncAt": None,
            "candidates": [],
        }
    ]
    assert warden.call("PUT", f"/users/{user['id']}/directories/{d}").status_code == 200, (
        "binding again is a no-op"
    )
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Provisioning ")})
    assert warden.call("PUT", f"/groups/{group['id']}/members/{user['id']}").status_code == 201
    assert warden.call("PUT", f"/groups/{group['id']}/members/{user['id']}").status_code == 200
    warden.ok("PUT", f"/groups/{group['id']}/directories/{d}", 201)
    seen = warden.ok("GET", f"/users/{user['id']}", role="reader")
    assert seen["groups"] == [group["id"]]
    assert seen["directories"][0]["via"] == ["direct", f"group:{group['id']}"]
    warden.ok("DELETE", f"/users/{user['id']}/directories/{d}", 204)
    assert warden.ok("GET", f"/users/{user['id']}")["directories"][0]["via"] == [f"group:{group['id']}"]
    assert warden.call("DELETE", f"/users/{user['id']}/directories/{d}").status_code == 404, (
        "no direct binding left"
    )
    warden.ok("DELETE", f"/groups/{group['id']}/directories/{d}", 204)
    left = warden.ok("GET", f"/users/{user['id']}")["directories"]
    assert [x["via"] for x in left] in ([], [[]]), "unbound everywhere: at most the link to block remains"


def test_groups_count_members_rename_and_delete(warden: WardenHost, demo_directory: Any) -> None:
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Sales "), "description": "all sales"})
    members = [new_user(warden) for _ in range(3)]
    for m in members:
        warden.ok("PUT", f"/groups/{group['id']}/members/{m['id']}", 201)
    warden.ok("DELETE", f"/groups/{group['id']}/members/{members[0]['id']}", 204)
    assert warden.call("DELETE", f"/groups/{group['id']}/members/{members[0]['id']}").status_code == 404
    read = warden.call("GET", f"/groups/{group['id']}")
    assert read.json()["memberCount"] == 2
    dup = warden.call("POST", "/groups", json={"name": group["name"].upper()})
    assert dup.status_code == 409
    renamed = warden.ok(
        "PATCH",
        f"/groups/{group['id']}",
        json={"name": group["name"] + " EU"},
        headers={"If-Match": read.headers["ETag"]},
    )
    assert renamed["name"] == group["name"] + " EU" and renamed["description"] == "all sales"
    assert warden.call("POST", "/groups", json={"name": group["name"]}).status_code == 201, (
        "the old name is free"
    )
    warden.ok("PUT", f"/groups/{group['id']}/directories/{demo_directory['id']}", 201)
    assert warden.ok("GET", f"/users/{members[1]['id']}")["directories"][0]["via"] == [f"group:{group['id']}"]
    warden.ok("DELETE", f"/groups/{group['id']}", 204)
    assert warden.call("GET", f"/groups/{group['id']}").status_code == 404
    after = warden.ok("GET", f"/users/{members[1]['id']}")
    assert after["groups"] == [] and all(x["via"] == [] for x in after["directories"])


def test_deleting_a_user_frees_its_values_and_removes_it(warden: WardenHost, demo_directory: Any) -> None:
    user = new_user(warden)
    warden.ok("PUT", f"/users/{user['id']}/directories/{demo_directory['id']}", 201)
    warden.ok("DELETE", f"/users/{user['id']}", 204)
    assert warden.call("GET", f"/users/{user['id']}").status_code == 404
    assert warden.call("DELETE", f"/users/{user['id']}").status_code == 404
    assert warden.call("POST", "/users", json={**_fresh(), "email": user["email"]}).status_code == 201
    listed = warden.ok("GET", "/users", params={"directoryId": demo_directory["id"], "limit": "200"})
    assert user["id"] not in {u["id"] for u in listed["items"]}


def test_every_change_is_audited_and_filterable_by_user_and_directory(
    warden: WardenHost, demo_directory: Any
) -> None:
    d = demo_directory["id"]
    user = new_user(warden)
    warden.ok(
        "PATCH",
        f"/users/{user['id']}",
        json={"jobTitle": "Auditor"},
        headers={"x-correlation-id": "corr-audit-1"},
    )
    warden.ok("PUT", f"/users/{user['id']}/directories/{d}", 201)
    audit = warden.ok("GET", "/audit", params={"userId": user["id"]}, role="reader")["items"]
    mine = [e for e in audit if e["action"].startswith("user.")]  # the syncs add m365.* entries meanwhile
    assert [e["action"] for e in mine] == ["user.bind", "user.update", "user.create"], "newest first"
    update = mine[1]
    assert update["before"] == {"jobTitle": None} and update["after"] == {"jobTitle": "Auditor"}
    assert update["correlationId"] == "corr-audit-1" and update["actor"].startswith("admin:")
    assert update["result"] == "succeeded"
    in_dir = warden.ok("GET", "/audit", params={"userId": user["id"], "directoryId": d})["items"]
    assert [e["action"] for e in in_dir if e["action"].startswith("user.")] == ["user.bind"]
    assert all(e["directoryId"] == d for e in in_dir)
    by_dir = warden.ok("GET", "/audit", params={"directoryId": d, "limit": "200"})["items"]
    assert any(e["action"] == "user.bind" and e["userId"] == user["id"] for e in by_dir)
    assert (
        any(
            e["action"] == "directory.connect"
            for e in warden.ok(
                "GET",
                "/audit",
                params={"directoryId": d, "limit": "200", "since": demo_directory["createdAt"]},
            )["items"]
        )
        or len(by_dir) == 200
    )
    later = [
        e
        for e in warden.ok("GET", "/audit", params={"userId": user["id"], "since": mine[0]["at"]})["items"]
        if e["action"].startswith("user.")
    ]
    assert [e["action"] for e in later] == ["user.bind"]
    everything = warden.ok("GET", "/audit", params={"limit": "5"})
    assert len(everything["items"]) == 5 and everything["next"]
    ats = [e["at"] for e in everything["items"]]
    assert ats == sorted(ats, reverse=True)


def user_body() -> dict[str, Any]:
    name = unique()
    return {
        "username": name,
        "email": f"{name}@{demo.DEMO_DOMAIN}",
        "firstName": "Ada",
        "lastName": "Lovelace",
    }


def test_an_initial_password_is_used_for_the_new_account_and_then_forgotten(
    warden: WardenHost, demo_directory: Any
) -> None:
    from tests.conftest import remember_secret
    from tests.e2e import sync_support as ss

    good, later = remember_secret("Init!" + unique("P")), remember_secret("Later!" + unique("P"))
    weak = remember_secret("aaaaaaaa")
    refused = warden.call("POST", "/users", json={**user_body(), "password": weak})
    assert refused.status_code == 400 and [e["field"] for e in refused.json()["errors"]] == ["password"], (
        "outside Entra's password policy: refused before anything is stored"
    )
    assert weak not in refused.text
    strong = new_user(warden, password=good)
    waiting = new_user(warden, password=later, state="suspended")  # no account while suspended
    for u in (strong, waiting):
        assert "password" not in u
        warden.ok("PUT", f"/users/{u['id']}/directories/{demo_directory['id']}", 201)
    ok = ss.wait_link(warden, strong["id"], demo_directory["id"], "synced")
    ss.wait_link(warden, waiting["id"], demo_directory["id"], "skipped")
    assert ok["m365UserId"]
    created = [e for e in ss.audit(warden, strong["id"]) if e["action"] == "user.create"]
    assert created[0]["after"]["initialPassword"] == "set"
    vault = vault_client(warden)
    with vault:
        ss.wait_for(
            lambda: _has_secret(vault, f"user-{strong['id']}-initial-password"),
            lambda kept: not kept,
            what="the initial password to be forgotten",
        )
        assert _has_secret(vault, f"user-{waiting['id']}-initial-password"), (
            "kept until an account is created"
        )


def vault_client(warden: WardenHost) -> Any:
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    world = warden.stack.world
    credential = ClientSecretCredential(
        demo.HOME_TENANT_ID,
        demo.LOCAL_IDENTITY_CLIENT_ID,
        world.local_identity_secret,
        authority=world.sim_url,
        connection_verify=str(world.ca_bundle),
        disable_instance_discovery=True,
    )
    return SecretClient(
        f"{world.sim_url}/",
        credential,
        verify_challenge_resource=False,
        connection_verify=str(world.ca_bundle),
    )


def _has_secret(vault: Any, name: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        vault.get_secret(name)
    except ResourceNotFoundError:
        return False
    return True


def test_users_are_found_by_the_start_of_their_name_alone(warden: WardenHost) -> None:
    first = f"Qz{uuid.uuid4().hex[:8]}"
    mine = [new_user(warden, firstName=first, displayName=f"{first} Lovelace") for _ in range(2)]
    new_user(warden, lastName=f"Other{first}")  # starts with something else
    found = warden.ok(
        "GET", "/users", params={"name": first.lower(), "limit": "200"}
    )  # as typed: capitalised too
    items = found["items"]
    while found["next"] and len(items) < len(mine):  # a property filter may answer a short page first
        found = warden.ok("GET", "/users", params={"name": first.lower(), "cursor": found["next"]})
        items += found["items"]
    assert sorted(u["id"] for u in items) == sorted(u["id"] for u in mine)
    refused = warden.call("GET", "/users", params={"name": first, "employeeId": "E1"})
    assert refused.status_code == 422 and "name" in refused.text
