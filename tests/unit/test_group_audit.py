"""The audit of a mirror's update: every member id named once, in entries small enough for an audit row."""

from __future__ import annotations

from shared.domain.group_plan import GroupPlan
from shared.service.sync.group import update_audit


def test_nothing_changed_writes_no_entry() -> None:
    assert update_audit("g", GroupPlan("none", "g")) == []


def test_a_small_change_is_one_entry_without_parts() -> None:
    (entry,) = update_audit("g", GroupPlan("update", "g", "Sales EU", ("a", "b"), ("c",)))
    assert entry == {"m365GroupId": "g", "displayName": "Sales EU", "added": ["a", "b"], "removed": ["c"]}


def test_a_large_change_is_split_naming_each_id_once_and_the_rename_once() -> None:
    added = tuple(f"a{i}" for i in range(7))
    removed = tuple(f"r{i}" for i in range(4))
    parts = update_audit("g", GroupPlan("update", "g", "New", added, removed), ids_per_entry=3)
    assert [p["part"] for p in parts] == ["1/4", "2/4", "3/4", "4/4"]
    assert [p["displayName"] for p in parts] == ["New", None, None, None]
    assert all(len(p["added"]) + len(p["removed"]) <= 3 for p in parts)
    assert [m for p in parts for m in p["added"]] == list(added)
    assert [m for p in parts for m in p["removed"]] == list(removed)
