"""Every HTTP door is typed by its operation: each operation names models that exist, its door (the function named
after it in ``functions/<tag>.py``, loaded on first request) exists, and the ``Call`` it declares carries exactly
the body and query models the operation validates (``functions.http.serve`` hands the validated models to the door
as they are). The names are resolved lazily at run time, so this is where a misspelt or mismatched one shows."""

from __future__ import annotations

import inspect
import pkgutil
import typing

import pytest
from pydantic import BaseModel

import functions
from functions.http import Call
from functions.routes import door
from shared.api.operations import OPERATIONS, model
from shared.bootstrap import Container


def declared(handler: typing.Callable[..., typing.Any]) -> tuple[object, object]:
    hints = typing.get_type_hints(handler, localns={"Container": Container})
    app, call = list(inspect.signature(handler).parameters)
    assert hints[app] is Container, f"{handler.__name__}: the container is typed"
    assert typing.get_origin(hints[call]) is Call, f"{handler.__name__}: {hints[call]}"
    body, query = typing.get_args(hints[call])
    return body, query


def test_every_model_an_operation_names_is_a_model_of_the_schemas() -> None:
    for op in OPERATIONS:
        for name in (op.body, op.query, op.response, op.signed_body):
            if name is not None:
                resolved = model(name)
                assert resolved is not None and issubclass(resolved, BaseModel), (op.name, name)
                assert resolved.__name__ == name, (op.name, name)


def test_a_name_that_is_not_a_model_is_refused() -> None:
    with pytest.raises(LookupError, match="NoSuchModel"):
        model("NoSuchModel")
    with pytest.raises(LookupError, match="GUID_PATTERN"):
        model("GUID_PATTERN")  # in the schemas module, but not a model


def test_each_door_declares_the_models_its_operation_validates() -> None:
    none = type(None)
    wrong = {
        op.name: (declared(door(op)), (op.body_model or none, op.query_model or none))
        for op in OPERATIONS
        if declared(door(op)) != (op.body_model or none, op.query_model or none)
    }
    assert wrong == {}


def test_every_operation_has_its_door_and_every_door_its_operation() -> None:
    names = {op.name for op in OPERATIONS}
    for op in OPERATIONS:
        assert inspect.iscoroutinefunction(door(op)), op.name
    tags = {op.module for op in OPERATIONS}
    for tag in tags:
        module = __import__(f"functions.{tag}", fromlist=["_"])
        doors = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and inspect.iscoroutinefunction(value)
            and value.__module__ == module.__name__
        }
        assert doors <= names, f"functions/{tag}.py: {sorted(doors - names)} serve no operation"
        assert {op.name for op in OPERATIONS if op.module == tag} <= doors


def test_a_door_module_holds_no_other_triggers() -> None:
    """A door module is loaded on first request: a queue or timer trigger in it would never be registered."""
    tags = {op.module for op in OPERATIONS}
    for info in pkgutil.iter_modules(functions.__path__):
        if info.name in tags:
            module = __import__(f"functions.{info.name}", fromlist=["_"])
            assert not hasattr(module, "bp"), f"functions/{info.name}.py: no Blueprint in a door module"
