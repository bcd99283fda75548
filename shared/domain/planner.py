"""The planner: what must change in each Microsoft 365 directory for a user to match Warden (SPEC §2 rules 1-8
and 11). Pure: plain data in, plan items out; no I/O, no clock, no randomness (a new account's password is
drawn by the applier, never by the plan, so plans can be stored and shown).

For each directory a user is bound to or linked in, one item:
- ``create`` / ``take_over``: no linked account yet; none matches the email → create (if ``createMissingUsers``),
  exactly one matches → take it over (never sending a password), several or one linked to another Warden user →
  ``needs_attention`` with the candidates and nothing written (rule 2);
- ``update`` / ``rename`` / ``unblock``: the linked account differs from the desired attributes; rename when the
  UPN, mail or alias change (a new domain of the same tenant moves the account: rule 5);
- ``block``: the user is unbound there, suspended, deleted, or its email now belongs to another connected
  directory (rule 7: ``accountEnabled`` false and sign-in sessions revoked; never a delete);
- ``skip`` (another tenant owns the email domain, rule 11; a directory Warden may not write to, rule 17),
  ``error`` (the email's domain is verified in no connected tenant and there is no account yet, rule 1),
  ``needs_attention`` (rule 2, and rule 5's unknown new domain: other changes applied, the UPN kept);
- ``none``: already converged — nothing is written.

Whatever an item would have done, an account that is protected (rule 23: it holds an Entra directory role, or an
admin marked it) is written nothing: the item becomes ``needs_attention`` with reason ``protected account (<why>)``.
A take-over in a directory whose role holders could not be read waits for an admin the same way.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.domain.model import Directory, Link, LinkStatus, User, UserDirectory
from shared.domain.protection import UNVERIFIED
from shared.domain.protection import reason as protection_reason

Action = Literal[
    "create", "take_over", "update", "rename", "block", "unblock", "skip", "needs_attention", "error", "none"
]
WRITES: frozenset[str] = frozenset({"create", "take_over", "update", "rename", "block", "unblock"})

MANAGEABLE: dict[str, tuple[str, ...]] = {
    "givenName": ("first_name", "last_name", "display_name"),
    "surname": ("last_name", "first_name"),
    "displayName": ("display_name",),
    "jobTitle": ("job_title",),
    "department": ("department",),
    "employeeId": ("employee_id",),
}
"""Graph properties whose source an admin may choose per directory (or leave unmanaged), and the Warden fields
that may feed each. Identity properties (userPrincipalName, mail, mailNickname, accountEnabled,
onPremisesImmutableId) are always managed: matching and blocking depend on them."""

DEFAULT_MAPPING: dict[str, str | None] = {
    "givenName": "first_name",
    "surname": "last_name",
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "employeeId": "employee_id",
}
MANAGER = "manager"
BLOCKED = "blocked"
"""The fingerprint a link carries after a block: what Warden last wrote there is ``accountEnabled: false``."""
RECENT_LINK = dt.timedelta(minutes=5)
"""A link Warden wrote within this time may not show in Graph's reads yet (replication lag): see
``Observation.recent``."""
CASE_INSENSITIVE = frozenset({"userPrincipalName", "mail", "mailNickname"})
RENAMING = frozenset({"userPrincipalName", "mail", "mailNickname"})


def check_mapping(mapping: Mapping[str, str | None]) -> None:
    """``ValueError`` naming the first property or field an admin may not map."""
    for prop, source in mapping.items():
        if prop not in MANAGEABLE:
            raise ValueError(f"'{prop}' cannot be mapped; mappable: {', '.join(sorted(MANAGEABLE))}")
        if source is not None and source not in MANAGEABLE[prop]:
            raise ValueError(
                f"'{prop}' can be fed by {', '.join(MANAGEABLE[prop])} (or null: unmanaged), not '{source}'"
            )


def immutable_id(user_id: str) -> str:
    """A stable onPremisesImmutableId derived from the Warden id: base64 of the GUID's 16 bytes (24 characters,
    never ``$`` or ``_``, which Graph refuses), as Entra Connect derives it from objectGUID."""
    raw = bytes.fromhex(user_id.replace("-", "")) if len(user_id) == 36 else b""
    return base64.b64encode(raw if len(raw) == 16 else uuid.UUID(user_id).bytes).decode()


@dataclass(frozen=True)
class M365Account:
    id: str
    user_principal_name: str
    account_enabled: bool
    mail: str | None = None
    mail_nickname: str | None = None
    given_name: str | None = None
    surname: str | None = None
    display_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    employee_id: str | None = None
    on_premises_immutable_id: str | None = None
    proxy_addresses: tuple[str, ...] = ()
    protected_by: tuple[str, ...] = ()
    """Rule 23: why the account is protected (the Entra directory roles it holds, ``marked by admin:<oid>``);
    empty when it is not. The planner writes nothing to a protected account."""

    @property
    def protected(self) -> bool:
        return bool(self.protected_by)

    def value(self, prop: str) -> Any:
        return getattr(self, ACCOUNT_FIELDS[prop])


ACCOUNT_FIELDS = {
    "userPrincipalName": "user_principal_name",
    "accountEnabled": "account_enabled",
    "mail": "mail",
    "mailNickname": "mail_nickname",
    "givenName": "given_name",
    "surname": "surname",
    "displayName": "display_name",
    "jobTitle": "job_title",
    "department": "department",
    "employeeId": "employee_id",
    "onPremisesImmutableId": "on_premises_immutable_id",
}
"""Graph's property → the ``M365Account`` field holding it."""


