"""What a plan item's outcome leaves in the store: the link as the outcome leaves it, the claim on the account Warden
linked, and the audit entry. A user's own sync and a reconcile's chunks record their outcomes alike."""

from __future__ import annotations

import dataclasses
from typing import Any

from shared.domain.claims import claim_kind
from shared.domain.model import Link
from shared.domain.planner import MANAGER, PlanItem, immutable_id
from shared.service.context import Actor, Auditor
from shared.service.ports import Applied, Clock, Uniques, UserRepository


class Links:
    def __init__(self, users: UserRepository, uniques: Uniques, auditor: Auditor, clock: Clock) -> None:
        self.users = users
        self.uniques = uniques
        self.auditor = auditor
        self.clock = clock

    async def record(self, user_id: str, old: Link, applied: Applied, actor: Actor) -> None:
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
        if m365_id and ok and claims:
            await self.uniques.insert(claim_kind(final.directory_id), m365_id, user_id, self.clock())
        unchanged = dataclasses.replace(link, last_sync_at=old.last_sync_at) == old
        if not unchanged or final.writes:
            await self.users.save_link(link)
        if final.writes or applied.outcome != "none" or (final.action == "needs_attention" and not unchanged):
            before, after = describe_changes(final)
            await self.auditor.record(
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


def describe_changes(item: PlanItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) for the audit; the password is never part of a plan item, so never of the audit."""
    return ({k: v[0] for k, v in item.changes.items()}, {k: v[1] for k, v in item.changes.items()})
