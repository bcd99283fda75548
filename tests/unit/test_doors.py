"""Every HTTP door is typed by its operation: the ``Call`` it declares carries exactly the body and query models the
operation validates (``functions.http.serve`` hands the validated models to the door as they are), and every
declared operation has its door."""

from __future__ import annotations

import inspect
import typing

import function_app  # noqa: F401  (registers every door)
from functions.http import HANDLERS, Call
from shared.api.operations import OPERATIONS
from shared.bootstrap import Container


def declared(handler: typing.Callable[..., typing.Any]) -> tuple[object, object]:
    hints = typing.get_type_hints(handler, localns={"Container": Container})
    app, call = list(inspect.signature(handler).parameters)
    assert hints[app] is Container, f"{handler.__name__}: the container is typed"
    assert typing.get_origin(hints[call]) is Call, f"{handler.__name__}: {hints[call]}"
    body, query = typing.get_args(hints[call])
    return body, query


def test_each_door_declares_the_models_its_operation_validates() -> None:
    none = type(None)
    wrong = {
        op.name: (declared(HANDLERS[op.name]), (op.body or none, op.query or none))
        for op in OPERATIONS
        if declared(HANDLERS[op.name]) != (op.body or none, op.query or none)
    }
    assert wrong == {}


def test_every_operation_has_its_door_and_every_door_its_operation() -> None:
    assert set(HANDLERS) == {op.name for op in OPERATIONS}
