"""Rule 16: Warden as the password authority. With ``passwordNeverExpires`` on, the tenant's verified *managed*
domains get ``passwordValidityPeriodInDays`` 2147483647 (Entra's "never expires"), so that a password Warden pushes
is not expired by Entra behind it; each domain's previous value is remembered and put back when the option is turned
off. Federated domains are left alone: their passwords are the IdP's business.
https://learn.microsoft.com/en-us/graph/api/resources/domain (passwordValidityPeriodInDays: 14-730, or 2147483647),
.../api/domain-update
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.domain.federation import TenantDomain

NEVER_EXPIRES = 2147483647


@dataclass(frozen=True)
class PolicyChange:
    """One domain's password validity to write (``after``), and what Warden remembers of it."""

    domain: str
    before: int | None
    after: int | None
    """None: nothing to write (only remembering or forgetting)."""
    remember: int | None = None
    """The value to keep as the domain's previous one (first seen while the option is on)."""
    forget: bool = False
    """The option is off and the domain is back as it was: its previous value is no longer needed."""


def policy_changes(
    domains: Sequence[TenantDomain], never_expires: bool, remembered: Mapping[str, int]
) -> list[PolicyChange]:
    """What makes the tenant's domains match the option. On: every verified managed domain never expires, and its
    value before that is remembered (once: a domain seen for the first time is remembered as it is). Off: every
    remembered domain gets its value back (unless it has become federated) and is forgotten."""
    out: list[PolicyChange] = []
    by_name = {d.name: d for d in domains}
    if never_expires:
        for d in domains:
            if not d.is_verified or d.federated:
                continue
            remember = d.password_validity_days if d.name not in remembered else None
            write = d.password_validity_days != NEVER_EXPIRES
            if write or remember is not None:
                out.append(
                    PolicyChange(
                        d.name,
                        d.password_validity_days,
                        NEVER_EXPIRES if write else None,
                        remember,
                    )
                )
        return out
    for name, previous in sorted(remembered.items()):
        found = by_name.get(name)
        current = found.password_validity_days if found is not None else None
        back = found is not None and found.is_verified and not found.federated and current != previous
        out.append(PolicyChange(name, current, previous if back else None, forget=True))
    return out
