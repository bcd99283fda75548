"""Runs: a reconcile, a drift round or a user's sync as a record with its plan, and the mass-change guard.

Rule 19: a plan that blocks (or stops managing) more than the directory's threshold — more than ``percent`` of
its linked users AND more than ``count`` users — is held, nothing written, until an admin approves or discards it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.domain.jobs import Cutting, chunk_whole, counted, is_counted
from shared.domain.model import Directory, MassChangeGuard

RunKind = Literal["reconcile", "drift", "user", "token_refresh"]
DIRECTORY_GONE = "the directory was deactivated: nothing more is written there"
"""Why a run or an import of a directory deactivated meanwhile ended (failed) without finishing."""
RunStatus = Literal["planning", "held", "applying", "done", "failed", "discarded", "skipped"]
"""``skipped``: the run did not start because its directory's connection does not work (rule 18); ``error`` says
why."""
ItemState = Literal["planned", "applied", "failed", "skipped"]
GUARDED_ACTIONS = frozenset({"block"})
"""What the guard counts: accounts a plan would lock out."""
RUN_CUTTING = Cutting(chunk=100, part=100)
"""A reconcile's plan items: 100 to a queue message, applied together (their writes share ``$batch`` requests) and
counted together."""


@dataclass(frozen=True)
class RunItem:
    n: int
    action: str
    user_id: str
    state: ItemState
    payload: dict[str, Any]
    """The plan item as plain data (action, user, M365 id, changes before → after, reason, candidates)."""
    error: str | None = None


@dataclass(frozen=True)
class Run:
    id: str
    directory_id: str
    kind: RunKind
    dry_run: bool
    status: RunStatus
    trigger: str
    """Who or what started it: ``admin:<oid>``, ``timer:reconcile``, ``timer:drift``."""
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    planned_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """Plan items per action, and ``unmanaged``: tenant accounts Warden does not manage (never touched)."""
    progress: dict[str, int] = field(default_factory=dict)
    """``applied``, ``failed``, ``skipped`` items and ``chunksDone`` so far."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Graph requests, resource units, writes, throttled answers and waits of the run."""
    guard: dict[str, Any] | None = None
    error: str | None = None
    items: int = 0
    chunks: int = 0
    parts_counted: bytes = b""
    """A bit per part of the plan whose outcome is in ``progress`` (``shared.domain.jobs``)."""

    def items_of(self, chunk: int) -> range:
        return RUN_CUTTING.items_of(chunk, self.items)

    def parts_of(self, chunk: int) -> range:
        return RUN_CUTTING.parts_of(chunk, self.items)

    def part_of(self, n: int) -> int:
        return RUN_CUTTING.part_of(n)

    def is_counted(self, part: int) -> bool:
        return is_counted(self.parts_counted, part)

    def tallied(self, part: int, counts: Mapping[str, int], at: dt.datetime) -> Run:
        """The run with a part's outcome added to its progress, once (a part counted already leaves the run as it
        is); ``chunksDone`` moves when the chunk's last part is counted, and the run is done with its last chunk."""
        if self.is_counted(part):
            return self
        bits = counted(self.parts_counted, part)
        progress = dict(self.progress)
        for k, v in counts.items():
            progress[k] = progress.get(k, 0) + v
        if chunk_whole(RUN_CUTTING, bits, part, self.items):
            progress["chunksDone"] = progress.get("chunksDone", 0) + 1
        return replace(self, parts_counted=bits).with_progress(progress, at)

    def with_progress(self, progress: dict[str, int], at: dt.datetime) -> Run:
        done = self.status == "applying" and progress.get("chunksDone", 0) >= self.chunks
        return replace(
            self,
            progress=progress,
            status="done" if done else self.status,
            finished_at=at if done else self.finished_at,
        )


def guard_verdict(counts: dict[str, int], linked: int, guard: MassChangeGuard) -> dict[str, Any] | None:
    """The reason to hold a plan, or None. Blocks over both thresholds hold it (rule 19)."""
    blocking = sum(counts.get(a, 0) for a in GUARDED_ACTIONS)
    share = 100.0 * blocking / linked if linked else (100.0 if blocking else 0.0)
    if blocking > guard.count and share > guard.percent:
        return {
            "blocking": blocking,
            "linked": linked,
            "percent": round(share, 2),
            "threshold": {"percent": guard.percent, "count": guard.count},
            "reason": f"the plan blocks {blocking} of {linked} linked users ({share:.1f} %), over the directory's "
            f"guard (more than {guard.percent:g} % and more than {guard.count})",
        }
    return None


def skipped_run(run_id: str, d: Directory, kind: RunKind, trigger: str, at: dt.datetime) -> Run:
    """A run that did not start: its directory's connection does not work (rule 18); ``error`` says why."""
    return Run(
        run_id,
        d.id,
        kind,
        False,
        "skipped",
        trigger,
        at,
        finished_at=at,
        error=f"skipped: the directory is {d.status}" + (f", {d.status_reason}" if d.status_reason else ""),
    )