@dataclass(frozen=True)
class Observation:
    """What Graph showed for one user in one directory."""

    linked: M365Account | None = None
    """The account at the link's object id (None: no link, or it answered 404)."""
    candidates: tuple[M365Account, ...] = ()
    """Accounts matching the user's email by UPN, mail or ``smtp:`` proxy address (case-insensitive), or its
    immutable id; read when there is no linked account."""
    taken: frozenset[str] = frozenset()
    """Candidate ids already linked to another Warden user."""
    recent: bool = False
    """Warden wrote this link within the replication window: a read may predate that write (Entra ID replicates
    between its replicas within seconds to minutes; GRAPH-NOTES "replication lag"). When what Warden wants now
    differs from what it last wrote, the read is not trusted to show that write, and every managed property is
    written again. Recency only ever adds writes, never skips one: a change made behind Warden's back is never
    mistaken for a stale read."""
    unread: str | None = None
    """The linked account's id, not read (its state unknown): what ``blocks_unread`` says is enough to block it.
    Disabling an account and revoking its sessions are idempotent, and a 404 to them means "look again"."""


def written_recently(link: Link, now: dt.datetime) -> bool:
    """Warden wrote this link within the replication window (a read may not show that write yet)."""
    return link.last_sync_at is not None and now - link.last_sync_at < RECENT_LINK


@dataclass(frozen=True)
class Target:
    """A connected directory as the planner needs it."""

    id: str
    verified_domains: frozenset[str]
    writable: bool
    status_reason: str | None = None
    create_missing_users: bool = True
    mapping: Mapping[str, str | None] = field(default_factory=lambda: dict(DEFAULT_MAPPING))
    roles_verified: bool = True
    """The directory's role holders were read (rule 23): an account not among them holds no admin role. When they
    could not be read, no take-over can be shown safe, and each waits for an admin."""


def target_of(d: Directory) -> Target:
    return Target(
        id=d.id,
        verified_domains=d.verified_domains(),
        writable=d.writable,
        status_reason=f"directory {d.status}: {d.status_reason}" if d.status_reason else None,
        create_missing_users=d.options.create_missing_users,
        mapping={**DEFAULT_MAPPING, **dict(d.options.attribute_mapping)},
    )


@dataclass(frozen=True)
class Desired:
    user: User
    directories: tuple[UserDirectory, ...]
    """Every directory the user is bound to or linked in (``shared.domain.model.effective_directories``)."""
    manager_ids: Mapping[str, str | None] = field(default_factory=dict)
    """Directory → the M365 id of the user's manager there (None: no manager, or not linked there)."""
    has_initial_password: bool = False


