"""B2B invitations (https://learn.microsoft.com/en-us/graph/api/invitation-post, resources/invitation): inviting an
external user adds a user of ``userType`` Guest to the tenant.

- ``POST /invitations`` with ``invitedUserEmailAddress`` and ``inviteRedirectUrl`` (both required) → 201 with the
  invitation: ``id``, ``inviteRedeemUrl``, ``invitedUserType`` "Guest", ``status`` "PendingAcceptance" and
  ``invitedUser`` (the new user's ``id``);
- the guest user (resources/user: ``userType``, ``creationType`` "Invitation", ``externalUserState``
  "PendingAcceptance") has the userPrincipalName Entra gives external users, ``<email with @ as _>#EXT#@<the
  tenant's initial domain>``, and its email as ``mail`` and ``otherMails``;
- inviting an address that is already a guest of the tenant answers the existing user (Graph "resets" the
  redemption instead of adding a second user).
The guest signs in with its own address; its tokens in the inviting tenant then name its home tenant in ``idp``
(``shared`` by ``tools.m365sim.backends.entra``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tools.m365sim.backends.clock import iso
from tools.m365sim.backends.graph.domains import DomainsBackend
from tools.m365sim.backends.graph.errors import bad_request, required
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.backends.graph.users import UsersBackend

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FIELDS = frozenset(
    {
        "invitedUserEmailAddress",
        "inviteRedirectUrl",
        "invitedUserDisplayName",
        "sendInvitationMessage",
        "invitedUserType",
    }
)


def guest_upn(email: str, initial_domain: str) -> str:
    return f"{email.replace('@', '_')}#EXT#@{initial_domain}"


def invite(users: UsersBackend, domains: DomainsBackend, body: Any, now: float) -> Data:
    if not isinstance(body, dict):
        raise bad_request("The request body must be an invitation object.")
    for name in body:
        if name not in FIELDS:
            raise bad_request(f"Property '{name}' does not exist on type 'microsoft.graph.invitation'.")
    email = body.get("invitedUserEmailAddress")
    if not isinstance(email, str) or not email:
        raise required("invitedUserEmailAddress")
    if not EMAIL.match(email):
        raise bad_request("The email address of the invited user is not valid.")
    redirect = body.get("inviteRedirectUrl")
    if not isinstance(redirect, str) or not redirect:
        raise required("inviteRedirectUrl")
    if body.get("invitedUserType", "Guest") != "Guest":
        raise bad_request("Only Guest users can be invited through this simulator.")
    initial = next(d["id"] for d in domains.all() if d["isInitial"])
    name = body.get("invitedUserDisplayName") or email.split("@")[0]
    guest = users.add_guest(guest_upn(email, initial), email, str(name), now)
    return {
        "id": str(uuid.uuid4()),
        "inviteRedeemUrl": f"https://login.microsoftonline.com/redeem?rd={uuid.uuid4().hex}",
        "invitedUserDisplayName": name,
        "invitedUserEmailAddress": email,
        "invitedUserType": "Guest",
        "inviteRedirectUrl": redirect,
        "sendInvitationMessage": bool(body.get("sendInvitationMessage", False)),
        "status": "PendingAcceptance",
        "invitedUser": {"id": guest["id"]},
        "resetRedemption": False,
        "createdDateTime": iso(now),
    }
