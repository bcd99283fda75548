"""Connections to M365 tenants (SPEC rule 18): what Entra's refusals mean, which credential of an app
registration Warden uses, when an expiry deserves a warning. Pure rules over plain values.

Entra's codes (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes, GRAPH-NOTES
"Tokens" and "Applications"): Warden branches on the error and the AADSTS code, never on the text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

EXPIRY_WARNING = dt.timedelta(days=7)
"""Rule 18: warn this long before a secret or certificate expires."""

LAPSING_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "interaction_required"})
"""Token errors that no retry can cure: the grant or the client's credential is gone (an admin must act)."""

NO_SIGN_IN = "no_sign_in"
"""Not Entra's: the token cache holds no sign-in of the consenting user (it was lost or never written)."""

_WHY: dict[int, str] = {
    700082: "the refresh token expired after 90 days without use",
    70008: "the refresh token or grant expired or was revoked",
    50173: "the consenting user's sign-in sessions were revoked (a password change, 'revoke sessions') or an "
    "admin withdrew the consent",
    50057: "the consenting user's account is disabled",
    50034: "the consenting user no longer exists in the tenant",
    70043: "Conditional Access sign-in frequency requires a fresh sign-in",
    50076: "multi-factor authentication is now required for the consenting user",
    50079: "the consenting user must register for multi-factor authentication",
    65001: "the consent for the app was removed",
    7000215: "the app's client secret is wrong (it was removed or replaced in the app registration)",
    7000222: "the app's client secret has expired",
    700027: "the app's certificate is unknown, expired or was removed from the app registration",
    700016: "the app registration no longer exists in the tenant",
    7000112: "the app registration is disabled",
}

_WHAT_TO_DO = {
    "delegated": "reactivate the directory (POST /api/directories/{id}/reactivate) and have an administrator of "
    "the tenant consent again - ideally a service account that does not leave, whose password does not change",
    "app": "give the app a new client secret or certificate in Entra ID and hand it to Warden with POST "
    "/api/directories/{id}/reactivate",
}


def is_lapse(error: str) -> bool:
    return error in LAPSING_ERRORS or error == NO_SIGN_IN


def lapse_reason(
    directory_id: str, mode: Literal["app", "delegated"], error: str, codes: Sequence[int]
) -> tuple[str | None, str]:
    """(``AADSTS<code>`` or None, a sentence saying what happened and what to do) for a lapsed connection."""
    code = codes[0] if codes else None
    if error == NO_SIGN_IN:
        what = "the stored sign-in of the consenting user is missing"
    else:
        what = _WHY.get(code or 0) or f"Entra ID refused the connection ({error})"
    # An expired or wrong client credential is fixed by a new one even in delegated mode (the confidential
    # client's secret or certificate), a dead grant only by a new consent.
    credential = code in (7000215, 7000222, 700027) or error in ("invalid_client", "unauthorized_client")
    todo = _WHAT_TO_DO["app" if (mode == "app" or credential) else "delegated"].format(id=directory_id)
    label = f"AADSTS{code}" if code else None
    return label, f"{what}{f' ({label})' if label else ''}: {todo}"


@dataclass(frozen=True)
class AppCredential:
    """One credential of an app registration as Graph lists it (``passwordCredentials`` / ``keyCredentials``)."""

    key_id: str
    kind: Literal["secret", "certificate"]
    end: dt.datetime | None
    hint: str | None = None
    """Secrets: the first three characters (Graph's ``hint``)."""
    custom_key_identifier: str | None = None
    """Certificates: the base64 SHA-1 thumbprint (Graph's ``customKeyIdentifier``)."""


def credential_in_use(
    credentials: Sequence[AppCredential],
    *,
    kind: Literal["secret", "certificate"],
    key_id: str | None,
    hint: str | None,
    sha1: str | None,
) -> tuple[AppCredential | None, str | None]:
    """The app's credential Warden uses, found by its ``keyId`` once known, else by the secret's ``hint`` or the
    certificate's thumbprint; and a warning when that is ambiguous (several secrets share the hint: the one
    expiring first is taken, so a warning is never late)."""
    mine = [c for c in credentials if c.kind == kind]
    if key_id:
        found = [c for c in mine if c.key_id.lower() == key_id.lower()]
        if found:
            return found[0], None
    if kind == "certificate":
        found = [c for c in mine if sha1 and c.custom_key_identifier == sha1]
    else:
        found = [c for c in mine if hint and c.hint == hint]
    if not found:
        return None, None
    found.sort(key=lambda c: c.end or dt.datetime.max.replace(tzinfo=dt.UTC))
    if len(found) > 1:
        return found[0], (
            f"{len(found)} client secrets of the app start with the same characters: the expiry shown is the "
            "earliest of them"
        )
    return found[0], None


def expiry_warning(expires_at: dt.datetime | None, now: dt.datetime, what: str) -> str | None:
    """The directory warning for a credential that expires within ``EXPIRY_WARNING`` (or has expired)."""
    if expires_at is None:
        return None
    left = expires_at - now
    if left <= dt.timedelta(0):
        return f"the app's {what} expired on {expires_at:%Y-%m-%d}: give a new one with POST …/reactivate"
    if left <= EXPIRY_WARNING:
        days = left.days + (1 if left.seconds or left.microseconds else 0)
        return (
            f"the app's {what} expires within {days} day{'s' if days != 1 else ''} ({expires_at:%Y-%m-%d}): "
            "add a new one in Entra ID and give it to Warden with POST …/reactivate"
        )
    return None


def expiring(expires_at: dt.datetime | None, now: dt.datetime) -> bool:
    return expires_at is not None and expires_at - now <= EXPIRY_WARNING


NotificationType = Literal[
    "directory.credential_expiring", "directory.needs_reactivation", "directory.reactivated", "run.held"
]
NOTIFICATION_TYPES: tuple[NotificationType, ...] = (
    "directory.credential_expiring",
    "directory.needs_reactivation",
    "directory.reactivated",
    "run.held",
)
