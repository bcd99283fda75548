"""The control API's additions for the tenant admin's side (clients, roles, consents, policies, the clock).

The control API is the simulator's own (not Microsoft's): these tests hold it to its README contract - what it
accepts, what it refuses with a message naming the field, and that what it sets shows through Microsoft's APIs
(MSAL and Graph) as the page each behaviour cites documents it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.sim.conftest import DOMAIN, TENANT_ID, SimTenant, client_credentials

NEW_CLIENT = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"


def control(tenant: SimTenant, method: str, path: str, body: Any = None) -> Any:
    return tenant.sim.control(method, f"/_sim/tenants/{TENANT_ID}{path}", json=body)


def test_put_client_creates_then_adds_credentials_without_removing_any(tenant: SimTenant) -> None:
    """PUT /_sim/tenants/{id}/clients/{clientId}: 201 the first time, 200 after; a secret given again is not added
    twice, a new one is added beside the old (both authenticate: v2-oauth2-client-creds-grant-flow), settings are
    replaced."""
    first = control(
        tenant, "PUT", f"/clients/{NEW_CLIENT}", {"clientSecret": "one", "roles": ["User.Read.All"]}
    )
    assert first.status_code == 201 and first.json()["secretCount"] == 1
    same = control(
        tenant, "PUT", f"/clients/{NEW_CLIENT}", {"clientSecret": "one", "roles": ["User.Read.All"]}
    )
    assert same.status_code == 200 and same.json()["secretCount"] == 1
    more = control(
        tenant, "PUT", f"/clients/{NEW_CLIENT}", {"clientSecret": "two", "roles": ["Group.Read.All"]}
    )
    assert (
        more.status_code == 200
        and more.json()["secretCount"] == 2
        and more.json()["roles"] == ["Group.Read.All"]
    )
    assert "one" not in more.text and "two" not in more.text
    for secret in ("one", "two"):
        resp = tenant.token_request(client_credentials(client_id=NEW_CLIENT, client_secret=secret))
        assert resp.status_code == 200, resp.text
    for body, needle in (
        ({"clientId": "not-it"}, "clientId"),
        ({"clientSecrets": [{"secretText": "x", "endDateTime": "tomorrow"}]}, "endDateTime"),
        ({"keyCredentials": [{"certificatePem": "nope"}]}, "certificatePem"),
        ({"bogus": 1}, "unknown keys"),
    ):
        bad = control(tenant, "PUT", f"/clients/{NEW_CLIENT}", body)
        assert bad.status_code == 400 and needle in bad.json()["error"]["message"], bad.text
    assert (
        tenant.sim.control(
            "PUT", f"/_sim/tenants/{'0' * 8}-0000-4000-8000-{'0' * 12}/clients/{NEW_CLIENT}", json={}
        ).status_code
        == 404
    )


def test_a_secret_with_a_window_expires_on_the_simulators_clock(tenant: SimTenant) -> None:
    """clientSecrets entries may carry start/end (passwordCredential's window); past endDateTime the token endpoint
    answers AADSTS7000222 (reference-error-codes)."""
    spec = {"clientSecrets": [{"secretText": "short-lived", "endDateTime": "2030-01-01T00:00:00Z"}]}
    assert control(tenant, "PUT", f"/clients/{NEW_CLIENT}", spec).status_code == 201
    form = client_credentials(client_id=NEW_CLIENT, client_secret="short-lived")
    assert tenant.token_request(form).status_code == 200
    tenant.clock(1893456000 - time.time() + 60)  # a minute after 2030-01-01
    expired = tenant.token_request(form)
    assert expired.status_code == 401 and expired.json()["error_codes"] == [7000222]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"principal": f"user0001@{DOMAIN}", "role": "Chief Everything Officer"}, 400, "role"),
        ({"principal": "nobody@contoso.example", "role": "Global Administrator"}, 404, "principal"),
        (
            {"principal": f"user0001@{DOMAIN}", "role": "Global Administrator", "startDateTime": "x"},
            400,
            "eligible",
        ),
        ({"role": "Global Administrator"}, 400, "principal"),
    ],
)
def test_role_seeding_refuses_what_it_cannot_assign(
    tenant: SimTenant, body: dict[str, Any], status: int, needle: str
) -> None:
    resp = control(tenant, "POST", "/roleAssignments", body)
    assert resp.status_code == status and needle in resp.json()["error"]["message"], resp.text


def test_role_seeding_by_name_id_or_client_shows_in_graph(tenant: SimTenant) -> None:
    """POST /_sim/tenants/{id}/roleAssignments: a role by display name or template id, a principal by UPN, object
    id or client id (the app's service principal); Graph's roleAssignments show them
    (rbacapplication-list-roleassignments)."""
    by_name = control(
        tenant, "POST", "/roleAssignments", {"principal": f"user0001@{DOMAIN}", "role": "User Administrator"}
    )
    by_client = control(
        tenant,
        "POST",
        "/roleAssignments",
        {"principal": tenant.client_id, "role": "62e90394-69f5-4237-9190-012177145e10"},
    )
    assert by_name.status_code == by_client.status_code == 201
    listed = tenant.graph("GET", "/roleManagement/directory/roleAssignments?$expand=principal").json()[
        "value"
    ]
    kinds = sorted(a["principal"]["@odata.type"] for a in listed)
    assert kinds == ["#microsoft.graph.servicePrincipal", "#microsoft.graph.user"]


def test_tap_policy_and_tenant_sync_flag_are_validated(tenant: SimTenant) -> None:
    assert control(tenant, "GET", "/policies/temporaryAccessPass").json()["state"] == "disabled"
    for bad in (
        {"state": "on"},
        {"defaultLifetimeInMinutes": 5},
        {"minimumLifetimeInMinutes": 500},
        {"nope": 1},
    ):
        assert control(tenant, "PUT", "/policies/temporaryAccessPass", bad).status_code == 400, bad
    assert (
        control(tenant, "PUT", "/policies/temporaryAccessPass", {"state": "enabled"}).json()["state"]
        == "enabled"
    )
    synced = control(tenant, "PATCH", "", {"onPremisesSyncEnabled": True})
    assert synced.status_code == 200 and synced.json()["onPremisesSyncEnabled"] is True
    org = tenant.graph("GET", "/organization").json()["value"][0]
    assert org["onPremisesSyncEnabled"] is True  # resources/organization
    assert control(tenant, "PATCH", "", {"onPremisesSyncEnabled": "yes"}).status_code == 400


def test_the_clock_advances_and_refuses_going_back_by_advance(tenant: SimTenant) -> None:
    first = tenant.sim.control("PUT", "/_sim/clock", json={"advanceSeconds": 86400}).json()
    second = tenant.sim.control("PUT", "/_sim/clock", json={"advanceSeconds": 86400}).json()
    assert (first["offsetSeconds"], second["offsetSeconds"]) == (86400, 172800)
    assert tenant.sim.control("PUT", "/_sim/clock", json={"advanceSeconds": -1}).status_code == 400
    assert (
        tenant.sim.control("PUT", "/_sim/clock", json={"advanceSeconds": 1, "offsetSeconds": 1}).status_code
        == 400
    )


def test_consents_of_an_unknown_user_or_tenant_are_404(tenant: SimTenant) -> None:
    assert control(tenant, "GET", "/consents?user=nobody@contoso.example").status_code == 404
    assert control(tenant, "DELETE", "/consents?clientId=not-a-guid").status_code == 400
    assert (
        tenant.sim.control("GET", "/_sim/tenants/00000000-0000-4000-8000-000000000000/consents").status_code
        == 404
    )
    assert control(tenant, "DELETE", "/consents").json() == {"revoked": 0}
