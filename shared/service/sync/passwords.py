"""A new account's password when the admin gave none: random and strong (drawn when the item is written, never
stored with a plan)."""

from __future__ import annotations

import secrets
import string


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
