"""The M365 adapter's tenant side (``shared.adapters.m365.tenant``) against the simulated cloud: role holders read as
Graph lists them (an active assignment, a PIM eligibility, a role-assignable group's member), none at all without
``RoleManagement.Read.Directory``; a domain's accounts by an advanced query; domains with their password policy.
https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleassignments,
.../rbacapplication-list-roleeligibilityscheduleinstances, .../aad-advanced-queries
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared.bootstrap import Container
from shared.config import load_settings
from shared.domain.model import Directory, DirectoryOptions
from tests.conftest import DemoStack
from tests.integration.tenants import sim_tenant
from tools import demo

NOW = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)


@dataclass
class Made:
    directory: Directory
    domain: str
    ids: dict[str, str]
    """user0001… → its object id."""


async def make(stack: DemoStack, c: Container, roles: list[str]) -> Made:
    sim = stack.sim
    t = sim_tenant(stack, "Adapter tenant", roles=roles, seed_users=4)
    tenant_id, client_id, secret, domain = t.tenant_id, t.client_id, t.secret, t.domain
    name = f"adapter-{tenant_id}"
    await c.secret_store.set(name, secret)
    directory = Directory(
        tenant_id, "Adapter", tenant_id, "app", client_id, name, (), "active", DirectoryOptions(), NOW, NOW
    )
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca), timeout=30) as http:
        token = http.post(
            f"{sim.url}/{tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        listed = http.get(f"{sim.url}/v1.0/users", headers={"Authorization": f"Bearer {token}"}).json()[
            "value"
        ]
        ids = {u["userPrincipalName"].split("@")[0]: u["id"] for u in listed}
        group = http.post(
            f"{sim.url}/v1.0/groups",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "displayName": "Helpdesk",
                "mailEnabled": False,
                "mailNickname": "helpdesk",
                "securityEnabled": True,
                "isAssignableToRole": True,
                "members@odata.bind": [f"{sim.url}/v1.0/directoryObjects/{ids['user0003']}"],
            },
        )
        assert group.status_code == 201, group.text
    ids["group"] = group.json()["id"]
    grants = [
        {"principal": ids["user0001"], "role": "Global Administrator"},
        {"principal": ids["user0002"], "role": "User Administrator", "eligible": True},
        {"principal": ids["group"], "role": "Helpdesk Administrator"},
    ]
    for grant in grants:
        sim.control("POST", f"/_sim/tenants/{tenant_id}/roleAssignments", json=grant).raise_for_status()
    return Made(directory, domain, ids)


@pytest.fixture
async def container(demo_stack: DemoStack) -> AsyncIterator[Container]:
    c = Container(load_settings(demo_stack.settings))
    yield c
    await c.aclose()


async def test_role_holders_are_read_active_eligible_and_through_role_assignable_groups(
    demo_stack: DemoStack, container: Container
) -> None:
    made = await make(demo_stack, container, demo.DEMO_ROLES)
    holders = await container.m365_tenant.role_holders(made.directory)
    assert holders is not None
    described = {m: sorted(g.describe() for g in grants) for m, grants in holders.grants.items()}
    assert described == {
        made.ids["user0001"]: ["Global Administrator"],
        made.ids["user0002"]: ["User Administrator (eligible)"],
        made.ids["user0003"]: ["Helpdesk Administrator (via group Helpdesk)"],
    }
    assert holders.global_admins == {made.ids["user0001"]}
    assert holders.names[made.ids["user0003"]] == f"user0003@{made.domain}"


async def test_without_role_management_read_the_role_holders_are_unknown_not_empty(
    demo_stack: DemoStack, container: Container
) -> None:
    roles = [r for r in demo.DEMO_ROLES if r != "RoleManagement.Read.Directory"]
    made = await make(demo_stack, container, roles)
    assert await container.m365_tenant.role_holders(made.directory) is None


async def test_a_domains_accounts_and_the_tenants_domains_with_their_password_policy(
    demo_stack: DemoStack, container: Container
) -> None:
    made = await make(demo_stack, container, demo.DEMO_ROLES)
    tenant = container.m365_tenant
    accounts = await tenant.domain_accounts(made.directory, made.domain)
    assert sorted(a.user_principal_name for a in accounts) == [
        f"user000{n}@{made.domain}" for n in range(1, 5)
    ]
    domains = {d.name: d for d in await tenant.domains(made.directory)}
    assert domains[made.domain].is_default and domains[made.domain].password_validity_days == 2147483647
    assert sum(1 for d in domains.values() if d.is_initial) == 1
    assert await tenant.federation(made.directory, made.domain) is None
    assert await tenant.on_premises_sync(made.directory) is None
    written = await tenant.set_password_validity(made.directory, made.domain, 90)
    assert written.ok
    assert {d.name: d for d in await tenant.domains(made.directory)}[made.domain].password_validity_days == 90
    refused = await tenant.set_password_validity(made.directory, made.domain, 5)
    assert refused.outcome == "failed" and "passwordValidityPeriodInDays" in (refused.detail or "")
