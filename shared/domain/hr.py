"""HR events as Warden reads them (SPEC §3): joiners, movers, leavers and rehires, and the pure rules that turn one
into a user's fields — lifecycle state, staleness, usernames. No I/O and no clock: ``now`` is given."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from shared.domain.dates import instant
from shared.domain.model import User, UserState

EventType = Literal["employee.hired", "employee.updated", "employee.terminated", "employee.rehired"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


@dataclass(frozen=True)
class Employee:
    """The ``data`` of an HR event, in the domain's names."""

    employee_id: str
    email: str
    first_name: str
    last_name: str
    optional: Mapping[str, str | None] = field(default_factory=dict)
    """The optional fields the event gave (``display_name``, ``job_title``, ``department``, ``start_at``,
    ``end_at``, ``time_zone``, ``manager_employee_id``): ``None`` clears one; an absent one stays as it is."""
    occurred_at: dt.datetime | None = None
    directories: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class HrEvent:
    type: EventType
    employee: Employee


def event_time(employee: Employee, sent_at: dt.datetime) -> dt.datetime:
    """When the event happened: its ``occurredAt``, else when it was sent (``webhook-timestamp``)."""
    return employee.occurred_at if employee.occurred_at is not None else sent_at


def is_stale(event_at: dt.datetime, last_applied: dt.datetime | None) -> bool:
    """Older than the last event applied to the person. An equal time is not stale: a retry of the event
    that was applied halfway must be able to finish."""
    return last_applied is not None and event_at < last_applied


def is_later(value: str | None, time_zone: str | None, now: dt.datetime) -> bool:
    return value is not None and instant(value, time_zone) > now


def _derived_name(first: str, last: str) -> str:
    return f"{first} {last}"


def lifecycle(
    kind: EventType,
    current: UserState | None,
    start_at: str | None,
    end_at: str | None,
    time_zone: str | None,
    now: dt.datetime,
) -> UserState:
    """The state after the event (``current`` None: a new user). Rule 21: a future start is staged until then;
    a termination with a future end keeps the user until then (the dates timer blocks at that instant)."""
    starts_later = is_later(start_at, time_zone, now)
    hired: UserState = "staged" if starts_later else "active"
    if kind == "employee.rehired":
        return hired
    if kind == "employee.terminated":
        if is_later(end_at, time_zone, now):
            return current if current is not None else hired
        return "suspended"
    if current is None:
        return hired
    # hired/updated of a known person: a staged user whose start has come is active; nobody suspended comes
    # back without a rehire (a late retry of an old hire must not undo a termination).
    return "active" if current == "staged" and not starts_later else current


def new_user_fields(
    event: HrEvent,
    username: str,
    manager_id: str | None,
    event_at: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """``Users.create``'s fields for a person Warden does not know yet."""
    e = event.employee
    o = e.optional
    time_zone = o.get("time_zone")
    start_at, end_at = o.get("start_at"), o.get("end_at")
    if event.type == "employee.terminated" and not is_later(end_at, time_zone, now):
        raise ValueError("a termination that is already effective creates nobody")
    return {
        "username": username,
        "email": e.email,
        "first_name": e.first_name,
        "last_name": e.last_name,
        "display_name": o.get("display_name") or _derived_name(e.first_name, e.last_name),
        "employee_id": e.employee_id,
        "job_title": o.get("job_title"),
        "department": o.get("department"),
        "manager_id": manager_id,
        "start_at": start_at,
        "end_at": end_at,
        "time_zone": time_zone,
        "state": lifecycle(event.type, None, start_at, end_at, time_zone, now),
        "hr_event_at": event_at,
    }


UNCHANGED = object()
"""``manager_id`` argument of ``user_changes``: leave the manager as it is."""


def user_changes(event: HrEvent, user: User, manager_id: Any, now: dt.datetime) -> dict[str, Any]:
    """The fields the event sets on a known person (``Users.update`` drops those already equal).

    The username is kept (it is the mailbox alias an admin may have chosen); a display name that was the
    derived "first last" follows a change of name."""
    e = event.employee
    o = e.optional
    changes: dict[str, Any] = {
        "email": e.email,
        "first_name": e.first_name,
        "last_name": e.last_name,
        "employee_id": e.employee_id,
    }
    if "display_name" in o:
        changes["display_name"] = o["display_name"] or _derived_name(e.first_name, e.last_name)
    elif user.display_name == _derived_name(user.first_name, user.last_name):
        changes["display_name"] = _derived_name(e.first_name, e.last_name)
    for name in ("job_title", "department", "start_at", "end_at", "time_zone"):
        if name in o:
            changes[name] = o[name]
    if manager_id is not UNCHANGED:
        changes["manager_id"] = manager_id
    time_zone = changes.get("time_zone", user.time_zone)
    start_at = changes.get("start_at", user.start_at)
    if event.type == "employee.rehired" and "end_at" not in o:
        changes["end_at"] = None  # back for good unless the rehire says until when
    end_at = changes.get("end_at", user.end_at)
    if (
        event.type == "employee.terminated"
        and start_at is not None
        and end_at is not None
        and instant(end_at, time_zone) <= instant(start_at, time_zone)
    ):
        changes["start_at"] = None  # terminated before the start: the hire is cancelled
        start_at = None
    changes["state"] = lifecycle(event.type, user.state, start_at, end_at, time_zone, now)
    return changes


_USERNAME_MAX = 64


def username_candidates(email: str, employee_id: str) -> list[str]:
    """The username of a new hire: the email's local part, lower-cased; when another user has it, the local
    part and the employee id's last 4 letters or digits (``ada.1234``), then its whole employee id."""
    local = email.rsplit("@", 1)[0].lower()
    tail = re.sub(r"[^A-Za-z0-9]", "", employee_id).lower()
    out = [local]
    for suffix in (tail[-4:], tail):
        if suffix:
            out.append(f"{local[: _USERNAME_MAX - 1 - len(suffix)]}.{suffix}")
    return list(dict.fromkeys(out))


def active_state(current: UserState | None, active: bool | None) -> UserState:
    """The state a SCIM client's ``active`` asks for (``current`` None: a new user). ``active: false`` suspends
    (blocks everywhere); ``true`` reactivates a suspended user (a staged one stays staged until its start);
    left out, the state stays as it is."""
    if active is False:
        return "suspended"
    if current is None:
        return "active"
    if active is True and current == "suspended":
        return "active"
    return current
