"""The SCIM 2.0 service end to end, through the local host, as an HR connector or Microsoft Entra would call it:
a SCIM source's token, users with the enterprise extension provisioned into Microsoft 365 (through a tenant that
auto-binds its verified domain), ``active: false`` blocking and signing out, Bulk with ``bulkId`` references in the
shape of Entra's ``/bulkUpload``, DELETE blocking but never deleting, ETags (RFC 7644 §3.14), filters and paging,
groups, and every refusal answered with a SCIM error body and nothing stored.

Microsoft's and the RFC's documents these follow: RFC 7644 §3.3 (POST), §3.4.2 (filters, paging), §3.5.2 (PATCH),
§3.7 (Bulk), §3.12 (errors), §3.14 (versions); Entra's SCIM guidance on PATCH ("Microsoft Entra ID emits the values
of op as Add, Replace, and Remove", string booleans) (learn.microsoft.com/entra/identity/app-provisioning/
use-scim-to-provision-users-and-groups) and the bulkUpload resource (graph/api/resources/synchronization-bulkupload:
"method key must be set to POST ... the provisioning service will determine the right operation").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, unique

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class Scim:
    warden: WardenHost
    token: str
    source: dict[str, Any]
    tenant: ss.Tenant

    @property
    def domain(self) -> str:
        return self.tenant.domains[0]

    def call(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kw.pop("headers", {})}
        if "json" in kw:
            headers.setdefault("Content-Type", "application/scim+json")
        return self.warden.http.request(method, f"/api/scim/v2{path}", headers=headers, **kw)

    def ok(self, method: str, path: str, status: int, **kw: Any) -> Any:
        response = self.call(method, path, **kw)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        if response.content:
            assert response.headers["content-type"].startswith("application/scim+json")
            return response.json()
        return None


@pytest.fixture(scope="module")
def scim(warden: WardenHost) -> Iterator[Scim]:
    tenant = ss.make_tenant(warden, [f"sc{uuid.uuid4().hex[:8]}.example"])
    options = warden.ok("GET", f"/directories/{tenant.id}")["options"]
    warden.ok(
        "PATCH", f"/directories/{tenant.id}", json={"options": {**options, "autoBindVerifiedDomains": True}}
    )
    created = warden.ok("POST", "/hris/sources", 201, json={"name": unique("scim"), "kind": "scim"})
    token = remember_secret(created["credential"])
    try:
        yield Scim(warden, token, created, tenant)
    finally:
        warden.call("DELETE", f"/hris/sources/{created['id']}")
        ss.drop_tenant(warden, tenant)


def a_user(scim: Scim, **extra: Any) -> dict[str, Any]:
    name = unique("s")
    body: dict[str, Any] = {
        "schemas": [USER, ENTERPRISE],
        "userName": name,
        "externalId": unique("X"),
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "emails": [{"value": f"{name}@{scim.domain}", "type": "work", "primary": True}],
        "title": "Tour Guide",
        "active": True,
        ENTERPRISE: {"employeeNumber": unique("E")[:12], "department": "Tour Operations"},
    }
    body.update(extra)
    return body


def created_and_synced(scim: Scim, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /Users; the resource, and the link once the sync it queued has run."""
    correlation = ss.new_correlation()
    resource = scim.ok("POST", "/Users", 201, json=body, headers={"x-correlation-id": correlation})
    ss.wait_sync_done(scim.warden, resource["id"], correlation_id=correlation)
    link = ss.wait_link(scim.warden, resource["id"], scim.tenant.id, "synced")
    return resource, link


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status), body
    return body


# ----------------------------------------------------------------------------------- provisioning
def test_a_user_with_the_enterprise_extension_becomes_a_warden_user_and_an_m365_account(scim: Scim) -> None:
    body = a_user(scim)
    resource, link = created_and_synced(scim, body)
    assert resource["userName"] == body["userName"] and resource["externalId"] == body["externalId"]
    assert resource["meta"]["location"].endswith(f"/api/scim/v2/Users/{resource['id']}")
    user = ss.user(scim.warden, resource["id"])
    assert user["source"] == f"hris:{scim.source['name']}"
    assert (user["email"], user["firstName"], user["lastName"], user["displayName"]) == (
        body["emails"][0]["value"],
        "Barbara",
        "Jensen",
        "Babs Jensen",
    )
    assert (user["jobTitle"], user["department"], user["employeeId"]) == (
        "Tour Guide",
        "Tour Operations",
        body[ENTERPRISE]["employeeNumber"],
    )
    assert [d["via"] for d in user["directories"] if d["directoryId"] == scim.tenant.id] == [["direct"]]
    account = scim.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["accountEnabled"] is True
    assert (
        account["userPrincipalName"],
        account["jobTitle"],
        account["department"],
        account["employeeId"],
    ) == (
        user["email"],
        "Tour Guide",
        "Tour Operations",
        user["employeeId"],
    )
    created = [a for a in ss.audit(scim.warden, resource["id"]) if a["action"] == "user.create"]
    assert created and created[0]["actor"] == f"hris:{scim.source['name']}"


