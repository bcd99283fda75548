"""What a plan item's outcome leaves in the store: the link as the outcome leaves it, the claim on the account Warden
linked, and the audit entry. A user's own sync and a reconcile's chunks record their outcomes alike.

``record_all`` writes a user's outcomes as one change of the user: the claims first (an account is claimed before
any link names it), then the links with the entries about the user in one transaction, made against the version
of the user's relations the run read before it wrote to Graph. A run that finds the links written since by another
run (a reconcile and the user's own sync, each sure of what it read) raises ``ConcurrentUpdate`` after auditing
what it wrote: the caller makes the user's sync run again, which reads both runs' work and converges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.claims import claim_kind
from shared.domain.errors import ConcurrentUpdate
from shared.domain.model import AuditEntry, Link
from shared.domain.planner import MANAGER, PlanItem, immutable_id
from shared.service.context import Actor, Auditor
from shared.service.ports import Applied, Clock, Uniques, UserRecord, UserRepository


@dataclass(frozen=True)
class Recorded:
    """What one outcome leaves: the link as it is now, whether it must be written, the account to claim for the
    user, and the audit entry (None when nothing was written or changed)."""

    link: Link
    save: bool
    claim: str | None
    entry: AuditEntry | None


class Links:
    def __init__(self, users: UserRepository, uniques: Uniques, auditor: Auditor, clock: Clock) -> None:
        self.users = users
        self.uniques = uniques
        self.auditor = auditor
        self.clock = clock

    def outcome(self, user_id: str, old: Link, applied: Applied, actor: Actor) -> Recorded:
        final = applied.item
        ok = applied.ok
        m365_id = applied.m365_user_id or final.m365_user_id or old.m365_user_id
        origin = old.origin
        if ok and final.action == "create":
            origin = "created"
        elif ok and final.action == "take_over":
            origin = "taken_over"
        manager = old.manager_m365_id
        if ok and MANAGER in final.changes and applied.manager_applied:
            manager = final.changes[MANAGER][1]
        link = Link(
            user_id=user_id,
            directory_id=final.directory_id,
            status=final.status if ok else "error",
            m365_user_id=m365_id,
            immutable_id=old.immutable_id
            or (immutable_id(user_id) if final.action == "create" and ok else None),
            origin=origin,
            fingerprint=final.fingerprint if ok and final.fingerprint else old.fingerprint,
            reason=final.reason if ok else applied.error,
            candidates=final.candidates,
            last_sync_at=self.clock(),
            manager_m365_id=manager,
        )
        # A block of an unlinked account (one carrying the user's immutable id) links and claims it too.
        claims = final.action in ("create", "take_over") or (final.action == "block" and not old.m365_user_id)
        unchanged = dataclasses.replace(link, last_sync_at=old.last_sync_at) == old
        entry = None
        if final.writes or applied.outcome != "none" or (final.action == "needs_attention" and not unchanged):
            before, after = describe_changes(final)
            entry = self.auditor.entry(
                actor,
                f"m365.{final.action}",
                result="succeeded" if ok else f"{applied.outcome}: {applied.error}",
                user_id=user_id,
                directory_id=final.directory_id,
                before=before or None,
                after={
                    **after,
                    **({"m365UserId": m365_id} if m365_id else {}),
                    **({"reason": final.reason} if final.reason else {}),
                }
                or None,
            )
        return Recorded(
            link,
            not unchanged or final.writes,
            m365_id if m365_id and ok and claims else None,
            entry,
        )

    async def record(self, user_id: str, old: Link, applied: Applied, actor: Actor) -> None:
        """One outcome, recorded alone (read, change, write of the link)."""
        r = self.outcome(user_id, old, applied, actor)
        if r.claim:
            await self.uniques.insert(claim_kind(r.link.directory_id), r.claim, user_id, self.clock())
        if r.save:
            await self.users.save_link(r.link)
        if r.entry is not None:
            await self.auditor.record_all([r.entry])

    async def record_all(
        self,
        record: UserRecord,
        outcomes: Sequence[tuple[Link, Applied]],
        actor: Actor,
        *,
        later: list[AuditEntry] | None = None,
    ) -> UserRecord:
        """A user's outcomes (each with the link it started from), written against ``record`` as read: the record
        as it is afterwards. ``ConcurrentUpdate`` (after auditing) when another run wrote these links since.
        ``later``: the entries, written in the user's partition, are added to it for the caller to record the
        rest of at once with other users' (``record_all(..., users_written=True)``)."""
        user_id = record.user.id
        recorded = [self.outcome(user_id, old, applied, actor) for old, applied in outcomes]
        for r in recorded:
            if r.claim:
                await self.uniques.insert(claim_kind(r.link.directory_id), r.claim, user_id, self.clock())
        entries = [r.entry for r in recorded if r.entry is not None]
        links = [r.link for r in recorded if r.save]
        if not links:
            await self.auditor.record_all(entries)
            return record
        try:
            version = await self.users.save_links(record, links, entries)
        except ConcurrentUpdate:
            await self.auditor.record_all(entries)  # Graph was written: the audit says so whatever follows
            raise
        if later is not None:
            later.extend(entries)
        else:
            await self.auditor.record_all(entries, users_written=True)
        now = {**record.links, **{x.directory_id: x for x in links}}
        return dataclasses.replace(record, links=now, version=version)


def describe_changes(item: PlanItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) for the audit; the password is never part of a plan item, so never of the audit."""
    return ({k: v[0] for k, v in item.changes.items()}, {k: v[1] for k, v in item.changes.items()})
