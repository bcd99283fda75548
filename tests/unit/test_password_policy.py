"""Rule 16: never-expiring passwords on the managed domains while the option is on, each previous value back when
it is turned off, federated domains untouched."""

from __future__ import annotations

from shared.domain.federation import TenantDomain
from shared.domain.password_policy import NEVER_EXPIRES, PolicyChange, policy_changes


def domain(name: str, days: int | None, *, federated: bool = False, verified: bool = True) -> TenantDomain:
    return TenantDomain(name, verified, False, False, "Federated" if federated else "Managed", days)


DOMAINS = [
    domain("a.example", 90),
    domain("b.example", NEVER_EXPIRES),
    domain("fed.example", 90, federated=True),
    domain("new.example", 30, verified=False),
]


def test_on_sets_never_expires_on_verified_managed_domains_and_remembers_each_previous_value() -> None:
    assert policy_changes(DOMAINS, True, {}) == [
        PolicyChange("a.example", 90, NEVER_EXPIRES, remember=90),
        PolicyChange("b.example", NEVER_EXPIRES, None, remember=NEVER_EXPIRES),
    ]


def test_on_again_after_an_edit_in_m365_restores_without_forgetting_the_first_value() -> None:
    edited = [domain("a.example", 60), domain("b.example", NEVER_EXPIRES)]
    remembered = {"a.example": 90, "b.example": NEVER_EXPIRES}
    assert policy_changes(edited, True, remembered) == [PolicyChange("a.example", 60, NEVER_EXPIRES)]
    assert policy_changes([domain("a.example", NEVER_EXPIRES)], True, {"a.example": 90}) == []


def test_off_puts_each_remembered_value_back_except_on_a_domain_now_federated() -> None:
    now = [domain("a.example", NEVER_EXPIRES), domain("b.example", NEVER_EXPIRES, federated=True)]
    assert policy_changes(now, False, {"a.example": 90, "b.example": 45, "gone.example": 30}) == [
        PolicyChange("a.example", NEVER_EXPIRES, 90, forget=True),
        PolicyChange("b.example", NEVER_EXPIRES, None, forget=True),
        PolicyChange("gone.example", None, None, forget=True),
    ]
    assert policy_changes(now, False, {}) == []
