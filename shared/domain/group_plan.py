"""Mirroring a Warden group into a directory as a Microsoft 365 security group (rule 14), planned purely.

The mirrored group is a security group (``securityEnabled`` true, ``mailEnabled`` false, no ``groupTypes``) named
after the Warden group, whose members are exactly the group's members that are linked in that directory. Warden
never touches a group it does not manage, and never a mail-enabled or Microsoft 365 (Unified) group: an existing
security group of the same name is taken over only when the admin asked for it (``adopt``).
https://learn.microsoft.com/en-us/graph/api/resources/group, .../api/group-post-groups
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

GroupAction = Literal["create", "adopt", "update", "none", "conflict"]
BIND_LIMIT = 20
"""``members@odata.bind`` adds at most 20 members per request (group-post-members)."""


@dataclass(frozen=True)
class M365Group:
    id: str
    display_name: str
    security_enabled: bool
    mail_enabled: bool
    group_types: tuple[str, ...] = ()

    @property
    def manageable(self) -> bool:
        """A plain security group: Warden may manage it (never a mail-enabled or Unified one)."""
        return self.security_enabled and not self.mail_enabled and "Unified" not in self.group_types


@dataclass(frozen=True)
class GroupPlan:
    action: GroupAction
    m365_group_id: str | None = None
    rename: str | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def writes(self) -> bool:
        return self.action in ("create", "adopt") or bool(self.rename or self.add or self.remove)


def mail_nickname(group_id: str, name: str) -> str:
    """Graph requires a mailNickname even for a security group: ASCII, no spaces or @()\\[]";:<>, ≤ 64."""
    base = re.sub(r"[^A-Za-z0-9.\-_]", "", name)[:40].strip(".") or "group"
    return f"{base}-{group_id[:8]}"


def plan_group(
    name: str,
    desired: frozenset[str],
    linked: M365Group | None,
    members: frozenset[str] | None,
    same_name: tuple[M365Group, ...],
    *,
    adopt: bool,
    protected: frozenset[str] = frozenset(),
) -> GroupPlan:
    """``linked``: the M365 group the binding points at (None: no link yet, or it is gone); ``members``: its
    member ids; ``same_name``: groups of the tenant with ``name`` (read only when there is no linked group);
    ``protected``: accounts Warden never adds to or removes from a group (rule 23)."""
    desired = desired - protected
    if linked is not None:
        if not linked.manageable:
            return GroupPlan(
                "conflict", linked.id, reason="the linked group is not a plain security group: left alone"
            )
        present = members or frozenset()
        rename = name if linked.display_name != name else None
        add, remove = tuple(sorted(desired - present)), tuple(sorted(present - desired - protected))
        action: GroupAction = "update" if rename or add or remove else "none"
        return GroupPlan(action, linked.id, rename, add, remove)
    if not same_name:
        return GroupPlan("create", add=tuple(sorted(desired)))
    if len(same_name) > 1:
        return GroupPlan("conflict", reason=f"{len(same_name)} groups named '{name}' exist in the tenant")
    found = same_name[0]
    if not found.manageable:
        return GroupPlan(
            "conflict", reason=f"a group named '{name}' exists and is not a plain security group"
        )
    if not adopt:
        return GroupPlan(
            "conflict",
            reason=f"a security group named '{name}' exists; bind with adopt: true to take it over",
        )
    return GroupPlan("adopt", found.id)


def member_chunks(ids: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [ids[i : i + BIND_LIMIT] for i in range(0, len(ids), BIND_LIMIT)]