def test_an_entra_patch_active_false_blocks_and_signs_out_and_true_unblocks(scim: Scim) -> None:
    resource, link = created_and_synced(scim, a_user(scim))
    correlation = ss.new_correlation()
    patched = scim.ok(
        "PATCH",
        f"/Users/{resource['id']}",
        200,
        json={"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        headers={"x-correlation-id": correlation},
    )
    assert patched["active"] is False
    ss.wait_sync_done(scim.warden, resource["id"], correlation_id=correlation)
    assert ss.user(scim.warden, resource["id"])["state"] == "suspended"
    account = scim.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["accountEnabled"] is False
    assert account["signInSessionsValidFromDateTime"] is not None, "signed out"

    correlation = ss.new_correlation()
    scim.ok(
        "PATCH",
        f"/Users/{resource['id']}",
        200,
        json={"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "value": {"active": True}}]},
        headers={"x-correlation-id": correlation},
    )
    ss.wait_sync_done(scim.warden, resource["id"], correlation_id=correlation)
    account = scim.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["accountEnabled"] is True


def test_entra_patches_with_paths_filters_and_dotted_keys_change_what_they_name(scim: Scim) -> None:
    resource, _ = created_and_synced(scim, a_user(scim))
    ops = [
        {"op": "Replace", "path": "title", "value": "Head Guide"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": resource["emails"][0]["value"]},
        {"op": "Replace", "value": {"name.givenName": "Barb", f"{ENTERPRISE}:department": "Parks"}},
    ]
    patched = scim.ok(
        "PATCH", f"/Users/{resource['id']}", 200, json={"schemas": [PATCH_OP], "Operations": ops}
    )
    assert (patched["title"], patched["name"]["givenName"], patched[ENTERPRISE]["department"]) == (
        "Head Guide",
        "Barb",
        "Parks",
    )
    user = ss.user(scim.warden, resource["id"])
    assert (user["jobTitle"], user["firstName"], user["department"]) == ("Head Guide", "Barb", "Parks")
    removed = scim.ok(
        "PATCH",
        f"/Users/{resource['id']}",
        200,
        json={"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "title"}]},
    )
    assert "title" not in removed and ss.user(scim.warden, resource["id"])["jobTitle"] is None


def test_delete_removes_the_warden_user_and_blocks_the_account_without_deleting_it(scim: Scim) -> None:
    resource, link = created_and_synced(scim, a_user(scim))
    mark = ss.requests_log(scim.warden).mark()
    correlation = ss.new_correlation()
    assert (
        scim.call("DELETE", f"/Users/{resource['id']}", headers={"x-correlation-id": correlation}).status_code
        == 204
    )
    ss.wait_sync_done(scim.warden, resource["id"], correlation_id=correlation)
    error_of(scim.call("GET", f"/Users/{resource['id']}"), 404)
    assert scim.warden.call("GET", f"/users/{resource['id']}").status_code == 404
    account = scim.tenant.graph.get_user(link["m365UserId"])
    assert account is not None and account["accountEnabled"] is False, "blocked, still there"
    writes = ss.requests_log(scim.warden).writes(mark, scim.tenant.graph.tenant_id)
    assert all(e["method"] != "DELETE" for e in writes), writes


# -------------------------------------------------------------------------------------------- bulk
def test_a_bulk_of_50_users_with_manager_bulk_ids_provisions_them_all(scim: Scim) -> None:
    reports = []
    for i in range(49):
        report = a_user(scim, title=f"Guide {i}")
        report[ENTERPRISE] = {**report[ENTERPRISE], "manager": {"value": "bulkId:boss"}}
        reports.append({"method": "POST", "path": "/Users", "bulkId": f"r{i}", "data": report})
    boss = {"method": "POST", "path": "/Users", "bulkId": "boss", "data": a_user(scim)}
    operations = [reports[0], boss, *reports[1:]]  # the first one names its manager before it exists
    answer = scim.ok("POST", "/Bulk", 200, json={"schemas": [BULK], "Operations": operations})
    results = answer["Operations"]
    assert [r["status"] for r in results] == ["201"] * 50, [r for r in results if r["status"] != "201"]
    ids = {r["bulkId"]: r["location"].rsplit("/", 1)[1] for r in results}
    boss_id = ids["boss"]
    for bulk_id, user_id in ids.items():
        user = ss.user(scim.warden, user_id)
        assert user["managerId"] == (None if bulk_id == "boss" else boss_id), bulk_id
    links = {b: ss.wait_link(scim.warden, u, scim.tenant.id, "synced") for b, u in ids.items()}
    boss_m365 = links["boss"]["m365UserId"]
    for bulk_id, link in links.items():
        if bulk_id != "boss" and scim.tenant.graph.manager_of(link["m365UserId"]) != boss_m365:
            # the report's sync ran before its manager had an account: the next sync sets it (rule 8)
            ss.act(
                scim.warden,
                "PUT",
                f"/users/{ids[bulk_id]}/directories/{scim.tenant.id}",
                ids[bulk_id],
                status=200,
            )
    assert all(
        scim.tenant.graph.manager_of(link["m365UserId"]) == boss_m365
        for b, link in links.items()
        if b != "boss"
    )


def test_bulk_answers_each_operation_and_stops_after_fail_on_errors(scim: Scim) -> None:
    good = a_user(scim)
    bad = a_user(scim)
    del bad["emails"]
    ops = [
        {"method": "POST", "path": "/Users", "bulkId": "bad", "data": bad},
        {"method": "POST", "path": "/Users", "bulkId": "good", "data": good},
        {
            "method": "PATCH",
            "path": "/Users/bulkId:bad",
            "data": {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "title"}]},
        },
    ]
    answer = scim.ok("POST", "/Bulk", 200, json={"schemas": [BULK], "Operations": ops})
    statuses = {r.get("bulkId", r["method"]): r["status"] for r in answer["Operations"]}
    assert statuses == {"bad": "400", "good": "201", "PATCH": "409"}, answer
    failed = next(r for r in answer["Operations"] if r.get("bulkId") == "bad")
    assert failed["response"]["schemas"] == [ERROR] and failed["response"]["scimType"] == "invalidValue"
    stopped = scim.ok(
        "POST",
        "/Bulk",
        200,
        json={
            "schemas": [BULK],
            "failOnErrors": 1,
            "Operations": [
                *ops[:1],
                {"method": "POST", "path": "/Users", "bulkId": "later", "data": a_user(scim)},
            ],
        },
    )
    assert [r["bulkId"] for r in stopped["Operations"]] == ["bad"], "nothing after the first error"


def test_a_repeated_bulk_upload_post_updates_the_person_it_provisioned(scim: Scim) -> None:
    body = a_user(scim)
    first = scim.ok(
        "POST",
        "/Bulk",
        200,
        json={
            "schemas": [BULK],
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "1", "data": body}],
        },
    )["Operations"][0]
    body["title"] = "Promoted"
    again = scim.ok(
        "POST",
        "/Bulk",
        200,
        json={
            "schemas": [BULK],
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "1", "data": body}],
        },
    )["Operations"][0]
    assert (first["status"], again["status"]) == ("201", "200")
    assert again["location"] == first["location"]
    assert ss.user(scim.warden, first["location"].rsplit("/", 1)[1])["jobTitle"] == "Promoted"
    conflict = error_of(scim.call("POST", "/Users", json=body), 409)
    assert conflict["scimType"] == "uniqueness", (
        "a plain POST of the same externalId is a conflict (RFC 7644 §3.3)"
    )


