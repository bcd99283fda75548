"""What Graph's answer to a write means for Warden, by HTTP status *and* Graph error code (never by status alone):
the small outcome taxonomy the use cases speak (``shared.service.ports.Outcome``).

- 2xx → ``applied``.
- 401 (the app's token is refused) → ``stopped``: nothing in this directory can be written; stop sending.
- 429 and 5xx that outlived the retries, 409 ``Directory_ConcurrencyViolation`` ("repeat the request after a short
  delay", graph/errors) → ``retry``: the object's sync fails now and its queue message is retried.
- 404 / ``Request_ResourceNotFound`` on an object Warden addressed by id → ``rematch``: the account is gone, or
  not Warden's to address: look again by email.
- 400 ``Request_BadRequest`` with ``details`` ``ObjectConflict`` on ``userPrincipalName`` (or, without details,
  Graph's message "Another object with the same value for property userPrincipalName already exists.") on a
  create → ``exists``: a retry after a lost answer, or a twin: find it and link it, never a second account.
- 403 ``Authorization_RequestDenied`` and other 4xx → ``failed`` for this object, recorded with Graph's message.
  A 403 names one object: Graph refuses changes to an account holding a privileged role unless the caller holds a
  higher one (GRAPH-NOTES "Role holders"). When every write of a group of several objects is refused with 403,
  the app lacks the permission itself, and the directory stops (``stops_directory``).

https://learn.microsoft.com/en-us/graph/errors, .../json-batching, .../api/user-post-users
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.adapters.m365.batch import BatchResult
from shared.service.ports import Outcome

FAILED_DEPENDENCY = 424
"""json-batching: a request whose ``dependsOn`` failed; the cause is the dependency's own answer."""
DUPLICATE_UPN = "another object with the same value for property userprincipalname already exists"
CONFLICT_TARGETS = frozenset({"userprincipalname"})
RETRY_CODES = frozenset({"Directory_ConcurrencyViolation"})
NOT_FOUND_CODES = frozenset({"Request_ResourceNotFound", "ResourceNotFound"})


def is_duplicate(answer: BatchResult) -> bool:
    """Graph refused a create because an object with its UPN exists already (user-post-users)."""
    if answer.status != 400:
        return False
    if any(
        code == "ObjectConflict" and target.lower() in CONFLICT_TARGETS
        for code, target in answer.detail_codes
    ):
        return True
    return DUPLICATE_UPN in answer.error_message.lower()


def outcome_of(answer: BatchResult, *, creating: bool = False) -> Outcome:
    """The outcome of one write (``creating``: a POST of a new object, where a conflict means "it exists")."""
    status, code = answer.status, answer.error_code
    if answer.ok:
        return "applied"
    if status == 401:
        return "stopped"
    if status == 429 or status >= 500 or code in RETRY_CODES:
        return "retry"
    if creating and is_duplicate(answer):
        return "exists"
    if not creating and (status == 404 or code in NOT_FOUND_CODES):
        return "rematch"
    return "failed"


def detail_of(answer: BatchResult) -> str:
    """Graph's answer in a few words, for the link and the audit: status, error code and Graph's message."""
    return f"HTTP {answer.status} {answer.error_code or ''}: {answer.error_message or 'no message'}".replace(
        "  ", " "
    )


def stops_directory(answers: Sequence[BatchResult], objects: int) -> bool:
    """Several objects written together and every one refused with 403: the app lacks the permission for the
    write itself (not one protected account), so the rest of the directory's writes would be refused too."""
    answered = [a for a in answers if a.status != FAILED_DEPENDENCY]
    return objects > 1 and bool(answered) and all(a.status == 403 for a in answered)
