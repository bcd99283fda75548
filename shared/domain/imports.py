"""Importing existing M365 accounts into Warden (rule 13), as pure rules.

An account becomes a ``staged`` user (source ``import``): username = its mailNickname (alias), else its email's
local part; email = its mail, else its UPN; first/last/display name, job title, department and employee id
copied. An account whose username or email already exists in Warden is skipped with that reason. A job's users
can be undone for 48 hours: those nobody has bound, edited or added to a group since are removed (M365 untouched).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.domain.planner import M365Account

UNDO_WINDOW = dt.timedelta(hours=48)


@dataclass(frozen=True)
class Candidate:
    """An M365 account not yet linked, as the import list shows it."""

    account: M365Account
    username: str
    email: str
    exists: str | None
    """Why it would be skipped: a Warden user with the same email or username already exists (None: importable)."""


def email_of(account: M365Account) -> str:
    return (account.mail or account.user_principal_name).strip()


def username_of(account: M365Account) -> str:
    return (account.mail_nickname or email_of(account).split("@", 1)[0]).strip()


def user_fields(account: M365Account) -> dict[str, Any]:
    """The Warden user an account becomes (rule 13)."""
    first = account.given_name or username_of(account)
    last = account.surname or "-"
    return {
        "username": username_of(account),
        "email": email_of(account),
        "first_name": first[:64],
        "last_name": last[:64],
        "display_name": (account.display_name or f"{first} {last}")[:256],
        "job_title": account.job_title,
        "department": account.department,
        "employee_id": account.employee_id,
        "state": "staged",
    }


def import_user_id(job_id: str, m365_id: str) -> str:
    """The same Warden id for the same account in the same job: a chunk processed twice imports nobody twice."""
    return str(uuid.uuid5(uuid.UUID(job_id), m365_id))


def keep_reason(*, bound: bool, edited: bool, grouped: bool) -> str | None:
    """Why an imported user survives an undo (None: it is removed)."""
    reasons = [r for r, yes in (("bound", bound), ("edited", edited), ("added to a group", grouped)) if yes]
    return f"{' and '.join(reasons)} since the import" if reasons else None
