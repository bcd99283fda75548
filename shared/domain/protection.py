"""Rule 23: accounts Warden must never touch. An account holding an Entra directory role (active or PIM-eligible,
directly or through a role-assignable group), or one an admin marked protected, is never taken over, created over,
updated, renamed, blocked, unblocked, given a password, or added to or removed from a group: a match to one, or a
linked account that became one, is ``needs_attention`` with reason ``protected account (<why>)``.

Role holders are read from Graph (``RoleManagement.Read.Directory``) per directory; without that permission Warden
cannot tell an administrator from anyone else, so every take-over waits for an admin (``UNVERIFIED``).
https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleassignments,
.../rbacapplication-list-roleeligibilityscheduleinstances, .../entra/identity/role-based-access-control/
groups-concept (role-assignable groups hold roles for their members; they cannot contain groups).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
"""The Global Administrator role's template id (entra/identity/role-based-access-control/permissions-reference)."""
UNVERIFIED = "cannot verify this account holds no admin role"
"""Why a take-over waits when the directory's role holders cannot be read."""
MARKED = "marked by "


@dataclass(frozen=True)
class RoleGrant:
    """One directory role an account holds: its name, and how (``eligible``: PIM, not active; ``via``: the
    role-assignable group it is a member of)."""

    role_id: str
    role_name: str
    eligible: bool = False
    via: str | None = None

    def describe(self) -> str:
        how = [
            x
            for x in ("eligible" if self.eligible else None, f"via group {self.via}" if self.via else None)
            if x
        ]
        return f"{self.role_name} ({', '.join(how)})" if how else self.role_name


@dataclass(frozen=True)
class RoleHolders:
    """Every account of a tenant holding a directory role, as read at ``read_at``."""

    grants: Mapping[str, tuple[RoleGrant, ...]]
    """Account (M365 user) id → its roles."""
    global_admins: frozenset[str] = frozenset()
    """Accounts holding Global Administrator actively (directly or through a group): the tenant's way back in."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Account id → its userPrincipalName, where Graph showed it."""


@dataclass(frozen=True)
class ProtectedAccount:
    """An account of one directory that Warden does not touch, and why."""

    directory_id: str
    m365_user_id: str
    roles: tuple[str, ...] = ()
    """The roles it holds, as described (``Global Administrator``, ``User Administrator (eligible)``)."""
    marked_by: str | None = None
    """``admin:<oid>`` when an admin marked it."""
    marked_at: dt.datetime | None = None
    user_principal_name: str | None = None

    @property
    def why(self) -> tuple[str, ...]:
        return (*self.roles, *((f"{MARKED}{self.marked_by}",) if self.marked_by else ()))

    @property
    def protected(self) -> bool:
        return bool(self.why)


def reason(why: Iterable[str]) -> str:
    """The reason a link shows: ``protected account (Global Administrator, marked by admin:…)``."""
    return f"protected account ({', '.join(why)})"


def describe_roles(grants: Iterable[RoleGrant]) -> tuple[str, ...]:
    return tuple(sorted({g.describe() for g in grants}))


@dataclass(frozen=True)
class Protection:
    """What Warden knows of a directory's protected accounts when it plans: who, and whether role holders could be
    read at all (when not, no account can be shown to hold no role)."""

    why: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """M365 user id → why it is protected (only protected accounts are listed)."""
    roles_readable: bool = True

    def of(self, m365_user_id: str) -> tuple[str, ...]:
        return self.why.get(m365_user_id, ())


def refreshed(
    directory_id: str,
    current: Mapping[str, ProtectedAccount],
    holders: RoleHolders,
    upns: Mapping[str, str],
) -> tuple[list[ProtectedAccount], list[str]]:
    """The rows to write and the ids to drop after reading the role holders anew: every holder gets its roles; an
    account that holds no role any more keeps only an admin's mark (or goes, when it has none)."""
    write: list[ProtectedAccount] = []
    drop: list[str] = []
    for m365_id, grants in holders.grants.items():
        roles = describe_roles(grants)
        old = current.get(m365_id)
        row = ProtectedAccount(
            directory_id,
            m365_id,
            roles,
            old.marked_by if old else None,
            old.marked_at if old else None,
            upns.get(m365_id) or (old.user_principal_name if old else None),
        )
        if row != old:
            write.append(row)
    for m365_id, old in current.items():
        if m365_id in holders.grants or not old.roles:
            continue
        if old.marked_by:
            write.append(
                ProtectedAccount(
                    directory_id, m365_id, (), old.marked_by, old.marked_at, old.user_principal_name
                )
            )
        else:
            drop.append(m365_id)
    return write, drop
