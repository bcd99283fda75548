"""Rule 14, planned: security groups only, exactly the linked members, adoption only when asked."""

from __future__ import annotations

from shared.domain.group_plan import M365Group, mail_nickname, member_chunks, plan_group

SEC = M365Group("g1", "Sales", True, False)


def test_no_group_yet_creates_one_with_every_linked_member() -> None:
    plan = plan_group("Sales", frozenset({"b", "a"}), None, None, (), adopt=False)
    assert (plan.action, plan.add) == ("create", ("a", "b"))


def test_a_linked_group_gets_exactly_the_desired_members_and_the_name() -> None:
    plan = plan_group("Sales EU", frozenset({"a", "b"}), SEC, frozenset({"b", "c"}), (), adopt=False)
    assert (plan.action, plan.rename, plan.add, plan.remove) == ("update", "Sales EU", ("a",), ("c",))
    same = plan_group("Sales", frozenset({"a"}), SEC, frozenset({"a"}), (), adopt=False)
    assert (same.action, same.writes) == ("none", False)


def test_a_same_name_group_is_adopted_only_when_asked_and_only_a_plain_security_group() -> None:
    assert plan_group("Sales", frozenset(), None, None, (SEC,), adopt=False).action == "conflict"
    assert plan_group("Sales", frozenset(), None, None, (SEC,), adopt=True).action == "adopt"
    unified = M365Group("g2", "Sales", False, True, ("Unified",))
    mail = M365Group("g3", "Sales", True, True)
    for other in (unified, mail):
        refused = plan_group("Sales", frozenset(), None, None, (other,), adopt=True)
        assert refused.action == "conflict" and "not a plain security group" in (refused.reason or "")
    twins = plan_group(
        "Sales", frozenset(), None, None, (SEC, M365Group("g4", "Sales", True, False)), adopt=True
    )
    assert twins.action == "conflict"


def test_a_linked_group_that_became_unified_is_left_alone() -> None:
    changed = M365Group("g1", "Sales", False, True, ("Unified",))
    assert plan_group("Sales", frozenset({"a"}), changed, frozenset(), (), adopt=True).action == "conflict"


def test_members_go_in_binds_of_twenty_and_the_alias_is_graph_safe() -> None:
    assert [len(c) for c in member_chunks(tuple(str(i) for i in range(45)))] == [20, 20, 5]
    alias = mail_nickname("0b7c9d1e-2f3a", "Sales & Marketing (EU) @ HQ")
    assert alias == "SalesMarketingEUHQ-0b7c9d1e" and len(alias) <= 64


def test_rule23_a_protected_account_is_never_added_to_or_removed_from_a_mirrored_group() -> None:
    protected = frozenset({"admin-1", "admin-2"})
    kept = plan_group(
        "Sales",
        frozenset({"a", "admin-1"}),
        SEC,
        frozenset({"admin-2", "b"}),
        (),
        adopt=False,
        protected=protected,
    )
    assert (kept.add, kept.remove) == (("a",), ("b",))
    created = plan_group(
        "Sales", frozenset({"a", "admin-1"}), None, None, (), adopt=False, protected=protected
    )
    assert created.add == ("a",)