# ------------------------------------------------------------------------------------ versions, queries
def test_etags_make_writes_conditional(scim: Scim) -> None:
    resource = scim.ok("POST", "/Users", 201, json=a_user(scim))
    got = scim.call("GET", f"/Users/{resource['id']}")
    etag = got.headers["etag"]
    assert etag == resource["meta"]["version"] == got.json()["meta"]["version"]
    assert scim.call("GET", f"/Users/{resource['id']}", headers={"If-None-Match": etag}).status_code == 304
    changed = scim.ok(
        "PUT",
        f"/Users/{resource['id']}",
        200,
        json={
            **a_user(scim),
            "userName": resource["userName"],
            "emails": resource["emails"],
            "externalId": resource["externalId"],
        },
        headers={"If-Match": etag},
    )
    assert changed["meta"]["version"] != etag
    stale = scim.call(
        "PATCH",
        f"/Users/{resource['id']}",
        headers={"If-Match": etag},
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x"}]},
    )
    error_of(stale, 412)
    assert ss.user(scim.warden, resource["id"])["jobTitle"] == "Tour Guide", "nothing written"
    error_of(scim.call("DELETE", f"/Users/{resource['id']}", headers={"If-Match": etag}), 412)


def test_filters_find_by_index_and_by_scan_and_pages_count(scim: Scim) -> None:
    tag = unique("f")
    made = [scim.ok("POST", "/Users", 201, json=a_user(scim, title=f"{tag} {i}")) for i in range(3)]
    one = made[0]
    for flt in (
        f'userName eq "{one["userName"].upper()}"',
        f'externalId eq "{one["externalId"]}"',
        f'emails.value eq "{one["emails"][0]["value"]}"',
        f'id eq "{one["id"]}" and title pr',
    ):
        found = scim.ok("GET", "/Users", 200, params={"filter": flt})
        assert [r["id"] for r in found["Resources"]] == [one["id"]], flt
    scanned = scim.ok(
        "GET", "/Users", 200, params={"filter": f'title sw "{tag}"', "count": "2", "startIndex": "2"}
    )
    assert scanned["totalResults"] == 3 and scanned["startIndex"] == 2 and scanned["itemsPerPage"] == 2
    assert {r["id"] for r in scanned["Resources"]} < {m["id"] for m in made}
    picked = scim.ok("GET", "/Users", 200, params={"filter": f'title sw "{tag}"', "attributes": "userName"})
    assert all(set(r) <= {"schemas", "id", "userName"} for r in picked["Resources"]), picked
    error_of(scim.call("GET", "/Users", params={"filter": 'title xx "y"'}), 400)
    error_of(scim.call("GET", "/Users", params={"sortBy": "userName"}), 400)


