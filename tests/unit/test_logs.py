"""Structured logs: one JSON object per event with the correlation id of the unit of work."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import correlated, correlation_id, log_event


def test_event_is_one_json_object_with_the_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("warden.test")
    with caplog.at_level(logging.INFO, logger="warden.test"), correlated("req-42") as cid:
        log_event(logger, "health.checked", status="down", down=["keyVault"])
    assert cid == "req-42"
    (record,) = caplog.records
    assert json.loads(record.getMessage()) == {
        "event": "health.checked",
        "correlationId": "req-42",
        "status": "down",
        "down": ["keyVault"],
    }


def test_a_new_id_is_made_when_none_or_an_unsafe_one_is_given() -> None:
    with correlated() as first:
        assert correlation_id() == first and len(first) == 36
    with correlated("bad id\nwith newline") as second:
        assert second != "bad id\nwith newline" and len(second) == 36
    assert correlation_id() is None


def test_disabled_levels_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A disabled level neither logs nor builds the JSON: a field that fails to render is never touched."""

    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("rendered for a disabled level")

    logger = logging.getLogger("warden.quiet")
    with caplog.at_level(logging.WARNING, logger="warden.quiet"):
        log_event(logger, "noise", level=logging.DEBUG, n=Exploding())
        log_event(logger, "kept", level=logging.WARNING, n=1)
    assert [json.loads(r.getMessage())["event"] for r in caplog.records] == ["kept"]
