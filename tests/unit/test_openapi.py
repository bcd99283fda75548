"""The published OpenAPI document stays in sync with the HTTP functions the app registers."""

from __future__ import annotations

from functools import cache
from typing import Any

import function_app
from shared.api.openapi import SCIM, document


@cache
def functions() -> list[Any]:
    """``get_functions()`` indexes the app and refuses to run twice (duplicate-name check), as the worker."""
    return list(function_app.app.get_functions())


def registered_http_routes() -> set[tuple[str, str]]:
    routes = set()
    for fn in functions():
        trigger: Any = fn.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        for method in trigger.methods or []:
            routes.add((f"/{trigger.route}", str(getattr(method, "value", method)).lower()))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {(path, method) for path, ops in document()["paths"].items() for method in ops}


def scim_routes() -> set[tuple[str, str]]:
    """SCIM describes itself (RFC 7644 §4): the document names its one function by reference (``x-scim``)."""
    scim = document()["x-scim"]
    return {(scim["route"], method.lower()) for method in scim["methods"]}


def test_every_http_function_is_documented_and_nothing_else() -> None:
    registered = registered_http_routes()
    assert registered, "no HTTP functions found"
    console = document()["x-console"]
    console_routes = {(console["route"], m.lower()) for m in console["methods"]}
    assert registered == documented_routes() | scim_routes() | console_routes
    assert scim_routes() == {(SCIM["route"], m) for m in ("get", "post", "put", "patch", "delete")}


def test_document_is_openapi_3_1_with_unique_operation_ids() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    names = {fn.get_function_name() for fn in functions()}
    assert set(ids) <= names, "operationId is the function name"


def test_the_signed_webhook_documents_its_headers_body_and_refusals() -> None:
    op = document()["paths"]["/hris/events"]["post"]
    headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(h["required"] for h in headers.values())
    assert op["security"] == [], "no bearer token: the signature authenticates"
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HrisEvent"}
    assert {"HrisEvent", "HrisEventData"} <= set(document()["components"]["schemas"])
    assert {"202", "400", "401", "413", "415"} <= set(op["responses"])
    assert "signature" in op["responses"]["401"]["description"]


def test_query_parameters_are_never_null_and_an_empty_value_means_left_out() -> None:
    """The Functions host drops a query parameter whose value is empty before the app sees it."""
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["in"] != "query":
                    continue
                where = f"{method.upper()} {path} ?{param['name']}"
                assert "null" not in str(param["schema"]), where
                assert param.get("allowEmptyValue", False) is (not param["required"]), where


def test_conditional_writes_document_412_and_semantic_refusals_422() -> None:
    paths = document()["paths"]
    for path, method in (
        ("/users/{id}", "patch"),
        ("/groups/{id}", "delete"),
        ("/directories/{directoryId}", "patch"),
    ):
        assert {"400", "412"} <= set(paths[path][method]["responses"]), (method, path)
    for path, method in (
        ("/users", "get"),
        ("/directories", "post"),
        ("/audit", "get"),
        ("/users/{id}/password", "post"),
    ):
        assert "422" in paths[path][method]["responses"], (method, path)
    assert not any("501" in op["responses"] for ops in paths.values() for op in ops.values()), (
        "nothing unbuilt is offered"
    )