def test_groups_hold_the_sources_users_as_warden_group_members(scim: Scim) -> None:
    members = [scim.ok("POST", "/Users", 201, json=a_user(scim)) for _ in range(2)]
    group = scim.ok(
        "POST",
        "/Groups",
        201,
        json={"schemas": [GROUP], "displayName": unique("Guides "), "members": [{"value": members[0]["id"]}]},
    )
    warden_group = scim.warden.ok("GET", f"/groups/{group['id']}")
    assert warden_group["memberCount"] == 1 and warden_group["name"] == group["displayName"]
    patched = scim.ok(
        "PATCH",
        f"/Groups/{group['id']}",
        200,
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": members[1]["id"]}]},
                {"op": "Remove", "path": "members", "value": [{"value": members[0]["id"]}]},
            ],
        },
    )
    assert [m["value"] for m in patched["members"]] == [members[1]["id"]]
    assert ss.user(scim.warden, members[1]["id"])["groups"] == [group["id"]]
    assert ss.user(scim.warden, members[0]["id"])["groups"] == []
    error_of(
        scim.call(
            "PATCH",
            f"/Groups/{group['id']}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]}],
            },
        ),
        400,
    )
    assert scim.call("DELETE", f"/Groups/{group['id']}").status_code == 204
    assert scim.warden.call("GET", f"/groups/{group['id']}").status_code == 404