@dataclass(frozen=True)
class PlanItem:
    action: Action
    user_id: str
    directory_id: str
    status: LinkStatus
    """The link's status once the item is applied."""
    m365_user_id: str | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Graph property → (observed, desired). ``manager`` → (last applied, desired) M365 ids."""
    reason: str | None = None
    candidates: tuple[str, ...] = ()
    revoke_sessions: bool = False
    password: Literal["random", "initial"] | None = None
    """Create only: a random strong password (staged users, or no initial one) or the admin's initial one."""
    fingerprint: str | None = None

    @property
    def writes(self) -> bool:
        return self.action in WRITES

    def to_payload(self) -> dict[str, Any]:
        """The item as plain JSON data, as a stored plan keeps it (a run's items, a held block)."""
        return {
            "action": self.action,
            "userId": self.user_id,
            "directoryId": self.directory_id,
            "status": self.status,
            "m365UserId": self.m365_user_id,
            "changes": {k: [v[0], v[1]] for k, v in self.changes.items()},
            "reason": self.reason,
            "candidates": list(self.candidates),
            "revokeSessions": self.revoke_sessions,
            "password": self.password,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PlanItem:
        return cls(
            action=payload["action"],
            user_id=payload["userId"],
            directory_id=payload["directoryId"],
            status=payload["status"],
            m365_user_id=payload.get("m365UserId"),
            changes={k: (v[0], v[1]) for k, v in (payload.get("changes") or {}).items()},
            reason=payload.get("reason"),
            candidates=tuple(payload.get("candidates") or ()),
            revoke_sessions=bool(payload.get("revokeSessions")),
            password=payload.get("password"),
            fingerprint=payload.get("fingerprint"),
        )


def desired_attributes(
    user: User, target: Target, *, enabled: bool, keep_upn: str | None = None
) -> dict[str, Any]:
    """The Graph properties Warden manages for ``user`` in ``target`` (rule 4)."""
    upn = keep_upn or user.email
    attrs: dict[str, Any] = {
        "userPrincipalName": upn,
        "mail": upn,
        "mailNickname": user.username,
        "accountEnabled": enabled,
        "onPremisesImmutableId": immutable_id(user.id),
    }
    for prop, source in target.mapping.items():
        if source is not None:
            attrs[prop] = getattr(user, source)
    return attrs


def fingerprint(attrs: Mapping[str, Any], manager: str | None) -> str:
    raw = json.dumps({**attrs, MANAGER: manager}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


IDENTITY = ("userPrincipalName", "mail", "mailNickname", "accountEnabled", "onPremisesImmutableId")
"""The properties ``desired_attributes`` always manages (the mapped ones come on top)."""


def echoes(link: Link, account: Mapping[str, Any], mapping: Mapping[str, str | None]) -> bool:
    """Whether ``account`` — one account's managed properties as Graph's user delta reports them (Graph property
    names; a property never set is left out) — is exactly what Warden last applied through ``link``: Warden's own
    write coming back in the delta, which needs no read and no sync (rule 9 has nothing to put back).

    Only a link whose last sync succeeded vouches for its fingerprint, and only for its own account, whose
    ``accountEnabled`` the change must report. After a block, the fingerprint stands for ``accountEnabled: false``
    alone (a blocked account's other properties are not Warden's to keep). Otherwise it is recomputed from the
    account's values exactly as the planner computed it from the desired ones: the same properties (``mapping``, the
    directory's), an immutable id already present standing for Warden's (``diff`` never rewrites one), the manager
    last applied (user delta does not report managers). One managed value that differs — ``accountEnabled``
    flipped included — and it is not an echo: the user is synced."""
    if link.fingerprint is None or link.status in ("pending", "error") or not link.m365_user_id:
        return False
    if account.get("id") != link.m365_user_id or "@removed" in account:
        return False
    enabled = account.get("accountEnabled")
    if not isinstance(enabled, bool):
        return False
    if link.fingerprint == BLOCKED:
        return enabled is False
    props = [*IDENTITY, *(p for p, source in mapping.items() if source is not None)]
    observed = {p: account.get(p) for p in props}
    if observed["onPremisesImmutableId"]:
        observed["onPremisesImmutableId"] = immutable_id(link.user_id)
    return fingerprint(observed, link.manager_m365_id) == link.fingerprint


def _same(prop: str, observed: Any, desired: Any) -> bool:
    if prop in CASE_INSENSITIVE and isinstance(observed, str) and isinstance(desired, str):
        return observed.lower() == desired.lower()
    return bool(observed == desired)


def diff(account: M365Account, attrs: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    changes = {}
    for prop, want in attrs.items():
        have = getattr(account, ACCOUNT_FIELDS[prop])
        if have == want:
            continue
        if prop == "onPremisesImmutableId" and have:
            continue  # rule 2: set when missing; an existing one may already be federated, so it stays
        if not _same(prop, have, want):
            changes[prop] = (have, want)
    return changes


def _owner(user: User, targets: Mapping[str, Target]) -> str | None:
    """The connected directory whose verified domains contain the user's email domain (rule 10: at most one)."""
    return next((t.id for t in targets.values() if user.email_domain in t.verified_domains), None)


def blocks_unread(desired: Desired, ud: UserDirectory, targets: Mapping[str, Target]) -> bool:
    """Whether the item of ``ud`` is a block of its linked account whatever that account's state, so that the
    account need not be read before it is written (``Observation.unread``): the user may not sign in there any
    more (rule 7), or its email moved to another connected directory (rule 5) — and the link does not say that
    Warden blocked it already (then it is read: someone may have enabled it again, rule 9).

    Rule 23: the sync asks this only of an account it knows is not protected; a protected one is read, and the
    planner freezes its link instead (a block stays a decision made on an observation)."""
    target = targets.get(ud.directory_id)
    link = ud.link
    if target is None or not target.writable or not link.m365_user_id:
        return False
    if link.fingerprint == BLOCKED and link.status in ("blocked", "skipped"):
        return False
    user = desired.user
    alive = user.deleted_at is None and user.state in ("staged", "active")
    if not (alive and ud.bound):
        return True
    owner = _owner(user, targets)
    return owner is not None and owner != target.id


def plan_user(
    desired: Desired, targets: Mapping[str, Target], observed: Mapping[str, Observation]
) -> list[PlanItem]:
    owner = _owner(desired.user, targets)
    items = []
    for ud in desired.directories:
        target = targets.get(ud.directory_id)
        if target is not None:
            obs = observed.get(target.id, Observation())
            items.append(_protect(_plan(desired, ud, target, obs, owner), target, obs))
    return items


def _protect(item: PlanItem, target: Target, obs: Observation) -> PlanItem:
    """Rule 23, whatever the item would have done: nothing is written to a protected account (a match to one, or a
    linked account that became one, is frozen as ``needs_attention`` and reported), and no account is taken over
    while the directory's role holders are unknown."""
    if item.action == "skip":
        return item  # a directory Warden may not write to: nothing is written anyway
    accounts = {a.id: a for a in (obs.linked, *obs.candidates) if a is not None}
    account = accounts.get(item.m365_user_id or "")
    if account is not None and account.protected:
        why = protection_reason(account.protected_by)
    elif item.action == "take_over" and not target.roles_verified:
        why = UNVERIFIED
    else:
        return item
    # Only an account already linked stays the link's; a match is named as a candidate, never linked.
    linked = obs.linked is not None and obs.linked.id == item.m365_user_id
    return PlanItem(
        "needs_attention",
        item.user_id,
        item.directory_id,
        status="needs_attention",
        m365_user_id=item.m365_user_id if linked else None,
        reason=why,
        candidates=item.candidates or ((item.m365_user_id,) if item.m365_user_id and not linked else ()),
    )


def _plan(
    desired: Desired, ud: UserDirectory, target: Target, obs: Observation, owner: str | None
) -> PlanItem:
    user = desired.user
    base = (user.id, target.id)
    account = obs.linked
    if not target.writable:
        return PlanItem(
            "skip", *base, status="skipped", reason=target.status_reason, m365_user_id=ud.link.m365_user_id
        )
    alive = user.deleted_at is None and user.state in ("staged", "active")
    if not (alive and ud.bound):
        why = "deleted" if user.deleted_at else ("suspended" if user.state == "suspended" else "not bound")
        return _block(ud, account or _own_account(user, obs), f"user {why}", "blocked", base, obs)
    if owner is not None and owner != target.id:
        return _block(ud, account, "email domain belongs to another tenant", "skipped", base, obs)
    manager = desired.manager_ids.get(target.id)
    if owner is None:
        if account is None:
            return PlanItem("error", *base, status="error", reason="domain not verified in tenant")
        # Rule 5: a new domain no connected directory has: keep the UPN, apply the rest, flag it.
        attrs = desired_attributes(user, target, enabled=True, keep_upn=account.user_principal_name)
        reason = f"email domain '{user.email_domain}' is not verified in any connected directory; UPN kept"
        return _converge(
            account, ud, attrs, manager, base, status="needs_attention", reason=reason, recent=obs.recent
        )
    attrs = desired_attributes(user, target, enabled=True)
    if account is not None:
        return _converge(account, ud, attrs, manager, base, recent=obs.recent)
    return _match(desired, ud, target, obs, attrs, manager, base)


def _own_account(user: User, obs: Observation) -> M365Account | None:
    """An unlinked account carrying the immutable id Warden derives from this user: Warden created it (a create
    whose answer was lost) or an admin stamped it for this person. A user who may not sign in must not keep it
    (rule 7). An account that merely matches the email is not enough to block anyone."""
    own = immutable_id(user.id)
    found = [c for c in obs.candidates if c.on_premises_immutable_id == own and c.id not in obs.taken]
    return found[0] if len(found) == 1 else None


def _block(
    ud: UserDirectory,
    account: M365Account | None,
    reason: str,
    status: LinkStatus,
    base: tuple[str, str],
    obs: Observation,
) -> PlanItem:
    if account is None and obs.unread:
        return PlanItem(
            "block",
            *base,
            status=status,
            reason=reason,
            m365_user_id=obs.unread,
            changes={"accountEnabled": (None, False)},
            revoke_sessions=True,
            fingerprint=BLOCKED,
        )
    if account is None:
        return PlanItem("none", *base, status=status if ud.link.m365_user_id else "skipped", reason=reason)
    # The read may predate Warden's own write of minutes ago (an unblock): it cannot vouch for a disabled account.
    stale = obs.recent and ud.link.fingerprint != BLOCKED
    if not account.account_enabled and ud.link.status in ("blocked", "skipped") and not stale:
        return PlanItem(
            "none", *base, status=status, reason=reason, m365_user_id=account.id, fingerprint=BLOCKED
        )
    return PlanItem(
        "block",
        *base,
        status=status,
        reason=reason,
        m365_user_id=account.id,
        changes={"accountEnabled": (account.account_enabled, False)},
        revoke_sessions=True,
        fingerprint=BLOCKED,
    )


def _converge(
    account: M365Account,
    ud: UserDirectory,
    attrs: dict[str, Any],
    manager: str | None,
    base: tuple[str, str],
    *,
    status: LinkStatus = "synced",
    reason: str | None = None,
    recent: bool = False,
) -> PlanItem:
    seen = diff(account, attrs)
    changes = dict(seen)
    wanted = fingerprint(attrs, manager)
    if recent and ud.link.fingerprint != wanted:
        # Warden wrote something else minutes ago, which this read may not show yet: write every managed
        # property (a present immutable id stays, as in ``diff``).
        immutable = "onPremisesImmutableId" if account.on_premises_immutable_id else None
        changes = {p: (account.value(p), v) for p, v in attrs.items() if p != immutable} | seen
    applied_manager = ud.link.manager_m365_id
    if manager != applied_manager:
        changes[MANAGER] = (applied_manager, manager)
    if changes.get("accountEnabled") == (False, True) or (
        "accountEnabled" in changes and ud.link.status == "blocked" and ud.link.fingerprint == BLOCKED
    ):
        action: Action = "unblock"
    elif RENAMING & seen.keys():
        action = "rename"
    elif changes:
        action = "update"
    else:
        action = "none"
    return PlanItem(
        action,
        *base,
        status=status,
        reason=reason,
        m365_user_id=account.id,
        changes=changes,
        fingerprint=wanted,
    )


def _match(
    desired: Desired,
    ud: UserDirectory,
    target: Target,
    obs: Observation,
    attrs: dict[str, Any],
    manager: str | None,
    base: tuple[str, str],
) -> PlanItem:
    ids = tuple(sorted(c.id for c in obs.candidates))
    if len(obs.candidates) > 1:
        return PlanItem(
            "needs_attention",
            *base,
            status="needs_attention",
            candidates=ids,
            reason=f"{len(ids)} accounts match {desired.user.email}",
        )
    if len(obs.candidates) == 1:
        found = obs.candidates[0]
        if found.id in obs.taken:
            return PlanItem(
                "needs_attention",
                *base,
                status="needs_attention",
                candidates=ids,
                reason="the matching account is linked to another Warden user",
            )
        if found.protected:
            return PlanItem(
                "needs_attention",
                *base,
                status="needs_attention",
                candidates=ids,
                reason=protection_reason(found.protected_by),
            )
        converged = _converge(found, ud, attrs, manager, base)
        relinked = "a linked account was not found; re-matched by email" if ud.link.m365_user_id else None
        return replace(converged, action="take_over", status="synced", reason=relinked)
    if not target.create_missing_users:
        reason = "no account matches and createMissingUsers is off"
        return PlanItem("needs_attention", *base, status="needs_attention", reason=reason)
    changes: dict[str, tuple[Any, Any]] = {p: (None, v) for p, v in attrs.items() if v is not None}
    if manager is not None:
        changes[MANAGER] = (None, manager)
    password: Literal["random", "initial"] = (
        "initial" if desired.user.state == "active" and desired.has_initial_password else "random"
    )
    return PlanItem(
        "create",
        *base,
        status="synced",
        changes=changes,
        password=password,
        fingerprint=fingerprint(attrs, manager),
    )
