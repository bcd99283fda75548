"""Who may do what through the admin API: app roles carried by the caller's Entra ID access token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["reader", "admin"]
ADMIN_ROLE = "Warden.Admin"
READER_ROLE = "Warden.Reader"


@dataclass(frozen=True)
class Principal:
    """A validated caller: its object id (user or service principal), its app (``azp``/``appid``), roles."""

    object_id: str
    app_id: str | None
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"admin:{self.object_id}"

    def may(self, role: Role) -> bool:
        """``Warden.Admin`` writes and reads; ``Warden.Reader`` reads."""
        if role == "admin":
            return ADMIN_ROLE in self.roles
        return bool({ADMIN_ROLE, READER_ROLE} & self.roles)


class Unauthenticated(Exception):
    """No token, or one that fails validation; ``reason`` is safe to show (RFC 6750 ``error_description``)."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