# ----------------------------------------------------------------------------------------- refusals
def test_a_wrong_missing_or_rotated_away_token_is_401_with_a_bearer_challenge(scim: Scim) -> None:
    for token in ("wscim_" + "0" * 32 + "_" + "A" * 43, "not-a-token", scim.token[:-2] + "xx"):
        refused = scim.call("GET", "/Users", token=token)
        error_of(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
    bare = scim.warden.http.get("/api/scim/v2/Users")
    error_of(bare, 401)
    admin = scim.warden.http.get(
        "/api/scim/v2/Users", headers={"Authorization": f"Bearer {scim.warden.token()}"}
    )
    error_of(admin, 401)


def test_malformed_requests_are_refused_with_scim_errors_and_store_nothing(scim: Scim) -> None:
    body = a_user(scim)
    bad_json = scim.call(
        "POST", "/Users", content=b'{"userName": ', headers={"Content-Type": "application/scim+json"}
    )
    assert error_of(bad_json, 400)["scimType"] == "invalidSyntax"
    unknown = error_of(scim.call("POST", "/Users", json={**body, "shoeSize": 44}), 400)
    assert "shoeSize" in unknown["detail"]
    no_email = {k: v for k, v in body.items() if k != "emails"}
    error_of(scim.call("POST", "/Users", json=no_email), 400)
    bad_email = {**body, "emails": [{"value": "not an email", "primary": True}]}
    error_of(scim.call("POST", "/Users", json=bad_email), 400)
    long_employee = {**body, ENTERPRISE: {"employeeNumber": "E" * 17}}
    assert "employeeNumber" in error_of(scim.call("POST", "/Users", json=long_employee), 400)["detail"]
    wrong_type = scim.call("POST", "/Users", content=b"<user/>", headers={"Content-Type": "application/xml"})
    error_of(wrong_type, 415)
    error_of(scim.call("PUT", "/ServiceProviderConfig", json={}), 405)
    error_of(scim.call("GET", f"/Users/{uuid.uuid4()}"), 404)
    error_of(scim.call("GET", "/Nowhere"), 404)
    found = scim.ok("GET", "/Users", 200, params={"filter": f'userName eq "{body["userName"]}"'})
    assert found["totalResults"] == 0, "none of them stored anything"
    assert scim.warden.ok("GET", "/users", params={"email": body["emails"][0]["value"]})["items"] == []


def test_discovery_publishes_what_the_source_maps_as_required(scim: Scim) -> None:
    config = scim.ok("GET", "/ServiceProviderConfig", 200)
    assert config["patch"]["supported"] and config["bulk"]["supported"] and config["etag"]["supported"]
    assert config["bulk"]["maxOperations"] == 200 and config["sort"]["supported"] is False
    types = scim.ok("GET", "/ResourceTypes", 200)
    assert {t["name"] for t in types["Resources"]} == {"User", "Group"}
    user_schema = scim.ok("GET", f"/Schemas/{USER}", 200)
    required = {a["name"] for a in user_schema["attributes"] if a["required"]}
    assert required == {"userName", "name", "emails"}


def test_or_co_and_not_filters_match_as_rfc_7644_evaluates_them(scim: Scim) -> None:
    tag = unique("o")
    a = scim.ok("POST", "/Users", 201, json=a_user(scim, title=f"{tag} alpha"))
    b = scim.ok("POST", "/Users", 201, json=a_user(scim, title=f"{tag} beta"))
    found = scim.ok(
        "GET", "/Users", 200, params={"filter": f'title co "{tag} al" or userName eq "{b["userName"]}"'}
    )
    assert {r["id"] for r in found["Resources"]} == {a["id"], b["id"]}
    found = scim.ok("GET", "/Users", 200, params={"filter": f'title sw "{tag}" and not (title ew "beta")'})
    assert [r["id"] for r in found["Resources"]] == [a["id"]]
    searched = scim.ok(
        "POST",
        "/.search",
        200,
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": f'title sw "{tag}"',
        },
    )
    assert searched["totalResults"] == 2


def test_a_user_warden_already_has_is_adopted_by_email_and_a_password_waits_in_key_vault(scim: Scim) -> None:
    from tests.e2e.test_users_e2e import _has_secret, vault_client

    name = unique("ad")
    existing = scim.warden.ok(
        "POST",
        "/users",
        201,
        json={"username": name, "email": f"{name}@elsewhere.example", "firstName": "Old", "lastName": "Name"},
    )
    body = a_user(scim, userName=name, password=remember_secret(f"Pw-{uuid.uuid4().hex[:12]}!"))
    body["emails"] = [{"value": existing["email"], "primary": True}]
    adopted = scim.ok("POST", "/Users", 201, json=body)
    assert adopted["id"] == existing["id"] and "password" not in adopted
    user = ss.user(scim.warden, existing["id"])
    assert (user["firstName"], user["source"]) == ("Barbara", "admin"), "the same user, now fed by the source"
    assert _has_secret(vault_client(scim.warden), f"user-{existing['id']}-initial-password"), (
        "no account yet: the password waits for the account Warden creates"
    )
    assert scim.ok("GET", "/Users", 200, params={"filter": f'userName eq "{name}"'})["totalResults"] == 1
