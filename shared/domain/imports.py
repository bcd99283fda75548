"""Importing existing M365 accounts into Warden (rule 13), as pure rules.

An account becomes a ``staged`` user (source ``import``): username = its mailNickname (alias), else its email's
local part; email = its mail, else its UPN; first/last/display name, job title, department and employee id
copied. An account whose username or email already exists in Warden is skipped with that reason. A job's users
can be undone for 48 hours: those nobody has bound, edited or added to a group since are removed (M365 untouched).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from shared.domain.jobs import Cutting, chunk_whole, counted, is_counted
from shared.domain.planner import M365Account

UNDO_WINDOW = dt.timedelta(hours=48)
CHUNK = 100
PROGRESS_EVERY = 25
"""Items of a chunk imported, marked and counted at a time: a *part*, numbered by position (part ``p`` holds the
items ``25p … 25p + 24``), so a chunk delivered again cuts its parts as the first delivery did."""
IMPORT_CUTTING = Cutting(CHUNK, PROGRESS_EVERY)
ImportStatus = Literal["planning", "running", "done", "failed", "undone"]
ItemState = Literal["pending", "imported", "skipped", "failed"]


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


@dataclass(frozen=True)
class ImportItem:
    n: int
    m365_user_id: str
    account: dict[str, Any]
    state: ItemState = "pending"
    reason: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class ImportJob:
    id: str
    directory_id: str
    bind: bool
    status: ImportStatus
    trigger: str
    selection: dict[str, Any]
    created_at: dt.datetime
    undo_until: dt.datetime
    total: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    chunks: int = 0
    chunks_done: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    undone_at: dt.datetime | None = None
    error: str | None = None
    parts_counted: bytes = b""
    """A bit per part, set when its outcome is in the counters (500 bytes for 100,000 accounts)."""

    def items_of(self, chunk: int) -> range:
        return IMPORT_CUTTING.items_of(chunk, self.total)

    def parts_of(self, chunk: int) -> range:
        return IMPORT_CUTTING.parts_of(chunk, self.total)

    def part_of(self, n: int) -> int:
        return IMPORT_CUTTING.part_of(n)

    def is_counted(self, part: int) -> bool:
        return is_counted(self.parts_counted, part)

    def tallied(self, part: int, counts: Mapping[str, int]) -> ImportJob:
        """The job with a part's outcome counted, once: a part counted already (its chunk was delivered again,
        by the queue's at-least-once delivery or after a crash) leaves the job as it is. The chunk is done
        when its last part is counted, so a chunk delivered twice cannot close the job before the others."""
        if self.is_counted(part):
            return self
        bits = counted(self.parts_counted, part)
        whole = chunk_whole(IMPORT_CUTTING, bits, part, self.total)
        return replace(
            self,
            imported=self.imported + counts.get("imported", 0),
            skipped=self.skipped + counts.get("skipped", 0),
            failed=self.failed + counts.get("failed", 0),
            parts_counted=bits,
            chunks_done=self.chunks_done + 1 if whole else self.chunks_done,
        )

    def closed(self, at: dt.datetime) -> ImportJob:
        """Done once every chunk is."""
        return replace(self, status="done", finished_at=at) if self.chunks_done >= self.chunks else self

    @property
    def done(self) -> int:
        return self.imported + self.skipped + self.failed

    def rate_and_eta(self, now: dt.datetime) -> tuple[float | None, float | None]:
        """Accounts per second so far, and seconds left at that rate."""
        if self.started_at is None or self.done == 0:
            return None, None
        elapsed = max(((self.finished_at or now) - self.started_at).total_seconds(), 1e-3)
        rate = self.done / elapsed
        return rate, (max(self.total - self.done, 0) / rate if self.status == "running" else 0.0)
