"""What a source's webhook delivers, once authenticated (``Sources.authenticate``) and parsed by its door: a
standard HR event, or BambooHR's employee changes. Each goes through the one accept path of HR events
(``Hris.accept``: receipts, the person by employeeId, staleness, the user's change, bindings, audit with the
source's actor, one sync), and the source's activity is noted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.bamboohr import BambooChange
from shared.domain.hr import Employee, HrEvent
from shared.service.context import Actor, Auditor
from shared.service.hr.events import Accepted, Delivery, Hris
from shared.service.hr.scim import SourceRecords
from shared.service.hr.sources import Authenticated, Sources
from shared.service.ports import UserRepository


@dataclass(frozen=True)
class ChangeAccepted:
    bamboo_id: str
    accepted: Accepted


class SourceEvents:
    def __init__(
        self, hris: Hris, sources: Sources, records: SourceRecords, users: UserRepository, auditor: Auditor
    ) -> None:
        self.hris = hris
        self.sources = sources
        self.records = records
        self.users = users
        self.auditor = auditor

    async def standard(self, auth: Authenticated, event: HrEvent, correlation_id: str | None) -> Accepted:
        accepted = await self.hris.accept(event, auth.delivery, correlation_id, source=auth.ref)
        await self.sources.accepted(auth.source)
        return accepted

    async def bamboohr(
        self, auth: Authenticated, changes: Sequence[BambooChange], correlation_id: str | None
    ) -> list[ChangeAccepted]:
        """Each change in turn (a delivery lists them in the order they happened). A change that fails stops the
        delivery with that failure: BambooHR retries it, and the changes applied before are receipts by then."""
        out = []
        for change in changes:
            out.append(ChangeAccepted(change.bamboo_id, await self._one(auth, change, correlation_id)))
        await self.sources.accepted(auth.source)
        return out

    async def _one(self, auth: Authenticated, change: BambooChange, correlation_id: str | None) -> Accepted:
        source = auth.ref
        delivery = Delivery(change.receipt, change.at)
        if change.action == "Created":
            await self.auditor.record(
                Actor(source.actor, correlation_id),
                "hris.event.ignored",
                after={
                    "bambooId": change.bamboo_id,
                    "action": change.action,
                    "reason": "a Created notice carries no fields: the employee is applied from the Updated "
                    "delivery BambooHR sends next",
                },
            )
            return Accepted("ignored")
        if change.action == "Deleted":
            event = await self._deleted(source.id, change.bamboo_id)
            if event is None:
                await self.auditor.record(
                    Actor(source.actor, correlation_id),
                    "hris.event.ignored",
                    after={
                        "bambooId": change.bamboo_id,
                        "action": change.action,
                        "reason": "no Warden user is known under this BambooHR id",
                    },
                )
                return Accepted("ignored")
        else:
            assert change.event is not None
            event = change.event
        accepted = await self.hris.accept(event, delivery, correlation_id, source=source)
        if accepted.user_id is not None and change.action == "Updated":
            await self.records.remember(source.id, "user", change.bamboo_id, accepted.user_id)
        return accepted

    async def _deleted(self, source_id: str, bamboo_id: str) -> HrEvent | None:
        """A deleted BambooHR record: the person it named is terminated now (blocked everywhere)."""
        owner = await self.records.owner(source_id, "user", bamboo_id)
        record = await self.users.get(owner) if owner is not None else None
        if record is None or record.user.deleted_at is not None or not record.user.employee_id:
            return None
        u = record.user
        return HrEvent(
            "employee.terminated",
            Employee(
                employee_id=u.employee_id or "", email=u.email, first_name=u.first_name, last_name=u.last_name
            ),
        )
