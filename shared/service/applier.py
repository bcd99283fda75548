"""What the sync writes besides Graph's own answers: a new account's password, and an item's changes as the
audit shows them."""

from __future__ import annotations

import secrets
import string
from typing import Any

from shared.domain.planner import PlanItem


def random_password(length: int = 24) -> str:
    """A strong random password meeting Entra's cloud policy (upper, lower, digit and symbol)."""
    symbols = "!@#$%^&*-_=+?"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(
            any(c in group for c in value)
            for group in (string.ascii_lowercase, string.ascii_uppercase, string.digits, symbols)
        ):
            return value


def describe_changes(item: PlanItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) for the audit; the password is never part of a plan item, so never of the audit."""
    return ({k: v[0] for k, v in item.changes.items()}, {k: v[1] for k, v in item.changes.items()})
