"""BambooHR's field-based webhooks as HR events (documentation.bamboohr.com/docs/field-based-webhooks).

A delivery carries ``employees``, each with BambooHR's ``id`` for the person, an ``action`` (``Created``,
``Updated``, ``Deleted``), a ``timestamp``, the ``changedFields`` and the ``fields`` the webhook posts (under
BambooHR's English names, or the aliases the webhook gives them). ``Created`` and ``Deleted`` carry no fields
("the payload will always contain empty changedFields and fields objects"): the person is created from the
``Updated`` delivery BambooHR sends right after a creation, and a deleted record blocks the person Warden knows
under that BambooHR id. What the ``Status`` field says decides the event: ``Inactive`` is a termination, as is a
``Termination Date`` (now, or at that date); ``Active`` without one is a rehire (a person suspended comes back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.domain.hr import EventType, HrEvent

Action = Literal["Created", "Updated", "Deleted"]


@dataclass(frozen=True)
class BambooChange:
    """One employee entry of a delivery: BambooHR's id for the person, what happened, the HR event it makes (None
    for ``Created`` and ``Deleted``), its receipt id (the same on every redelivery of this change) and when it
    happened."""

    bamboo_id: str
    action: Action
    event: HrEvent | None
    receipt: str
    at: dt.datetime


def event_type(status: str | None, end_at: str | None) -> EventType:
    """The HR event an ``Updated`` entry is, from the mapped ``Status`` and ``Termination Date``."""
    if status is not None and status.strip().lower() == "inactive":
        return "employee.terminated"
    if end_at is not None:
        return "employee.terminated"
    if status is not None and status.strip().lower() == "active":
        return "employee.rehired"
    return "employee.updated"


def receipt_id(
    source_id: str, bamboo_id: str, action: str, timestamp: str | None, fields: Mapping[str, object]
) -> str:
    """A change's receipt: BambooHR sends no delivery id, and a retry is signed anew (another timestamp), so the
    receipt is the change itself (the person, the action, when BambooHR says it happened, what it posted)."""
    digest = hashlib.sha256(json.dumps(dict(fields), sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"bamboohr:{source_id}:{bamboo_id[:64]}:{action}:{(timestamp or '')[:40]}:{digest}"


EMPTY_DATES = frozenset({"", "0000-00-00"})
"""BambooHR writes an empty date as ``0000-00-00``."""
