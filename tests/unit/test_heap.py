"""The heap is frozen after an invocation that imported modules, and only then (``shared.heap``)."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterator

import pytest

from shared import heap
from shared.logs import correlated


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    heap.settle()  # the modules loaded so far are the baseline
    gc.unfreeze()
    yield
    gc.unfreeze()


def _import_a_module(name: str) -> None:
    sys.modules[name] = types.ModuleType(name)  # as an import leaves it: one more entry


def test_an_invocation_that_imported_freezes_what_it_loaded(thawed: None) -> None:
    with correlated():
        _import_a_module("warden_test_heap_first")
        holder: list[list[int]] = [[]]  # a container: tracked by the collector until frozen
        assert any(o is holder for o in gc.get_objects())
    try:
        assert gc.get_freeze_count() > 0
        assert not any(o is holder for o in gc.get_objects())  # frozen: out of every collection's reach
    finally:
        del sys.modules["warden_test_heap_first"]


def test_an_invocation_that_imported_nothing_freezes_nothing(thawed: None) -> None:
    with correlated():
        _ = [[] for _ in range(10)]
    assert gc.get_freeze_count() == 0


def test_settle_freezes_once_per_change_in_the_modules_loaded(thawed: None) -> None:
    _import_a_module("warden_test_heap_second")
    try:
        assert heap.settle() is True
        assert heap.settle() is False
    finally:
        del sys.modules["warden_test_heap_second"]
    assert heap.settle() is True  # one fewer is a change too
