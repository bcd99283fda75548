"""B2B guests: an invitation adds a Guest user; signing in as that guest, the ID token names the home tenant.

Pages followed:
- https://learn.microsoft.com/en-us/graph/api/invitation-post (201, invitedUser, status PendingAcceptance;
  permissions User.Invite.All, User.ReadWrite.All, Directory.ReadWrite.All)
- https://learn.microsoft.com/en-us/graph/api/resources/user (userType Guest, creationType Invitation,
  externalUserState)
- https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference (``idp``: the identity
  provider that authenticated the subject, the issuer of a guest's home tenant; ``tid``: the tenant signed into)
"""

from __future__ import annotations

import urllib.parse

import jwt
from msgraph.generated.models.invitation import Invitation

from tests.sim.conftest import (
    CLIENT_ID,
    DOMAIN,
    REDIRECT,
    TENANT_ID,
    SimTenant,
    create_tenant,
    graph_client,
    tenant_body,
)

HOME_ID = "3d3d3d3d-0000-4000-8000-00000000beef"
HOME_DOMAIN = "fabrikam-home.example"


def sign_in_as(tenant: SimTenant, login_hint: str) -> dict[str, object]:
    app = tenant.msal()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, login_hint=login_hint)
    with tenant.http() as http:
        resp = http.get(flow["auth_uri"].removeprefix(tenant.sim.url))
    assert resp.status_code == 302, resp.text
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    result: dict[str, object] = app.acquire_token_by_auth_code_flow(flow, query)
    return result


async def test_an_invited_guest_is_a_guest_user_with_an_external_upn(tenant: SimTenant) -> None:
    async with graph_client(tenant) as graph:
        invitation = await graph.invitations.post(
            Invitation(
                invited_user_email_address="ada@partner.example", invite_redirect_url="https://myapps.example"
            )
        )
        assert invitation is not None and invitation.status == "PendingAcceptance"
        assert (
            invitation.invited_user_type == "Guest" and invitation.invited_user and invitation.invited_user.id
        )
        guest_id = invitation.invited_user.id
        again = await graph.invitations.post(
            Invitation(
                invited_user_email_address="ada@partner.example", invite_redirect_url="https://myapps.example"
            )
        )
        assert again is not None and again.invited_user and again.invited_user.id == guest_id, (
            "one guest per address"
        )
    select = "userType,creationType,externalUserState,mail,userPrincipalName"
    guest = tenant.graph("GET", f"/users/{guest_id}?$select={select}", tenant.token()).json()
    assert (guest["userType"], guest["creationType"], guest["externalUserState"]) == (
        "Guest",
        "Invitation",
        "PendingAcceptance",
    )
    assert guest["mail"] == "ada@partner.example"
    assert guest["userPrincipalName"].startswith("ada_partner.example#EXT#@")
    assert guest["userPrincipalName"].endswith(".onmicrosoft.com")


def test_an_invitation_without_its_required_properties_is_400(tenant: SimTenant) -> None:
    token = tenant.token()
    missing = tenant.graph(
        "POST", "/invitations", token, json={"invitedUserEmailAddress": "x@partner.example"}
    )
    assert missing.status_code == 400 and "inviteRedirectUrl" in missing.json()["error"]["message"]
    bad = tenant.graph(
        "POST",
        "/invitations",
        token,
        json={"invitedUserEmailAddress": "nope", "inviteRedirectUrl": "https://a"},
    )
    assert bad.status_code == 400


async def test_a_guest_signs_in_with_its_own_address_and_its_id_token_names_its_home_tenant(
    tenant: SimTenant,
) -> None:
    create_tenant(
        tenant.sim,
        tenant_body(
            HOME_ID, HOME_DOMAIN, clients=[], keyVault=False, seedUsers=1, displayName="Fabrikam home"
        ),
    )
    address = f"user0001@{HOME_DOMAIN}"
    async with graph_client(tenant) as graph:
        await graph.invitations.post(
            Invitation(invited_user_email_address=address, invite_redirect_url="https://myapps.example")
        )
    guest = sign_in_as(tenant, address)
    claims = jwt.decode(str(guest["id_token"]), options={"verify_signature": False})
    assert claims["tid"] == TENANT_ID and claims["idp"] == f"https://sts.windows.net/{HOME_ID}/"
    assert claims["preferred_username"] == address and claims["aud"] == CLIENT_ID
    member = sign_in_as(tenant, f"user0001@{DOMAIN}")
    assert "idp" not in jwt.decode(str(member["id_token"]), options={"verify_signature": False}), (
        "a member of the tenant: no idp claim"
    )
