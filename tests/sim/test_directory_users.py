"""Users in the simulated directory: list, filter, paging, get, create, update, delete, revoke, manager."""

from __future__ import annotations

import pytest

from tests.sim.directory_support import BASE, STRONG, Sim, error_of, make_sim, user_body
from tools.m365sim.backends.graph.users import DEFAULT_PROPERTIES as USER_DEFAULT

EVENTUAL = {"consistencylevel": "eventual"}
NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."


@pytest.fixture
def sim() -> Sim:
    return make_sim(250)


# -- list and paging -------------------------------------------------------------------------------------------


def test_list_pages_through_250_users_with_top_100(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/paging : follow @odata.nextLink ($skiptoken) until it is absent."""
    response = sim.call("GET", "/users", {"$top": "100"})
    pages, seen = [], []
    while True:
        assert response.status == 200
        pages.append(len(response.body["value"]))
        seen += [u["id"] for u in response.body["value"]]
        link = response.body.get("@odata.nextLink")
        if link is None:
            break
        assert link.startswith(f"{BASE}/users?") and "%24skiptoken=" in link and "%24top=100" in link
        response = sim.follow(link)
    assert pages == [100, 100, 50]
    assert len(set(seen)) == 250
    assert response.body["@odata.context"] == f"{BASE}/$metadata#users"


def test_default_page_is_100_and_default_properties(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-list (default page size 100; default property set)"""
    body = sim.call("GET", "/users").body
    assert len(body["value"]) == 100 and "@odata.nextLink" in body
    assert list(body["value"][0]) == list(USER_DEFAULT)
    assert "accountEnabled" not in body["value"][0]


def test_top_1000_is_refused(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-list ($top between 1 and 999)"""
    assert error_of(sim.call("GET", "/users", {"$top": "1000"})) == (
        400,
        "Request_BadRequest",
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
    )


def test_select_returns_only_the_selected_properties(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/query-parameters#select-parameter"""
    body = sim.call(
        "GET", "/users", {"$select": "id,accountEnabled,employeeId,passwordProfile", "$top": "1"}
    ).body
    assert body["@odata.context"] == f"{BASE}/$metadata#users(id,accountEnabled,employeeId,passwordProfile)"
    user = body["value"][0]
    assert set(user) == {"id", "accountEnabled", "employeeId", "passwordProfile"}
    assert user["accountEnabled"] is True and user["employeeId"].startswith("E")
    assert user["passwordProfile"] is None


def test_filters_on_default_supported_properties(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries (eq / in / startsWith work by default)"""

    def upns(expression: str) -> list[str]:
        response = sim.call("GET", "/users", {"$filter": expression, "$select": "userPrincipalName"})
        assert response.status == 200, response.body
        return sorted(u["userPrincipalName"] for u in response.body["value"])

    assert upns("userPrincipalName eq 'USER0007@contoso.com'") == ["user0007@contoso.com"]
    assert upns("employeeId in ('E0001','E0002')") == ["user0001@contoso.com", "user0002@contoso.com"]
    assert upns("startswith(mailNickname,'user024')") == [f"user{i:04d}@contoso.com" for i in range(240, 250)]
    assert upns("proxyAddresses/any(p:p eq 'smtp:user0003@contoso.com')") == ["user0003@contoso.com"]
    assert upns("proxyAddresses/any(p:startswith(p,'SMTP:user0011'))") == ["user0011@contoso.com"]
    assert len(upns("surname eq 'O''Brien'")) == 15
    assert upns("surname eq 'O''Brien' and (employeeId eq 'E0007' or employeeId eq 'E0012')") == [
        "user0012@contoso.com"
    ]


def test_advanced_operators_without_eventual_are_refused(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries#error-handling-for-advanced-queries-on-directory-objects"""
    response = sim.call("GET", "/users", {"$filter": "endswith(mail,'@contoso.com')", "$count": "true"})
    status, code, message = error_of(response)
    assert (status, code) == (400, "Request_UnsupportedQuery")
    assert message.startswith("Operator 'endsWith' is not supported because the required parameters")
    only_header = sim.call("GET", "/users", {"$filter": "accountEnabled ne true"}, headers=EVENTUAL)
    assert error_of(only_header)[1] == "Request_UnsupportedQuery"


def test_advanced_query_with_count(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries (ne with ConsistencyLevel + $count=true)"""
    sim.call("PATCH", "/users/user0005@contoso.com", body={"accountEnabled": False})
    query = {"$filter": "accountEnabled ne true", "$count": "true", "$select": "userPrincipalName"}
    body = sim.call("GET", "/users", query, headers=EVENTUAL).body
    assert body["@odata.count"] == 1
    assert body["value"] == [{"userPrincipalName": "user0005@contoso.com"}]


def test_count_without_eventual_is_silently_ignored(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries : without ConsistencyLevel, "$count=true" is
    silently ignored (the page's example shows a 200 without @odata.count)."""
    response = sim.call("GET", "/users", {"$count": "true", "$top": "5"})
    assert response.status == 200 and "@odata.count" not in response.body
    eventual = sim.call("GET", "/users", {"$count": "true", "$top": "5"}, headers=EVENTUAL)
    assert eventual.body["@odata.count"] == 250


def test_unsupported_filter_property(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries ("Unsupported or invalid query filter clause")"""
    assert error_of(sim.call("GET", "/users", {"$filter": "favouriteColour eq 'blue'"})) == (
        400,
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'favouriteColour' of resource 'User'.",
    )


# -- get ----------------------------------------------------------------------------------------------------------


def test_get_by_id_or_upn_case_insensitive(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-get ("{id | userPrincipalName}")"""
    by_upn = sim.call("GET", "/users/USER0042@Contoso.com")
    assert by_upn.status == 200 and by_upn.body["userPrincipalName"] == "user0042@contoso.com"
    assert by_upn.body["@odata.context"] == f"{BASE}/$metadata#users/$entity"
    by_id = sim.call("GET", f"/users/{by_upn.body['id'].upper()}", {"$select": "displayName,jobTitle"})
    assert set(by_id.body) == {"@odata.context", "displayName", "jobTitle"}


def test_get_missing_user_is_404(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-get (Request_ResourceNotFound)"""
    assert error_of(sim.call("GET", "/users/nobody@contoso.com")) == (
        404,
        "Request_ResourceNotFound",
        NOT_FOUND.format("nobody@contoso.com"),
    )


# -- create -------------------------------------------------------------------------------------------------------


def test_create_user_201_and_mail_becomes_primary_proxy(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-users (201 Created with the user)"""
    response = sim.create_user("newbie", mail="newbie@contoso.com", employeeId="E9999")
    assert response.status == 201
    assert response.body["userPrincipalName"] == "newbie@contoso.com"
    assert list(response.body)[1:] == list(USER_DEFAULT)
    got = sim.call(
        "GET",
        f"/users/{response.body['id']}",
        {"$select": "proxyAddresses,passwordProfile,createdDateTime,accountEnabled"},
    ).body
    assert got["proxyAddresses"] == ["SMTP:newbie@contoso.com"]
    assert got["passwordProfile"] is None
    assert got["createdDateTime"] == "2023-11-14T22:13:20Z" and got["accountEnabled"] is True


@pytest.mark.parametrize(
    "missing", ["accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"]
)
def test_create_requires_properties(sim: Sim, missing: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-users (required properties)"""
    body = user_body("someone")
    del body[missing]
    assert error_of(sim.call("POST", "/users", body=body)) == (
        400,
        "Request_BadRequest",
        f"Property {missing} value is required but is empty or missing.",
    )


@pytest.mark.parametrize("upn", ["x@unverified.example", "x@elsewhere.org"])
def test_create_needs_a_verified_domain(sim: Sim, upn: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-users (UPN domain must be verified)"""
    assert error_of(sim.call("POST", "/users", body=user_body("x", userPrincipalName=upn))) == (
        400,
        "Request_BadRequest",
        "The domain portion of the userPrincipalName property is invalid. You must use "
        "one of the verified domain names in your organization.",
    )


@pytest.mark.parametrize(
    ("extra", "prop"),
    [
        ({"userPrincipalName": "User0001@CONTOSO.com"}, "userPrincipalName"),
        ({"mailNickname": "USER0002"}, "mailNickname"),
        ({"userPrincipalName": "user0003@fabrikam.com", "mail": "user0003@contoso.com"}, "proxyAddresses"),
    ],
)
def test_create_duplicates_are_object_conflicts(sim: Sim, extra: dict[str, str], prop: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-users ("Another object with the same value ...")"""
    response = sim.call("POST", "/users", body=user_body("fresh", **extra))
    message = f"Another object with the same value for property {prop} already exists."
    assert error_of(response) == (400, "Request_BadRequest", message)
    assert response.body["error"]["details"] == [
        {"code": "ObjectConflict", "message": message, "target": prop}
    ]


def test_create_upn_equal_to_a_secondary_proxy_address_conflicts(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (proxyAddresses are unique in the tenant)"""
    sim.call("PATCH", "/users/user0004@contoso.com", body={"mail": "renamed@contoso.com"})
    proxies = sim.call("GET", "/users/user0004@contoso.com", {"$select": "proxyAddresses"}).body[
        "proxyAddresses"
    ]
    assert proxies == ["SMTP:renamed@contoso.com", "smtp:user0004@contoso.com"]
    clash = sim.call("POST", "/users", body=user_body("clash", userPrincipalName="renamed@contoso.com"))
    assert (
        error_of(clash)[2] == "Another object with the same value for property proxyAddresses already exists."
    )


@pytest.mark.parametrize("password", ["Sh0rt!", "alllowercase1", "NoDigitsOrSymbols", "x" * 250 + "A1!xyzw"])
def test_password_complexity(sim: Sim, password: str) -> None:
    """https://learn.microsoft.com/en-us/entra/identity/authentication/concept-password-ban-bad-combined-policy"""
    body = user_body("pw", passwordProfile={"password": password})
    assert error_of(sim.call("POST", "/users", body=body)) == (
        400,
        "Request_BadRequest",
        "The specified password does not comply with password complexity requirements. "
        "Please provide a different password.",
    )


def test_password_with_three_classes_is_accepted(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/entra/identity/authentication/concept-password-ban-bad-combined-policy"""
    assert (
        sim.call("POST", "/users", body=user_body("pw", passwordProfile={"password": "lower-case-9"})).status
        == 201
    )


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        ("id", "Property 'id' is read-only and cannot be set."),
        ("proxyAddresses", "Property 'proxyAddresses' is read-only and cannot be set."),
        ("createdDateTime", "Property 'createdDateTime' is read-only and cannot be set."),
        ("shoeSize", "Invalid property 'shoeSize'."),
    ],
)
def test_create_refuses_read_only_and_unknown_properties(sim: Sim, prop: str, message: str) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (read-only properties); unknown → "Invalid
    property" as Graph answers (github.com/pnp/PnP-Sites-Core/issues/1807)."""
    assert error_of(sim.call("POST", "/users", body=user_body("ro", **{prop: ["x"]}))) == (
        400,
        "Request_BadRequest",
        message,
    )


def test_federated_domain_requires_immutable_id_without_dollar_or_underscore() -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (onPremisesImmutableId: required for a federated
    UPN domain; "$" and "_" can't be used)"""
    sim = make_sim(
        domains=[
            {"id": "contoso.com", "isDefault": True, "isVerified": True},
            {"id": "fed.contoso.com", "isVerified": True, "authenticationType": "Federated"},
        ]
    )
    body = {
        k: v
        for k, v in user_body("f", userPrincipalName="f@fed.contoso.com").items()
        if k != "passwordProfile"
    }
    assert error_of(sim.call("POST", "/users", body=body))[2] == (
        "Property onPremisesImmutableId value is required but is empty or missing."
    )
    bad = sim.call("POST", "/users", body={**body, "onPremisesImmutableId": "abc_def"})
    assert (
        error_of(bad)[2] == "Invalid value specified for property 'onPremisesImmutableId' of resource 'User'."
    )
    assert sim.call("POST", "/users", body={**body, "onPremisesImmutableId": "QUJDREVG"}).status == 201


def test_invalid_mail_nickname(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (mailNickname characters); the answer carries
    details [{"code": "InvalidValue", "target": "mailNickname"}] (microsoftgraph/microsoft-graph-docs#5777)."""
    response = sim.call("POST", "/users", body=user_body("badname", mailNickname="bad name"))
    assert error_of(response) == (
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'mailNickname' of resource 'User'.",
    )
    assert response.body["error"]["details"] == [{"code": "InvalidValue", "target": "mailNickname"}]


@pytest.mark.parametrize(
    ("prop", "limit"),
    [
        ("displayName", 256),
        ("givenName", 64),
        ("surname", 64),
        ("mailNickname", 64),
        ("jobTitle", 128),
        ("department", 64),
        ("employeeId", 16),
        ("companyName", 64),
        ("mobilePhone", 64),
        ("city", 128),
        ("state", 128),
        ("country", 128),
        ("postalCode", 40),
        ("streetAddress", 1024),
    ],
)
def test_documented_maximum_lengths(sim: Sim, prop: str, limit: int) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user ("Maximum length is N characters" per property):
    the limit is accepted, one more character is refused on create and on PATCH."""
    assert sim.create_user("atlimit", **{prop: "a" * limit}).status == 201
    too_long = sim.create_user("overlimit", **{prop: "a" * (limit + 1)})
    invalid = (
        400,
        "Request_BadRequest",
        f"Invalid value specified for property '{prop}' of resource 'User'.",
    )
    assert error_of(too_long) == invalid
    assert (
        error_of(sim.call("PATCH", "/users/user0001@contoso.com", body={prop: "b" * (limit + 1)})) == invalid
    )


@pytest.mark.parametrize(
    "upn",
    [
        "first+tag@contoso.com",
        "space name@contoso.com",
        "accent\u00e9@contoso.com",
        "trailing.@contoso.com",
        "a@b@contoso.com",
        "@contoso.com",
        "x" * 65 + "@contoso.com",
    ],
)
def test_upn_policy_refuses(sim: Sim, upn: str) -> None:
    """https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy#username-policies
    (characters A-Z a-z 0-9 ' . - _ ! # ^ ~; no "." before the "@"; up to 64 characters before it); "+" is not
    supported (microsoftgraph/microsoft-graph-docs#15161)."""
    assert error_of(sim.create_user("upn", userPrincipalName=upn)) == (
        400,
        "Request_BadRequest",
        "Property userPrincipalName is invalid.",
    )


def test_upn_policy_accepts_its_own_characters_and_length_limits() -> None:
    """https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy#username-policies
    (64 characters before the "@", 48 after, 113 in total)"""
    long_domain = "d" * 44 + ".com"  # 48 characters
    sim = make_sim(domains=[{"id": long_domain, "isDefault": True, "isVerified": True}])
    assert sim.create_user("ok", userPrincipalName="O'Neil.a-b_c!d#e^f~g@" + long_domain).status == 201
    assert sim.create_user("max", userPrincipalName="m" * 64 + "@" + long_domain).status == 201
    sim.directory.domains.add({"id": "e" * 45 + ".com", "isVerified": True})  # 49 characters
    assert error_of(sim.create_user("dom", userPrincipalName="dom@" + "e" * 45 + ".com"))[2] == (
        "Property userPrincipalName is invalid."
    )


def test_get_with_select_names_the_selection_in_the_context(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-get (example with $select:
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(displayName,givenName,postalCode,...)/$entity")"""
    body = sim.call("GET", "/users/user0001@contoso.com", {"$select": "displayName,givenName"}).body
    assert body["@odata.context"] == f"{BASE}/$metadata#users(displayName,givenName)/$entity"
    assert sim.call("GET", "/users/user0001@contoso.com").body["@odata.context"] == (
        f"{BASE}/$metadata#users/$entity"
    )


# -- update / delete / revoke ---------------------------------------------------------------------------------------


def test_patch_updates_and_returns_204(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update (204 No Content)"""
    response = sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "CTO", "department": None})
    assert (response.status, response.body) == (204, None)
    got = sim.call("GET", "/users/user0001@contoso.com", {"$select": "jobTitle,department"}).body
    assert (got["jobTitle"], got["department"]) == ("CTO", None)


def test_patch_validates_like_create(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update (same rules as create for UPN and password)"""
    upn = sim.call("PATCH", "/users/user0001@contoso.com", body={"userPrincipalName": "user0002@contoso.com"})
    assert (
        error_of(upn)[2]
        == "Another object with the same value for property userPrincipalName already exists."
    )
    own = sim.call("PATCH", "/users/user0001@contoso.com", body={"userPrincipalName": "user0001@contoso.com"})
    assert own.status == 204
    domain = sim.call(
        "PATCH", "/users/user0001@contoso.com", body={"userPrincipalName": "a@unverified.example"}
    )
    assert error_of(domain)[2].startswith("The domain portion of the userPrincipalName property is invalid.")
    weak = sim.call("PATCH", "/users/user0001@contoso.com", body={"passwordProfile": {"password": "weak"}})
    assert error_of(weak)[2].startswith("The specified password does not comply")
    assert error_of(sim.call("PATCH", "/users/user0001@contoso.com", body={"id": "x"}))[2] == (
        "Property 'id' is read-only and cannot be set."
    )


def test_patch_rename_frees_the_old_upn(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update (userPrincipalName is updatable)"""
    assert sim.create_user("temp").status == 201
    assert (
        sim.call(
            "PATCH",
            "/users/temp@contoso.com",
            body={"userPrincipalName": "boss@contoso.com", "mailNickname": "boss"},
        ).status
        == 204
    )
    assert sim.call("GET", "/users/boss@contoso.com").status == 200
    assert sim.call("GET", "/users/temp@contoso.com").status == 404
    assert sim.create_user("temp").status == 201
    # A seeded user's old address stays a secondary proxy address, so it is still taken.
    sim.call("PATCH", "/users/user0001@contoso.com", body={"userPrincipalName": "u1@contoso.com"})
    clash = sim.call("POST", "/users", body=user_body("other", userPrincipalName="user0001@contoso.com"))
    assert (
        error_of(clash)[2] == "Another object with the same value for property proxyAddresses already exists."
    )


def test_delete_is_204_then_gone(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delete (204; deleted users go to deleted items)"""
    assert sim.call("DELETE", "/users/user0009@contoso.com").status == 204
    assert error_of(sim.call("GET", "/users/user0009@contoso.com"))[0] == 404
    assert error_of(sim.call("DELETE", "/users/user0009@contoso.com"))[0] == 404
    assert sim.directory.user_count() == 249


def test_revoke_sign_in_sessions(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-revokesigninsessions (200, {"value": true})"""
    sim.clock.advance(60)
    response = sim.call(
        "POST",
        "/users/user0001@contoso.com/revokeSignInSessions",
        perms=frozenset({"User.RevokeSessions.All"}),
    )
    assert (response.status, response.body) == (
        200,
        {"@odata.context": f"{BASE}/$metadata#Edm.Boolean", "value": True},
    )
    got = sim.call("GET", "/users/user0001@contoso.com", {"$select": "signInSessionsValidFromDateTime"}).body
    assert got["signInSessionsValidFromDateTime"] == "2023-11-14T22:14:20Z"


# -- permissions, routing ------------------------------------------------------------------------------------------


def test_permissions() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-update#permissions (accountEnabled: at least
    User.EnableDisableAccount.All; passwordProfile: User-PasswordProfile.ReadWrite.All)"""
    sim = make_sim(3)
    denied = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    assert error_of(sim.call("GET", "/users", perms=frozenset({"Group.Read.All"}))) == denied
    assert sim.call("GET", "/users", perms=frozenset({"User.Read.All"})).status == 200
    assert (
        error_of(sim.call("POST", "/users", body=user_body("z"), perms=frozenset({"User.Read.All"})))
        == denied
    )
    enable = frozenset({"User.EnableDisableAccount.All"})
    assert (
        sim.call("PATCH", "/users/user0001@contoso.com", body={"accountEnabled": False}, perms=enable).status
        == 204
    )
    assert (
        error_of(sim.call("PATCH", "/users/user0001@contoso.com", body={"jobTitle": "x"}, perms=enable))
        == denied
    )
    writer = frozenset({"User.ReadWrite.All"})
    reset = {"passwordProfile": {"password": STRONG}}
    assert error_of(sim.call("PATCH", "/users/user0001@contoso.com", body=reset, perms=writer)) == denied
    delegated = sim.call(
        "PATCH",
        "/users/user0001@contoso.com",
        body=reset,
        delegated=True,
        perms=frozenset({"Directory.AccessAsUser.All"}),
    )
    assert delegated.status == 204


def test_unknown_segment_and_method(sim: Sim) -> None:
    """Graph answers 400 "Resource not found for the segment" and 405 for a method the target does not support."""
    assert error_of(sim.call("GET", "/usres")) == (
        400,
        "BadRequest",
        "Resource not found for the segment 'usres'.",
    )
    assert error_of(sim.call("GET", "/users/user0001@contoso.com/photoz"))[2] == (
        "Resource not found for the segment 'photoz'."
    )
    assert error_of(sim.call("PUT", "/users/user0001@contoso.com")) == (
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )


def test_synced_users_refuse_cloud_edits() -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (onPremisesSyncEnabled: "read-only ... mastered
    on-premises"); Graph's message: "Unable to update the specified properties for on-premises mastered ..."."""
    sim = make_sim(2, sync=True)
    refused = sim.call("PATCH", "/users/user0001@contoso.com", body={"displayName": "Cloud edit"})
    assert error_of(refused) == (
        400,
        "Request_BadRequest",
        "Unable to update the specified properties for "
        "on-premises mastered Directory Sync objects or objects currently undergoing "
        "migration.",
    )
    assert sim.call("PATCH", "/users/user0001@contoso.com", body={"usageLocation": "DE"}).status == 204
    assert error_of(sim.call("DELETE", "/users/user0002@contoso.com"))[0] == 400
    assert sim.create_user("cloudonly").status == 201
    assert sim.call("PATCH", "/users/cloudonly@contoso.com", body={"displayName": "ok"}).status == 204


# -- manager -----------------------------------------------------------------------------------------------------


def test_manager_set_get_remove(sim: Sim) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-manager, user-list-manager, user-delete-manager"""
    boss = sim.call("GET", "/users/user0100@contoso.com").body["id"]
    assert error_of(sim.call("GET", "/users/user0001@contoso.com/manager")) == (
        404,
        "Request_ResourceNotFound",
        NOT_FOUND.format("manager"),
    )
    put = sim.call(
        "PUT",
        "/users/user0001@contoso.com/manager/$ref",
        body={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{boss}"},
    )
    assert put.status == 204
    manager = sim.call("GET", "/users/user0001@contoso.com/manager").body
    assert (manager["@odata.type"], manager["id"]) == ("#microsoft.graph.user", boss)
    assert sim.call("DELETE", "/users/user0001@contoso.com/manager/$ref").status == 204
    assert sim.call("GET", "/users/user0001@contoso.com/manager").status == 404
    assert error_of(sim.call("PUT", "/users/user0001@contoso.com/manager/$ref", body={"@odata.id": "junk"}))[
        :2
    ] == (400, "Request_BadRequest")
