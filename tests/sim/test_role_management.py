"""Role management and Graph's own guard on privileged users, through msgraph-sdk.

Pages followed (each test names its own):
- https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roledefinitions and
  https://learn.microsoft.com/en-us/entra/identity/role-based-access-control/permissions-reference (template ids)
- https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleassignments ($filter, $expand=principal),
  rbacapplication-post-roleassignments, unifiedroleassignment-delete
- https://learn.microsoft.com/en-us/graph/api/directoryrole-list, directoryrole-list-members,
  directoryrole-post-members, directoryrole-delete-member
- https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleeligibilityscheduleinstances
- https://learn.microsoft.com/en-us/graph/api/user-update and resources/users ("Who can update sensitive
  attributes?"): 403 Authorization_RequestDenied for the privileged user only
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.models.user import User
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
    RoleAssignmentsRequestBuilder,
)
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_response_content import BatchResponseContent

from tests.sim.conftest import CLIENT_ID, DOMAIN, TENANT_ID, SimTenant, graph_client

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
PRIVILEGED_AUTH_ADMIN = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
ROLE_ADMIN_CLIENT = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"
ROLE_ADMIN_SECRET = "role-admin-secret"
ERRORS: dict[str, Any] = {"XXX": ODataError}


def role_admin(tenant: SimTenant, roles: list[str] | None = None) -> ClientSecretCredential:
    """An app with RoleManagement.ReadWrite.Directory (and the user permissions), as a credential."""
    body = {
        "clientSecret": ROLE_ADMIN_SECRET,
        "roles": roles
        if roles is not None
        else ["RoleManagement.ReadWrite.Directory", "User.ReadWrite.All", "Group.ReadWrite.All"],
    }
    resp = tenant.sim.control("PUT", f"/_sim/tenants/{TENANT_ID}/clients/{ROLE_ADMIN_CLIENT}", json=body)
    assert resp.status_code in (200, 201), resp.text
    return tenant.credential(ClientSecretCredential, secret=ROLE_ADMIN_SECRET, client_id=ROLE_ADMIN_CLIENT)


def seed_role(tenant: SimTenant, principal: str, role: str, **extra: Any) -> dict[str, Any]:
    resp = tenant.sim.control(
        "POST",
        f"/_sim/tenants/{TENANT_ID}/roleAssignments",
        json={"principal": principal, "role": role, **extra},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def assignments_query(**kwargs: Any) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
            **kwargs
        )
    )


async def user_id(graph: GraphServiceClient, nick: str) -> str:
    user = await graph.users.by_user_id(f"{nick}@{DOMAIN}").get()
    assert user is not None and user.id
    return str(user.id)


async def test_role_definitions_carry_the_built_in_template_ids(tenant: SimTenant) -> None:
    """rbacapplication-list-roledefinitions: the built-in roles, each id its template id (permissions-reference:
    Global Administrator 62e90394-…, Privileged Role Administrator e8611ab8-…, User Administrator fe930be7-…)."""
    async with graph_client(tenant) as graph:
        listed = await graph.role_management.directory.role_definitions.get()
        assert listed is not None and listed.value
        names = {str(d.id): d.display_name for d in listed.value}
        assert names[GLOBAL_ADMIN] == "Global Administrator"
        assert names[PRIVILEGED_ROLE_ADMIN] == "Privileged Role Administrator"
        assert names[USER_ADMIN] == "User Administrator"
        ga = await graph.role_management.directory.role_definitions.by_unified_role_definition_id(
            GLOBAL_ADMIN
        ).get()
        assert ga is not None and ga.template_id == GLOBAL_ADMIN and ga.is_built_in is True


async def test_role_assignments_are_created_filtered_expanded_and_deleted(tenant: SimTenant) -> None:
    """rbacapplication-post-roleassignments (201, tenant scope "/"), rbacapplication-list-roleassignments with
    ``$filter`` on roleDefinitionId or principalId and ``$expand=principal``, unifiedroleassignment-delete (204).
    Creating one needs RoleManagement.ReadWrite.Directory."""
    async with graph_client(tenant, role_admin(tenant)) as graph:
        admin_id = await user_id(graph, "user0001")
        created = await graph.role_management.directory.role_assignments.post(
            UnifiedRoleAssignment(
                role_definition_id=GLOBAL_ADMIN, principal_id=admin_id, directory_scope_id="/"
            )
        )
        assert created is not None and created.id and created.id.endswith("-1")
        await graph.role_management.directory.role_assignments.post(
            UnifiedRoleAssignment(
                role_definition_id=USER_ADMIN,
                principal_id=await user_id(graph, "user0002"),
                directory_scope_id="/",
            )
        )
        ga = await graph.role_management.directory.role_assignments.get(
            assignments_query(filter=f"roleDefinitionId eq '{GLOBAL_ADMIN}'", expand=["principal"])
        )
        assert ga is not None and ga.value and len(ga.value) == 1
        principal = ga.value[0].principal
        assert isinstance(principal, User) and principal.user_principal_name == f"user0001@{DOMAIN}"
        by_principal = await graph.role_management.directory.role_assignments.get(
            assignments_query(filter=f"principalId eq '{admin_id}'")
        )
        assert by_principal is not None and [a.role_definition_id for a in by_principal.value or []] == [
            GLOBAL_ADMIN
        ]
        assert by_principal.value and by_principal.value[0].principal is None  # not expanded
        await graph.role_management.directory.role_assignments.by_unified_role_assignment_id(
            created.id
        ).delete()
        after = await graph.role_management.directory.role_assignments.get(
            assignments_query(filter=f"principalId eq '{admin_id}'")
        )
        assert after is not None and after.value == []

        with pytest.raises(ODataError) as unknown:
            await graph.role_management.directory.role_assignments.post(
                UnifiedRoleAssignment(
                    role_definition_id=GLOBAL_ADMIN,
                    principal_id="99999999-9999-4999-8999-999999999999",
                    directory_scope_id="/",
                )
            )
        assert unknown.value.response_status_code == 404
        plain_group = await graph.groups.post(
            Group(display_name="plain", mail_enabled=False, mail_nickname="plain", security_enabled=True)
        )
        assert plain_group is not None
        with pytest.raises(ODataError) as not_assignable:
            await graph.role_management.directory.role_assignments.post(
                UnifiedRoleAssignment(
                    role_definition_id=USER_ADMIN, principal_id=str(plain_group.id), directory_scope_id="/"
                )
            )
        assert not_assignable.value.response_status_code == 400
    async with graph_client(tenant) as reader:  # Directory.ReadWrite.All reads roles, cannot assign them
        listed = await reader.role_management.directory.role_assignments.get()
        assert listed is not None and len(listed.value or []) == 1
        with pytest.raises(ODataError) as denied:
            await reader.role_management.directory.role_assignments.post(
                UnifiedRoleAssignment(
                    role_definition_id=GLOBAL_ADMIN, principal_id=admin_id, directory_scope_id="/"
                )
            )
        assert denied.value.response_status_code == 403


async def test_directory_roles_show_the_active_assignments_as_members(tenant: SimTenant) -> None:
    """directoryrole-list (activated roles; Global Administrator always), directoryrole-list-members by id or by
    roleTemplateId, directoryrole-post-members and directoryrole-delete-member change the same assignments."""
    seed_role(tenant, f"user0003@{DOMAIN}", "Global Administrator")
    async with graph_client(tenant, role_admin(tenant)) as graph:
        roles = await graph.directory_roles.get()
        assert roles is not None and [r.role_template_id for r in roles.value or []] == [GLOBAL_ADMIN]
        ga_role = roles.value[0] if roles.value else None
        assert ga_role is not None and ga_role.id and ga_role.id != GLOBAL_ADMIN
        members = await graph.directory_roles.by_directory_role_id(ga_role.id).members.get()
        assert members is not None and [m.id for m in members.value or []] == [
            await user_id(graph, "user0003")
        ]
        by_template = await graph.directory_roles_with_role_template_id(GLOBAL_ADMIN).get()
        assert by_template is not None and by_template.id == ga_role.id
        newcomer = await user_id(graph, "user0004")
        await graph.directory_roles.by_directory_role_id(ga_role.id).members.ref.post(
            ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{newcomer}")
        )
        assigned = await graph.role_management.directory.role_assignments.get(
            assignments_query(filter=f"principalId eq '{newcomer}'")
        )
        assert assigned is not None and [a.role_definition_id for a in assigned.value or []] == [GLOBAL_ADMIN]
        await (
            graph.directory_roles.by_directory_role_id(ga_role.id)
            .members.by_directory_object_id(newcomer)
            .ref.delete()
        )
        left = await graph.directory_roles.by_directory_role_id(ga_role.id).members.get()
        assert left is not None and newcomer not in {m.id for m in left.value or []}


async def test_eligible_assignments_are_schedule_instances_in_their_window(tenant: SimTenant) -> None:
    """rbacapplication-list-roleeligibilityscheduleinstances: PIM-eligible (not active) assignments, listed while
    now is between their startDateTime and endDateTime on the simulator's clock; they are no roleAssignments."""
    now = dt.datetime.now(dt.UTC)
    seed_role(
        tenant,
        f"user0005@{DOMAIN}",
        GLOBAL_ADMIN,
        eligible=True,
        startDateTime=(now - dt.timedelta(hours=1)).isoformat(),
        endDateTime=(now + dt.timedelta(days=1)).isoformat(),
    )
    seed_role(
        tenant,
        f"user0006@{DOMAIN}",
        USER_ADMIN,
        eligible=True,
        startDateTime=(now + dt.timedelta(days=2)).isoformat(),
    )
    async with graph_client(tenant) as plain:  # Directory.ReadWrite.All does not read PIM schedules
        with pytest.raises(ODataError) as denied:
            await plain.role_management.directory.role_eligibility_schedule_instances.get()
        assert denied.value.response_status_code == 403
    async with graph_client(tenant, role_admin(tenant)) as graph:
        eligible = await graph.role_management.directory.role_eligibility_schedule_instances.get()
        assert eligible is not None
        assert [(e.principal_id, e.role_definition_id) for e in eligible.value or []] == [
            (await user_id(graph, "user0005"), GLOBAL_ADMIN)
        ]
        active = await graph.role_management.directory.role_assignments.get()
        assert active is not None and active.value == []
    tenant.clock(3 * 86400)  # a token from before is expired on the simulator's clock: a new client
    async with graph_client(tenant, role_admin(tenant)) as graph:
        later = await graph.role_management.directory.role_eligibility_schedule_instances.get()
        assert later is not None
        assert [e.role_definition_id for e in later.value or []] == [USER_ADMIN]


