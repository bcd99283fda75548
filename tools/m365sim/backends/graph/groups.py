"""The groups of a tenant's directory and their members.

- group resource: https://learn.microsoft.com/en-us/graph/api/resources/group (displayName up to 256 characters,
  mailNickname up to 64; ``isAssignableToRole`` set at creation only);
- group-post-groups (201; security groups, Microsoft 365 groups; mail-enabled security groups cannot be written
  through Graph), group-update (204), group-delete (204);
- group-list-members, group-post-members (204; an existing member → 400 "One or more added object references
  already exist ..."), group-delete-members (204; a non-member → 404), ``members@odata.bind`` (up to 20 a request).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from tools.m365sim.backends.clock import Clock, iso
from tools.m365sim.backends.graph.errors import (
    bad_request,
    invalid_property,
    invalid_value,
    not_found,
    read_only,
    required,
)
from tools.m365sim.backends.graph.odata import FilterSchema
from tools.m365sim.backends.graph.store import Data, VersionedStore
from tools.m365sim.backends.graph.users import MAILNICKNAME_FORBIDDEN, ref_id

OUTPUT = (
    "id",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "proxyAddresses",
    "securityEnabled",
    "visibility",
)
DEFAULT_PROPERTIES = tuple(p for p in OUTPUT if p != "isAssignableToRole")
WRITABLE = frozenset({"description", "displayName", "mailNickname", "securityEnabled", "visibility"})
CREATE_ONLY = frozenset({"mailEnabled", "groupTypes", "isAssignableToRole"})
READONLY = frozenset(OUTPUT) - WRITABLE - CREATE_ONLY
PROPERTIES = {n.lower(): n for n in (*OUTPUT, "members")}
FILTER = FilterSchema(
    resource="Group",
    strings=frozenset({"displayName", "mailNickname", "mail", "id", "description"}),
    booleans=frozenset({"securityEnabled", "mailEnabled", "isAssignableToRole"}),
    collections=frozenset({"groupTypes", "proxyAddresses"}),
    ends_with=frozenset({"mail", "proxyAddresses"}),
    no_starts_with=frozenset({"id"}),
)
MAX_BIND = 20
"""group-post-groups / group-update: "up to 20 members" per request with members@odata.bind."""
ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: 'members'."
)
MAIL_ENABLED_GROUP = (
    "The service does not currently support writes of mail-enabled groups. Please ensure that "
    "the mail-enablement property is unset and the security-enablement property is set."
)


def project(data: Data, select: list[str] | None) -> Data:
    """A group as Graph returns it: the default properties, or the ``$select``ed ones."""
    names = select if select is not None else DEFAULT_PROPERTIES
    return {n: data.get(n) for n in names if n != "members"}


def check_keys(body: Data, writable: frozenset[str], readonly: frozenset[str]) -> None:
    for key in body:
        if key in readonly:
            raise read_only(key)
        if key not in writable:
            raise invalid_property(key)


def check_values(body: Data) -> None:
    for prop, kind in (
        ("mailEnabled", bool),
        ("securityEnabled", bool),
        ("isAssignableToRole", bool),
        ("displayName", str),
        ("description", str),
        ("visibility", str),
    ):
        if body.get(prop) is not None and not isinstance(body[prop], kind):
            raise invalid_value(prop, "Group")
    types = body.get("groupTypes", [])
    if not isinstance(types, list) or not set(types) <= {"Unified"}:
        raise invalid_value("groupTypes", "Group")
    nickname = body.get("mailNickname")
    if nickname is not None and (
        not isinstance(nickname, str)
        or not nickname
        or any(c in MAILNICKNAME_FORBIDDEN or ord(c) > 127 for c in nickname)
    ):
        raise invalid_value("mailNickname", "Group")
    # group resource: displayName "Maximum length is 256 characters", mailNickname "Maximum length is 64".
    for prop, limit in (("displayName", 256), ("mailNickname", 64)):
        if isinstance(body.get(prop), str) and len(body[prop]) > limit:
            raise invalid_value(prop, "Group")


class GroupsBackend:
    """One tenant's groups. Membership is kept in each group's ``_members`` (the stored, versioned list) and, for
    the reverse lookup, in ``groups_of``."""

    def __init__(self, store: VersionedStore, clock: Clock, default_domain: Any) -> None:
        self.store = store
        self.clock = clock
        self.default_domain = default_domain
        self._groups_of: dict[str, set[str]] = {}

    # -- reads ------------------------------------------------------------------------------------------------
    def visible(self, key: str) -> Data:
        data = self.store.visible("groups", key.lower())
        if data is None:
            raise not_found(key)
        return data

    def primary_of_visible(self, key: str) -> Data:
        primary = self.store.primary("groups", self.visible(key)["id"])
        if primary is None:
            raise not_found(key)
        return primary

    def after(self, after: str) -> Iterator[tuple[str, Data]]:
        return self.store.visible_all("groups", after or None)

    def visible_object(self, obj_id: str) -> Data:
        """A user or group the replicas show, by id; 404 otherwise."""
        kind = self.store.kind_of(obj_id)
        data = self.store.visible(kind, obj_id) if kind else None
        if data is None:
            raise not_found(obj_id)
        return data

    def members(self, key: str) -> Iterator[tuple[str, Data]]:
        group = self.visible(key)
        for member_id in sorted(group["_members"]):
            kind = self.store.kind_of(member_id)
            data = self.store.visible(kind, member_id) if kind else None
            if data is not None:
                yield member_id, data

    def groups_of(self, obj_id: str) -> set[str]:
        return set(self._groups_of.get(obj_id, set()))

    # -- writes -----------------------------------------------------------------------------------------------
    def create(self, body: Data) -> Data:
        binds = self._binds(body, "members@odata.bind")
        self._binds(body, "owners@odata.bind")
        check_keys(body, WRITABLE | CREATE_ONLY, READONLY)
        for prop in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(prop) is None:
                raise required(prop)
        check_values(body)
        unified = "Unified" in body.get("groupTypes", [])
        if body["mailEnabled"] and not unified:
            raise bad_request(MAIL_ENABLED_GROUP)
        if body.get("isAssignableToRole") and not body["securityEnabled"]:
            # group resource, isAssignableToRole: "securityEnabled must also be set to true".
            raise invalid_value("isAssignableToRole", "Group")
        group_id = str(uuid.uuid4())
        mail = f"{body['mailNickname']}@{self.default_domain()}" if unified else None
        record: Data = {
            "id": group_id,
            "createdDateTime": iso(self.clock()),
            "description": None,
            "groupTypes": [],
            "isAssignableToRole": None,
            "mail": mail,
            "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
            "visibility": "Public" if unified else None,
            **body,
            "_members": [],
        }
        self.store.write("groups", group_id, record)
        if binds:
            self._set_membership(group_id, binds, added=True)
        return record

    def update(self, key: str, body: Data) -> None:
        binds = self._binds(body, "members@odata.bind")
        check_keys(body, WRITABLE, READONLY | CREATE_ONLY)
        check_values(body)
        group = self.primary_of_visible(key)
        members = set(group["_members"])
        if any(m in members for m in binds):
            raise bad_request(ALREADY_MEMBER)
        if body:
            self.store.write("groups", group["id"], {**group, **body})
        if binds:
            self._set_membership(group["id"], binds, added=True)

    def delete(self, key: str) -> str:
        group = self.primary_of_visible(key)
        for member_id in group["_members"]:
            self._groups_of.get(member_id, set()).discard(group["id"])
        for parent in sorted(self._groups_of.pop(group["id"], set())):
            self._set_membership(parent, [group["id"]], added=False)
        self.store.write("groups", group["id"], None)
        return str(group["id"])

    def add_member(self, key: str, reference: Any) -> None:
        member_id = ref_id(reference)
        group = self.primary_of_visible(key)
        self.visible_object(member_id)
        if member_id in group["_members"]:
            raise bad_request(ALREADY_MEMBER)
        self._set_membership(group["id"], [member_id], added=True)

    def remove_member(self, key: str, member: str) -> None:
        group = self.primary_of_visible(key)
        member_id = member.lower()
        if member_id not in group["_members"]:
            # group-delete-members: a non-member → 404 Request_ResourceNotFound naming it (KelvinTegelaar/CIPP#2141).
            raise not_found(member)
        self._set_membership(group["id"], [member_id], added=False)

    def forget_member(self, member_id: str) -> None:
        """A deleted object leaves every group it was in."""
        for group_id in sorted(self._groups_of.pop(member_id, set())):
            self._set_membership(group_id, [member_id], added=False)

    def _binds(self, body: Data, key: str) -> list[str]:
        """Ids in ``members@odata.bind`` (at most 20 a request), each a visible directory object."""
        refs = body.pop(key, None)
        if refs is None:
            return []
        if not isinstance(refs, list):
            raise invalid_value(key, "Group")
        if len(refs) > MAX_BIND:
            # group-update: "up to 20 members in a single request"
            raise bad_request(
                f"The request contains {len(refs)} references in '{key}'; at most {MAX_BIND} "
                f"objects can be added in a single request."
            )
        ids = [ref_id(ref) for ref in refs]
        for obj_id in ids:
            self.visible_object(obj_id)
        return list(dict.fromkeys(ids))

    def _set_membership(self, group_id: str, member_ids: Iterable[str], *, added: bool) -> None:
        """Add or remove members in one write of the group (a PATCH binding 20 members copies its member list
        once, not 20 times)."""
        group = self.store.primary("groups", group_id)
        if group is None:
            return
        members = set(group["_members"])
        changed = list(dict.fromkeys(member_ids))
        for member_id in changed:
            if added:
                members.add(member_id)
                self._groups_of.setdefault(member_id, set()).add(group_id)
            else:
                members.discard(member_id)
                self._groups_of.get(member_id, set()).discard(group_id)
        self.store.write("groups", group_id, {**group, "_members": sorted(members)})
        for member_id in changed:
            self.store.member_change(group_id, member_id, added)

    def reindex(self) -> None:
        """Rebuild ``groups_of`` from the stored groups (after a restore)."""
        self._groups_of.clear()
        for group_id in self.store.ids("groups"):
            group = self.store.primary("groups", group_id)
            for member_id in (group or {}).get("_members", []):
                self._groups_of.setdefault(member_id, set()).add(group_id)
