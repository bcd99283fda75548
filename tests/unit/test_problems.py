"""Problem details are raised through context managers and rendered as RFC 9457 documents."""

from __future__ import annotations

import contextlib

import pytest

from shared.api.problems import Problem


def test_a_problem_raised_inside_a_context_manager_keeps_its_fields() -> None:
    with pytest.raises(Problem) as caught, contextlib.suppress(KeyError):
        raise Problem(409, "username 'ada' is taken", extensions={"field": "username"})
    problem = caught.value
    assert problem.__traceback__ is not None
    assert problem.to_json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "username 'ada' is taken",
        "field": "username",
    }


def test_a_problem_raised_while_handling_another_error_chains_it() -> None:
    with pytest.raises(Problem) as caught:
        try:
            raise LookupError("missing")
        except LookupError:
            raise Problem(404, "no such user") from None
    assert caught.value.__suppress_context__ and caught.value.title == "Not Found"