async def test_graph_guards_the_sensitive_attributes_of_privileged_admins_per_object(
    tenant: SimTenant,
) -> None:
    """user-update and resources/users "Who can update sensitive attributes?": an app holding no admin role may
    disable, reset or delete ordinary users, but changing accountEnabled or the password of a Global Administrator
    is 403 Authorization_RequestDenied ("Insufficient privileges to complete the operation.") for that object
    only - other properties of the same user, and other users in the same $batch, succeed. Holding Privileged
    Authentication Administrator lifts it."""
    seed_role(tenant, f"user0001@{DOMAIN}", "Global Administrator")
    async with graph_client(tenant) as graph:
        admin = await user_id(graph, "user0001")
        ordinary = await user_id(graph, "user0002")
        with pytest.raises(ODataError) as denied:
            await graph.users.by_user_id(admin).patch(User(account_enabled=False))
        assert denied.value.response_status_code == 403
        assert denied.value.error is not None and denied.value.error.code == "Authorization_RequestDenied"
        assert denied.value.error.message == "Insufficient privileges to complete the operation."
        with pytest.raises(ODataError) as no_reset:
            await graph.users.by_user_id(admin).patch(
                User(
                    password_profile=PasswordProfile(
                        password="N3w!Passw0rd-x", force_change_password_next_sign_in=True
                    )
                )
            )
        assert no_reset.value.response_status_code == 403
        with pytest.raises(ODataError) as no_delete:
            await graph.users.by_user_id(admin).delete()
        assert no_delete.value.response_status_code == 403
        await graph.users.by_user_id(admin).patch(User(job_title="Still editable"))
        await graph.users.by_user_id(ordinary).patch(User(account_enabled=False))

        content = BatchRequestContent()
        for target in (admin, ordinary):
            info = graph.users.by_user_id(target).to_patch_request_information(User(account_enabled=True))
            content.add_request_information(info)
        response = await BatchRequestBuilder(graph.request_adapter, ERRORS).post(content)
        assert isinstance(response, BatchResponseContent)
        expected = {rid: 403 if admin in str(item.url) else 204 for rid, item in content.requests.items()}
        assert sorted(expected.values()) == [204, 403]
        assert response.get_response_status_codes() == expected
        refreshed = await graph.users.by_user_id(admin).get()
        assert refreshed is not None and refreshed.job_title == "Still editable"

    seed_role(tenant, CLIENT_ID, "Privileged Authentication Administrator")  # the app's service principal
    async with graph_client(tenant) as graph:
        await graph.users.by_user_id(admin).patch(User(account_enabled=False))
        check = await graph.users.by_user_id(admin).get()
        assert check is not None


async def test_a_user_administrator_may_change_user_administrators_but_not_global_administrators(
    tenant: SimTenant,
) -> None:
    """resources/users "Who can update sensitive attributes?": the User Admin column covers User Admin, Helpdesk
    Admin, Groups Admin and users without a role - not Global Admin or Privileged Role Admin."""
    seed_role(tenant, CLIENT_ID, "User Administrator")
    seed_role(tenant, f"user0007@{DOMAIN}", "User Administrator")
    seed_role(tenant, f"user0008@{DOMAIN}", "Privileged Role Administrator")
    async with graph_client(tenant) as graph:
        await graph.users.by_user_id(f"user0007@{DOMAIN}").patch(User(account_enabled=False))
        with pytest.raises(ODataError) as denied:
            await graph.users.by_user_id(f"user0008@{DOMAIN}").patch(User(account_enabled=False))
        assert denied.value.response_status_code == 403
